package teacher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChatRoundTripSendsEveryParameter(t *testing.T) {
	var got map[string]any
	var gotPath, gotAuth string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		got, gotPath, gotAuth = body, r.URL.Path, r.Header.Get("Authorization")
		writeChat(w, "Write a haiku about rain.", 31, 9)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	seed := int64(42)
	resp, err := o.Complete(context.Background(), Request{
		Mode: ModeChat,
		Messages: []Message{
			{Role: "system", Content: "You write tasks."},
			{Role: "user", Content: "Give me one task."},
		},
		MaxTokens:          256,
		Temperature:        0.7,
		TopP:               0.5,
		PresencePenalty:    0.25,
		FrequencyPenalty:   -0.5,
		Stop:               []string{"\n20", "###"},
		Seed:               &seed,
		ResponseFormatJSON: true,
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if gotPath != "/v1/chat/completions" {
		t.Errorf("path = %q, want /v1/chat/completions", gotPath)
	}
	if gotAuth != "Bearer "+testKey {
		t.Errorf("Authorization = %q, want the bearer key", gotAuth)
	}
	want := map[string]any{
		"model":             "gpt-4o-mini",
		"max_tokens":        256.0,
		"temperature":       0.7,
		"top_p":             0.5,
		"presence_penalty":  0.25,
		"frequency_penalty": -0.5,
		"stop":              []any{"\n20", "###"},
		"seed":              42.0,
		"n":                 1.0,
		"response_format":   map[string]any{"type": "json_object"},
		"messages": []any{
			map[string]any{"role": "system", "content": "You write tasks."},
			map[string]any{"role": "user", "content": "Give me one task."},
		},
	}
	for key, w := range want {
		g := got[key]
		if f, ok := g.(float64); ok {
			// The wire carries float32 values; compare at that precision.
			g = float64(float32(f))
			if wf, ok := w.(float64); ok {
				w = float64(float32(wf))
			}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("body[%q] = %#v, want %#v", key, got[key], w)
		}
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text != "Write a haiku about rain." || resp.Choices[0].FinishReason != FinishStop {
		t.Errorf("choices = %+v", resp.Choices)
	}
	if resp.Usage != (Usage{PromptTokens: 31, CompletionTokens: 9}) {
		t.Errorf("usage = %+v, want 31/9", resp.Usage)
	}
	if resp.Model != "gpt-4o-mini-2024-07-18" {
		t.Errorf("model = %q, want the snapshot the server named", resp.Model)
	}
	if o.Usage() != resp.Usage {
		t.Errorf("teacher usage = %+v, want %+v", o.Usage(), resp.Usage)
	}
}

func TestZeroTemperatureIsSentAsZero(t *testing.T) {
	var raws []string
	var mu sync.Mutex
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		mu.Lock()
		raws = append(raws, body["_raw"].(string))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			writeChat(w, "yes", 5, 1)
			return
		}
		writeCompletion(w, []completionChoice{{0, "yes", "stop"}}, 5, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	chat := chatRequest("Is this a classification task?")
	chat.Temperature = 0
	if _, err := o.Complete(context.Background(), chat); err != nil {
		t.Fatal(err)
	}
	instruct, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.Model = "gpt-3.5-turbo-instruct" })
	if _, err := instruct.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"Classify:"}, MaxTokens: 3}); err != nil {
		t.Fatal(err)
	}
	for i, raw := range raws {
		if !strings.Contains(raw, `"temperature":0`) || strings.Contains(raw, `"temperature":0.`) {
			t.Errorf("request %d body does not carry temperature 0: %s", i, raw)
		}
	}
}

