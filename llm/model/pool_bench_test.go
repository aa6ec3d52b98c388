package model

import "testing"

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
