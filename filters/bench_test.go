package filters

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/selfinstruct/selfinstruct/filters/benchcorpus"
)

func rawInstructions(b testing.TB) []string {
	var recs []struct {
		Instruction string `json:"instruction"`
	}
	readJSON(b, sharedFile(b, "alpaca_data_raw_5000.json"), &recs)
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Instruction
	}
	return out
}

// BenchmarkNoveltyRaw5000 is Alpaca's filter loop on the 5,000 raw
// instructions with the 175 seeds (rouge_score: 145 s on this machine).
func BenchmarkNoveltyRaw5000(b *testing.B) {
	seeds, cands := seedInstructions(b), rawInstructions(b)
	for b.Loop() {
		n := NewNovelty(IndexOptions{}, 0.7)
		for _, s := range seeds {
			n.AddPool(s)
		}
		if _, err := n.Filter(context.Background(), cands); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLCS compares the bit-parallel kernel with the plain dynamic
// programme on the same pairs, at instruction lengths and beyond 64 and 128
// tokens.
func BenchmarkLCS(b *testing.B) {
	for _, n := range []int{12, 40, 100, 200} {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		pairs := make([][2][]int32, 64)
		for i := range pairs {
			pairs[i] = [2][]int32{randSeq(rng, n, 30), randSeq(rng, n, 30)}
		}
		b.Run(fmt.Sprintf("tokens=%d/impl=dp", n), func(b *testing.B) {
			row := make([]int, n+1)
			i := 0
			for b.Loop() {
				p := pairs[i%len(pairs)]
				lcsDPRow(p[0], p[1], row)
				i++
			}
		})
		// As the Index runs it: the query side is prepared once per query
		// and reused for every text it is compared with.
		b.Run(fmt.Sprintf("tokens=%d/impl=bitparallel-prepared", n), func(b *testing.B) {
			kerns := make([]lcsKernel, len(pairs))
			for i := range kerns {
				kerns[i].grow(30)
				kerns[i].prepare(pairs[i][0])
			}
			i := 0
			for b.Loop() {
				kerns[i%len(pairs)].run(pairs[i%len(pairs)][1])
				i++
			}
		})
		b.Run(fmt.Sprintf("tokens=%d/impl=bitparallel", n), func(b *testing.B) {
			var k lcsKernel
			k.grow(30)
			i := 0
			for b.Loop() {
				p := pairs[i%len(pairs)]
				k.lcs(p[0], p[1])
				i++
			}
		})
	}
}

// BenchmarkIndexMaxSimilarity times one exact max query against a pool of
// 5,175 real instructions: the Index (intern, bound, prune, bit-parallel)
// against scoring every pair with the dynamic programme.
func BenchmarkIndexMaxSimilarity(b *testing.B) {
	pool := append(seedInstructions(b), rawInstructions(b)...)
	queries := make([]string, 500)
	for i := range queries {
		queries[i] = pool[i] + " extra words"
	}
	ix := NewIndex(IndexOptions{})
	for _, p := range pool {
		ix.Add(p)
	}
	b.Run("impl=index", func(b *testing.B) {
		i := 0
		for b.Loop() {
			ix.MaxSimilarity(queries[i%len(queries)])
			i++
		}
	})
	b.Run("impl=dp", func(b *testing.B) {
		// Pre-tokenized and interned, so only the LCS work differs.
		ids := map[string]int32{}
		intern := func(s string) []int32 {
			var out []int32
			for _, t := range Tokenize(s, TokenizerRougeScore) {
				id, ok := ids[t]
				if !ok {
					id = int32(len(ids))
					ids[t] = id
				}
				out = append(out, id)
			}
			return out
		}
		docs := make([][]int32, len(pool))
		for i, p := range pool {
			docs[i] = intern(p)
		}
		qs := make([][]int32, len(queries))
		for i, q := range queries {
			qs[i] = intern(q)
		}
		row := make([]int, 1024)
		i := 0
		for b.Loop() {
			q := qs[i%len(qs)]
			best := 0.0
			for _, d := range docs {
				best = max(best, fmeasure(lcsDPRow(q, d, row), len(q), len(d)))
			}
			i++
		}
	})
}

// BenchmarkCheckAt52KPool times one Novelty.Check (exact max and argmax)
// against a pool of 52,175 texts (Alpaca's seeds and a 52K benchmark
// corpus), next to scoring every pair with the dynamic programme.
func BenchmarkCheckAt52KPool(b *testing.B) {
	ref, err := benchcorpus.ReferenceDir()
	if err != nil {
		b.Skip(err)
	}
	real, err := benchcorpus.Load(ref)
	if err != nil {
		b.Fatal(err)
	}
	n := NewNovelty(IndexOptions{}, 0.7)
	pool := seedInstructions(b)
	for _, r := range benchcorpus.Generate(real, 52000, 1) {
		pool = append(pool, r.Instruction)
	}
	for _, p := range pool {
		n.AddPool(p)
	}
	var queries []string
	for _, r := range benchcorpus.Generate(real, 2000, 99) {
		queries = append(queries, r.Instruction)
	}
	b.Run("impl=index", func(b *testing.B) {
		i := 0
		for b.Loop() {
			n.Check(queries[i%len(queries)])
			i++
		}
	})
	// Alpaca also records the 10 most similar and the mean score of each
	// kept instruction; the mean needs every pair that shares a token.
	b.Run("impl=index-top10", func(b *testing.B) {
		i := 0
		for b.Loop() {
			n.Index().MostSimilar(queries[i%len(queries)], 10)
			i++
		}
	})
	b.Run("impl=index-mean", func(b *testing.B) {
		i := 0
		for b.Loop() {
			n.Index().AverageSimilarity(queries[i%len(queries)])
			i++
		}
	})
	b.Run("impl=dp", func(b *testing.B) {
		ids := map[string]int32{}
		intern := func(s string) []int32 {
			var out []int32
			for _, t := range Tokenize(s, TokenizerRougeScore) {
				id, ok := ids[t]
				if !ok {
					id = int32(len(ids))
					ids[t] = id
				}
				out = append(out, id)
			}
			return out
		}
		docs := make([][]int32, len(pool))
		for i, p := range pool {
			docs[i] = intern(p)
		}
		row := make([]int, 4096)
		i := 0
		for b.Loop() {
			q := intern(queries[i%len(queries)])
			best := 0.0
			for _, d := range docs {
				best = max(best, fmeasure(lcsDPRow(q, d, row), len(q), len(d)))
			}
			i++
		}
	})
}