func TestCompletionBatchMapsChoicesBackToPromptOrder(t *testing.T) {
	var got map[string]any
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		got = body
		if r.URL.Path != "/v1/completions" {
			t.Errorf("path = %q, want /v1/completions", r.URL.Path)
		}
		// Out of order, as the API is free to answer.
		writeCompletion(w, []completionChoice{
			{2, "third", "length"},
			{0, "first", "stop"},
			{1, "second", "stop"},
		}, 30, 60)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.Model = "gpt-3.5-turbo-instruct" })
	resp, err := o.Complete(context.Background(), Request{
		Mode:      ModeCompletion,
		Prompts:   []string{"p0", "p1", "p2"},
		MaxTokens: 3072,
		TopP:      1,
		Stop:      []string{"\n20", "20.", "20."},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if !reflect.DeepEqual(got["prompt"], []any{"p0", "p1", "p2"}) {
		t.Errorf("prompt = %#v, want the three prompts as a list", got["prompt"])
	}
	if got["n"] != 1.0 || got["max_tokens"] != 3072.0 || got["model"] != "gpt-3.5-turbo-instruct" {
		t.Errorf("n/max_tokens/model = %v/%v/%v", got["n"], got["max_tokens"], got["model"])
	}
	want := []Choice{{"first", "stop"}, {"second", "stop"}, {"third", "length"}}
	if !reflect.DeepEqual(resp.Choices, want) {
		t.Errorf("choices = %+v, want %+v", resp.Choices, want)
	}
	if resp.Usage != (Usage{30, 60}) {
		t.Errorf("usage = %+v", resp.Usage)
	}
}

func TestCompletionChoicesNotMatchingPromptsAreRetriedThenBadResponse(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		// Two prompts, but the same index twice.
		writeCompletion(w, []completionChoice{{0, "a", "stop"}, {0, "b", "stop"}}, 2, 2)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.MaxAttempts = 3; c.Model = "davinci-002" })
	_, err := o.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"x", "y"}, MaxTokens: 5})
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("err = %v, want ErrBadResponse", err)
	}
	if calls.count() != 3 {
		t.Errorf("server saw %d calls, want 3", calls.count())
	}
	if got := o.Stats().Retries[CauseMalformed]; got != 2 {
		t.Errorf("malformed retries = %d, want 2", got)
	}
}

func TestRateLimitedRetryAfterIsHonoured(t *testing.T) {
	cases := []struct {
		name   string
		header map[string]string
		wait   time.Duration
	}{
		{"retry-after-ms", map[string]string{"retry-after-ms": "150", "Retry-After": "1"}, 150 * time.Millisecond},
		{"Retry-After seconds", map[string]string{"Retry-After": "1"}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls counter
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
				if calls.hit() == 1 {
					for k, v := range tc.header {
						w.Header().Set(k, v)
					}
					writeAPIError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
						"Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.")
					return
				}
				writeChat(w, "ok", 3, 1)
			})
			o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
			if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			at := calls.times()
			if len(at) != 2 {
				t.Fatalf("server saw %d calls, want 2", len(at))
			}
			if gap := at[1].Sub(at[0]); gap < tc.wait {
				t.Errorf("retried after %v, want at least the %v the server asked for", gap, tc.wait)
			} else if gap > tc.wait+time.Second {
				t.Errorf("retried after %v, far longer than the %v asked for", gap, tc.wait)
			}
			if got := o.Stats().Retries[CauseRateLimited]; got != 1 {
				t.Errorf("rate-limited retries = %d, want 1", got)
			}
		})
	}
}

func TestServerErrorsThenSuccess(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		switch calls.hit() {
		case 1:
			writeAPIError(w, http.StatusInternalServerError, "server_error", nil, "The server had an error while processing your request. Sorry about that!")
		case 2:
			// A proxy's HTML error page, not an OpenAI error object.
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>")
		case 3:
			w.Header().Set("retry-after-ms", "120")
			writeAPIError(w, http.StatusServiceUnavailable, "server_error", nil, "The engine is currently overloaded, please try again later.")
		default:
			writeChat(w, "finally", 4, 2)
		}
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	resp, err := o.Complete(context.Background(), chatRequest("hi"))
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if resp.Choices[0].Text != "finally" {
		t.Errorf("text = %q", resp.Choices[0].Text)
	}
	if at := calls.times(); at[3].Sub(at[2]) < 120*time.Millisecond {
		t.Errorf("retried the 503 after %v, want the 120ms its retry-after-ms asked for", at[3].Sub(at[2]))
	}
	st := o.Stats()
	if st.Retries[CauseServerError] != 3 || st.Attempts != 4 || st.Succeeded != 1 || st.Failed != 0 {
		t.Errorf("stats = %+v, want 3 server-error retries over 4 attempts", st)
	}
}

