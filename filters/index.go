package filters

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// IndexOptions configure an Index.
type IndexOptions struct {
	Tokenizer Tokenizer
	// Threads bounds the goroutines of batch operations; 0 means GOMAXPROCS.
	Threads int
}

func (o IndexOptions) threads() int {
	if o.Threads > 0 {
		return o.Threads
	}
	return runtime.GOMAXPROCS(0)
}

// posting records that a document holds count copies of a token. Posting
// lists grow in document order, which lets a query restrict itself to a
// range of ids with a binary search.
type posting struct {
	doc, count int32
}

// Index holds texts for ROUGE-L similarity queries. Tokens are interned to
// integer ids once; an inverted index gives each query the multiset token
// overlap with every document, an exact upper bound on their LCS, so that
// only pairs that could matter are scored with the bit-parallel LCS.
//
// One goroutine may Add; queries may run concurrently with each other but
// not with Add.
type Index struct {
	opts     IndexOptions
	vocab    map[string]int32
	postings [][]posting
	toks     []int32 // the tokens of every document, concatenated
	offs     []int32 // document i is toks[offs[i]:offs[i+1]]
	docLen   []int32
	texts    []string
	count    []int32 // per token id, scratch for Add
	scratch  sync.Pool

	pairsFull   atomic.Int64
	pairsPruned atomic.Int64
	visited     atomic.Int64
	reached     atomic.Int64
}

// NewIndex returns an empty index.
func NewIndex(opts IndexOptions) *Index {
	return &Index{opts: opts, vocab: make(map[string]int32), offs: []int32{0}}
}

// Len returns the number of texts added.
func (ix *Index) Len() int { return len(ix.texts) }

// Text returns the text added with the given id.
func (ix *Index) Text(id int) string { return ix.texts[id] }

func (ix *Index) doc(id int32) []int32 { return ix.toks[ix.offs[id]:ix.offs[id+1]] }

// Add appends text and returns its id (0, 1, 2, ... in insertion order).
func (ix *Index) Add(text string) int {
	var buf []byte
	return ix.add(text, func(intern func(tok []byte)) {
		forEachToken(text, ix.opts.Tokenizer, &buf, intern)
	})
}

// addResolved adds a text whose tokens a query has already resolved: ids
// from the query (-1 where the token was not yet in the vocabulary) and
// the token strings, so the text is not tokenized twice.
func (ix *Index) addResolved(text string, ids []int32, toks []string) int {
	return ix.add(text, func(intern func(tok []byte)) {
		for i, t := range ids {
			if t >= 0 {
				ix.toks = append(ix.toks, t)
				continue
			}
			intern([]byte(toks[i]))
		}
	})
}

// add appends a document whose tokens tokens() passes to intern, or
// appends to ix.toks itself when it knows their ids.
func (ix *Index) add(text string, tokens func(intern func(tok []byte))) int {
	id := int32(len(ix.texts))
	ix.texts = append(ix.texts, text)
	start := len(ix.toks)
	tokens(func(tok []byte) {
		t, ok := ix.vocab[string(tok)]
		if !ok {
			t = int32(len(ix.postings))
			ix.vocab[string(tok)] = t
			ix.postings = append(ix.postings, nil)
			ix.count = append(ix.count, 0)
		}
		ix.toks = append(ix.toks, t)
	})
	doc := ix.toks[start:]
	for _, t := range doc {
		ix.count[t]++
	}
	for _, t := range doc {
		if c := ix.count[t]; c > 0 {
			ix.postings[t] = append(ix.postings[t], posting{doc: id, count: c})
			ix.count[t] = 0
		}
	}
	ix.offs = append(ix.offs, int32(len(ix.toks)))
	ix.docLen = append(ix.docLen, int32(len(doc)))
	return int(id)
}

// PairStats counts the (query, document) pairs an index has met: scored
// with a full LCS, or ruled out by a bound first.
type PairStats struct {
	Full, Pruned int64
	// Postings is the number of posting entries read; Reached the number of
	// pairs the overlap pass reached (the rest were pruned without being
	// looked at).
	Postings, Reached int64
}

