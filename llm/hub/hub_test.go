package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"testing"
	"time"
)

func TestParseRef(t *testing.T) {
	good := []struct {
		in   string
		want Ref
	}{
		{"hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf", Ref{"Qwen", "Qwen2.5-0.5B-Instruct-GGUF", "main", "qwen2.5-0.5b-instruct-q8_0.gguf"}},
		{"hf://o/r@v1.0/sub/dir/m.gguf", Ref{"o", "r", "v1.0", "sub/dir/m.gguf"}},
		{"hf://o/r@0123abc/m.gguf", Ref{"o", "r", "0123abc", "m.gguf"}},
	}
	for _, g := range good {
		got, err := ParseRef(g.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", g.in, err)
			continue
		}
		if got != g.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", g.in, got, g.want)
		}
		if got.String() != g.in {
			t.Errorf("String() = %q, want %q", got.String(), g.in)
		}
	}
	for _, bad := range []string{"", "model.gguf", "hf://", "hf://o/r", "hf://o/r/", "hf://o/r@/m.gguf",
		"hf://o/../m.gguf", "hf://o/r/../../etc/passwd", "hf://o/r/a//b.gguf", "hf:///r/m.gguf", "hf://o/r/a\\b.gguf"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "OWNER/REPO") {
			t.Errorf("ParseRef(%q): error does not show the expected form: %v", bad, err)
		}
	}
}

func TestFileURL(t *testing.T) {
	ref, _ := ParseRef("hf://o/r@my rev/sub/m 1.gguf")
	got, err := FileURL("https://hub.example/", ref)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://hub.example/o/r/resolve/my%20rev/sub/m%201.gguf"; got != want {
		t.Errorf("FileURL = %q, want %q", got, want)
	}
	if _, err := FileURL("ftp://x", ref); err == nil || !strings.Contains(err.Error(), EnvEndpoint) {
		t.Errorf("ftp endpoint: %v", err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv(EnvCache, "/some/where")
	if d, err := DefaultCacheDir(); err != nil || d != "/some/where" {
		t.Errorf("with $%s: %q, %v", EnvCache, d, err)
	}
	t.Setenv(EnvCache, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	t.Setenv("HOME", "/home/u")
	d, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if base, _ := os.UserCacheDir(); d != filepath.Join(base, "selfinstruct") {
		t.Errorf("default %q", d)
	}
}

// hubServer imitates the hub: /OWNER/REPO/resolve/REV/FILE answers with a
// redirect carrying X-Linked-Etag / X-Linked-Size (as the hub does for LFS
// files), and /cdn/FILE serves the bytes with Range support. Fields change
// its behaviour for the failure cases.
type hubServer struct {
	*httptest.Server
	content []byte
	sha     string

	mu       sync.Mutex
	requests []*http.Request // every request, in order

	status      int    // if set, the hub answers with this status
	linkedSHA   string // overrides the announced sha256
	linkedSize  int64  // overrides the announced size
	noLinked    bool   // no X-Linked-* headers, ETag is a git sha1
	noRedirect  bool   // the hub serves the bytes itself
	onlyETag    bool   // the hub sends its sha256 as ETag only, no X-Linked-*
	cdnETag     string // the CDN's own ETag
	ignoreRange bool
	cutAfter    int   // first CDN response drops the connection after this many bytes
	failFirst   int32 // this many CDN requests get a 503
}

func newHubServer(t *testing.T, size int) *hubServer {
	t.Helper()
	content := make([]byte, size)
	r := rand.New(rand.NewPCG(1, uint64(size)))
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(content)
	h := &hubServer{content: content, sha: hex.EncodeToString(sum[:])}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hubServer) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, r.Clone(context.Background()))
	h.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/cdn/") {
		h.serveBytes(w, r)
		return
	}
	if h.status != 0 {
		http.Error(w, `{"error":"nope"}`, h.status)
		return
	}
	if r.URL.Path != "/owner/repo/resolve/main/model.gguf" && r.URL.Path != "/owner/repo/resolve/v2/sub/model.gguf" {
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	switch {
	case h.noLinked:
		w.Header().Set("ETag", `"0123456789012345678901234567890123456789"`)
	case h.onlyETag:
		w.Header().Set("ETag", `"`+h.sha+`"`)
	default:
		sha, size := h.sha, int64(len(h.content))
		if h.linkedSHA != "" {
			sha = h.linkedSHA
		}
		if h.linkedSize != 0 {
			size = h.linkedSize
		}
		w.Header().Set("X-Linked-Etag", `"`+sha+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(size))
		w.Header().Set("ETag", `W/"`+sha+`"`)
	}
	if h.noRedirect {
		h.serveBytes(w, r)
		return
	}
	http.Redirect(w, r, "/cdn/blob?sig=x", http.StatusFound)
}