func TestMalformedBodiesThenSuccess(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		switch calls.hit() {
		case 1:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assis`)
		case 2:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id": "chatcmpl-2", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}}`)
		default:
			writeChat(w, "ok", 3, 1)
		}
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	st := o.Stats()
	if st.Retries[CauseMalformed] != 1 || st.Retries[CauseNoChoices] != 1 {
		t.Errorf("retries = %v, want one malformed and one no-choices", st.Retries)
	}
	// Only the successful response is billed to us.
	if o.Usage() != (Usage{3, 1}) {
		t.Errorf("usage = %+v, want 3/1", o.Usage())
	}
}

func TestConnectionDroppedMidResponseThenSuccess(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		if calls.hit() == 1 {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			// Promise a long body, send the start of it, and hang up.
			fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n")
			fmt.Fprint(buf, `{"id": "chatcmpl-1", "object": "chat.completion", "choices": [`)
			buf.Flush()
			conn.Close()
			return
		}
		writeChat(w, "ok", 3, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got := o.Stats().Retries[CauseConnection]; got != 1 {
		t.Errorf("connection retries = %d (all: %v), want 1", got, o.Stats().Retries)
	}
}

func TestConnectionClosedWithoutAnswerThenSuccess(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		if calls.hit() == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		writeChat(w, "ok", 3, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got := o.Stats().Retries[CauseConnection]; got != 1 {
		t.Errorf("connection retries = %d (all: %v), want 1", got, o.Stats().Retries)
	}
}

func TestSlowAnswerBeyondTimeoutIsRetried(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		if calls.hit() == 1 {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		writeChat(w, "ok", 3, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v; the 100ms per-attempt timeout did not cut the slow attempt", elapsed)
	}
	if got := o.Stats().Retries[CauseTimeout]; got != 1 {
		t.Errorf("timeout retries = %d (all: %v), want 1", got, o.Stats().Retries)
	}
}

func TestRejectedKeyFailsFastWithoutRetry(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var calls counter
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
				calls.hit()
				// OpenAI quotes the key back (masked); a careless server might not mask it.
				writeAPIError(w, status, "invalid_request_error", "invalid_api_key",
					"Incorrect API key provided: "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+". You can find your API key at https://platform.openai.com/account/api-keys.")
			})
			o, logs := newTestTeacher(t, srv.URL+"/v1", nil)
			_, err := o.Complete(context.Background(), chatRequest("hi"))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "API key was rejected") || !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error %q should say the key was rejected and by whom", err)
			}
			if calls.count() != 1 {
				t.Errorf("server saw %d calls, want 1 (no retry)", calls.count())
			}
			if strings.Contains(err.Error(), testKey) || strings.Contains(logs.String(), testKey) {
				t.Errorf("the API key leaked:\nerror: %v\nlogs: %s", err, logs)
			}
		})
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	cases := []struct {
		status  int
		code    any
		message string
		want    string
	}{
		{http.StatusBadRequest, "context_length_exceeded", "This model's maximum context length is 128000 tokens.", "maximum context length"},
		{http.StatusNotFound, "model_not_found", "The model `gpt-4o-mini` does not exist or you do not have access to it.", "--base-url"},
		{http.StatusUnprocessableEntity, nil, "Unprocessable", "Unprocessable"},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			var calls counter
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
				calls.hit()
				writeAPIError(w, tc.status, "invalid_request_error", tc.code, tc.message)
			})
			o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
			_, err := o.Complete(context.Background(), chatRequest("hi"))
			if !errors.Is(err, ErrRejected) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrRejected only", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should mention %q", err, tc.want)
			}
			if calls.count() != 1 {
				t.Errorf("server saw %d calls, want 1", calls.count())
			}
		})
	}
}

func TestExhaustedQuotaIsNotRetried(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		writeAPIError(w, http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota",
			"You exceeded your current quota, please check your plan and billing details.")
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("err = %v, want ErrUnavailable about quota", err)
	}
	if calls.count() != 1 {
		t.Errorf("server saw %d calls, want 1", calls.count())
	}
}

// closedAddress returns a local address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachableServerFailsFastWithErrUnavailable(t *testing.T) {
	base := "http://" + closedAddress(t) + "/v1"
	o, _ := newTestTeacher(t, base, nil)
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "unreachable at "+base) {
		t.Errorf("error %q should name the unreachable base URL", err)
	}
	if st := o.Stats(); st.Attempts != 1 || len(st.Retries) != 0 {
		t.Errorf("stats = %+v, want one attempt and no retries", st)
	}
}