// PairStats returns the pair counters accumulated by all queries so far.
func (ix *Index) PairStats() PairStats {
	return PairStats{Full: ix.pairsFull.Load(), Pruned: ix.pairsPruned.Load(),
		Postings: ix.visited.Load(), Reached: ix.reached.Load()}
}

// qtok is one distinct known token of a query with its multiplicity.
type qtok struct {
	id, count int32
}

// scratch is the per-query working memory; it is reused through a
// sync.Pool so that queries allocate nothing per pair.
type scratch struct {
	ids      []int32 // query token ids in order, -1 when not in the vocabulary
	distinct []qtok  // known tokens, rarest first
	ov       []int32 // per document: overlap with the tokens processed so far
	touched  []int32
	kern     lcsKernel // the query as the bit side
	docKern  lcsKernel // a short document as the bit side
	buf      []byte
	sorted   []int32
	top      []Match
	bucket   []int32 // counting sort of reached documents by overlap
	order    []int32
}

func (ix *Index) getScratch() *scratch {
	s, _ := ix.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	if n := len(ix.texts); len(s.ov) < n {
		s.ov = append(s.ov, make([]int32, n-len(s.ov)+n/4)...)
	}
	s.kern.grow(len(ix.postings))
	s.docKern.grow(len(ix.postings))
	return s
}

func (ix *Index) putScratch(s *scratch) { ix.scratch.Put(s) }

// prepareTokens resolves query tokens against the vocabulary and orders its
// distinct tokens by document frequency.
func (ix *Index) prepareTokens(s *scratch, toks []string) {
	s.ids = s.ids[:0]
	for _, t := range toks {
		id, ok := ix.vocab[t]
		if !ok {
			id = -1
		}
		s.ids = append(s.ids, id)
	}
	ix.prepareIDs(s)
}

// reprepare resolves again, after texts were added, the tokens a query did
// not find in the vocabulary.
func (ix *Index) reprepare(s *scratch, ids []int32, toks []string) {
	s.ids = append(s.ids[:0], ids...)
	for i, id := range s.ids {
		if id < 0 {
			if v, ok := ix.vocab[toks[i]]; ok {
				s.ids[i] = v
			}
		}
	}
	ix.prepareIDs(s)
}

func (ix *Index) prepareText(s *scratch, text string) {
	s.ids = s.ids[:0]
	forEachToken(text, ix.opts.Tokenizer, &s.buf, func(tok []byte) {
		id, ok := ix.vocab[string(tok)]
		if !ok {
			id = -1
		}
		s.ids = append(s.ids, id)
	})
	ix.prepareIDs(s)
}

func (ix *Index) prepareIDs(s *scratch) {
	s.sorted = append(s.sorted[:0], s.ids...)
	slices.Sort(s.sorted)
	s.distinct = s.distinct[:0]
	for i := 0; i < len(s.sorted); {
		j := i
		for j < len(s.sorted) && s.sorted[j] == s.sorted[i] {
			j++
		}
		if s.sorted[i] >= 0 {
			s.distinct = append(s.distinct, qtok{id: s.sorted[i], count: int32(j - i)})
		}
		i = j
	}
	slices.SortFunc(s.distinct, func(a, b qtok) int {
		return cmp.Or(cmp.Compare(len(ix.postings[a.id]), len(ix.postings[b.id])), cmp.Compare(a.id, b.id))
	})
}

// searchMode selects what a search must get exactly right.
type searchMode int

const (
	modeMax     searchMode = iota // the maximum score and the first id with it
	modeExceeds                   // any score > threshold
	modeTopK                      // the k best (score desc, id asc)
	modeAll                       // every score (for the mean)
)

type searchResult struct {
	score float64
	id    int
}

// scoredMark is added to a document's overlap once it has been scored: the
// overlap stays negative whatever later postings add, and 0 keeps meaning
// "not reached".
const scoredMark = -1 << 30

