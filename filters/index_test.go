package filters

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// randomTexts makes texts over a small vocabulary, with Zipf-like word
// frequencies so that posting lists have very different lengths, lengths
// spanning the 64-token word boundary, and many near-duplicates.
func randomTexts(rng *rand.Rand, n, vocab int) []string {
	words := make([]string, vocab)
	for i := range words {
		words[i] = fmt.Sprintf("w%d", i)
	}
	zipf := rand.NewZipf(rng, 1.3, 2, uint64(vocab-1))
	var out []string
	for len(out) < n {
		if len(out) > 0 && rng.IntN(3) == 0 {
			base := strings.Fields(out[rng.IntN(len(out))])
			for range 1 + rng.IntN(3) {
				if len(base) > 0 {
					base[rng.IntN(len(base))] = words[zipf.Uint64()]
				}
			}
			out = append(out, strings.Join(base, " "))
			continue
		}
		l := rng.IntN(20)
		if rng.IntN(10) == 0 {
			l = 60 + rng.IntN(100)
		}
		toks := make([]string, l)
		for i := range toks {
			toks[i] = words[zipf.Uint64()]
		}
		out = append(out, strings.Join(toks, " "))
	}
	return out
}

// bruteScores scores q against every text with the dynamic programme.
func bruteScores(q string, texts []string) []float64 {
	scores := make([]float64, len(texts))
	qt := Tokenize(q, TokenizerRougeScore)
	for i, t := range texts {
		ids := map[string]int32{}
		intern := func(toks []string) []int32 {
			out := make([]int32, len(toks))
			for j, s := range toks {
				id, ok := ids[s]
				if !ok {
					id = int32(len(ids))
					ids[s] = id
				}
				out[j] = id
			}
			return out
		}
		a, b := intern(qt), intern(Tokenize(t, TokenizerRougeScore))
		scores[i] = fmeasure(lcsDP(a, b), len(a), len(b))
	}
	return scores
}

// TestIndexMatchesBruteForce checks that pruning never changes an answer:
// the max and its first id, the threshold witness, the top-k and every
// score equal what scoring all pairs with the DP gives.
func TestIndexMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	texts := randomTexts(rng, 400, 60)
	queries := append(randomTexts(rng, 150, 70), "", "w1", "zzz unknown words only", texts[3], texts[10]+" w2")
	full := make([][]float64, len(queries))
	for i, q := range queries {
		full[i] = bruteScores(q, texts)
	}
	ix := NewIndex(IndexOptions{})
	for n, text := range texts {
		ix.Add(text)
		if n%37 != 0 && n != len(texts)-1 {
			continue
		}
		pool := texts[:n+1]
		for qi, q := range queries {
			want := full[qi][:len(pool)]
			wantMax, wantArg := slices.Max(want), slices.Index(want, slices.Max(want))
			gotMax, gotArg := ix.MaxSimilarity(q)
			if gotMax != wantMax || gotArg != wantArg {
				t.Fatalf("pool %d, MaxSimilarity(%q) = (%v, %d), brute force (%v, %d)", len(pool), q, gotMax, gotArg, wantMax, wantArg)
			}
			for _, thr := range []float64{-0.5, 0, 0.3, 0.5, 0.7, wantMax} {
				ok, s, id := ix.Exceeds(q, thr)
				if ok != (wantMax > thr) {
					t.Fatalf("Exceeds(%q, %v) = %v, max %v", q, thr, ok, wantMax)
				}
				if ok && (want[id] != s || s <= thr) {
					t.Fatalf("Exceeds witness (%v, %d) wrong: score %v", s, id, want[id])
				}
			}
			scores := ix.Scores(q)
			if !slices.Equal(scores, want) {
				t.Fatalf("Scores(%q) differ from brute force", q)
			}
			if got, w := ix.AverageSimilarity(q), NumpyMean(want); math.Float64bits(got) != math.Float64bits(w) {
				t.Fatalf("AverageSimilarity = %v, want %v", got, w)
			}
			for _, k := range []int{1, 3, 10, 1000} {
				order := make([]int, len(pool))
				for i := range order {
					order[i] = i
				}
				slices.SortStableFunc(order, func(a, b int) int {
					switch {
					case want[a] > want[b]:
						return -1
					case want[a] < want[b]:
						return 1
					}
					return a - b
				})
				top := ix.MostSimilar(q, k)
				if len(top) != min(k, len(pool)) {
					t.Fatalf("MostSimilar(%q, %d) has %d items", q, k, len(top))
				}
				for i, m := range top {
					if m.ID != order[i] || m.Score != want[order[i]] || m.Text != pool[order[i]] {
						t.Fatalf("MostSimilar(%q, %d)[%d] = %+v, want id %d score %v", q, k, i, m, order[i], want[order[i]])
					}
				}
			}
		}
	}
}