func TestServerGoneAfterWorkingIsRetriedThenUnavailable(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		writeChat(w, "ok", 3, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.MaxAttempts = 3 })
	if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("err = %v, want ErrUnavailable after 3 attempts", err)
	}
	if got := o.Stats().Retries[CauseConnection]; got != 2 {
		t.Errorf("connection retries = %d, want 2", got)
	}
}

func TestAttemptsAreBounded(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		writeAPIError(w, http.StatusInternalServerError, "server_error", nil, "The server had an error.")
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.MaxAttempts = 5 })
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if calls.count() != 5 {
		t.Errorf("server saw %d calls, want 5", calls.count())
	}
	if st := o.Stats(); st.Failed != 1 || st.Retries[CauseServerError] != 4 {
		t.Errorf("stats = %+v", st)
	}
}

func TestContextCancelStopsAtOnce(t *testing.T) {
	t.Run("while waiting to retry", func(t *testing.T) {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			w.Header().Set("Retry-After", "30")
			writeAPIError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached.")
		})
		o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := o.Complete(ctx, chatRequest("hi"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's error", err)
		}
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("returned after %v, want right after the cancel", elapsed)
		}
	})
	t.Run("while the request is in flight", func(t *testing.T) {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			<-r.Context().Done()
		})
		o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.Timeout = time.Minute })
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := o.Complete(ctx, chatRequest("hi"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("returned after %v, want right after the cancel", elapsed)
		}
		if st := o.Stats(); len(st.Retries) != 0 {
			t.Errorf("a cancelled request was retried: %v", st.Retries)
		}
	})
}

func TestRateLimitHeadersMakeTheLimiterWait(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		var calls counter
		srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			if calls.hit() == 1 {
				w.Header().Set("x-ratelimit-limit-requests", "500")
				w.Header().Set("x-ratelimit-remaining-requests", "0")
				w.Header().Set("x-ratelimit-reset-requests", "300ms")
			}
			writeChat(w, "ok", 3, 1)
		})
		o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
		for range 2 {
			if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
				t.Fatal(err)
			}
		}
		at := calls.times()
		if gap := at[1].Sub(at[0]); gap < 280*time.Millisecond {
			t.Errorf("second request came %v after the first, want the 300ms reset", gap)
		}
		if st := o.Stats(); st.RateLimitWaits != 1 {
			t.Errorf("rate limit waits = %d, want 1", st.RateLimitWaits)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		var calls counter
		srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			if calls.hit() == 1 {
				// Some tokens left, but fewer than the next request's max_tokens.
				w.Header().Set("x-ratelimit-remaining-tokens", "20")
				w.Header().Set("x-ratelimit-reset-tokens", "250ms")
			}
			writeChat(w, "ok", 3, 1)
		})
		o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
		for range 2 {
			if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
				t.Fatal(err)
			}
		}
		at := calls.times()
		if gap := at[1].Sub(at[0]); gap < 230*time.Millisecond {
			t.Errorf("second request came %v after the first, want the 250ms token reset", gap)
		}
	})
}

func TestTokensPerMinutePacesAndCorrectsWithUsage(t *testing.T) {
	// 6000 TPM is 100 tokens a second; each request is estimated at
	// 1 prompt token + 4 overhead + 60 max tokens = 65.
	req := Request{Mode: ModeChat, Messages: []Message{{Role: "user", Content: "hi"}}, MaxTokens: 60}
	run := func(t *testing.T, billed int) (time.Duration, Stats) {
		var calls counter
		srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			calls.hit()
			writeChat(w, "ok", billed-1, 1)
		})
		o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.TokensPerMinute = 6000 })
		for range 2 {
			if _, err := o.Complete(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
		at := calls.times()
		return at[1].Sub(at[0]), o.Stats()
	}
	// Billed as estimated: 35 tokens left, the next needs 65, 0.3s at 100/s.
	if gap, st := run(t, 65); gap < 250*time.Millisecond || st.RateLimitWaits != 1 {
		t.Errorf("with usage as estimated the second request came after %v (%d waits), want one wait of ~300ms", gap, st.RateLimitWaits)
	}
	// Billed 5: the 60 over-estimated tokens come back and no wait is needed.
	if _, st := run(t, 5); st.RateLimitWaits != 0 {
		t.Errorf("with usage below the estimate the limiter waited %d times (%v), want none", st.RateLimitWaits, st.RateLimitWaited)
	}
}