// search scores the prepared query against documents [lo, hi).
//
// Query tokens are processed rarest first, adding each one's postings to the
// per-document overlap. A document no posting has reached yet can share at
// most R more tokens (R = the multiplicity of the tokens still to process),
// so its score is at most 2R/(la+R); once that falls below the bar (the best
// score so far, the threshold, or the k-th best) the common tokens' long
// posting lists are skipped altogether. The documents reached are then
// scored only when min(overlap+R, la, lb) -- an upper bound on their LCS --
// could still reach the bar.
func (ix *Index) search(s *scratch, lo, hi int, mode searchMode, threshold float64, k int, all []float64) searchResult {
	if lo >= hi {
		return searchResult{0, -1}
	}
	la := len(s.ids)
	if mode == modeExceeds && threshold < 0 {
		// Every score, even 0, exceeds a negative threshold.
		d := ix.doc(int32(lo))
		f := fmeasure(s.kern.lcs(s.ids, d), la, len(d))
		ix.pairsFull.Add(1)
		ix.pairsPruned.Add(int64(hi - lo - 1))
		return searchResult{f, lo}
	}
	s.top = s.top[:0]
	if la == 0 {
		// Every score is 0.
		ix.pairsPruned.Add(int64(hi - lo))
		switch mode {
		case modeExceeds:
			return searchResult{0, -1}
		case modeTopK:
			for id := lo; id < hi && len(s.top) < k; id++ {
				s.top = append(s.top, Match{ID: id, Score: 0})
			}
		}
		return searchResult{0, lo}
	}
	// The query is the bit side, prepared once for the whole search.
	s.kern.prepare(s.ids)
	queryWords := (la + 63) / 64
	best := searchResult{score: -1, id: -1}
	// bar is the score a document must be able to reach to matter; < 0
	// means every reached document matters.
	bar := -1.0
	if mode == modeExceeds {
		bar = threshold
	}
	computed := 0
	found := false // modeExceeds: a score > threshold
	ov := s.ov
	docLen := ix.docLen
	score := func(d int32) {
		doc := ix.doc(d)
		var l int
		lb := len(doc)
		if queryWords > 1 && (lb+63)/64*la+lb < queryWords*lb {
			// A document much shorter than a long query is the cheaper bit
			// side, even counting the masks it needs built.
			s.docKern.prepare(doc)
			l = s.docKern.run(s.ids)
			s.docKern.reset()
		} else {
			l = s.kern.run(doc)
		}
		computed++
		ov[d] += scoredMark
		f := fmeasure(l, la, len(doc))
		switch mode {
		case modeMax:
			if f > best.score || (f == best.score && int(d) < best.id) {
				best = searchResult{f, int(d)}
				bar = f
			}
		case modeExceeds:
			if f > threshold {
				best = searchResult{f, int(d)}
				found = true
			}
		case modeTopK:
			s.insertTop(Match{ID: int(d), Score: f}, k)
			if len(s.top) == k {
				bar = s.top[k-1].Score
			}
		case modeAll:
			all[int(d)-lo] = f
		}
	}

	visited := 0
	remaining := 0
	for _, q := range s.distinct {
		remaining += int(q.count)
	}
	for _, q := range s.distinct {
		before := remaining // the most a document first reached now can share
		remaining -= int(q.count)
		plist := ix.postings[q.id]
		byDoc := func(p posting, d int32) int { return cmp.Compare(p.doc, d) }
		if lo > 0 {
			i, _ := slices.BinarySearchFunc(plist, int32(lo), byDoc)
			plist = plist[i:]
		}
		if hi < ix.Len() {
			i, _ := slices.BinarySearchFunc(plist, int32(hi), byDoc)
			plist = plist[:i]
		}
		visited += len(plist)
		var lead int32 = -1
		var leadOv int32
		qc := q.count
		// A document first reached by this token shares at most `before`
		// tokens with the query; if even that cannot reach the bar at its
		// length, it is left unreached. The test only tightens as tokens go
		// on (before falls, the bar rises), so a document left out here is
		// left out by every later token too and never gets a partial
		// overlap that would understate its bound.
		var lbMin, lbMax int32 = 0, math.MaxInt32
		if bar >= 0 && mode != modeAll {
			lbMin, lbMax = newDocLengths(la, before, bar)
		}
		for _, p := range plist {
			o := ov[p.doc]
			if o == 0 {
				if lb := docLen[p.doc]; lb < lbMin || lb > lbMax {
					continue
				}
				s.touched = append(s.touched, p.doc)
			}
			o += min(qc, p.count)
			ov[p.doc] = o
			if o > leadOv {
				lead, leadOv = p.doc, o
			}
		}
		if mode == modeAll {
			continue
		}
		// Score the document that leads on the rare tokens so far: it is
		// the likeliest best match, and its score raises the bar early.
		if lead >= 0 && mode != modeExceeds {
			lb := int(docLen[lead])
			if couldReach(min(int(leadOv)+remaining, la, lb), la, lb, bar) {
				score(lead)
			}
		}
		if mode == modeTopK && len(s.top) < k {
			// Until k documents are scored there is no bar, so nothing can
			// be pruned: fill the top-k from the best overlaps so far.
			for _, d := range s.byOverlapDesc(la) {
				if len(s.top) == k {
					break
				}
				if ov[d] > 0 {
					score(d)
				}
			}
		}
		if found {
			break
		}
		if bar > 0 && !couldReach(remaining, la, remaining, bar) {
			break
		}
	}
	switch {
	case found:
	case mode == modeAll:
		// Every reached document is scored; in id order the documents'
		// tokens stream through the cache instead of being fetched at random.
		for d := int32(lo); d < int32(hi); d++ {
			if ov[d] > 0 {
				score(d)
			}
		}
	default:
		// Highest overlap first: the likeliest best matches raise the bar
		// before the many weak candidates are looked at.
		for _, d := range s.byOverlapDesc(la) {
			o := int(ov[d])
			if o < 0 {
				continue // scored already
			}
			lb := int(docLen[d])
			if !couldReach(min(o+remaining, la, lb), la, lb, bar) {
				continue
			}
			score(d)
			if found {
				break
			}
		}
	}
	if mode == modeTopK && len(s.top) < k {
		// Every document reached was scored; the rest score 0 and follow in
		// id order.
		for id := lo; id < hi && len(s.top) < k; id++ {
			if ov[id] == 0 {
				s.top = append(s.top, Match{ID: id, Score: 0})
			}
		}
	}
	ix.reached.Add(int64(len(s.touched)))
	ix.visited.Add(int64(visited))
	for _, d := range s.touched {
		ov[d] = 0
	}
	s.touched = s.touched[:0]
	s.kern.reset()
	ix.pairsFull.Add(int64(computed))
	ix.pairsPruned.Add(int64(hi - lo - computed))
	switch mode {
	case modeMax:
		if best.score <= 0 {
			// All scores are 0: the first id holds the maximum.
			return searchResult{0, lo}
		}
	case modeExceeds:
		if !found {
			return searchResult{0, -1}
		}
	}
	return best
}

