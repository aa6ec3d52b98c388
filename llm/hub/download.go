package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Options configure Pull. The zero value downloads from $HF_ENDPOINT (else
// the public hub) into DefaultCacheDir with $HF_TOKEN, logging progress.
type Options struct {
	CacheDir string // "" means DefaultCacheDir()
	Endpoint string // "" means DefaultEndpointURL()
	// Token is sent as "Authorization: Bearer"; "" means $HF_TOKEN. Go's
	// client drops it on redirects to another host (the CDN), as it must.
	Token string
	// Client does the requests; nil means a client with no overall timeout
	// (a model takes minutes) over http.DefaultTransport.
	Client *http.Client
	// MaxAttempts bounds the requests of one pull; a cut connection or a
	// 5xx is retried from where the .part file ends. 0 means 5.
	MaxAttempts int
	// Backoff is the wait before the second attempt, doubled after each
	// failure. 0 means 1s.
	Backoff time.Duration
	// Force downloads again even when the file is in the cache.
	Force bool
	// Progress receives a progress bar when Terminal is set; otherwise
	// progress goes to Logger every LogEvery.
	Progress io.Writer
	Terminal bool
	LogEvery time.Duration // 0 means 10s
	Logger   *slog.Logger  // nil means slog.Default()
}

// Result describes a file in the cache.
type Result struct {
	Path   string
	Size   int64
	SHA256 string // hex; "" for a cached file without a recorded digest
	Cached bool   // found in the cache, no request made
	// Verified is true when the server announced the sha256 and the
	// download matched it; otherwise SHA256 is only what was computed.
	Verified bool
}

// SumSuffix names the file beside a download that records its sha256, in
// sha256sum's format.
const SumSuffix = ".sha256"

// Resolve returns a local path for model: the path itself, or for a hub
// reference the cached file, pulled first if needed.
func Resolve(ctx context.Context, model string, opts Options) (string, error) {
	if !IsRef(model) {
		return model, nil
	}
	ref, err := ParseRef(model)
	if err != nil {
		return "", err
	}
	res, err := Pull(ctx, ref, opts)
	if err != nil {
		return "", err
	}
	return res.Path, nil
}

// Cached returns the cached file of ref without any network access, and
// whether it is there.
func Cached(ref Ref, cacheDir string) (Result, bool) {
	p := CachePath(cacheDir, ref)
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return Result{}, false
	}
	res := Result{Path: p, Size: st.Size(), Cached: true}
	if b, err := os.ReadFile(p + SumSuffix); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 && isSHA256(f[0]) {
			res.SHA256 = f[0]
		}
	}
	return res, true
}

