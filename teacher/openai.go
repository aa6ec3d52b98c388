package teacher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Defaults for the zero values of OpenAIConfig.
const (
	DefaultBaseURL       = "https://api.openai.com/v1"
	DefaultTimeout       = 2 * time.Minute
	DefaultMaxAttempts   = 6
	DefaultBaseBackoff   = time.Second
	DefaultMaxBackoff    = time.Minute
	DefaultMaxConcurrent = 8
)

// Environment variables read when the config leaves a field empty.
const (
	EnvAPIKey  = "OPENAI_API_KEY"
	EnvBaseURL = "OPENAI_BASE_URL"
)

// OpenAIConfig configures an OpenAI-compatible teacher. Zero values take the
// defaults above; BaseURL and APIKey fall back to OPENAI_BASE_URL and
// OPENAI_API_KEY.
type OpenAIConfig struct {
	BaseURL string
	APIKey  string
	Model   string

	// Timeout bounds each attempt, not the whole request with its retries.
	Timeout time.Duration
	// MaxAttempts bounds how many times one request is sent, first try included.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the exponential backoff with full
	// jitter between attempts: attempt n waits a random time in
	// [0, min(MaxBackoff, BaseBackoff*2^(n-1))], unless the server says how
	// long to wait with Retry-After.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration

	// RequestsPerMinute and TokensPerMinute pace requests on our side; 0
	// leaves pacing to the server's x-ratelimit-* headers alone.
	RequestsPerMinute int
	TokensPerMinute   int
	// MaxConcurrent bounds the requests in flight at once.
	MaxConcurrent int

	HTTPClient *http.Client
	Logger     *slog.Logger
}

// RetryCause names why an attempt was retried.
type RetryCause string

const (
	CauseRateLimited RetryCause = "rate_limited"       // 429
	CauseServerError RetryCause = "server_error"       // 5xx, 408, 409
	CauseTimeout     RetryCause = "timeout"            // the attempt ran past Timeout
	CauseConnection  RetryCause = "connection"         // refused, reset, dropped mid-response
	CauseMalformed   RetryCause = "malformed_response" // a 2xx body that could not be used
	CauseNoChoices   RetryCause = "no_choices"         // a 2xx body with zero choices
)

// Stats counts what an OpenAI teacher has done since it was made.
type Stats struct {
	Requests  int64 // Complete calls that passed validation
	Succeeded int64
	Failed    int64
	Attempts  int64 // HTTP requests sent, retries included
	Retries   map[RetryCause]int64
	// ResponsesWithoutUsage counts successful responses that carried no
	// usage object; their tokens are missing from Usage.
	ResponsesWithoutUsage int64
	// RateLimitWaits and RateLimitWaited count the times the limiter held a
	// request back and for how long in total.
	RateLimitWaits  int64
	RateLimitWaited time.Duration
}

// OpenAI is a Teacher served by an OpenAI-compatible HTTP API (OpenAI
// itself, vLLM, llama.cpp's server, ...), through go-openai.
//
// Failure policy: 429, 408, 409 and 5xx are retried, honouring Retry-After
// and retry-after-ms; so are attempts that time out, connections that drop,
// and 2xx bodies that cannot be used. 401/403 (key rejected), 429
// insufficient_quota, and a refused connection or failed DNS lookup before
// the server ever answered fail at once with ErrUnavailable; other 4xx fail
// at once with ErrRejected. Running out of attempts gives ErrUnavailable,
// or ErrBadResponse when the server kept answering with unusable bodies.
type OpenAI struct {
	cfg         OpenAIConfig
	baseURLText string // BaseURL without credentials, for messages
	client      *openai.Client
	limiter     *rateLimiter
	slots       chan struct{}
	log         *slog.Logger

	// reachedServer is set once any attempt got an HTTP response. Until then
	// a refused connection or failed DNS lookup means a wrong --base-url and
	// fails at once; afterwards it is a blip worth retrying.
	reachedServer atomic.Bool

	warnNoUsage sync.Once

	mu    sync.Mutex
	usage Usage
	stats Stats
}

