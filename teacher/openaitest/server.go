// Package openaitest runs an OpenAI-compatible HTTP server for tests: it
// speaks the real chat-completions and completions wire format, bills
// tokens like the API does, and injects the faults a long run meets in
// production (429 with Retry-After, 500s, malformed bodies, dropped
// connections, slow answers).
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Reply is what the responder writes for one prompt.
type Reply struct {
	Text         string
	FinishReason string // "stop" when empty
}

// Call is one prompt as the server saw it.
type Call struct {
	Endpoint string // "chat" or "completions"
	Prompt   string // the user message, or the completion prompt
	Body     map[string]any
}

// Responder answers one prompt. It is called with the server's lock held,
// so it may keep state without locking.
type Responder func(c Call) Reply

// Faults are per-request probabilities of each injected failure.
type Faults struct {
	RateLimit  float64 // 429 with Retry-After / retry-after-ms
	ServerErr  float64 // 500 with an OpenAI error object
	Malformed  float64 // 200 with a body cut in the middle of the JSON
	Drop       float64 // connection closed without an answer
	Slow       float64 // answered after SlowDelay
	SlowDelay  time.Duration
	RetryAfter time.Duration // what 429s ask the client to wait
}

// Options configure a Server.
type Options struct {
	Respond Responder
	Faults  Faults
	Seed    uint64
	// APIKey, when set, is required as a Bearer token (else 401).
	APIKey string
}

// Server is a running fake OpenAI API.
type Server struct {
	*httptest.Server
	opts Options

	mu       sync.Mutex
	rng      *rand.Rand
	served   openai.Usage
	calls    []Call
	replies  []Reply
	requests int
	faults   map[string]int
}

// New starts a server; Close it when done.
func New(opts Options) *Server {
	if opts.Faults.SlowDelay == 0 {
		opts.Faults.SlowDelay = 200 * time.Millisecond
	}
	if opts.Faults.RetryAfter == 0 {
		opts.Faults.RetryAfter = 50 * time.Millisecond
	}
	s := &Server{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x5e1f)), faults: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.handle(w, r, "chat") })
	mux.HandleFunc("/v1/completions", func(w http.ResponseWriter, r *http.Request) { s.handle(w, r, "completions") })
	s.Server = httptest.NewServer(mux)
	return s
}

// BaseURL is what --base-url should be set to.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Served is the usage of every response body the server wrote in full.
func (s *Server) Served() (prompt, completion int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served.PromptTokens, s.served.CompletionTokens
}

// Calls returns every prompt answered with a complete body, and the replies.
func (s *Server) Calls() ([]Call, []Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...), append([]Reply(nil), s.replies...)
}

// FaultCounts says how many of each fault were injected.
func (s *Server) FaultCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.faults {
		out[k] = v
	}
	return out
}

// CountTokens bills text like a tokenizer would, roughly: a token per 4 bytes.
func CountTokens(s string) int { return (len(s) + 3) / 4 }

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": nil}})
}

