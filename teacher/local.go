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
	"sync/atomic"

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
	// Threads is the number of goroutines the engine uses for its matrix
	// products and attention; 0 means runtime.NumCPU(). All sequences in
	// flight share them: they are evaluated together in one batch.
	Threads int
	// Parallel is how many sequences are generated at once, each with its
	// own KV cache, all evaluated in one forward pass per step (continuous
	// batching). Decoding one token reads every weight from memory, so a
	// step of k sequences costs far less than k steps of one. 0 means 1.
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

	// The scheduler goroutine (schedule) owns the Batcher and the sessions;
	// sequences reach it through submit. quit asks it to stop, done says
	// it has.
	submit    chan *localSeq
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	// sessionsMade counts the sessions the scheduler has allocated (at most
	// Parallel); steps and sharedSteps count its Batcher steps and those
	// with more than one sequence.
	sessionsMade       atomic.Int32
	steps, sharedSteps atomic.Int64
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
		cfg.Threads = runtime.NumCPU()
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
		submit: make(chan *localSeq), quit: make(chan struct{}), done: make(chan struct{})}
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
	b, err := m.NewBatcher(0)
	if err == nil && b.MaxTokens() < 2*cfg.Parallel {
		// Every decoding sequence takes a row of each step; leave as
		// many again for prompts.
		b.Close()
		b, err = m.NewBatcher(2 * cfg.Parallel)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local teacher: %w", err)
	}
	go l.schedule(b)
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

// Close stops the scheduler, frees the sessions and the model file.
// Requests still in flight fail with ErrUnavailable.
func (l *Local) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.done
		l.log.Debug("local teacher closed", "steps", l.steps.Load(), "steps_with_several_sequences", l.sharedSteps.Load())
		l.closeErr = l.f.Close()
	})
	return l.closeErr
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

// localSeq is one job in the scheduler's hands: the request's side (ctx,
// reply) and, once admitted, the sequence's state.
type localSeq struct {
	ctx   context.Context
	job   localJob
	reply chan localReply // buffered: the scheduler never waits for the caller

	ls        *localSession
	fed       int // prompt tokens in the cache
	maxTokens int
	sampler   *sample.Sampler // nil: greedy, llama.cpp's argmax
	history   []int32         // prompt, then the generated tokens
	next      [1]int32        // the token a decoding sequence evaluates next
	stops     [][]byte
	text      []byte
	cut       int // where a stop string starts in text, or -1
	done      bool
}

type localReply struct {
	res localResult
	err error
}

// errLocalClosed fails the requests still in flight when Close is called.
var errLocalClosed = fmt.Errorf("%w: the local teacher is closed", ErrUnavailable)

// generate hands one job to the scheduler and waits for its result.
func (l *Local) generate(ctx context.Context, j localJob) (localResult, error) {
	seq := &localSeq{ctx: ctx, job: j, reply: make(chan localReply, 1)}
	select {
	case l.submit <- seq:
	case <-ctx.Done():
		return localResult{}, ctx.Err()
	case <-l.quit:
		return localResult{}, errLocalClosed
	}
	select {
	case r := <-seq.reply:
		return r.res, r.err
	case <-ctx.Done():
		// The scheduler drops the sequence at its next step.
		return localResult{}, ctx.Err()
	}
}

// prefillShare bounds the prompt tokens of one step while other sequences
// are decoding, so that a long prompt is evaluated over several steps
// instead of stalling every other sequence's next token for its whole
// length. With nothing decoding, a step takes as many prompt tokens as the
// Batcher holds.
func prefillShare(maxTokens int) int { return max(16, maxTokens/4) }