func (h *hubServer) serveBytes(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	n := 0
	for _, q := range h.requests {
		if strings.HasPrefix(q.URL.Path, "/cdn/") || h.noRedirect {
			n++
		}
	}
	fail, cut := int32(n) <= h.failFirst, h.cutAfter > 0 && n == 1
	h.mu.Unlock()
	if fail {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if h.ignoreRange {
		r.Header.Del("Range")
	}
	if h.cdnETag != "" {
		w.Header().Set("ETag", `"`+h.cdnETag+`"`)
	}
	if cut {
		// Announce the whole body, send part of it, then drop the
		// connection: the client sees an unexpected EOF.
		w.Header().Set("Content-Length", fmt.Sprint(len(h.content)))
		w.WriteHeader(http.StatusOK)
		w.Write(h.content[:h.cutAfter])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, "model.gguf", time.Time{}, bytes.NewReader(h.content))
}

func (h *hubServer) reqs() []*http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*http.Request(nil), h.requests...)
}

func testOptions(t *testing.T, h *hubServer) Options {
	return Options{
		CacheDir:    t.TempDir(),
		Endpoint:    h.URL,
		Token:       "hf_secret",
		MaxAttempts: 3,
		Backoff:     time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

var testRef = Ref{Owner: "owner", Repo: "repo", Revision: "main", File: "model.gguf"}

func checkInPlace(t *testing.T, h *hubServer, res Result) {
	t.Helper()
	got, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, h.content) {
		t.Fatalf("downloaded %d bytes differ from the served %d", len(got), len(h.content))
	}
	if res.SHA256 != h.sha || res.Size != int64(len(h.content)) {
		t.Errorf("result %+v, want sha %s size %d", res, h.sha, len(h.content))
	}
	sum, err := os.ReadFile(res.Path + SumSuffix)
	if err != nil {
		t.Fatalf("no digest recorded beside the file: %v", err)
	}
	if want := h.sha + "  model.gguf\n"; string(sum) != want {
		t.Errorf("digest file %q, want %q", sum, want)
	}
	if _, err := os.Stat(res.Path + ".part"); !os.IsNotExist(err) {
		t.Errorf("the .part file is left behind: %v", err)
	}
}

func checkNothingInPlace(t *testing.T, opts Options, ref Ref) {
	t.Helper()
	p := CachePath(opts.CacheDir, ref)
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("a failed download was put in place at %s", p)
	}
}

func TestPullFull(t *testing.T) {
	h := newHubServer(t, 300_000)
	opts := testOptions(t, h)
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)
	if !res.Verified || res.Cached {
		t.Errorf("result %+v: want verified against X-Linked-Etag, not cached", res)
	}
	if want := filepath.Join(opts.CacheDir, "hf", "owner", "repo", "main", "model.gguf"); res.Path != want {
		t.Errorf("path %s, want %s", res.Path, want)
	}
	rs := h.reqs()
	if len(rs) != 2 || rs[0].URL.Path != "/owner/repo/resolve/main/model.gguf" || rs[1].URL.Path != "/cdn/blob" {
		t.Fatalf("requests %v, want the resolve URL then the redirect", paths(rs))
	}
	if got := rs[0].Header.Get("Authorization"); got != "Bearer hf_secret" {
		t.Errorf("Authorization %q, want the token as Bearer", got)
	}
	if rs[0].Header.Get("Range") != "" {
		t.Errorf("a fresh download sent Range %q", rs[0].Header.Get("Range"))
	}

	// A revision and a nested file name map to their own URL and place.
	ref2 := Ref{Owner: "owner", Repo: "repo", Revision: "v2", File: "sub/model.gguf"}
	res2, err := Pull(context.Background(), ref2, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(opts.CacheDir, "hf", "owner", "repo", "v2", "sub", "model.gguf"); res2.Path != want {
		t.Errorf("path %s, want %s", res2.Path, want)
	}
}

