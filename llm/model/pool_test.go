package model

import (
	"runtime"
	"testing"
	"time"
)

type nopJob struct{ sink [8]int }

func (j *nopJob) run(w, lo, hi int) { j.sink[w] += hi - lo }

// BenchmarkPoolParallel is the fixed cost of one parallel section (a
// mat-vec of one token runs about 180 per token on a 22-layer model).
func BenchmarkPoolParallel(b *testing.B) {
	p := newPool(2)
	defer p.close()
	var j nopJob
	for b.Loop() {
		p.parallel(2, 1, &j)
	}
}

// coverJob records which indices ran and on which worker.
type coverJob struct {
	hits []int32
}

func (j *coverJob) run(_, lo, hi int) {
	for i := lo; i < hi; i++ {
		j.hits[i]++
	}
}

// TestPoolCoversEveryIndexOnce drives the pool through both of its waiting
// modes: back-to-back sections (the workers and caller spin) and sections
// after pauses longer than spinFor (everyone parks and is woken).
func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 5} {
		p := newPool(threads)
		for iter := 0; iter < 300; iter++ {
			n := 1 + iter%37
			j := &coverJob{hits: make([]int32, n)}
			p.parallel(n, 1+iter%3, j)
			for i, h := range j.hits {
				if h != 1 {
					t.Fatalf("threads %d iter %d: index %d ran %d times", threads, iter, i, h)
				}
			}
			if iter%50 == 0 {
				time.Sleep(3 * spinFor) // let everyone park
			}
		}
		p.close()
		p.close() // idempotent
	}
}

// TestPoolWorkersStopOnClose checks that closing a pool whose workers are
// parked ends their goroutines.
func TestPoolWorkersStopOnClose(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newPool(4)
	p.parallel(8, 1, &coverJob{hits: make([]int32, 8)})
	time.Sleep(3 * spinFor)
	p.close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after close, %d before the pool", n, before)
	}
}
