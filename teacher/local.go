package teacher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/model"
	"github.com/selfinstruct/selfinstruct/llm/sample"
	"github.com/selfinstruct/selfinstruct/llm/tokenizer"
)

// DefaultLocalCtxSize is the context of each local session when none is
// configured: room for an Alpaca prompt (about 1K tokens) and a long answer,
// at a KV cache of tens of MB for a 0.5B model. It may exceed a tiny model's
// training context; that costs quality, not correctness.
const DefaultLocalCtxSize = 4096

// LocalConfig configures NewLocal.
type LocalConfig struct {
	// Model is the GGUF file (llama or qwen2 architecture).
	Model string
	// Name is what Model() reports (e.g. the hf:// reference it came
	// from); "" means the file's base name.
	Name string
	// Threads is the number of goroutines each generation uses for its
	// matrix products; 0 shares the cores among the Parallel sessions.
	Threads int
	// Parallel is how many sequences are generated at once, each in its own
	// session (KV cache). Generation is CPU-bound, so more than one mostly
	// pays off on many cores. 0 means 1.
	Parallel int
	// CtxSize is each session's context in tokens (prompt + completion);
	// 0 means DefaultLocalCtxSize.
	CtxSize int
	// Template names the chat template (chatml, llama3, ...) instead of the
	// one detected from the model's tokenizer.chat_template.
	Template string
	Logger   *slog.Logger
}

// Local is a Teacher that runs a GGUF model in-process on the engine of
// package llm/model. It costs nothing and needs no key; its throughput is
// whatever the CPU gives.
type Local struct {
	cfg  LocalConfig
	name string
	f    *gguf.File
	tok  *tokenizer.Tokenizer
	m    *model.Model
	log  *slog.Logger

	// chat renders chat requests; nil means the model has no chat template
	// and the messages' contents are used as a raw prompt. chatErr is set
	// when the model has a template this engine cannot render, so that
	// chat requests fail and completion requests still work.
	chat    *ChatEncoder
	chatErr error
	rawOnce sync.Once
	// pieces[id] is the text a token adds to a decoded stream, computed
	// once with the tokenizer's own stream decoder so that generating
	// allocates nothing per token.
	pieces []string

	// slots admits at most Parallel generations; idle holds the sessions
	// not in use, so their KV memory is reused from request to request.
	slots chan struct{}
	idle  chan *localSession
}

// localSession is a session plus the tokens its KV cache holds, so that the
// next prompt only evaluates what differs from the last one (Alpaca prompts
// share their header).
type localSession struct {
	s      *model.Session
	cached []int32
}

// NewLocal loads the model. Close releases it.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Model == "" {
		return nil, errors.New("local teacher: no model file")
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	if cfg.Threads <= 0 {
		cfg.Threads = max(1, runtime.NumCPU()/cfg.Parallel)
	}
	if cfg.CtxSize <= 0 {
		cfg.CtxSize = DefaultLocalCtxSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f, err := gguf.Open(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("local teacher: %w", err)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local teacher: %s: %w", cfg.Model, err)
	}
	m, err := model.Load(f, model.Options{Threads: cfg.Threads})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local teacher: %s: %w", cfg.Model, err)
	}
	l := &Local{cfg: cfg, name: cfg.Name, f: f, tok: tok, m: m, log: cfg.Logger,
		slots: make(chan struct{}, cfg.Parallel), idle: make(chan *localSession, cfg.Parallel)}
	if l.name == "" {
		l.name = filepath.Base(cfg.Model)
	}
	switch l.chat, err = NewChatEncoder(tok, cfg.Template); {
	case errors.Is(err, ErrNoChatTemplate):
		// A base model (stories260K): chat requests become raw prompts,
		// logged at the first one.
	case errors.Is(err, ErrUnknownChatTemplate) && cfg.Template == "":
		l.chatErr = fmt.Errorf("%w: %s: %v; name one with --chat-template (chatml, llama3, llama2, mistral, zephyr, phi3, gemma) or use --api completions",
			ErrUnavailable, cfg.Model, err)
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("local teacher: %w", err)
	}
	dec := tok.NewStreamDecoder()
	l.pieces = make([]string, tok.VocabSize())
	for id := range l.pieces {
		l.pieces[id] = dec.Add(int32(id)) + dec.Flush()
	}
	tmplName := "none (raw prompt)"
	if l.chat != nil {
		tmplName = l.chat.Template().Name()
	} else if l.chatErr != nil {
		tmplName = "unknown"
	}
	l.log.Info("local teacher loaded", "model", l.name, "file", cfg.Model, "arch", m.HP.Arch,
		"layers", m.HP.Layers, "vocab", m.HP.Vocab, "chat_template", tmplName,
		"ctx_size", cfg.CtxSize, "parallel", cfg.Parallel, "threads", cfg.Threads)
	if m.HP.ContextLen > 0 && cfg.CtxSize > m.HP.ContextLen {
		l.log.Warn("context size exceeds the model's training context; text past it degrades",
			"ctx_size", cfg.CtxSize, "training_ctx", m.HP.ContextLen)
	}
	return l, nil
}