// Pull makes sure ref is in the cache and returns it. A file already there
// is returned without touching the network (unless Force).
func Pull(ctx context.Context, ref Ref, opts Options) (Result, error) {
	if opts.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return Result{}, err
		}
		opts.CacheDir = d
	}
	if !opts.Force {
		if res, ok := Cached(ref, opts.CacheDir); ok {
			return res, nil
		}
	}
	if opts.Endpoint == "" {
		opts.Endpoint = DefaultEndpointURL()
	}
	if opts.Token == "" {
		opts.Token = os.Getenv(EnvToken)
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	u, err := FileURL(opts.Endpoint, ref)
	if err != nil {
		return Result{}, err
	}
	final := CachePath(opts.CacheDir, ref)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return Result{}, fmt.Errorf("%s: cache: %w", ref, err)
	}
	d := &download{ref: ref, url: u, final: final, part: final + ".part", opts: opts}
	wait := opts.Backoff
	for attempt := 1; ; attempt++ {
		res, err := d.attempt(ctx)
		if err == nil {
			return res, nil
		}
		var re *retryable
		if !errors.As(err, &re) || attempt >= opts.MaxAttempts || ctx.Err() != nil {
			if ctx.Err() != nil {
				return Result{}, fmt.Errorf("%s: download interrupted (the partial file is kept to resume): %w", ref, ctx.Err())
			}
			return Result{}, err
		}
		opts.Logger.Warn("download attempt failed, retrying (resuming any partial file)", "model", ref.String(), "attempt", attempt, "err", re.err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%s: download interrupted (the partial file is kept to resume): %w", ref, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// FileURL is {endpoint}/{owner}/{repo}/resolve/{revision}/{file}.
func FileURL(endpoint string, ref Ref) (string, error) {
	base, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return "", fmt.Errorf("hub endpoint %q is not an http(s) URL (set %s or --endpoint)", endpoint, EnvEndpoint)
	}
	segs := []string{url.PathEscape(ref.Owner), url.PathEscape(ref.Repo), "resolve", url.PathEscape(ref.Revision)}
	for _, s := range strings.Split(ref.File, "/") {
		segs = append(segs, url.PathEscape(s))
	}
	return base.String() + "/" + strings.Join(segs, "/"), nil
}

// retryable marks a failure that another request may get past: the
// connection broke, the server had a transient error.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

type download struct {
	ref               Ref
	url, final, part  string
	opts              Options
	linkedSHA, hubTag string
	linkedSize        int64
	redirected        bool
}

// captureRedirects records the hub's own headers: for an LFS file the hub
// answers with a redirect to a CDN whose final response no longer carries
// X-Linked-Etag (the sha256) and X-Linked-Size.
func (d *download) client() *http.Client {
	c := http.Client{}
	if d.opts.Client != nil {
		c = *d.opts.Client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		d.redirected = true
		if r := req.Response; r != nil {
			d.noteHeaders(r.Header, len(via) == 1)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

func (d *download) noteHeaders(h http.Header, first bool) {
	if v := normalizeETag(h.Get("X-Linked-Etag")); isSHA256(v) && d.linkedSHA == "" {
		d.linkedSHA = v
	}
	if v := h.Get("X-Linked-Size"); v != "" && d.linkedSize <= 0 {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			d.linkedSize = n
		}
	}
	if first && d.hubTag == "" {
		d.hubTag = normalizeETag(h.Get("ETag"))
	}
}

// expectedSHA is the sha256 the hub vouches for: X-Linked-Etag, else the
// hub's ETag when it has sha256's shape (LFS files). A git blob's ETag is a
// 40-digit sha1 and a CDN's may be anything, so neither is used.
func (d *download) expectedSHA() string {
	if d.linkedSHA != "" {
		return d.linkedSHA
	}
	if isSHA256(d.hubTag) {
		return d.hubTag
	}
	return ""
}

func (d *download) attempt(ctx context.Context) (Result, error) {
	d.linkedSHA, d.hubTag, d.linkedSize, d.redirected = "", "", 0, false
	have := int64(0)
	if st, err := os.Stat(d.part); err == nil {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", d.ref, err)
	}
	req.Header.Set("User-Agent", "selfinstruct")
	if d.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.opts.Token)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := d.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		err = fmt.Errorf("%s: cannot reach %s: %w", d.ref, d.opts.Endpoint, err)
		// No such host, or nothing listening: waiting will not change that,
		// and an offline machine should hear so at once.
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) {
			return Result{}, err
		}
		return Result{}, &retryable{err}
	}
	defer resp.Body.Close()
	d.noteHeaders(resp.Header, !d.redirected)

	var start, total int64 = 0, -1
	switch resp.StatusCode {
	case http.StatusOK:
		if have > 0 {
			d.opts.Logger.Info("the server ignored the range request; downloading from the start", "model", d.ref.String(), "had", have)
		}
		total = resp.ContentLength
	case http.StatusPartialContent:
		s, _, t, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || s != have {
			// Not the bytes we asked for: drop the part and start over.
			os.Remove(d.part)
			return Result{}, &retryable{fmt.Errorf("%s: server answered range %d- with %q; restarting", d.ref, have, resp.Header.Get("Content-Range"))}
		}
		start, total = s, t
	case http.StatusRequestedRangeNotSatisfiable:
		// The part already reaches the end, or is longer than the file.
		_, _, t, _ := parseContentRange(resp.Header.Get("Content-Range"))
		if t >= 0 && t == have {
			return d.finish(have)
		}
		os.Remove(d.part)
		return Result{}, &retryable{fmt.Errorf("%s: partial download of %d bytes does not fit the file; restarting", d.ref, have)}
	case http.StatusNotFound:
		return Result{}, fmt.Errorf("%s: %w (404 from %s): check the owner, repository, revision and file name", d.ref, ErrNotFound, d.url)
	case http.StatusUnauthorized, http.StatusForbidden:
		hint := "accept its terms on the model's page and set " + EnvToken + " to an access token"
		if d.opts.Token != "" {
			hint = "the token in " + EnvToken + " was refused or has no access to it"
		}
		return Result{}, fmt.Errorf("%s: %w (%d from %s): the repository may be gated or private; %s", d.ref, ErrAccess, resp.StatusCode, d.url, hint)
	default:
		err := fmt.Errorf("%s: HTTP %d from %s", d.ref, resp.StatusCode, d.url)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
			return Result{}, &retryable{err}
		}
		return Result{}, err
	}
	if d.linkedSize > 0 && total >= 0 && d.linkedSize != total {
		os.Remove(d.part)
		return Result{}, fmt.Errorf("%s: %w: the hub announces %d bytes but the download is %d", d.ref, ErrIntegrity, d.linkedSize, total)
	}
	want := total
	if want < 0 {
		want = d.linkedSize
		if want == 0 {
			want = -1
		}
	}

	flags := os.O_WRONLY | os.O_CREATE
	if start == 0 {
		flags |= os.O_TRUNC
	} else {
		flags |= os.O_APPEND
	}
	f, err := os.OpenFile(d.part, flags, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("%s: cache: %w", d.ref, err)
	}
	w := d.progress(f, start, want)
	n, copyErr := io.Copy(w, resp.Body)
	w.done()
	if err := f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	if err := f.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	got := start + n
	if copyErr != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		// Keep the part: the next attempt resumes at got.
		return Result{}, &retryable{fmt.Errorf("%s: download cut at %d of %s bytes: %w", d.ref, got, sizeText(want), copyErr)}
	}
	if want >= 0 && got != want {
		// The body ended cleanly at another length than announced: the
		// server is inconsistent, resuming would not help.
		os.Remove(d.part)
		return Result{}, fmt.Errorf("%s: %w: received %d bytes, expected %d", d.ref, ErrIntegrity, got, want)
	}
	return d.finish(got)
}