func TestPullCachedWithoutNetwork(t *testing.T) {
	h := newHubServer(t, 50_000)
	opts := testOptions(t, h)
	first, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	opts.Endpoint = "http://127.0.0.1:1" // nothing listens there
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatalf("cached file not used: %v", err)
	}
	if !res.Cached || res.Path != first.Path || res.SHA256 != h.sha || res.Size != int64(len(h.content)) {
		t.Errorf("cached result %+v", res)
	}
	p, err := Resolve(context.Background(), testRef.String(), opts)
	if err != nil || p != first.Path {
		t.Errorf("Resolve = %q, %v", p, err)
	}
	if p, err := Resolve(context.Background(), "local/model.gguf", opts); err != nil || p != "local/model.gguf" {
		t.Errorf("Resolve of a path = %q, %v", p, err)
	}
	// Force goes to the network, which is not there now.
	opts.Force, opts.MaxAttempts = true, 1
	if _, err := Pull(context.Background(), testRef, opts); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("forced pull without a server: %v", err)
	}
}

func TestPullResumesAfterCut(t *testing.T) {
	h := newHubServer(t, 200_000)
	h.cutAfter = 70_000
	opts := testOptions(t, h)
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)
	if !res.Verified {
		t.Error("resumed download not verified")
	}
	var cdn []*http.Request
	for _, r := range h.reqs() {
		if r.URL.Path == "/cdn/blob" {
			cdn = append(cdn, r)
		}
	}
	if len(cdn) != 2 {
		t.Fatalf("%d CDN requests, want 2", len(cdn))
	}
	if got := cdn[1].Header.Get("Range"); got != "bytes=70000-" {
		t.Errorf("second request's Range %q, want bytes=70000-", got)
	}
}

func TestPullResumesAcrossRuns(t *testing.T) {
	h := newHubServer(t, 120_000)
	h.cutAfter = 50_000
	opts := testOptions(t, h)
	opts.MaxAttempts = 1
	_, err := Pull(context.Background(), testRef, opts)
	if err == nil || !strings.Contains(err.Error(), "cut at 50000") {
		t.Fatalf("first run: %v, want a cut download", err)
	}
	checkNothingInPlace(t, opts, testRef)
	if st, err := os.Stat(CachePath(opts.CacheDir, testRef) + ".part"); err != nil || st.Size() != 50_000 {
		t.Fatalf("partial file: %v %v", st, err)
	}
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)
	rs := h.reqs()
	if got := rs[len(rs)-1].Header.Get("Range"); got != "bytes=50000-" {
		t.Errorf("resume sent Range %q", got)
	}
}

func TestPullRangeIgnored(t *testing.T) {
	h := newHubServer(t, 80_000)
	h.ignoreRange = true
	opts := testOptions(t, h)
	part := CachePath(opts.CacheDir, testRef) + ".part"
	os.MkdirAll(filepath.Dir(part), 0o755)
	// A stale part that does not even match the file: a 200 must replace it.
	if err := os.WriteFile(part, bytes.Repeat([]byte{0xEE}, 30_000), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)
	rs := h.reqs()
	if got := rs[len(rs)-1].Header.Get("Range"); got != "bytes=30000-" {
		t.Errorf("Range %q, want bytes=30000-", got)
	}
}

func TestPullCompletePartAnswered416(t *testing.T) {
	h := newHubServer(t, 40_000)
	opts := testOptions(t, h)
	part := CachePath(opts.CacheDir, testRef) + ".part"
	os.MkdirAll(filepath.Dir(part), 0o755)
	// A run that died between the last byte and the rename.
	if err := os.WriteFile(part, h.content, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)
	if !res.Verified {
		t.Error("not verified")
	}
}

func TestPullRetriesServerErrors(t *testing.T) {
	h := newHubServer(t, 10_000)
	h.failFirst = 2
	opts := testOptions(t, h)
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)

	h2 := newHubServer(t, 10_000)
	h2.failFirst = 5
	opts2 := testOptions(t, h2)
	if _, err := Pull(context.Background(), testRef, opts2); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("persistent 503: %v", err)
	}
	checkNothingInPlace(t, opts2, testRef)
}

func TestPullSizeMismatch(t *testing.T) {
	h := newHubServer(t, 20_000)
	h.linkedSize = 20_001
	opts := testOptions(t, h)
	_, err := Pull(context.Background(), testRef, opts)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "20001") || !strings.Contains(err.Error(), "20000") {
		t.Fatalf("err %v, want an integrity error naming both sizes", err)
	}
	checkNothingInPlace(t, opts, testRef)
}

