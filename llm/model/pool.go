package model

import "sync"

// rangeJob is a piece of work split over an index range. worker identifies
// the goroutine (0 is the caller) so that a job can keep per-worker scratch.
type rangeJob interface {
	run(worker, lo, hi int)
}

type poolTask struct {
	job    rangeJob
	worker int
	lo, hi int
	done   *sync.WaitGroup
}

// pool is a fixed set of goroutines that a Session keeps for its whole life,
// so that splitting a mat-vec over cores costs two channel operations per
// worker and no allocation, token after token.
type pool struct {
	n     int
	tasks []chan poolTask
	wg    sync.WaitGroup
	once  sync.Once
}

func newPool(n int) *pool {
	if n < 1 {
		n = 1
	}
	p := &pool{n: n, tasks: make([]chan poolTask, n-1)}
	for i := range p.tasks {
		ch := make(chan poolTask)
		p.tasks[i] = ch
		go func() {
			for t := range ch {
				t.job.run(t.worker, t.lo, t.hi)
				t.done.Done()
			}
		}()
	}
	return p
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
	p.wg.Add(chunks - 1)
	for c := 1; c < chunks; c++ {
		p.tasks[c-1] <- poolTask{job: job, worker: c, lo: c * size, hi: min(n, (c+1)*size), done: &p.wg}
	}
	job.run(0, 0, size)
	p.wg.Wait()
}

// close stops the workers; the pool must not be used afterwards.
func (p *pool) close() {
	p.once.Do(func() {
		for _, ch := range p.tasks {
			close(ch)
		}
	})
}