// finish verifies the complete .part and moves it into place.
func (d *download) finish(size int64) (Result, error) {
	sum, err := fileSHA256(d.part)
	if err != nil {
		return Result{}, fmt.Errorf("%s: cache: %w", d.ref, err)
	}
	res := Result{Path: d.final, Size: size, SHA256: sum}
	if want := d.expectedSHA(); want != "" {
		if sum != want {
			os.Remove(d.part)
			return Result{}, fmt.Errorf("%s: %w: sha256 %s, the hub announces %s; the corrupt download was deleted", d.ref, ErrIntegrity, sum, want)
		}
		res.Verified = true
	}
	// The digest goes down first: a file in place always has its record
	// (a crash between the two leaves a stale .sha256 that the next
	// download overwrites).
	sumLine := sum + "  " + filepath.Base(d.final) + "\n"
	if err := writeFileSync(d.final+SumSuffix, []byte(sumLine)); err != nil {
		return Result{}, fmt.Errorf("%s: cache: %w", d.ref, err)
	}
	if err := os.Rename(d.part, d.final); err != nil {
		return Result{}, fmt.Errorf("%s: cache: %w", d.ref, err)
	}
	syncDir(filepath.Dir(d.final))
	d.opts.Logger.Info("downloaded", "model", d.ref.String(), "path", d.final, "bytes", size, "sha256", sum, "verified", res.Verified)
	return res, nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// syncDir makes a rename durable; failures only cost durability, and some
// systems cannot sync a directory at all.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseContentRange reads "bytes START-END/TOTAL" or "bytes */TOTAL"; an
// unknown total ("*") is -1.
func parseContentRange(v string) (start, end, total int64, ok bool) {
	start, end, total = -1, -1, -1
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return start, end, total, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return start, end, total, false
	}
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return start, end, total, false
		}
		total = t
	}
	if rng == "*" {
		return start, end, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return start, end, total, false
	}
	s, err1 := strconv.ParseInt(a, 10, 64)
	e, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || s < 0 || e < s {
		return -1, -1, total, false
	}
	return s, e, total, true
}

// normalizeETag strips the weak marker and quotes: W/"abc" -> abc.
func normalizeETag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	return strings.ToLower(strings.Trim(v, `"`))
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func sizeText(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.FormatInt(n, 10)
}

// progressWriter counts bytes into a bar on a terminal or periodic log lines.
type progressWriter struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	log     *slog.Logger
	ref     string
	every   time.Duration
	last    time.Time
	written int64
	total   int64
}

func (d *download) progress(w io.Writer, start, total int64) *progressWriter {
	p := &progressWriter{w: w, log: d.opts.Logger, ref: d.ref.String(), every: d.opts.LogEvery, last: time.Now(), written: start, total: total}
	if d.opts.Terminal && d.opts.Progress != nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(d.opts.Progress),
			progressbar.OptionSetDescription(d.ref.File),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		p.bar.Set64(start)
	} else {
		p.log.Info("downloading", "model", p.ref, "from", d.url, "resume_at", start, "bytes", sizeText(total))
	}
	return p
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.written += int64(n)
	if p.bar != nil {
		p.bar.Add64(int64(n))
	} else if time.Since(p.last) >= p.every {
		p.last = time.Now()
		args := []any{"model", p.ref, "bytes", p.written}
		if p.total > 0 {
			args = append(args, "of", p.total, "percent", fmt.Sprintf("%.1f", 100*float64(p.written)/float64(p.total)))
		}
		p.log.Info("downloading", args...)
	}
	return n, err
}

func (p *progressWriter) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