func TestRequestsPerMinutePaces(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		writeChat(w, "ok", 3, 1)
	})
	// 600 RPM: 10 a second, bursts of up to 10.
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.RequestsPerMinute = 600 })
	for range 13 {
		if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
			t.Fatal(err)
		}
	}
	at := calls.times()
	if span := at[12].Sub(at[0]); span < 250*time.Millisecond {
		t.Errorf("13 requests took %v at 600 RPM, want about 300ms after the burst of 10", span)
	}
}

func TestUsageIsSummedExactlyUnderConcurrency(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		var n int
		msgs := body["messages"].([]any)
		fmt.Sscanf(msgs[0].(map[string]any)["content"].(string), "%d", &n)
		writeChat(w, "ok", 100+n, n)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.MaxConcurrent = 4 })
	var wg sync.WaitGroup
	var want Usage
	for i := 1; i <= 40; i++ {
		want = want.Add(Usage{int64(100 + i), int64(i)})
		wg.Go(func() {
			if _, err := o.Complete(context.Background(), chatRequest(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := o.Usage(); got != want {
		t.Errorf("usage = %+v, want %+v", got, want)
	}
	if st := o.Stats(); st.Requests != 40 || st.Succeeded != 40 || st.Attempts != 40 {
		t.Errorf("stats = %+v", st)
	}
}

func TestResponseWithoutUsageCountsZeroAndWarnsOnce(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id": "cmpl-1", "object": "chat.completion", "created": 1, "model": "local",
			"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}`)
	})
	o, logs := newTestTeacher(t, srv.URL+"/v1", nil)
	for range 3 {
		if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
			t.Fatal(err)
		}
	}
	if o.Usage() != (Usage{}) {
		t.Errorf("usage = %+v, want zero: tokens must not be invented", o.Usage())
	}
	if got := o.Stats().ResponsesWithoutUsage; got != 3 {
		t.Errorf("responses without usage = %d, want 3", got)
	}
	if n := strings.Count(logs.String(), "no usage object"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"teacher response carried no usage object`) {
		t.Errorf("the warning is not at warn level:\n%s", logs)
	}
}

func TestConcurrencyIsCapped(t *testing.T) {
	var mu sync.Mutex
	inFlight, peak := 0, 0
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(40 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		writeChat(w, "ok", 3, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.MaxConcurrent = 3 })
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			if _, err := o.Complete(context.Background(), chatRequest("hi")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if peak != 3 {
		t.Errorf("peak in flight = %d, want 3", peak)
	}
}

func TestKeyNeverAppearsInErrorsOrLogs(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		auth := r.Header.Get("Authorization")
		switch calls.hit() {
		case 1:
			// A proxy that echoes the request headers in a non-JSON error.
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "upstream failed for request with Authorization: %s", auth)
		case 2:
			writeAPIError(w, http.StatusInternalServerError, "server_error", nil, "failed for "+auth)
		default:
			writeAPIError(w, http.StatusBadRequest, "invalid_request_error", nil, "bad request from "+auth)
		}
	})
	o, logs := newTestTeacher(t, srv.URL+"/v1", nil)
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("error carries the key: %v", err)
	}
	if strings.Contains(logs.String(), testKey) {
		t.Errorf("logs carry the key:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "[REDACTED]") {
		t.Errorf("expected the echoed key to show as [REDACTED] in the retry logs:\n%s", logs)
	}
}

func TestReasoningModelsGetMaxCompletionTokensAndNoTemperature(t *testing.T) {
	var got map[string]any
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		got = body
		writeChat(w, "ok", 3, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.Model = "o3-mini" })
	req := chatRequest("hi")
	req.Temperature = 0
	if _, err := o.Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got["max_completion_tokens"] != 50.0 || got["max_tokens"] != nil {
		t.Errorf("max_completion_tokens = %v, max_tokens = %v", got["max_completion_tokens"], got["max_tokens"])
	}
	if _, ok := got["temperature"]; ok {
		t.Errorf("temperature sent to a reasoning model: %v", got["temperature"])
	}
}