// NewOpenAI checks cfg, fills in defaults, and returns a ready teacher.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = os.Getenv(EnvBaseURL)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.APIKey == "" {
		cfg.APIKey = os.Getenv(EnvAPIKey)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("teacher: base URL %q is not an http(s) URL like %s", redactURLText(cfg.BaseURL), DefaultBaseURL)
	}
	if cfg.Model == "" {
		return nil, errors.New("teacher: no model named")
	}
	// Local OpenAI-compatible servers usually take no key; OpenAI itself
	// always does, and failing here beats a 401 after startup.
	if cfg.APIKey == "" && strings.EqualFold(base.Hostname(), "api.openai.com") {
		return nil, fmt.Errorf("teacher: %s is not set; api.openai.com needs an API key", EnvAPIKey)
	}
	if cfg.Timeout < 0 || cfg.BaseBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("teacher: timeout and backoff durations must not be negative")
	}
	if cfg.MaxAttempts < 0 || cfg.RequestsPerMinute < 0 || cfg.TokensPerMinute < 0 || cfg.MaxConcurrent < 0 {
		return nil, errors.New("teacher: attempts, rate limits and concurrency must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.HTTPClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		// The default keeps 2 idle connections per host; with more requests
		// in flight than that, every burst would open new TLS connections.
		transport.MaxIdleConnsPerHost = cfg.MaxConcurrent
		cfg.HTTPClient = &http.Client{Transport: transport}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	clientCfg := openai.DefaultConfig(cfg.APIKey)
	clientCfg.BaseURL = cfg.BaseURL
	clientCfg.HTTPClient = recordingDoer{client: cfg.HTTPClient}

	return &OpenAI{
		cfg:         cfg,
		baseURLText: base.Redacted(),
		client:      openai.NewClientWithConfig(clientCfg),
		limiter:     newRateLimiter(cfg.RequestsPerMinute, cfg.TokensPerMinute, time.Now()),
		slots:       make(chan struct{}, cfg.MaxConcurrent),
		log:         cfg.Logger.With("component", "teacher", "base_url", base.Redacted(), "model", cfg.Model),
		stats:       Stats{Retries: map[RetryCause]int64{}},
	}, nil
}

// Model names the configured model.
func (o *OpenAI) Model() string { return o.cfg.Model }

// Usage is the token usage summed over every successful response.
func (o *OpenAI) Usage() Usage {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.usage
}

// Stats returns a copy of the counters.
func (o *OpenAI) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.Retries = make(map[RetryCause]int64, len(o.stats.Retries))
	for cause, n := range o.stats.Retries {
		s.Retries[cause] = n
	}
	return s
}

func (o *OpenAI) count(update func(*Stats)) {
	o.mu.Lock()
	update(&o.stats)
	o.mu.Unlock()
}

// Complete sends req, retrying what is worth retrying, and returns the
// choices in prompt order.
func (o *OpenAI) Complete(ctx context.Context, req Request) (Response, error) {
	if err := validateRequest(req); err != nil {
		return Response{}, err
	}
	o.count(func(s *Stats) { s.Requests++ })
	resp, err := o.completeWithRetries(ctx, req)
	o.count(func(s *Stats) {
		if err != nil {
			s.Failed++
		} else {
			s.Succeeded++
		}
	})
	return resp, err
}

func (o *OpenAI) completeWithRetries(ctx context.Context, req Request) (Response, error) {
	estimate := worstCaseUsage(req).Total()
	for attempt := 1; ; attempt++ {
		resp, out := o.attempt(ctx, req, estimate)
		if out == nil {
			return resp, nil
		}
		if out.fatal != nil {
			return Response{}, out.fatal
		}
		if attempt >= o.cfg.MaxAttempts {
			return Response{}, o.exhausted(attempt, out)
		}
		delay := o.backoff(attempt)
		if out.retryAfter > 0 {
			delay = out.retryAfter
		}
		o.count(func(s *Stats) { s.Retries[out.cause]++ })
		// Being paced by 429s is routine on a long run; everything else
		// deserves attention.
		level := slog.LevelWarn
		if out.cause == CauseRateLimited {
			level = slog.LevelInfo
		}
		o.log.Log(ctx, level, "teacher request failed, retrying",
			"attempt", attempt, "max_attempts", o.cfg.MaxAttempts, "cause", string(out.cause),
			"status", out.status, "retry_in", delay, "error", out.detail)
		if err := sleepContext(ctx, delay); err != nil {
			return Response{}, fmt.Errorf("teacher: stopped while waiting to retry: %w", err)
		}
	}
}

// outcome is why one attempt did not produce a response.
type outcome struct {
	fatal      error      // give up now with this error
	cause      RetryCause // otherwise retry, for this reason
	status     int
	detail     string // redacted description, for logs and the final error
	retryAfter time.Duration
}