// newDocLengths returns the document lengths lb for which
// couldReach(min(r, lb), la, lb, bar) holds, which form one interval
// [lbMin, lbMax] (empty when lbMin > lbMax): for lb <= r the bound 2lb/(la+lb)
// rises with lb, beyond r the bound 2r/(la+lb) falls. A closed form gives
// the ends, then the exact predicate corrects them for rounding, so the
// interval is exactly the predicate's.
func newDocLengths(la, r int, bar float64) (lbMin, lbMax int32) {
	ok := func(lb int) bool { return lb >= 1 && couldReach(min(r, lb), la, lb, bar) }
	if r <= 0 {
		if bar <= 0 {
			return 0, math.MaxInt32
		}
		return 1, 0
	}
	if !ok(r) {
		return 1, 0
	}
	c := bar * (1 - boundMargin)
	lo := r
	if c < 2 {
		lo = max(1, min(r, int(math.Ceil(c*float64(la)/(2-c)))))
	}
	for lo > 1 && ok(lo-1) {
		lo--
	}
	for !ok(lo) {
		lo++
	}
	hi := math.MaxInt32
	if c > 0 {
		hi = int(min(math.Floor(2*float64(r)/c)-float64(la), math.MaxInt32-1))
		hi = max(hi, r)
		for ok(hi + 1) {
			hi++
		}
		for !ok(hi) {
			hi--
		}
	}
	return int32(lo), int32(hi)
}

