package teacher

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"ms wins", map[string]string{"retry-after-ms": "1500", "Retry-After": "9"}, 1500 * time.Millisecond, true},
		{"fractional ms", map[string]string{"retry-after-ms": "20.5"}, 20500 * time.Microsecond, true},
		{"seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second, true},
		{"http date", map[string]string{"Retry-After": "Fri, 27 Nov 2026 12:00:30 GMT"}, 30 * time.Second, true},
		{"date in the past", map[string]string{"Retry-After": "Fri, 27 Nov 2026 11:00:00 GMT"}, time.Millisecond, true},
		{"bad ms falls back", map[string]string{"retry-after-ms": "soon", "Retry-After": "2"}, 2 * time.Second, true},
		{"garbage", map[string]string{"Retry-After": "later"}, 0, false},
		{"negative", map[string]string{"Retry-After": "-3"}, 0, false},
		{"absent", nil, 0, false},
	}
	for _, tc := range cases {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		got, ok := parseRetryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseResetDuration(t *testing.T) {
	cases := map[string]time.Duration{
		"1s": time.Second, "6m0s": 6 * time.Minute, "20ms": 20 * time.Millisecond,
		"1m30.5s": 90*time.Second + 500*time.Millisecond, "0s": 0, "2": 2 * time.Second, "0.25": 250 * time.Millisecond,
	}
	for in, want := range cases {
		if got, ok := parseResetDuration(in); !ok || got != want {
			t.Errorf("parseResetDuration(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "soon", "-1s"} {
		if _, ok := parseResetDuration(bad); ok {
			t.Errorf("parseResetDuration(%q) accepted", bad)
		}
	}
}

func TestBackoffStaysWithinTheJitterWindow(t *testing.T) {
	o := &OpenAI{cfg: OpenAIConfig{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}}
	for attempt, ceiling := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 60: 50 * time.Millisecond} {
		var sawUpperHalf bool
		for range 200 {
			d := o.backoff(attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: backoff %v outside [0, %v]", attempt, d, ceiling)
			}
			sawUpperHalf = sawUpperHalf || d > ceiling/2
		}
		if !sawUpperHalf {
			t.Errorf("attempt %d: 200 draws never reached the upper half of [0, %v]; jitter is not full", attempt, ceiling)
		}
	}
}

func TestLimiterLetsAnOversizedRequestThroughWhenFull(t *testing.T) {
	// 60 TPM is one token a second; a 500-token request must not wait 500s
	// for a bucket that can never hold it, but the next one pays the debt.
	l := newRateLimiter(0, 60, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if waited, err := l.acquire(ctx, 500); err != nil || waited != 0 {
		t.Fatalf("first acquire: waited %v, err %v", waited, err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := l.acquire(short, 1); err == nil {
		t.Error("second acquire went through although the bucket is 499 tokens in debt")
	}
}

func TestLimiterForgetsServerWindowAfterReset(t *testing.T) {
	l := newRateLimiter(0, 0, time.Now())
	h := http.Header{}
	h.Set("x-ratelimit-remaining-requests", "0")
	h.Set("x-ratelimit-reset-requests", "40ms")
	l.observe(h)
	start := time.Now()
	if _, err := l.acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 35*time.Millisecond {
		t.Errorf("waited %v, want the 40ms reset", waited)
	}
	// After the reset the window is unknown, and requests flow.
	for range 5 {
		waited, err := l.acquire(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if waited != 0 {
			t.Errorf("waited %v after the reset, want none", waited)
		}
	}
}
