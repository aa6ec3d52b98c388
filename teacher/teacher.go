// Package teacher defines how the pipeline talks to a language model that
// writes tasks for it, whatever serves that model: an OpenAI-compatible API
// or the local GGUF engine.
package teacher

import "context"

// Mode selects the API shape a request is sent with.
type Mode string

const (
	// ModeChat sends Messages to a chat-completions endpoint.
	ModeChat Mode = "chat"
	// ModeCompletion sends raw Prompts to a legacy completions endpoint;
	// several prompts may travel in one request, as Alpaca batched them.
	ModeCompletion Mode = "completions"
)

// Message is one turn of a chat.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one call to the teacher.
type Request struct {
	Mode     Mode
	Messages []Message // ModeChat
	Prompts  []string  // ModeCompletion: one choice comes back per prompt

	MaxTokens        int
	Temperature      float64
	TopP             float64
	PresencePenalty  float64
	FrequencyPenalty float64
	Stop             []string
	// Seed, when non-nil, asks backends that support it for reproducible sampling.
	Seed *int64
	// ResponseFormatJSON asks for a JSON object response where the backend supports it.
	ResponseFormatJSON bool
}

// Finish reasons, as OpenAI reports them.
const (
	FinishStop   = "stop"
	FinishLength = "length"
)

// Choice is one generated text.
type Choice struct {
	Text         string
	FinishReason string
}

// Usage counts the tokens a response was billed for.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.PromptTokens + o.PromptTokens, u.CompletionTokens + o.CompletionTokens}
}

// Total is prompt plus completion tokens.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }

// Response is what one Request produced: one choice per prompt in
// ModeCompletion (in prompt order), exactly one in ModeChat.
type Response struct {
	Choices []Choice
	Usage   Usage
	Model   string
}

// Teacher generates text. Implementations are safe for concurrent use;
// retries, rate limits and timeouts are their business, so a returned error
// means the request is given up.
type Teacher interface {
	Complete(ctx context.Context, req Request) (Response, error)
	// Model names the model that answers, for reports and cost estimates.
	Model() string
}
