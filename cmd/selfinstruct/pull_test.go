package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHub serves one LFS-like file the way the hub does: the resolve URL
// redirects with X-Linked-Etag/X-Linked-Size, the CDN URL honours Range.
// The first CDN response is cut after half the body when cut is set.
type fakeHub struct {
	*httptest.Server
	content []byte
	sha     string
	status  int
	cut     bool

	mu     sync.Mutex
	ranges []string
	auth   []string
}

func newFakeHub(t *testing.T, content []byte) *fakeHub {
	sum := sha256.Sum256(content)
	h := &fakeHub{content: content, sha: hex.EncodeToString(sum[:])}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		switch {
		case r.URL.Path == "/cdn/blob":
			h.ranges = append(h.ranges, r.Header.Get("Range"))
			if h.cut && len(h.ranges) == 1 {
				w.Header().Set("Content-Length", fmt.Sprint(len(h.content)))
				w.Write(h.content[:len(h.content)/2])
				w.(http.Flusher).Flush()
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			}
			http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(h.content))
		case h.status != 0:
			h.auth = append(h.auth, r.Header.Get("Authorization"))
			w.WriteHeader(h.status)
		case r.URL.Path == "/acme/tiny-GGUF/resolve/main/tiny.gguf":
			h.auth = append(h.auth, r.Header.Get("Authorization"))
			w.Header().Set("X-Linked-Etag", `"`+h.sha+`"`)
			w.Header().Set("X-Linked-Size", fmt.Sprint(len(h.content)))
			http.Redirect(w, r, "/cdn/blob", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *fakeHub) locked(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

const fakeRef = "hf://acme/tiny-GGUF/tiny.gguf"

func TestPullCommand(t *testing.T) {
	content := bytes.Repeat([]byte("GGUF tiny model bytes "), 5000)
	h := newFakeHub(t, content)
	h.cut = true
	cache := t.TempDir()
	stdout, stderr, code := runCLI(t, []string{"HF_TOKEN=hf_test"}, "pull", fakeRef, "--cache", cache, "--endpoint", h.URL)
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	want := filepath.Join(cache, "hf", "acme", "tiny-GGUF", "main", "tiny.gguf")
	if strings.TrimSpace(stdout) != want {
		t.Errorf("printed %q, want the cached path %s", stdout, want)
	}
	got, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("cached file differs from the served one (%v)", err)
	}
	if sum, _ := os.ReadFile(want + ".sha256"); !strings.HasPrefix(string(sum), h.sha) {
		t.Errorf("recorded digest %q, want %s", sum, h.sha)
	}
	// The cut first response was resumed, not restarted.
	var ranges, auth []string
	h.locked(func() { ranges, auth = h.ranges, h.auth })
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", len(content)/2) {
		t.Errorf("CDN requests' Range headers %q, want a fresh one then the resume", ranges)
	}
	if len(auth) == 0 || auth[0] != "Bearer hf_test" {
		t.Errorf("Authorization %q, want $HF_TOKEN as Bearer", auth)
	}
	if strings.Contains(stdout+stderr, "hf_test") {
		t.Error("the token was printed")
	}

	// In the cache: no network needed ($HF_ENDPOINT and $SELFINSTRUCT_CACHE
	// stand for the flags).
	h.Close()
	stdout, stderr, code = runCLI(t, []string{"HF_ENDPOINT=http://127.0.0.1:1", "SELFINSTRUCT_CACHE=" + cache}, "pull", fakeRef)
	if code != 0 || strings.TrimSpace(stdout) != want {
		t.Fatalf("cached pull: exit %d, stdout %q\nstderr: %s", code, stdout, stderr)
	}
	// --force goes to the hub, which is gone: a clear error, the file kept.
	_, stderr, code = runCLI(t, []string{"HF_ENDPOINT=http://127.0.0.1:1", "SELFINSTRUCT_CACHE=" + cache}, "pull", "--force", fakeRef)
	if code == 0 || !strings.Contains(stderr, "cannot reach http://127.0.0.1:1") {
		t.Errorf("forced pull without a hub: exit %d\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(want); !bytes.Equal(got, content) {
		t.Error("a failed forced pull damaged the cached file")
	}
}

func TestPullCommandErrors(t *testing.T) {
	content := []byte("0123456789")
	h := newFakeHub(t, content)
	run := func(env []string, args ...string) (string, int) {
		t.Helper()
		_, stderr, code := runCLI(t, append([]string{"HF_TOKEN="}, env...), append([]string{"pull", "--cache", t.TempDir(), "--endpoint", h.URL}, args...)...)
		return stderr, code
	}
	stderr, code := run(nil, "hf://acme/tiny-GGUF/missing.gguf")
	if code != exitBadInput || !strings.Contains(stderr, "hf://acme/tiny-GGUF/missing.gguf") || !strings.Contains(stderr, "404") {
		t.Errorf("404: exit %d\n%s", code, stderr)
	}
	stderr, code = run(nil, "acme/tiny.gguf")
	if code != exitBadInput || !strings.Contains(stderr, "hf://OWNER/REPO/FILE.gguf") {
		t.Errorf("bad reference: exit %d\n%s", code, stderr)
	}
	_, stderr, code = runCLI(t, nil, "pull")
	if code == 0 || !strings.Contains(stderr, "arg") {
		t.Errorf("no reference: exit %d\n%s", code, stderr)
	}

	h.locked(func() { h.status = http.StatusUnauthorized })
	stderr, code = run(nil, fakeRef)
	if code != exitBadInput || !strings.Contains(stderr, "gated") || !strings.Contains(stderr, "HF_TOKEN") {
		t.Errorf("401: exit %d\n%s", code, stderr)
	}
	// A corrupt download (the hub announces another digest) is not kept.
	h.locked(func() { h.status, h.sha = 0, strings.Repeat("0", 64) })
	cache := t.TempDir()
	_, stderr, code = runCLI(t, nil, "pull", "--cache", cache, "--endpoint", h.URL, fakeRef)
	if code != exitError || !strings.Contains(stderr, "sha256") {
		t.Errorf("sha256 mismatch: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(cache, "hf", "acme", "tiny-GGUF", "main", "tiny.gguf")); !os.IsNotExist(err) {
		t.Error("a corrupt download was put in place")
	}
}
