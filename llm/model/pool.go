package model

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// rangeJob is a piece of work split over an index range. worker identifies
// the goroutine (0 is the caller) so that a job can keep per-worker scratch.
type rangeJob interface {
	run(worker, lo, hi int)
}

// pool is a fixed set of goroutines that an engine keeps for its whole
// life, so that splitting a mat-vec over cores costs no allocation, token
// after token.
//
// A token's forward pass is ~180 parallel sections with microseconds of
// serial work between them. Waking a parked goroutine for each costs a
// futex wake, which on a VM can take as long as the section itself, so a
// worker that has just finished spins for a short while (spinFor) watching
// for the next task before it parks; the caller likewise spins on the count
// of unfinished chunks. When no work comes (a teacher between requests),
// everyone parks and costs nothing.
type pool struct {
	n       int
	workers []*poolWorker
	pending atomic.Int32 // chunks handed out and not yet done
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
}

type poolWorker struct {
	seq      atomic.Uint64 // incremented for each task posted
	sleeping atomic.Bool
	wake     chan struct{} // capacity 1: a post never blocks
	job      rangeJob
	id       int
	lo, hi   int
}

// spinFor is how long a worker or the caller busy-waits before parking.
const spinFor = 50 * time.Microsecond

func newPool(n int) *pool {
	if n < 1 {
		n = 1
	}
	p := &pool{n: n, done: make(chan struct{}, 1)}
	for i := 1; i < n; i++ {
		w := &poolWorker{id: i, wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		go p.loop(w)
	}
	return p
}

func (p *pool) loop(w *poolWorker) {
	var last uint64
	for {
		if !p.await(w, last) {
			return
		}
		last = w.seq.Load()
		w.job.run(w.id, w.lo, w.hi)
		w.job = nil
		if p.pending.Add(-1) == 0 {
			// The caller may have parked waiting for the last chunk.
			select {
			case p.done <- struct{}{}:
			default:
			}
		}
	}
}

// await returns true when w has a task newer than last, false when the pool
// is closed.
func (p *pool) await(w *poolWorker, last uint64) bool {
	start := time.Now()
	for i := 0; ; i++ {
		if w.seq.Load() != last {
			return true
		}
		if p.closed.Load() {
			return false
		}
		if i&63 == 63 {
			if time.Since(start) > spinFor {
				break
			}
			runtime.Gosched()
		}
	}
	for {
		w.sleeping.Store(true)
		// Re-check after announcing sleep: a post either sees sleeping
		// (and sends a wake-up) or came before this load.
		if w.seq.Load() != last {
			w.sleeping.Store(false)
			return true
		}
		if p.closed.Load() {
			return false
		}
		<-w.wake
		w.sleeping.Store(false)
	}
}

// parallel runs job over [0, n) split into at most p.n contiguous chunks of
// at least minChunk indices, and returns when all are done. The caller's
// goroutine does the first chunk.
func (p *pool) parallel(n, minChunk int, job rangeJob) {
	if n <= 0 {
		return
	}
	if minChunk < 1 {
		minChunk = 1
	}
	chunks := min(p.n, (n+minChunk-1)/minChunk)
	if chunks <= 1 {
		job.run(0, 0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	chunks = (n + size - 1) / size
	p.pending.Store(int32(chunks - 1))
	for c := 1; c < chunks; c++ {
		w := p.workers[c-1]
		w.job, w.lo, w.hi = job, c*size, min(n, (c+1)*size)
		w.seq.Add(1)
		if w.sleeping.Load() {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	job.run(0, 0, size)
	p.wait()
}

// wait returns when every chunk handed out is done.
func (p *pool) wait() {
	start := time.Now()
	for i := 0; p.pending.Load() != 0; i++ {
		if i&63 == 63 && time.Since(start) > spinFor {
			// Park; the worker finishing the last chunk sends on done. A
			// token left from an earlier call only costs one more check.
			for p.pending.Load() != 0 {
				<-p.done
			}
			break
		}
	}
}

// close stops the workers; the pool must not be used afterwards.
func (p *pool) close() {
	p.once.Do(func() {
		p.closed.Store(true)
		for _, w := range p.workers {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	})
}
