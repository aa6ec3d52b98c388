package teacher

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// batchRequests are greedy requests of different prompts, lengths and stop
// strings, so that the sequences of a batch start, decode and end at
// different steps.
func batchRequests(n int) []Request {
	prompts := []string{"Once upon a time", "The old lighthouse", "Lily and Ben went to the park. They", "A cat", "Tom had a red ball", "Once upon a time there was a dog", "The sun", "She said"}
	var reqs []Request
	for i := range n {
		r := Request{Mode: ModeCompletion, Prompts: []string{prompts[i%len(prompts)]}, MaxTokens: 20 + 7*i}
		if i%3 == 2 {
			r.Stop = []string{"."}
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// TestLocalBatchedEqualsOneAtATime: 8 greedy requests sent together to a
// teacher batching 8 sequences give exactly the texts, finish reasons and
// usage of the same requests sent one at a time to a teacher with one slot,
// and most steps really carried several sequences.
func TestLocalBatchedEqualsOneAtATime(t *testing.T) {
	for _, file := range []string{"stories260K-Q8_0.gguf", filepath.Join("random", "llama-spm-small-q4_k_m.gguf"), filepath.Join("random", "qwen2-small-q8_0.gguf")} {
		t.Run(file, func(t *testing.T) {
			path := requireModel(t, file)
			reqs := batchRequests(8)
			seq, _ := newTestLocal(t, LocalConfig{Model: path, Parallel: 1, CtxSize: 256})
			want := make([]Response, len(reqs))
			for i, r := range reqs {
				var err error
				if want[i], err = seq.Complete(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			if seq.sharedSteps.Load() != 0 {
				t.Fatalf("one slot, yet %d steps carried several sequences", seq.sharedSteps.Load())
			}
			par, _ := newTestLocal(t, LocalConfig{Model: path, Parallel: 8, CtxSize: 256})
			got := make([]Response, len(reqs))
			errs := make([]error, len(reqs))
			var wg sync.WaitGroup
			for i, r := range reqs {
				wg.Go(func() { got[i], errs[i] = par.Complete(context.Background(), r) })
			}
			wg.Wait()
			for i := range reqs {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
					t.Errorf("request %d:\n batched  %+v\n one by one %+v", i, got[i], want[i])
				}
			}
			steps, shared := par.steps.Load(), par.sharedSteps.Load()
			if shared*2 < steps {
				t.Errorf("only %d of %d steps carried several sequences", shared, steps)
			}
			if n := par.sessionsMade.Load(); n > 8 {
				t.Errorf("%d sessions for Parallel=8", n)
			}
		})
	}
}

// TestLocalCancelOneOfBatch: cancelling one sequence mid-generation ends it
// with the context's error and leaves the others' results as they would be
// alone.
func TestLocalCancelOneOfBatch(t *testing.T) {
	path := requireModel(t, filepath.Join("random", "llama-spm-small-q4_k_m.gguf"))
	reqs := batchRequests(4)
	alone, _ := newTestLocal(t, LocalConfig{Model: path, Parallel: 1, CtxSize: 1024})
	want := make([]Response, len(reqs))
	for i, r := range reqs {
		var err error
		if want[i], err = alone.Complete(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := newTestLocal(t, LocalConfig{Model: path, Parallel: 5, CtxSize: 1024})
	ctx, cancel := context.WithCancel(context.Background())
	long := make(chan error, 1)
	go func() {
		_, err := l.Complete(ctx, Request{Mode: ModeCompletion, Prompts: []string{"The old lighthouse"}, MaxTokens: 1000})
		long <- err
	}()
	got := make([]Response, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { got[i], errs[i] = l.Complete(context.Background(), r) })
	}
	// Cancel once the long sequence is decoding beside the others.
	for l.sharedSteps.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	start := time.Now()
	if err := <-long; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled sequence: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("request %d beside a cancelled one:\n %+v\nalone\n %+v", i, got[i], want[i])
		}
	}
	// The slot and its session serve the next request afresh.
	again, err := l.Complete(context.Background(), reqs[1])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(want[1]) {
		t.Errorf("after the cancellation %+v, want %+v", again, want[1])
	}
}

// TestLocalClose: requests in flight when the teacher closes fail with
// ErrUnavailable instead of hanging, and later ones are refused.
func TestLocalClose(t *testing.T) {
	l, _ := newTestLocal(t, LocalConfig{Model: requireModel(t, filepath.Join("random", "llama-spm-small-q4_k_m.gguf")), Parallel: 2, CtxSize: 2048})
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"The old lighthouse"}, MaxTokens: 2000})
			errs <- err
		}()
	}
	for l.steps.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("in flight at Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request hangs after Close")
		}
	}
	if _, err := l.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: []string{"x"}, MaxTokens: 2}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after Close: %v", err)
	}
}