func TestIndexEmpty(t *testing.T) {
	ix := NewIndex(IndexOptions{})
	if m, a := ix.MaxSimilarity("anything"); m != 0 || a != -1 {
		t.Errorf("empty index: (%v, %d)", m, a)
	}
	if ok, _, id := ix.Exceeds("x", 0); ok || id != -1 {
		t.Error("empty index exceeds")
	}
	if ix.MostSimilar("x", 3) != nil {
		t.Error("empty index has matches")
	}
	if !math.IsNaN(ix.AverageSimilarity("x")) {
		t.Error("mean of nothing must be NaN, like numpy")
	}
	ix.Add("!!!")
	ix.Add("hello world")
	if m, a := ix.MaxSimilarity("nothing shared"); m != 0 || a != 0 {
		t.Errorf("no shared token: (%v, %d), want (0, 0) like max() over zeros", m, a)
	}
	if m, a := ix.MaxSimilarity("Hello, World!"); m != 1 || a != 1 {
		t.Errorf("(%v, %d), want (1, 1)", m, a)
	}
}

func TestNumpyPairwiseSum(t *testing.T) {
	// Against an independent recursive formulation written from numpy's
	// description, on sizes around the unroll (8) and block (128) sizes.
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1000, 5175, 52175} {
		a := make([]float64, n)
		for i := range a {
			a[i] = rng.Float64()
		}
		if got, want := numpyPairwiseSum(a), refPairwise(a); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("n=%d: %v vs %v", n, got, want)
		}
	}
	// Pairwise and left-to-right sums differ on this input, so the test can
	// tell them apart.
	a := make([]float64, 1000)
	for i := range a {
		a[i] = rng.Float64()
	}
	seq := 0.0
	for _, x := range a {
		seq += x
	}
	if numpyPairwiseSum(a) == seq {
		t.Error("pairwise equals sequential on this input; pick one that tells them apart")
	}
}

func refPairwise(a []float64) float64 {
	if len(a) < 8 {
		s := 0.0
		for _, x := range a {
			s += x
		}
		return s
	}
	if len(a) <= 128 {
		var acc [8]float64
		full := len(a) - len(a)%8
		for i := 0; i < full; i++ {
			if i < 8 {
				acc[i] = a[i]
			} else {
				acc[i%8] += a[i]
			}
		}
		s := ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
		for _, x := range a[full:] {
			s += x
		}
		return s
	}
	h := len(a) / 2
	h -= h % 8
	return refPairwise(a[:h]) + refPairwise(a[h:])
}

// TestIndexConcurrentQueries runs queries from many goroutines at once (run
// with -race) and checks they agree with the same queries run one by one.
func TestIndexConcurrentQueries(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	texts := randomTexts(rng, 300, 50)
	queries := randomTexts(rng, 200, 55)
	ix := NewIndex(IndexOptions{})
	for _, s := range texts {
		ix.Add(s)
	}
	type answer struct {
		max float64
		arg int
		top []Match
	}
	want := make([]answer, len(queries))
	for i, q := range queries {
		m, a := ix.MaxSimilarity(q)
		want[i] = answer{m, a, ix.MostSimilar(q, 5)}
	}
	errs := make(chan string, 8*len(queries))
	done := make(chan bool)
	for w := range 8 {
		go func() {
			for i := range queries {
				i := (i + w*17) % len(queries)
				m, a := ix.MaxSimilarity(queries[i])
				top := ix.MostSimilar(queries[i], 5)
				if m != want[i].max || a != want[i].arg || !slices.Equal(top, want[i].top) {
					errs <- fmt.Sprintf("query %d differs under concurrency", i)
				}
			}
			done <- true
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// FuzzIndexAgainstDP builds a pool from the lines of the input and checks
// the Index's max, witness and top-3 for each later line against scoring
// every pair with the dynamic programme.
func FuzzIndexAgainstDP(f *testing.F) {
	f.Add("a b c d e f g h i\na b c d e f g x y z w\nthe the the\nthe\n")
	f.Add("Give three tips for staying healthy.\ngive THREE tips, for staying healthy!!\nİstanbul is big\nistanbul is big")
	f.Add("x\n\ny x\nx y x y x y\n" + strings.Repeat("w ", 70) + "\n" + strings.Repeat("w v ", 40))
	f.Fuzz(func(t *testing.T, data string) {
		lines := strings.Split(data, "\n")
		if len(lines) > 40 {
			lines = lines[:40]
		}
		half := len(lines) / 2
		pool, queries := lines[:half], lines[half:]
		ix := NewIndex(IndexOptions{})
		for _, p := range pool {
			ix.Add(p)
		}
		for _, q := range queries {
			want := bruteScores(q, pool)
			m, a := ix.MaxSimilarity(q)
			if len(pool) == 0 {
				if m != 0 || a != -1 {
					t.Fatalf("empty pool: (%v, %d)", m, a)
				}
				continue
			}
			wm := slices.Max(want)
			if m != wm || a != slices.Index(want, wm) {
				t.Fatalf("MaxSimilarity(%q) = (%v, %d), DP (%v, %d)", q, m, a, wm, slices.Index(want, wm))
			}
			if ok, s, id := ix.Exceeds(q, 0.5); ok != (wm > 0.5) || (ok && want[id] != s) {
				t.Fatalf("Exceeds(%q, 0.5) = (%v, %v, %d), max %v", q, ok, s, id, wm)
			}
			top := ix.MostSimilar(q, 3)
			for i := 1; i < len(top); i++ {
				if top[i].Score > top[i-1].Score {
					t.Fatalf("MostSimilar not sorted: %+v", top)
				}
			}
			if len(top) > 0 && (top[0].Score != wm || want[top[0].ID] != top[0].Score) {
				t.Fatalf("MostSimilar(%q)[0] = %+v, max %v", q, top[0], wm)
			}
		}
	})
}
