package teacher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "sk-test-7f3a9c1e5b2d4f6a8c0e"

// syncBuffer is a bytes.Buffer safe for the concurrent writes slog makes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestTeacher points a teacher at srv with millisecond backoffs; tweak
// adjusts the config before construction.
func newTestTeacher(t *testing.T, baseURL string, tweak func(*OpenAIConfig)) (*OpenAI, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := OpenAIConfig{
		BaseURL:     baseURL,
		APIKey:      testKey,
		Model:       "gpt-4o-mini",
		Timeout:     2 * time.Second,
		MaxAttempts: 4,
		BaseBackoff: time.Millisecond,
		MaxBackoff:  5 * time.Millisecond,
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	o, err := NewOpenAI(cfg)
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	return o, logs
}

// serve starts an httptest server whose handler gets the decoded JSON body
// and the request; it is closed when the test ends.
func serve(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body map[string]any)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body := map[string]any{}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &body); err != nil {
				writeAPIError(w, http.StatusBadRequest, "invalid_request_error", nil, "We could not parse the JSON body of your request.")
				return
			}
		}
		body["_raw"] = string(raw)
		handler(w, r, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeChat writes a chat.completion body as api.openai.com does.
func writeChat(w http.ResponseWriter, content string, promptTokens, completionTokens int) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-request-id", "req_test")
	w.Header().Set("openai-processing-ms", "12")
	fmt.Fprintf(w, `{
  "id": "chatcmpl-AbC123",
  "object": "chat.completion",
  "created": 1721172741,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": %s, "refusal": null},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d,
    "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
  "system_fingerprint": "fp_test"
}`, jsonString(content), promptTokens, completionTokens, promptTokens+completionTokens)
}

type completionChoice struct {
	Index        int
	Text         string
	FinishReason string
}

// writeCompletion writes a text_completion body; choices go out in the
// order given, as the API does not promise prompt order.
func writeCompletion(w http.ResponseWriter, choices []completionChoice, promptTokens, completionTokens int) {
	w.Header().Set("Content-Type", "application/json")
	var parts []string
	for _, c := range choices {
		parts = append(parts, fmt.Sprintf(`{"text": %s, "index": %d, "logprobs": null, "finish_reason": %s}`,
			jsonString(c.Text), c.Index, jsonString(c.FinishReason)))
	}
	fmt.Fprintf(w, `{"id": "cmpl-XyZ", "object": "text_completion", "created": 1721172741,
  "model": "gpt-3.5-turbo-instruct", "choices": [%s],
  "usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d}}`,
		strings.Join(parts, ","), promptTokens, completionTokens, promptTokens+completionTokens)
}

// writeAPIError writes an OpenAI error object.
func writeAPIError(w http.ResponseWriter, status int, typ string, code any, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	codeJSON, _ := json.Marshal(code)
	fmt.Fprintf(w, `{"error": {"message": %s, "type": %s, "param": null, "code": %s}}`,
		jsonString(message), jsonString(typ), codeJSON)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func chatRequest(content string) Request {
	return Request{Mode: ModeChat, Messages: []Message{{Role: "user", Content: content}}, MaxTokens: 50, Temperature: 0.7}
}

// counter counts calls to a handler, safely.
type counter struct {
	mu sync.Mutex
	n  int
	at []time.Time
}

func (c *counter) hit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.at = append(c.at, time.Now())
	return c.n
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}