// ErrNoChatTemplate: the model carries no tokenizer.chat_template and none
// was named.
var ErrNoChatTemplate = errors.New("the model has no chat template")

// ErrUnknownChatTemplate: the model's chat template is not one of the
// families package sample renders.
var ErrUnknownChatTemplate = errors.New("the model's chat template is not one this engine knows")

// ChatEncoder turns conversations into a model's prompt tokens: rendered
// with its chat template, the vocabulary's own BOS/EOS texts written where
// the template writes them, special-token texts parsed, and a BOS added
// per the vocabulary unless the template wrote it already.
type ChatEncoder struct {
	tok  *tokenizer.Tokenizer
	tmpl sample.Template
	bos  string
}

// NewChatEncoder picks the template by name (TemplateByName), else the one
// detected from the model's tokenizer.chat_template.
func NewChatEncoder(tok *tokenizer.Tokenizer, name string) (*ChatEncoder, error) {
	var t sample.Template
	switch {
	case name != "":
		var err error
		if t, err = sample.TemplateByName(name); err != nil {
			return nil, err
		}
	case tok.ChatTemplate() == "":
		return nil, ErrNoChatTemplate
	default:
		var ok bool
		if t, ok = sample.DetectTemplate(tok.ChatTemplate()); !ok {
			return nil, ErrUnknownChatTemplate
		}
	}
	var bos, eos string
	if id := tok.BOS(); id >= 0 {
		bos = tok.Token(id)
	}
	if id := tok.EOS(); id >= 0 {
		eos = tok.Token(id)
	}
	return &ChatEncoder{tok: tok, tmpl: sample.WithSpecialTokens(t, bos, eos), bos: bos}, nil
}

// Template is the template in use, with the vocabulary's BOS/EOS texts.
func (e *ChatEncoder) Template() sample.Template { return e.tmpl }

// Encode renders msgs followed by the assistant's turn opening.
func (e *ChatEncoder) Encode(msgs []sample.Message) ([]int32, error) {
	text, err := e.tmpl.Render(msgs, true)
	if err != nil {
		return nil, err
	}
	// A template that writes the BOS text must not get a second BOS.
	addSpecial := e.bos == "" || !strings.HasPrefix(text, e.bos)
	return e.tok.Encode(text, addSpecial, true), nil
}

// Model is the configured name, else the model file's base name.
func (l *Local) Model() string { return l.name }

// Close frees the sessions and the model file. No request may be in flight.
func (l *Local) Close() error {
	for {
		select {
		case s := <-l.idle:
			s.s.Close()
		default:
			return l.f.Close()
		}
	}
}

// encodedPrompt is one prompt ready for the engine.
type encodedPrompt struct {
	ids []int32
}

