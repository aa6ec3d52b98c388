package teacher

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// unknownResetWait is how long to hold off when the server says a limit is
// used up but not when it resets: long enough not to hammer it, short enough
// to recover quickly once it does.
const unknownResetWait = time.Second

// rateLimiter paces requests to stay under the account's limits, combining
// what we were told (requests and tokens per minute) with what the server
// says in its x-ratelimit-* headers, which reflect every other client on
// the same key as well.
type rateLimiter struct {
	mu       sync.Mutex
	requests *bucket // nil: no local requests-per-minute limit
	tokens   *bucket // nil: no local tokens-per-minute limit

	serverRequests serverWindow
	serverTokens   serverWindow
}

// bucket is a token bucket that may go into debt: a request bigger than the
// whole bucket is let through once the bucket is full instead of waiting
// forever, and the debt delays the requests after it.
type bucket struct {
	perSecond float64
	capacity  float64
	level     float64
	last      time.Time
}

// serverWindow is the server's last word on one limit: how much is left
// until resetAt. Past resetAt we know nothing and let requests through.
type serverWindow struct {
	known     bool
	remaining int64
	resetAt   time.Time
}

func newRateLimiter(requestsPerMinute, tokensPerMinute int, now time.Time) *rateLimiter {
	l := &rateLimiter{}
	if requestsPerMinute > 0 {
		l.requests = newPerMinuteBucket(float64(requestsPerMinute), now)
	}
	if tokensPerMinute > 0 {
		l.tokens = newPerMinuteBucket(float64(tokensPerMinute), now)
	}
	return l
}

// newPerMinuteBucket holds one second's worth of the limit: OpenAI enforces
// per-minute limits over shorter windows, so a full minute's burst at start
// would be refused.
func newPerMinuteBucket(perMinute float64, now time.Time) *bucket {
	perSecond := perMinute / 60
	capacity := max(perSecond, 1)
	return &bucket{perSecond: perSecond, capacity: capacity, level: capacity, last: now}
}

func (b *bucket) refill(now time.Time) {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.level = min(b.capacity, b.level+elapsed*b.perSecond)
		b.last = now
	}
}

// wait is how long until cost can be taken.
func (b *bucket) wait(cost float64, now time.Time) time.Duration {
	b.refill(now)
	need := min(cost, b.capacity)
	if b.level >= need {
		return 0
	}
	return time.Duration((need - b.level) / b.perSecond * float64(time.Second))
}

// wait is how long until the server will accept cost more, as far as its
// headers told us.
func (w *serverWindow) wait(cost int64, now time.Time) time.Duration {
	if !w.known {
		return 0
	}
	if !now.Before(w.resetAt) {
		w.known = false
		return 0
	}
	if w.remaining >= cost {
		return 0
	}
	return w.resetAt.Sub(now)
}

func (w *serverWindow) take(cost int64) {
	if w.known {
		w.remaining -= cost
	}
}

// acquire blocks until one request costing tokens may be sent, and takes
// it. It returns how long it waited.
func (l *rateLimiter) acquire(ctx context.Context, tokens int64) (time.Duration, error) {
	var waited time.Duration
	for {
		l.mu.Lock()
		now := time.Now()
		wait := l.serverRequests.wait(1, now)
		wait = max(wait, l.serverTokens.wait(tokens, now))
		if l.requests != nil {
			wait = max(wait, l.requests.wait(1, now))
		}
		if l.tokens != nil {
			wait = max(wait, l.tokens.wait(float64(tokens), now))
		}
		if wait <= 0 {
			l.serverRequests.take(1)
			l.serverTokens.take(tokens)
			if l.requests != nil {
				l.requests.level--
			}
			if l.tokens != nil {
				l.tokens.level -= float64(tokens)
			}
			l.mu.Unlock()
			return waited, nil
		}
		l.mu.Unlock()
		if err := sleepContext(ctx, wait); err != nil {
			return waited, err
		}
		waited += wait
	}
}

// settle corrects the token bucket once the real usage is known: the
// estimate taken in acquire is replaced by what was billed.
func (l *rateLimiter) settle(estimated, actual int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tokens == nil {
		return
	}
	l.tokens.refill(time.Now())
	l.tokens.level = min(l.tokens.capacity, l.tokens.level+float64(estimated-actual))
}

// observe takes in the server's x-ratelimit-* headers from any response,
// errors included (a 429 carries them too).
func (l *rateLimiter) observe(h http.Header) {
	if h == nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	updateWindow(&l.serverRequests, h.Get("x-ratelimit-remaining-requests"), h.Get("x-ratelimit-reset-requests"), now)
	updateWindow(&l.serverTokens, h.Get("x-ratelimit-remaining-tokens"), h.Get("x-ratelimit-reset-tokens"), now)
}

func updateWindow(w *serverWindow, remaining, reset string, now time.Time) {
	left, err := strconv.ParseInt(strings.TrimSpace(remaining), 10, 64)
	if err != nil || left < 0 {
		return
	}
	resetIn, ok := parseResetDuration(reset)
	if !ok {
		resetIn = unknownResetWait
	}
	w.known = true
	w.remaining = left
	w.resetAt = now.Add(resetIn)
}

// parseResetDuration reads x-ratelimit-reset-* values. OpenAI sends Go-style
// durations ("1s", "6m0s", "20ms", "1m30.5s"); some compatible servers send a
// bare number of seconds.
func parseResetDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, true
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), true
	}
	return 0, false
}

// sleepContext waits d or until ctx is done, whichever is first.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