// schedule is the continuous-batching loop: each step it admits waiting
// sequences into free slots (up to Parallel), gathers every active
// sequence's next work (a prompt chunk or its last sampled token), runs one
// Batcher.Eval for all of them, then samples and checks each sequence's
// stop conditions on its own. Finished sequences reply and free their slot
// at once; the others go on in the next step.
func (l *Local) schedule(b *model.Batcher) {
	var (
		waiting, active []*localSeq
		idle            []*localSession
		items           []model.BatchItem
		stepSeqs        []*localSeq
		prefilling      []bool
	)
	defer func() {
		for _, q := range append(waiting, active...) {
			q.reply <- localReply{err: errLocalClosed}
		}
		for _, ls := range idle {
			ls.s.Close()
		}
		for _, q := range active {
			q.ls.s.Close()
		}
		b.Close()
		close(l.done)
	}()
	finish := func(q *localSeq, res localResult, err error) {
		q.done = true
		if err != nil {
			// The cache may hold anything now; the next job starts afresh.
			q.ls.s.Reset()
			q.ls.cached = q.ls.cached[:0]
		}
		idle = append(idle, q.ls)
		q.reply <- localReply{res: res, err: err}
	}
	for {
		if len(active) == 0 && len(waiting) == 0 {
			select {
			case q := <-l.submit:
				waiting = append(waiting, q)
			case <-l.quit:
				return
			}
		}
	drain:
		for {
			select {
			case q := <-l.submit:
				waiting = append(waiting, q)
			case <-l.quit:
				return
			default:
				break drain
			}
		}

		// Admit in arrival order; drop what was cancelled while waiting.
		kept := waiting[:0]
		for _, q := range waiting {
			switch {
			case q.ctx.Err() != nil:
				q.reply <- localReply{err: q.ctx.Err()}
			case len(active) < l.cfg.Parallel:
				ls, err := l.pickSession(&idle, q.job.prompt)
				if err != nil {
					q.reply <- localReply{err: err}
					continue
				}
				l.admit(q, ls)
				active = append(active, q)
			default:
				kept = append(kept, q)
			}
		}
		clear(waiting[len(kept):])
		waiting = kept

		// Gather the step: one token per decoding sequence, prompt chunks
		// for the others as far as the step has room.
		items, stepSeqs, prefilling = items[:0], stepSeqs[:0], prefilling[:0]
		decoding := 0
		for _, q := range active {
			if err := q.ctx.Err(); err != nil {
				finish(q, localResult{}, err)
			} else if q.fed == len(q.job.prompt) {
				decoding++
			}
		}
		budget := b.MaxTokens() - decoding
		if decoding > 0 {
			budget = min(budget, prefillShare(b.MaxTokens()))
		}
		for _, q := range active {
			switch {
			case q.done:
			case q.fed < len(q.job.prompt):
				n := min(len(q.job.prompt)-q.fed, budget)
				if n <= 0 {
					continue
				}
				budget -= n
				items = append(items, model.BatchItem{Session: q.ls.s, Tokens: q.job.prompt[q.fed : q.fed+n]})
				stepSeqs, prefilling = append(stepSeqs, q), append(prefilling, true)
			default:
				items = append(items, model.BatchItem{Session: q.ls.s, Tokens: q.next[:]})
				stepSeqs, prefilling = append(stepSeqs, q), append(prefilling, false)
			}
		}

		if len(items) > 0 {
			l.steps.Add(1)
			if len(items) > 1 {
				l.sharedSteps.Add(1)
			}
			logits, err := b.Eval(items)
			for k, q := range stepSeqs {
				switch {
				case err != nil:
					finish(q, localResult{}, fmt.Errorf("local teacher: %w", err))
				case prefilling[k]:
					q.fed += len(items[k].Tokens)
					if q.fed == len(q.job.prompt) {
						l.sampleNext(q, logits[k], finish)
					}
				default:
					l.sampleNext(q, logits[k], finish)
				}
			}
		}
		clear(items)
		clear(stepSeqs)

		kept = active[:0]
		for _, q := range active {
			if !q.done {
				kept = append(kept, q)
			}
		}
		clear(active[len(kept):])
		active = kept
	}
}

// pickSession takes the idle session whose cache shares the longest prefix
// with prompt, a new one while fewer than Parallel exist and none shares
// anything, else the least recently used.
func (l *Local) pickSession(idle *[]*localSession, prompt []int32) (*localSession, error) {
	best, bestLen := -1, 0
	for i, ls := range *idle {
		if n := commonPrefix(ls, prompt); best < 0 || n > bestLen {
			best, bestLen = i, n
		}
	}
	if best < 0 || bestLen == 0 && int(l.sessionsMade.Load()) < l.cfg.Parallel {
		s, err := l.m.NewSession(l.cfg.CtxSize)
		if err != nil {
			return nil, fmt.Errorf("local teacher: %w", err)
		}
		l.sessionsMade.Add(1)
		return &localSession{s: s, cached: make([]int32, 0, l.cfg.CtxSize)}, nil
	}
	ls := (*idle)[best]
	*idle = append((*idle)[:best], (*idle)[best+1:]...)
	return ls, nil
}

