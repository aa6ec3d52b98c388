package model

import (
	"context"
	"errors"
	"testing"
)

// fixedSampler always picks the same token, to check that Generate feeds
// the sampler's choice back and passes the history.
type fixedSampler struct {
	id      int32
	history [][]int32
}

func (f *fixedSampler) Sample(logits []float32, history []int32) int32 {
	f.history = append(f.history, append([]int32(nil), history...))
	return f.id
}

func TestGenerate(t *testing.T) {
	f, _ := buildTiny(t, tinySpecs[0])
	m, err := Load(f, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3}

	// Greedy generation equals an explicit argmax loop.
	s, err := m.NewSession(32)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want []int32
	logits, err := s.Eval(prompt)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		id := int32(argmaxFirst(logits))
		want = append(want, id)
		if logits, err = s.Eval([]int32{id}); err != nil {
			t.Fatal(err)
		}
	}
	s.Reset()
	g, err := s.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if g.Finish != FinishLength || len(g.Tokens) != 10 || g.PromptTokens != 3 || g.GenEvals != 9 {
		t.Fatalf("generation %+v", g)
	}
	for i := range want {
		if g.Tokens[i] != want[i] {
			t.Fatalf("Generate %v, argmax loop %v", g.Tokens, want)
		}
	}
	if s.Pos() != len(prompt)+9 {
		t.Fatalf("cache holds %d tokens, want %d", s.Pos(), len(prompt)+9)
	}

	// An end-of-generation token ends generation and is kept.
	s.Reset()
	stopAt := want[4]
	var seen []int32
	g, err = s.Generate(context.Background(), prompt, GenerateOptions{
		MaxTokens: 10,
		Stop:      func(id int32) bool { return id == stopAt },
		OnToken:   func(id int32) bool { seen = append(seen, id); return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for want[first] != stopAt {
		first++
	}
	if g.Finish != FinishEOG || len(g.Tokens) != first+1 || g.Tokens[first] != stopAt || len(seen) != len(g.Tokens) {
		t.Fatalf("stop at %d: %+v, seen %v", stopAt, g, seen)
	}

	// OnToken can end generation (stop strings).
	s.Reset()
	n := 0
	g, err = s.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 10, OnToken: func(int32) bool { n++; return n < 3 }})
	if err != nil || g.Finish != FinishCallback || len(g.Tokens) != 3 {
		t.Fatalf("callback stop: %+v, %v", g, err)
	}

	// The sampler's choice is fed back, with the whole history.
	s.Reset()
	fs := &fixedSampler{id: 7}
	g, err = s.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 3, Sampler: fs})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.history) != 3 || len(fs.history[2]) != 5 || fs.history[2][4] != 7 || g.Tokens[2] != 7 {
		t.Fatalf("sampler history %v, tokens %v", fs.history, g.Tokens)
	}

	// A cancelled context stops generation with its error.
	s.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	g, err = s.Generate(ctx, prompt, GenerateOptions{MaxTokens: 10, OnToken: func(int32) bool { cancel(); return true }})
	if !errors.Is(err, context.Canceled) || len(g.Tokens) != 1 {
		t.Fatalf("cancelled: %v, %+v", err, g)
	}

	// Generation past the context fails cleanly.
	small, err := m.NewSession(5)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if _, err := small.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 10}); !errors.Is(err, ErrContextFull) {
		t.Fatalf("past the context: %v", err)
	}
}

// TestEvalDoesNotAllocate: a token's forward pass works in the session's
// preallocated buffers (the pool's hand-offs included).
func TestEvalDoesNotAllocate(t *testing.T) {
	f, _ := buildTiny(t, tinySpecs[4])
	m, err := Load(f, Options{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := []int32{5}
	if _, err := s.Eval(tok); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := s.Eval(tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Eval allocates %v times per token", allocs)
	}
}

// TestTruncateReusesPrefix: continuing after Truncate gives the same bits as
// evaluating the sequence from scratch.
func TestTruncateReusesPrefix(t *testing.T) {
	f, _ := buildTiny(t, tinySpecs[1])
	m, err := Load(f, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(16)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Eval([]int32{4, 8, 15, 16, 23, 42 % 80}); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(3); err != nil {
		t.Fatal(err)
	}
	got, err := s.Eval([]int32{7, 7})
	if err != nil {
		t.Fatal(err)
	}
	got = append([]float32(nil), got...)
	s.Reset()
	want, err := s.Eval([]int32{4, 8, 15, 7, 7})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d after Truncate %v, fresh %v", i, got[i], want[i])
		}
	}
	if err := s.Truncate(6); err == nil {
		t.Fatal("Truncate past the cached tokens succeeded")
	}
}