func TestPullSHA256Mismatch(t *testing.T) {
	h := newHubServer(t, 20_000)
	h.linkedSHA = strings.Repeat("ab", 32)
	opts := testOptions(t, h)
	_, err := Pull(context.Background(), testRef, opts)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), h.sha) || !strings.Contains(err.Error(), h.linkedSHA) {
		t.Fatalf("err %v, want an integrity error naming both digests", err)
	}
	checkNothingInPlace(t, opts, testRef)
	if _, err := os.Stat(CachePath(opts.CacheDir, testRef) + ".part"); !os.IsNotExist(err) {
		t.Error("the corrupt .part is kept, a resume would reuse it")
	}
}

func TestPullWithoutAnnouncedDigest(t *testing.T) {
	h := newHubServer(t, 5_000)
	h.noLinked, h.noRedirect = true, true
	opts := testOptions(t, h)
	res, err := Pull(context.Background(), testRef, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The sha1 ETag of a git file is not a sha256: nothing to verify, but
	// the computed digest is recorded.
	checkInPlace(t, h, res)
	if res.Verified {
		t.Error("verified against nothing")
	}

	// Without redirect the hub's own ETag is the sha256 of an LFS file.
	h2 := newHubServer(t, 5_000)
	h2.noRedirect = true
	h2.linkedSHA = strings.Repeat("cd", 32)
	if _, err := Pull(context.Background(), testRef, testOptions(t, h2)); !errors.Is(err, ErrIntegrity) {
		t.Errorf("mismatching digest without redirect: %v", err)
	}
}

// TestPullHubETagNotCDN: behind a redirect, the hub's ETag is the digest;
// the CDN's ETag, even one shaped like a sha256, is not.
func TestPullHubETagNotCDN(t *testing.T) {
	h := newHubServer(t, 7_000)
	h.onlyETag, h.cdnETag = true, strings.Repeat("ef", 32)
	res, err := Pull(context.Background(), testRef, testOptions(t, h))
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, h, res)
	if !res.Verified {
		t.Error("not verified against the hub's ETag")
	}
}

func TestPullNotFound(t *testing.T) {
	h := newHubServer(t, 10)
	opts := testOptions(t, h)
	ref := Ref{Owner: "owner", Repo: "repo", Revision: "main", File: "missing.gguf"}
	_, err := Pull(context.Background(), ref, opts)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "hf://owner/repo/missing.gguf") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err %v, want not found naming the reference", err)
	}
	if n := len(h.reqs()); n != 1 {
		t.Errorf("%d requests for a 404, want 1 (no retries)", n)
	}
	checkNothingInPlace(t, opts, ref)
}

func TestPullAccessDenied(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		h := newHubServer(t, 10)
		h.status = status
		opts := testOptions(t, h)
		opts.Token = ""
		t.Setenv(EnvToken, "")
		_, err := Pull(context.Background(), testRef, opts)
		if !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), "gated") || !strings.Contains(err.Error(), EnvToken) || !strings.Contains(err.Error(), fmt.Sprint(status)) {
			t.Errorf("%d: err %v, want access denied with the gated/HF_TOKEN hint", status, err)
		}
		if got := h.reqs()[0].Header.Get("Authorization"); got != "" {
			t.Errorf("Authorization %q sent without a token", got)
		}
		// With a token set the message says it was refused.
		t.Setenv(EnvToken, "hf_from_env")
		_, err = Pull(context.Background(), testRef, opts)
		if !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%d with token: %v", status, err)
		}
		rs := h.reqs()
		if got := rs[len(rs)-1].Header.Get("Authorization"); got != "Bearer hf_from_env" {
			t.Errorf("Authorization %q, want $HF_TOKEN as Bearer", got)
		}
	}
}

func TestPullCancelled(t *testing.T) {
	h := newHubServer(t, 10)
	opts := testOptions(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pull(ctx, testRef, opts); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in        string
		s, e, tot int64
		ok        bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes */10", -1, -1, 10, true},
		{"bytes 9-5/10", -1, -1, 10, false},
		{"items 0-9/10", -1, -1, -1, false},
		{"bytes x-9/10", -1, -1, 10, false},
	}
	for _, c := range cases {
		s, e, tot, ok := parseContentRange(c.in)
		if s != c.s || e != c.e || tot != c.tot || ok != c.ok {
			t.Errorf("%q: %d %d %d %v, want %d %d %d %v", c.in, s, e, tot, ok, c.s, c.e, c.tot, c.ok)
		}
	}
}

func paths(rs []*http.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.URL.Path)
	}
	return out
}