// commonPrefix is how many leading prompt tokens a session's cache can
// keep; at least one prompt token must be evaluated to get the logits of
// the next one.
func commonPrefix(ls *localSession, prompt []int32) int {
	if len(ls.cached) != ls.s.Pos() {
		return 0
	}
	n := 0
	for n < len(ls.cached) && n < len(prompt)-1 && ls.cached[n] == prompt[n] {
		n++
	}
	return n
}

// admit sets a sequence up on a session, reusing its cached prefix.
func (l *Local) admit(q *localSeq, ls *localSession) {
	j := q.job
	q.ls = ls
	room := ls.s.ContextSize() - len(j.prompt)
	q.maxTokens = j.maxTokens
	if q.maxTokens <= 0 || q.maxTokens > room {
		q.maxTokens = room
	}
	keep := commonPrefix(ls, j.prompt)
	if err := ls.s.Truncate(keep); err != nil {
		ls.s.Reset()
		keep = 0
	}
	ls.cached = append(ls.cached[:0], j.prompt[:keep]...)
	q.fed = keep
	l.log.Debug("local generation", "prompt_tokens", len(j.prompt), "reused_prefix", keep, "max_tokens", q.maxTokens)

	p := j.params
	if p.Temperature > 0 || p.PresencePenalty != 0 || p.FrequencyPenalty != 0 {
		q.sampler = sample.New(p)
	}
	// The penalties see the whole sequence, the reused prefix included.
	q.history = append(make([]int32, 0, len(j.prompt)+q.maxTokens), j.prompt...)
	for _, s := range j.stop {
		if s != "" {
			q.stops = append(q.stops, []byte(s))
		}
	}
	q.text = make([]byte, 0, 4*q.maxTokens)
	q.cut = -1
}

// sampleNext picks a sequence's next token from the logits of its last one
// and ends the sequence on an end-of-generation token, a stop string or
// its token limit (checked in that order, as Session.Generate does).
func (l *Local) sampleNext(q *localSeq, logits []float32, finish func(*localSeq, localResult, error)) {
	var id int32
	if q.sampler != nil {
		id = q.sampler.Sample(logits, q.history)
	} else {
		id = argmaxFirst(logits)
	}
	q.history = append(q.history, id)
	generated := len(q.history) - len(q.job.prompt)
	ended := true
	switch {
	case l.tok.IsEOG(id):
	case !l.appendText(q, id):
	case generated >= q.maxTokens:
	default:
		ended = false
	}
	if !ended {
		q.next[0] = id
		return
	}
	// The last token is not evaluated: the cache holds the rest.
	ls := q.ls
	ls.cached = append(ls.cached[:0], q.history[:len(q.history)-1]...)
	if len(ls.cached) != ls.s.Pos() {
		ls.s.Reset()
		ls.cached = ls.cached[:0]
	}
	res := localResult{promptTokens: len(q.job.prompt), completionTokens: generated, finish: FinishStop}
	text := q.text
	if q.cut >= 0 {
		text = text[:q.cut]
	} else if !l.tok.IsEOG(id) {
		res.finish = FinishLength
	}
	res.text = string(text)
	finish(q, res, nil)
}

// appendText adds a token's text to the sequence's and reports false when
// a stop string has appeared.
func (l *Local) appendText(q *localSeq, id int32) bool {
	if int(id) >= len(l.pieces) {
		return true
	}
	// Raw bytes: a character split over tokens is whole once they all
	// arrived, and stop strings match bytes.
	before := len(q.text)
	q.text = append(q.text, l.pieces[id]...)
	if i := findStop(q.text, before, q.stops); i >= 0 {
		q.cut = i
		return false
	}
	return true
}

// argmaxFirst returns the index of the largest value, the first one on
// ties: llama.cpp's greedy pick.
func argmaxFirst(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
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