// attempt sends req once.
func (o *OpenAI) attempt(ctx context.Context, req Request, estimate int64) (Response, *outcome) {
	select {
	case o.slots <- struct{}{}:
	case <-ctx.Done():
		return Response{}, &outcome{fatal: fmt.Errorf("teacher: stopped while waiting for a free slot: %w", ctx.Err())}
	}
	defer func() { <-o.slots }()

	waited, err := o.limiter.acquire(ctx, estimate)
	if waited > 0 {
		o.count(func(s *Stats) { s.RateLimitWaits++; s.RateLimitWaited += waited })
		o.log.Debug("rate limiter held a request back", "waited", waited)
	}
	if err != nil {
		return Response{}, &outcome{fatal: fmt.Errorf("teacher: stopped while waiting for the rate limit: %w", err)}
	}

	// Compare as float32, the type go-openai sends: a tiny float64 that
	// rounds to zero there is omitted just like zero itself.
	state := &attemptState{sendZeroTemperature: float32(req.Temperature) == 0 && !isReasoningModel(o.cfg.Model)}
	attemptCtx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	attemptCtx = context.WithValue(attemptCtx, attemptKey{}, state)

	started := time.Now()
	var resp Response
	switch req.Mode {
	case ModeChat:
		var r openai.ChatCompletionResponse
		r, err = o.client.CreateChatCompletion(attemptCtx, o.chatRequest(req))
		if err == nil {
			resp, err = chatResponse(r, o.cfg.Model)
		}
	case ModeCompletion:
		var r openai.CompletionResponse
		r, err = o.client.CreateCompletion(attemptCtx, o.completionRequest(req))
		if err == nil {
			resp, err = completionResponse(r, len(req.Prompts), o.cfg.Model)
		}
	}
	attemptTimedOut := errors.Is(attemptCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil

	sent, status, header, bodyReadErr := state.snapshot()
	if sent {
		o.count(func(s *Stats) { s.Attempts++ })
	}
	if status != 0 {
		o.reachedServer.Store(true)
	}
	o.limiter.observe(header)

	if err == nil {
		o.limiter.settle(estimate, resp.Usage.Total())
		o.recordUsage(resp)
		o.log.Debug("teacher request done", "mode", string(req.Mode), "elapsed", time.Since(started),
			"prompt_tokens", resp.Usage.PromptTokens, "completion_tokens", resp.Usage.CompletionTokens)
		return resp, nil
	}
	if status == http.StatusTooManyRequests {
		// A refused request used none of the server's budget.
		o.limiter.settle(estimate, 0)
	}
	return Response{}, o.classify(ctx, err, classifyInput{
		sent: sent, status: status, header: header, bodyReadErr: bodyReadErr, timedOut: attemptTimedOut,
	})
}

func (o *OpenAI) recordUsage(resp Response) {
	if resp.Usage.Total() == 0 {
		// go-openai decodes chat usage into a plain struct, so an absent
		// usage object and a zero one look alike; no real completion bills
		// zero tokens, so zero means the server did not say.
		o.count(func(s *Stats) { s.ResponsesWithoutUsage++ })
		o.warnNoUsage.Do(func() {
			o.log.Warn("teacher response carried no usage object; token counts and costs will under-report")
		})
		return
	}
	o.mu.Lock()
	o.usage = o.usage.Add(resp.Usage)
	o.mu.Unlock()
}

func (o *OpenAI) chatRequest(req Request) openai.ChatCompletionRequest {
	messages := make([]openai.ChatCompletionMessage, len(req.Messages))
	for i, m := range req.Messages {
		messages[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	r := openai.ChatCompletionRequest{
		Model:            o.cfg.Model,
		Messages:         messages,
		Temperature:      float32(req.Temperature),
		TopP:             float32(req.TopP),
		N:                1,
		Stop:             req.Stop,
		PresencePenalty:  float32(req.PresencePenalty),
		FrequencyPenalty: float32(req.FrequencyPenalty),
		Seed:             seedPointer(req.Seed),
	}
	// Reasoning models refuse max_tokens and want max_completion_tokens.
	if isReasoningModel(o.cfg.Model) {
		r.MaxCompletionTokens = req.MaxTokens
	} else {
		r.MaxTokens = req.MaxTokens
	}
	if req.ResponseFormatJSON {
		r.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
	}
	return r
}

func (o *OpenAI) completionRequest(req Request) openai.CompletionRequest {
	return openai.CompletionRequest{
		Model:            o.cfg.Model,
		Prompt:           req.Prompts,
		MaxTokens:        req.MaxTokens,
		N:                1,
		Temperature:      float32(req.Temperature),
		TopP:             float32(req.TopP),
		Stop:             req.Stop,
		PresencePenalty:  float32(req.PresencePenalty),
		FrequencyPenalty: float32(req.FrequencyPenalty),
		Seed:             seedPointer(req.Seed),
	}
}

func seedPointer(seed *int64) *int {
	if seed == nil {
		return nil
	}
	s := int(*seed)
	return &s
}

// isReasoningModel matches the model families go-openai validates as
// reasoning models (o1, o3, o4, gpt-5): they take max_completion_tokens and
// reject an explicit temperature.
func isReasoningModel(model string) bool {
	for _, prefix := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, prefix) {
			return true
		}
	}
	return false
}

// errNoChoices and errMalformed mark 2xx bodies that decoded but cannot be used.
var (
	errNoChoices = errors.New("response has no choices")
	errMalformed = errors.New("malformed response")
)

func chatResponse(r openai.ChatCompletionResponse, configuredModel string) (Response, error) {
	if len(r.Choices) == 0 {
		return Response{}, errNoChoices
	}
	choice := r.Choices[0]
	for _, c := range r.Choices {
		if c.Index == 0 {
			choice = c
			break
		}
	}
	return Response{
		Choices: []Choice{{Text: choice.Message.Content, FinishReason: string(choice.FinishReason)}},
		Usage:   Usage{PromptTokens: int64(r.Usage.PromptTokens), CompletionTokens: int64(r.Usage.CompletionTokens)},
		Model:   cmpOr(r.Model, configuredModel),
	}, nil
}

// completionResponse puts the choices back in prompt order: with n=1 the
// server numbers each choice by the index of its prompt, but need not list
// them in that order.
func completionResponse(r openai.CompletionResponse, prompts int, configuredModel string) (Response, error) {
	if len(r.Choices) == 0 {
		return Response{}, errNoChoices
	}
	if len(r.Choices) != prompts {
		return Response{}, fmt.Errorf("%w: %d choices for %d prompts", errMalformed, len(r.Choices), prompts)
	}
	choices := make([]Choice, prompts)
	filled := make([]bool, prompts)
	for _, c := range r.Choices {
		if c.Index < 0 || c.Index >= prompts || filled[c.Index] {
			return Response{}, fmt.Errorf("%w: choice index %d is out of range or repeated for %d prompts", errMalformed, c.Index, prompts)
		}
		filled[c.Index] = true
		choices[c.Index] = Choice{Text: c.Text, FinishReason: c.FinishReason}
	}
	resp := Response{Choices: choices, Model: cmpOr(r.Model, configuredModel)}
	if r.Usage != nil {
		resp.Usage = Usage{PromptTokens: int64(r.Usage.PromptTokens), CompletionTokens: int64(r.Usage.CompletionTokens)}
	}
	return resp, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func validateRequest(req Request) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: invalid request: %s", ErrRejected, fmt.Sprintf(format, args...))
	}
	switch req.Mode {
	case ModeChat:
		if len(req.Messages) == 0 {
			return invalid("chat mode needs at least one message")
		}
		if len(req.Prompts) > 0 {
			return invalid("chat mode takes Messages, not Prompts")
		}
		for i, m := range req.Messages {
			if m.Role == "" {
				return invalid("message %d has no role", i)
			}
		}
	case ModeCompletion:
		if len(req.Prompts) == 0 {
			return invalid("completion mode needs at least one prompt")
		}
		if len(req.Messages) > 0 {
			return invalid("completion mode takes Prompts, not Messages")
		}
		if req.ResponseFormatJSON {
			return invalid("the legacy completions endpoint has no JSON response format; use chat mode")
		}
	default:
		return invalid("unknown mode %q (want %q or %q)", req.Mode, ModeChat, ModeCompletion)
	}
	if req.MaxTokens < 0 {
		return invalid("max tokens %d is negative", req.MaxTokens)
	}
	if req.Temperature < 0 || req.Temperature > 2 {
		return invalid("temperature %g is outside [0, 2]", req.Temperature)
	}
	if req.TopP < 0 || req.TopP > 1 {
		return invalid("top_p %g is outside [0, 1]", req.TopP)
	}
	if req.PresencePenalty < -2 || req.PresencePenalty > 2 || req.FrequencyPenalty < -2 || req.FrequencyPenalty > 2 {
		return invalid("presence and frequency penalties must lie in [-2, 2]")
	}
	return nil
}