func (s *Server) pickFault() string {
	f := s.opts.Faults
	x := s.rng.Float64()
	for _, c := range []struct {
		name string
		p    float64
	}{{"rate_limit", f.RateLimit}, {"server_error", f.ServerErr}, {"malformed", f.Malformed}, {"drop", f.Drop}, {"slow", f.Slow}} {
		if x < c.p {
			s.faults[c.name]++
			return c.name
		}
		x -= c.p
	}
	return ""
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, endpoint string) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "POST only")
		return
	}
	if s.opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.APIKey {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "Incorrect API key provided.")
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "We could not parse the JSON body of your request.")
		return
	}
	prompts, err := promptsOf(endpoint, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}

	s.mu.Lock()
	s.requests++
	fault := s.pickFault()
	s.mu.Unlock()
	switch fault {
	case "rate_limit":
		d := s.opts.Faults.RetryAfter
		w.Header().Set("retry-after-ms", fmt.Sprint(d.Milliseconds()))
		w.Header().Set("Retry-After", fmt.Sprint(int(d.Seconds()+0.999)))
		w.Header().Set("x-ratelimit-remaining-requests", "0")
		w.Header().Set("x-ratelimit-reset-requests", fmt.Sprintf("%dms", d.Milliseconds()))
		writeError(w, http.StatusTooManyRequests, "requests", "Rate limit reached for requests.")
		return
	case "server_error":
		writeError(w, http.StatusInternalServerError, "server_error", "The server had an error while processing your request.")
		return
	case "drop":
		if hj, ok := w.(http.Hijacker); ok {
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case "slow":
		time.Sleep(s.opts.Faults.SlowDelay)
	}

	s.mu.Lock()
	calls := make([]Call, len(prompts))
	replies := make([]Reply, len(prompts))
	var usage openai.Usage
	for i, p := range prompts {
		calls[i] = Call{Endpoint: endpoint, Prompt: p, Body: body}
		replies[i] = s.opts.Respond(calls[i])
		if replies[i].FinishReason == "" {
			replies[i].FinishReason = "stop"
		}
		usage.PromptTokens += CountTokens(p)
		usage.CompletionTokens += CountTokens(replies[i].Text)
	}
	s.mu.Unlock()
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	model, _ := body["model"].(string)

	var out []byte
	if endpoint == "chat" {
		resp := openai.ChatCompletionResponse{ID: "chatcmpl-test", Object: "chat.completion", Created: time.Now().Unix(), Model: model, Usage: usage}
		resp.Choices = []openai.ChatCompletionChoice{{Index: 0,
			Message:      openai.ChatCompletionMessage{Role: "assistant", Content: replies[0].Text},
			FinishReason: openai.FinishReason(replies[0].FinishReason)}}
		out, _ = json.Marshal(resp)
	} else {
		resp := openai.CompletionResponse{ID: "cmpl-test", Object: "text_completion", Created: time.Now().Unix(), Model: model, Usage: &usage}
		for i, rep := range replies {
			resp.Choices = append(resp.Choices, openai.CompletionChoice{Index: i, Text: rep.Text, FinishReason: rep.FinishReason})
		}
		// The API does not promise choices in prompt order.
		if len(resp.Choices) > 1 {
			resp.Choices[0], resp.Choices[len(resp.Choices)-1] = resp.Choices[len(resp.Choices)-1], resp.Choices[0]
		}
		out, _ = json.Marshal(resp)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ratelimit-remaining-requests", "1000")
	w.Header().Set("x-ratelimit-remaining-tokens", "1000000")
	if fault == "malformed" {
		w.Write(out[:len(out)/2])
		return
	}
	if _, err := w.Write(out); err != nil {
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.mu.Lock()
	s.served.PromptTokens += usage.PromptTokens
	s.served.CompletionTokens += usage.CompletionTokens
	s.calls = append(s.calls, calls...)
	s.replies = append(s.replies, replies...)
	s.mu.Unlock()
}

func promptsOf(endpoint string, body map[string]any) ([]string, error) {
	if endpoint == "chat" {
		msgs, _ := body["messages"].([]any)
		var user []string
		for _, m := range msgs {
			mm, _ := m.(map[string]any)
			if c, ok := mm["content"].(string); ok && mm["role"] == "user" {
				user = append(user, c)
			}
		}
		if len(user) == 0 {
			return nil, fmt.Errorf("messages: no user message")
		}
		return []string{strings.Join(user, "\n")}, nil
	}
	switch p := body["prompt"].(type) {
	case string:
		return []string{p}, nil
	case []any:
		out := make([]string, len(p))
		for i, x := range p {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("prompt[%d]: not a string", i)
			}
			out[i] = s
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("prompt: empty list")
		}
		return out, nil
	}
	return nil, fmt.Errorf("prompt: missing")
}