// encode renders a request into token ids, one prompt per choice.
func (l *Local) encode(req Request) ([]encodedPrompt, error) {
	switch req.Mode {
	case ModeChat:
		if len(req.Messages) == 0 {
			return nil, fmt.Errorf("%w: chat request without messages", ErrRejected)
		}
		if l.chatErr != nil {
			return nil, l.chatErr
		}
		if l.chat == nil {
			l.rawOnce.Do(func() {
				l.log.Info("the model has no chat template: chat messages are sent as one raw prompt (their contents concatenated)", "model", l.name)
			})
			parts := make([]string, len(req.Messages))
			for i, m := range req.Messages {
				parts[i] = m.Content
			}
			return []encodedPrompt{{ids: l.tok.Encode(strings.Join(parts, "\n"), true, false)}}, nil
		}
		msgs := make([]sample.Message, len(req.Messages))
		for i, m := range req.Messages {
			msgs[i] = sample.Message{Role: m.Role, Content: m.Content}
		}
		ids, err := l.chat.Encode(msgs)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRejected, err)
		}
		return []encodedPrompt{{ids: ids}}, nil
	case ModeCompletion:
		if len(req.Prompts) == 0 {
			return nil, fmt.Errorf("%w: completion request without prompts", ErrRejected)
		}
		out := make([]encodedPrompt, len(req.Prompts))
		for i, p := range req.Prompts {
			// Raw prompts: BOS per the vocabulary, special-token text
			// taken literally, as llama.cpp's completion does.
			out[i] = encodedPrompt{ids: l.tok.Encode(p, true, false)}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown mode %q", ErrRejected, req.Mode)
}

// Complete generates one choice per prompt (one for a chat request). The
// prompts of one request are generated concurrently as far as Parallel
// allows.
func (l *Local) Complete(ctx context.Context, req Request) (Response, error) {
	prompts, err := l.encode(req)
	if err != nil {
		return Response{}, err
	}
	for i, p := range prompts {
		if len(p.ids) == 0 {
			return Response{}, fmt.Errorf("%w: prompt %d tokenizes to nothing", ErrRejected, i)
		}
		if len(p.ids) >= l.cfg.CtxSize {
			return Response{}, fmt.Errorf("%w: prompt of %d tokens does not fit the local model's context of %d tokens (raise --ctx-size)",
				ErrRejected, len(p.ids), l.cfg.CtxSize)
		}
	}
	var baseSeed uint64
	if req.Seed != nil {
		baseSeed = uint64(*req.Seed)
	} else {
		baseSeed = rand.Uint64()
	}
	topP := float32(req.TopP)
	if topP <= 0 {
		topP = 1 // OpenAI's default: off
	}
	results := make([]localResult, len(prompts))
	errs := make([]error, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		j := localJob{
			prompt:    p.ids,
			maxTokens: req.MaxTokens,
			stop:      req.Stop,
			params: sample.Params{
				Temperature:      float32(req.Temperature),
				TopP:             topP,
				PresencePenalty:  float32(req.PresencePenalty),
				FrequencyPenalty: float32(req.FrequencyPenalty),
				// Each prompt of a request draws its own stream, like
				// the n choices of an API call.
				Seed: baseSeed + uint64(i),
			},
		}
		wg.Go(func() { results[i], errs[i] = l.generate(ctx, j) })
	}
	wg.Wait()
	resp := Response{Model: l.name, Choices: make([]Choice, len(prompts))}
	for i, r := range results {
		if errs[i] != nil {
			return Response{}, errs[i]
		}
		resp.Choices[i] = Choice{Text: r.text, FinishReason: r.finish}
		resp.Usage = resp.Usage.Add(Usage{PromptTokens: int64(r.promptTokens), CompletionTokens: int64(r.completionTokens)})
	}
	return resp, nil
}

// localJob is one sequence to generate. It is self-contained so that a
// batched engine, which evaluates the waiting sequences of several requests
// in one forward pass, can take a slice of them in generate's place.
type localJob struct {
	prompt    []int32
	maxTokens int // <= 0: until the context is full
	stop      []string
	params    sample.Params
}

type localResult struct {
	text                           string
	finish                         string
	promptTokens, completionTokens int
}

// generate runs one job on a pooled session, waiting for a free slot.
func (l *Local) generate(ctx context.Context, j localJob) (localResult, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return localResult{}, ctx.Err()
	}
	defer func() { <-l.slots }()
	var ls *localSession
	select {
	case ls = <-l.idle:
	default:
		s, err := l.m.NewSession(l.cfg.CtxSize)
		if err != nil {
			return localResult{}, fmt.Errorf("local teacher: %w", err)
		}
		ls = &localSession{s: s, cached: make([]int32, 0, l.cfg.CtxSize)}
	}
	defer func() { l.idle <- ls }()
	return l.run(ctx, ls, j)
}

