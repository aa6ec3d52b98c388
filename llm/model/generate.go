package model

import (
	"context"
	"errors"
	"time"
)

// Sampler picks the next token from the logits. history is every token of
// the sequence so far (prompt and generated), for repetition penalties.
// *sample.Sampler implements it.
type Sampler interface {
	Sample(logits []float32, history []int32) int32
}

// GenerateOptions control Session.Generate.
type GenerateOptions struct {
	// MaxTokens is the most tokens to generate (> 0).
	MaxTokens int
	// Sampler chooses each token; nil means greedy: the highest logit, the
	// lowest id among equals (what llama.cpp's greedy sampler returns).
	Sampler Sampler
	// Stop reports end-of-generation tokens (tokenizer.IsEOG). Such a token
	// ends generation and is the last element of Tokens.
	Stop func(id int32) bool
	// OnToken, when set, sees each generated token as it is chosen;
	// returning false ends generation after that token (stop strings).
	OnToken func(id int32) bool
}

// Finish reasons of a Generation.
const (
	FinishLength   = "length"   // MaxTokens reached
	FinishEOG      = "eog"      // Stop matched the last token
	FinishCallback = "callback" // OnToken returned false
)

// Generation is the result of Generate.
type Generation struct {
	Tokens       []int32
	Finish       string
	PromptTokens int
	// PromptTime is the time of the batched prompt evaluation; GenTime that
	// of the single-token evaluations (len(Tokens)-1 of them when the last
	// token was not evaluated), sampling included — the split llama.cpp
	// reports as "prompt eval" and "eval".
	PromptTime, GenTime time.Duration
	GenEvals            int
}

// Generate evaluates prompt after whatever the session already holds and
// then samples up to MaxTokens tokens, feeding each back. The last token is
// not evaluated, so the KV cache ends holding the prompt and all generated
// tokens but the last. ctx is checked between tokens.
func (s *Session) Generate(ctx context.Context, prompt []int32, opts GenerateOptions) (*Generation, error) {
	if opts.MaxTokens <= 0 {
		return nil, errors.New("model: Generate needs MaxTokens > 0")
	}
	if len(prompt) == 0 {
		return nil, errors.New("model: Generate needs a non-empty prompt")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := &Generation{PromptTokens: len(prompt), Tokens: make([]int32, 0, opts.MaxTokens)}
	history := make([]int32, 0, len(prompt)+opts.MaxTokens)
	history = append(history, prompt...)

	start := time.Now()
	logits, err := s.Eval(prompt)
	if err != nil {
		return nil, err
	}
	g.PromptTime = time.Since(start)
	start = time.Now()
	for {
		var id int32
		if opts.Sampler != nil {
			id = opts.Sampler.Sample(logits, history)
		} else {
			id = int32(argmaxFirst(logits))
		}
		g.Tokens = append(g.Tokens, id)
		history = append(history, id)
		switch {
		case opts.Stop != nil && opts.Stop(id):
			g.Finish = FinishEOG
		case opts.OnToken != nil && !opts.OnToken(id):
			g.Finish = FinishCallback
		case len(g.Tokens) >= opts.MaxTokens:
			g.Finish = FinishLength
		}
		if g.Finish == FinishEOG && opts.OnToken != nil {
			opts.OnToken(id)
		}
		if g.Finish != "" {
			break
		}
		if err := ctx.Err(); err != nil {
			g.GenTime = time.Since(start)
			return g, err
		}
		if logits, err = s.Eval([]int32{id}); err != nil {
			g.GenTime = time.Since(start)
			return g, err
		}
		g.GenEvals++
	}
	g.GenTime = time.Since(start)
	return g, nil
}

// argmaxFirst returns the index of the largest value, the first one on ties.
func argmaxFirst(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