// byOverlapDesc returns the reached documents ordered by overlap, highest
// first (a counting sort: overlaps are at most la), ties in reach order.
func (s *scratch) byOverlapDesc(la int) []int32 {
	if cap(s.bucket) < la+2 {
		s.bucket = make([]int32, la+2)
	}
	start := s.bucket[:la+2]
	clear(start)
	for _, d := range s.touched {
		start[max(s.ov[d], 0)]++ // scored ones (negative) go last
	}
	// Turn counts into start offsets, highest overlap first.
	pos := int32(0)
	for o := la + 1; o >= 0; o-- {
		c := start[o]
		start[o] = pos
		pos += c
	}
	s.order = slices.Grow(s.order[:0], len(s.touched))[:len(s.touched)]
	for _, d := range s.touched {
		o := max(s.ov[d], 0)
		s.order[start[o]] = d
		start[o]++
	}
	return s.order
}

// insertTop keeps s.top sorted by score desc, id asc, at most k long.
func (s *scratch) insertTop(m Match, k int) {
	less := func(a, b Match) bool { return a.Score > b.Score || (a.Score == b.Score && a.ID < b.ID) }
	if len(s.top) == k {
		if !less(m, s.top[k-1]) {
			return
		}
		s.top = s.top[:k-1]
	}
	i := len(s.top)
	s.top = append(s.top, m)
	for i > 0 && less(m, s.top[i-1]) {
		s.top[i] = s.top[i-1]
		i--
	}
	s.top[i] = m
}

// MaxSimilarity returns the highest ROUGE-L F-measure of text against the
// indexed texts and the first id that has it; (0, -1) when the index is
// empty. Like Python's max() over the list of scores, a pool that shares no
// token with text gives (0, 0).
func (ix *Index) MaxSimilarity(text string) (max float64, argmax int) {
	s := ix.getScratch()
	defer ix.putScratch(s)
	ix.prepareText(s, text)
	r := ix.search(s, 0, ix.Len(), modeMax, 0, 0, nil)
	return r.score, r.id
}

// Exceeds reports whether any indexed text scores above threshold against
// text, stopping at the first one found, which it returns as a witness
// (score, id). It returns (false, 0, -1) otherwise.
func (ix *Index) Exceeds(text string, threshold float64) (bool, float64, int) {
	s := ix.getScratch()
	defer ix.putScratch(s)
	ix.prepareText(s, text)
	r := ix.search(s, 0, ix.Len(), modeExceeds, threshold, 0, nil)
	return r.id >= 0, r.score, r.id
}

// Match is one indexed text with its score against a query.
type Match struct {
	ID    int
	Text  string
	Score float64
}

// MostSimilar returns the k indexed texts most similar to text, by score
// descending and then id ascending, like Alpaca's most_similar_instructions
// (which takes np.argsort(scores)[-10:][::-1]). Two differences: numpy's
// unstable sort may order equal scores differently, and Alpaca's dict keyed
// by text merges duplicate texts; here every id is its own entry.
func (ix *Index) MostSimilar(text string, k int) []Match {
	if k <= 0 || ix.Len() == 0 {
		return nil
	}
	s := ix.getScratch()
	defer ix.putScratch(s)
	ix.prepareText(s, text)
	ix.search(s, 0, ix.Len(), modeTopK, 0, k, nil)
	out := slices.Clone(s.top)
	for i := range out {
		out[i].Text = ix.texts[out[i].ID]
	}
	return out
}

// Scores returns the score of text against every indexed text, in id order.
func (ix *Index) Scores(text string) []float64 {
	all := make([]float64, ix.Len())
	if len(all) == 0 {
		return all
	}
	s := ix.getScratch()
	defer ix.putScratch(s)
	ix.prepareText(s, text)
	ix.search(s, 0, ix.Len(), modeAll, 0, 0, all)
	return all
}

// AverageSimilarity returns Alpaca's avg_similarity_score,
// float(np.mean(scores)) over every indexed text, bit for bit: numpy sums
// float64 with pairwise summation. It is NaN for an empty index, as numpy's
// mean of an empty list.
func (ix *Index) AverageSimilarity(text string) float64 {
	return NumpyMean(ix.Scores(text))
}