func (l *Local) run(ctx context.Context, ls *localSession, j localJob) (localResult, error) {
	nCtx := ls.s.ContextSize()
	room := nCtx - len(j.prompt)
	maxTokens := j.maxTokens
	if maxTokens <= 0 || maxTokens > room {
		maxTokens = room
	}

	// Reuse the cached prefix; at least one prompt token must be evaluated
	// to get the logits of the next one.
	keep := 0
	if len(ls.cached) == ls.s.Pos() {
		for keep < len(ls.cached) && keep < len(j.prompt)-1 && ls.cached[keep] == j.prompt[keep] {
			keep++
		}
	}
	if err := ls.s.Truncate(keep); err != nil {
		ls.s.Reset()
		keep = 0
	}

	l.log.Debug("local generation", "prompt_tokens", len(j.prompt), "reused_prefix", keep, "max_tokens", maxTokens)

	opts := model.GenerateOptions{MaxTokens: maxTokens, Stop: l.tok.IsEOG}
	p := j.params
	penalties := p.PresencePenalty != 0 || p.FrequencyPenalty != 0
	if p.Temperature > 0 || penalties {
		s := sample.New(p)
		if keep > 0 && penalties {
			// Generate's history starts after the reused prefix; the
			// penalties must see the whole sequence, as in a fresh run.
			opts.Sampler = &prefixedSampler{s: s, prefix: j.prompt[:keep], buf: make([]int32, 0, len(j.prompt)+maxTokens)}
		} else {
			opts.Sampler = s
		}
	} // else nil: Generate's argmax, llama.cpp's greedy pick

	stops := make([][]byte, 0, len(j.stop))
	for _, s := range j.stop {
		if s != "" {
			stops = append(stops, []byte(s))
		}
	}
	text := make([]byte, 0, 4*maxTokens)
	cut := -1
	opts.OnToken = func(id int32) bool {
		if l.tok.IsEOG(id) || int(id) >= len(l.pieces) {
			return true
		}
		// Raw bytes: a character split over tokens is whole once they
		// all arrived, and stop strings match bytes.
		before := len(text)
		text = append(text, l.pieces[id]...)
		if i := findStop(text, before, stops); i >= 0 {
			cut = i
			return false
		}
		return true
	}
	gen, err := ls.s.Generate(ctx, j.prompt[keep:], opts)
	if err != nil {
		// The cache may hold anything now; start the next job afresh.
		ls.s.Reset()
		ls.cached = ls.cached[:0]
		if ctx.Err() != nil {
			return localResult{}, ctx.Err()
		}
		return localResult{}, fmt.Errorf("local teacher: %w", err)
	}
	ls.cached = append(append(ls.cached[:0], j.prompt...), gen.Tokens[:len(gen.Tokens)-1]...)
	if len(ls.cached) != ls.s.Pos() {
		ls.s.Reset()
		ls.cached = ls.cached[:0]
	}
	res := localResult{promptTokens: len(j.prompt), completionTokens: len(gen.Tokens), finish: FinishStop}
	if cut >= 0 {
		text = text[:cut]
	} else if gen.Finish == model.FinishLength {
		res.finish = FinishLength
	}
	res.text = string(text)
	return res, nil
}

// findStop returns where the earliest stop string starts in text, looking
// only at matches that end in text[from:] (earlier ones were checked when
// those bytes arrived), or -1.
func findStop(text []byte, from int, stops [][]byte) int {
	best := -1
	for _, s := range stops {
		lo := max(0, from-len(s)+1)
		if i := bytes.Index(text[lo:], s); i >= 0 && (best < 0 || lo+i < best) {
			best = lo + i
		}
	}
	return best
}

// prefixedSampler gives the sampler the whole history when Generate only
// sees the part after a reused prefix.
type prefixedSampler struct {
	s      *sample.Sampler
	prefix []int32
	buf    []int32
}

func (p *prefixedSampler) Sample(logits []float32, history []int32) int32 {
	p.buf = append(append(p.buf[:0], p.prefix...), history...)
	return p.s.Sample(logits, p.buf)
}
