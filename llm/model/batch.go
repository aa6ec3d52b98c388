package model

import (
	"errors"
	"fmt"
	"runtime"
)

// BatchItem is one sequence's part of a batched step: Tokens are appended to
// Session's sequence.
type BatchItem struct {
	Session *Session
	Tokens  []int32
}

// Batcher evaluates tokens of several Sessions (of the same Model) in one
// forward pass: every weight matrix is read once per step for all
// sequences' tokens together; attention runs per sequence on its own KV
// cache. Decoding is bound by streaming the weights from memory, so k
// sequences decoding together cost little more than one.
//
// A Batcher is not safe for concurrent use; Sessions passed to it must not
// be used elsewhere during Eval.
type Batcher struct {
	m   *Model
	e   *engine
	out [][]float32
}

// NewBatcher returns a Batcher whose scratch holds up to maxTokens tokens per
// Eval (0 means the model's BatchSize). It has its own persistent worker
// pool (Model.Threads() workers).
func (m *Model) NewBatcher(maxTokens int) (*Batcher, error) {
	if maxTokens < 0 {
		return nil, fmt.Errorf("model: invalid batch size %d", maxTokens)
	}
	if maxTokens == 0 {
		maxTokens = m.batch
	}
	nCtx := m.HP.ContextLen
	if nCtx <= 0 {
		nCtx = maxTokens
	}
	b := &Batcher{m: m, e: newEngine(m, maxTokens, nCtx)}
	// As for a Session: the workers do not reference the Batcher, so an
	// abandoned one is collected and its goroutines stopped.
	runtime.AddCleanup(b, func(p *pool) { p.close() }, b.e.pool)
	return b, nil
}

// MaxTokens is the most tokens one Eval takes, all items together.
func (b *Batcher) MaxTokens() int { return b.e.maxTokens }

// Eval appends each item's tokens to its session and returns, per item, the
// logits predicting the token after that item's last token (each slice owned
// by the item's Session, valid until that Session's next evaluation; the
// outer slice is the Batcher's, valid until its next Eval).
// Results are bit-identical to calling items[i].Session.Eval(items[i].Tokens)
// one after another. Items with more tokens than fit are an error
// (ErrContextFull for a full session; an error naming the limit if the total
// exceeds MaxTokens). The same Session may not appear twice. On an error no
// session has changed.
func (b *Batcher) Eval(items []BatchItem) ([][]float32, error) {
	if len(items) == 0 {
		return nil, errors.New("model: batch without items")
	}
	total := 0
	for i, it := range items {
		s := it.Session
		if s == nil {
			return nil, fmt.Errorf("model: batch item %d has no session", i)
		}
		if s.m != b.m {
			return nil, fmt.Errorf("model: batch item %d: session of another model", i)
		}
		for j := range i {
			if items[j].Session == s {
				return nil, fmt.Errorf("model: batch items %d and %d are the same session", j, i)
			}
		}
		if err := s.checkTokens(it.Tokens); err != nil {
			return nil, fmt.Errorf("batch item %d: %w", i, err)
		}
		total += len(it.Tokens)
	}
	if total > b.e.maxTokens {
		return nil, fmt.Errorf("model: batch of %d tokens exceeds the batcher's %d", total, b.e.maxTokens)
	}
	if err := b.e.forward(items, true); err != nil {
		return nil, err
	}
	b.out = b.out[:0]
	for _, it := range items {
		b.out = append(b.out, it.Session.logits)
	}
	return b.out, nil
}

// Close stops the Batcher's workers. It must not be used afterwards.
func (b *Batcher) Close() { b.e.pool.close() }