func TestInvalidRequestsAreRefusedBeforeSending(t *testing.T) {
	var calls counter
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		writeChat(w, "ok", 1, 1)
	})
	o, _ := newTestTeacher(t, srv.URL+"/v1", nil)
	cases := map[string]Request{
		"no mode":           {Messages: []Message{{Role: "user", Content: "x"}}},
		"chat no messages":  {Mode: ModeChat},
		"chat with prompts": {Mode: ModeChat, Messages: []Message{{Role: "user", Content: "x"}}, Prompts: []string{"p"}},
		"message no role":   {Mode: ModeChat, Messages: []Message{{Content: "x"}}},
		"no prompts":        {Mode: ModeCompletion},
		"json completion":   {Mode: ModeCompletion, Prompts: []string{"p"}, ResponseFormatJSON: true},
		"negative tokens":   {Mode: ModeCompletion, Prompts: []string{"p"}, MaxTokens: -1},
		"hot temperature":   {Mode: ModeCompletion, Prompts: []string{"p"}, Temperature: 2.5},
		"top_p above 1":     {Mode: ModeCompletion, Prompts: []string{"p"}, TopP: 1.5},
		"penalty":           {Mode: ModeCompletion, Prompts: []string{"p"}, PresencePenalty: 3},
	}
	for name, req := range cases {
		_, err := o.Complete(context.Background(), req)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "invalid request") {
			t.Errorf("%s: err = %v, want an invalid-request ErrRejected", name, err)
		}
	}
	if calls.count() != 0 {
		t.Errorf("server saw %d calls for invalid requests", calls.count())
	}
}

func TestNewOpenAIConfig(t *testing.T) {
	t.Setenv(EnvAPIKey, "")
	t.Setenv(EnvBaseURL, "")
	if _, err := NewOpenAI(OpenAIConfig{Model: "gpt-4o-mini"}); err == nil || !strings.Contains(err.Error(), EnvAPIKey) {
		t.Errorf("no key for api.openai.com: err = %v, want one naming %s", err, EnvAPIKey)
	}
	if _, err := NewOpenAI(OpenAIConfig{BaseURL: "http://localhost:8000/v1"}); err == nil {
		t.Error("no model: want an error")
	}
	if _, err := NewOpenAI(OpenAIConfig{BaseURL: "localhost:8000", Model: "m"}); err == nil {
		t.Error("scheme-less base URL: want an error")
	}
	if _, err := NewOpenAI(OpenAIConfig{BaseURL: "http://localhost:8000/v1", Model: "m", MaxAttempts: -1}); err == nil {
		t.Error("negative attempts: want an error")
	}
	if _, err := NewOpenAI(OpenAIConfig{BaseURL: "http://user:hunter2@localhost:8000/v1", Model: "m", Timeout: -1}); err == nil {
		t.Error("negative timeout: want an error")
	}

	// Local servers need no key; the environment fills in what the config leaves out.
	t.Setenv(EnvBaseURL, "http://127.0.0.1:9/v1/")
	t.Setenv(EnvAPIKey, "sk-from-env")
	o, err := NewOpenAI(OpenAIConfig{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.BaseURL != "http://127.0.0.1:9/v1" || o.cfg.APIKey != "sk-from-env" {
		t.Errorf("base URL %q, key from env %v", o.cfg.BaseURL, o.cfg.APIKey == "sk-from-env")
	}
	if o.cfg.MaxAttempts != DefaultMaxAttempts || o.cfg.MaxConcurrent != DefaultMaxConcurrent || o.cfg.Timeout != DefaultTimeout {
		t.Errorf("defaults not applied: %+v", o.cfg)
	}
}

func TestBaseURLCredentialsStayOutOfErrors(t *testing.T) {
	base := "http://user:hunter2@" + closedAddress(t) + "/v1"
	o, _ := newTestTeacher(t, base, nil)
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v, want an error without the URL's password", err)
	}
}

func TestDNSFailureSaysUnreachable(t *testing.T) {
	// A dialer that fails the lookup as the resolver does, so the test does
	// not depend on how this machine's DNS treats an unknown name.
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}}
	o, _ := newTestTeacher(t, "https://llm.example.invalid/v1", func(c *OpenAIConfig) {
		c.HTTPClient = &http.Client{Transport: transport}
	})
	_, err := o.Complete(context.Background(), chatRequest("hi"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "unreachable at https://llm.example.invalid/v1") {
		t.Fatalf("err = %v, want ErrUnavailable naming the base URL", err)
	}
	if st := o.Stats(); st.Attempts != 1 {
		t.Errorf("attempts = %d, want 1", st.Attempts)
	}
}
