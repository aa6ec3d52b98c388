package teacher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkLocalTeacherConcurrency is the local teacher end to end as the
// pipeline drives it: requests of 32 generated tokens sent by 1, 4 or 8
// goroutines at once to a teacher batching that many sequences. It reports
// the aggregate generated tokens per second; the ratio to concurrency 1 in
// the same run is what continuous batching buys. The model is
// $SELFINSTRUCT_BENCH_MODEL (e.g. make bench-models' TinyLlama-shaped Q4_0)
// or else the small random llama of ../shared.
func BenchmarkLocalTeacherConcurrency(b *testing.B) {
	path := os.Getenv("SELFINSTRUCT_BENCH_MODEL")
	if path == "" {
		path = filepath.Join(sharedModels, "random", "llama-spm-small-q4_k_m.gguf")
	}
	if _, err := os.Stat(path); err != nil {
		b.Skipf("no model to run (%v): set SELFINSTRUCT_BENCH_MODEL or provide ../shared", err)
	}
	for _, conc := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			l, err := NewLocal(LocalConfig{Model: path, Parallel: conc, CtxSize: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			req := func(i int) Request {
				// Different prompts, no stop: every request generates 32 tokens.
				return Request{Mode: ModeCompletion, Prompts: []string{fmt.Sprintf("Request %d: write a short story about the number %d.", i, i*7)}, MaxTokens: 32}
			}
			var tokens int64
			var mu sync.Mutex
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range conc {
					wg.Go(func() {
						resp, err := l.Complete(context.Background(), req(i))
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						tokens += resp.Usage.CompletionTokens
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
