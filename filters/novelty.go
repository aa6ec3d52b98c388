package filters

import (
	"context"
	"sync"
	"sync/atomic"
)

// Novelty is the greedy ROUGE-L filter of Self-Instruct and Alpaca: the pool
// starts with the seed instructions, and each candidate, in order, is kept
// iff its highest score against the pool is <= threshold, joining the pool
// at once when kept.
type Novelty struct {
	ix        *Index
	threshold float64

	checked, kept, rejected atomic.Int64
}

// NoveltyStats counts what a Novelty filter has done. PairsFull are pairs
// scored with a full LCS; PairsPruned are pairs ruled out by an exact upper
// bound without one.
type NoveltyStats struct {
	Pool                    int
	Checked, Kept, Rejected int64
	PairsFull, PairsPruned  int64
}

// NewNovelty returns a filter with an empty pool. Alpaca's threshold is 0.7.
func NewNovelty(opts IndexOptions, threshold float64) *Novelty {
	return &Novelty{ix: NewIndex(opts), threshold: threshold}
}

// Threshold returns the score above which candidates are rejected.
func (n *Novelty) Threshold() float64 { return n.threshold }

// Index gives read access to the pool, e.g. for MostSimilar or
// AverageSimilarity of a kept item.
func (n *Novelty) Index() *Index { return n.ix }

// AddPool puts text in the pool without a check (the seed tasks).
func (n *Novelty) AddPool(text string) { n.ix.Add(text) }

// Check scores text against the pool: keep iff the maximum is <= threshold
// (exactly 0.7 is kept at 0.7). It returns the exact maximum and the first
// pool id holding it, (0, -1) for an empty pool. Check does not add text.
func (n *Novelty) Check(text string) (keep bool, max float64, argmax int) {
	max, argmax = n.ix.MaxSimilarity(text)
	keep = max <= n.threshold
	n.checked.Add(1)
	if !keep {
		n.rejected.Add(1)
	}
	return keep, max, argmax
}

// Keep adds a kept item to the pool.
func (n *Novelty) Keep(text string) {
	n.ix.Add(text)
	n.kept.Add(1)
}

// Stats returns the counters so far.
func (n *Novelty) Stats() NoveltyStats {
	ps := n.ix.PairStats()
	return NoveltyStats{
		Pool:      n.ix.Len(),
		Checked:   n.checked.Load(),
		Kept:      n.kept.Load(),
		Rejected:  n.rejected.Load(),
		PairsFull: ps.Full, PairsPruned: ps.Pruned,
	}
}

// Decision is the filter's verdict on one candidate.
type Decision struct {
	Keep   bool
	Max    float64 // highest score against the pool at its turn
	Argmax int     // first pool id with Max; -1 for an empty pool
}

// Filter runs the greedy filter over candidates in order and returns a
// decision for each, exactly as Check followed by Keep for kept ones would,
// with kept candidates joining the pool. It uses all Threads: a batch of
// candidates is scored in parallel against the pool as it stood before the
// batch, then each is scored, in order, against the candidates of the same
// batch kept before it; the two maxima combine into the sequential answer
// because pool ids precede batch ids.
func (n *Novelty) Filter(ctx context.Context, candidates []string) ([]Decision, error) {
	out := make([]Decision, len(candidates))
	threads := n.ix.opts.threads()
	batch := 1
	if threads > 1 {
		batch = 64 * threads
	}
	toks := make([][]string, batch)
	ids := make([][]int32, batch)
	pool := make([]searchResult, batch)
	for start := 0; start < len(candidates); start += batch {
		if err := ctx.Err(); err != nil {
			return out[:start], err
		}
		end := min(start+batch, len(candidates))
		base := n.ix.Len()
		n.scoreBatch(candidates[start:end], toks, ids, pool, threads, base)
		for i := start; i < end; i++ {
			r := pool[i-start]
			if n.ix.Len() > base {
				s := n.ix.getScratch()
				n.ix.reprepare(s, ids[i-start], toks[i-start])
				r = combine(r, n.ix.search(s, base, n.ix.Len(), modeMax, 0, 0, nil))
				n.ix.putScratch(s)
			}
			if r.id < 0 {
				r.score = 0
			}
			d := Decision{Keep: r.score <= n.threshold, Max: r.score, Argmax: r.id}
			out[i] = d
			n.checked.Add(1)
			if d.Keep {
				n.ix.addResolved(candidates[i], ids[i-start], toks[i-start])
				n.kept.Add(1)
			} else {
				n.rejected.Add(1)
			}
		}
	}
	return out, nil
}

// scoreBatch tokenizes cands and scores each against pool ids [0, base).
func (n *Novelty) scoreBatch(cands []string, toks [][]string, ids [][]int32, res []searchResult, threads, base int) {
	var next atomic.Int64
	work := func() {
		s := n.ix.getScratch()
		defer n.ix.putScratch(s)
		for {
			i := int(next.Add(1) - 1)
			if i >= len(cands) {
				return
			}
			toks[i] = toks[i][:0]
			forEachToken(cands[i], n.ix.opts.Tokenizer, &s.buf, func(t []byte) { toks[i] = append(toks[i], string(t)) })
			n.ix.prepareTokens(s, toks[i])
			ids[i] = append(ids[i][:0], s.ids...)
			res[i] = n.ix.search(s, 0, base, modeMax, 0, 0, nil)
		}
	}
	workers := min(threads, len(cands))
	if workers <= 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(work)
	}
	wg.Wait()
}

// combine merges maxima over two id ranges, lo entirely below hi.
func combine(lo, hi searchResult) searchResult {
	switch {
	case lo.id < 0:
		return hi
	case hi.id < 0:
		return lo
	case hi.score > lo.score:
		return hi
	}
	return lo
}
