package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// attnRefRun is the plain attention loop the engine had before it was
// unrolled and load-balanced: one (token, head) pair at a time, one double
// chain per dot product. It stays here as the definition the fast kernel
// must match bit for bit, and as the "before" of BenchmarkAttention.
func attnRefRun(j *attnJob, worker, lo, hi int) {
	hp := j.e.m.HP
	hd := hp.HeadDim
	qDim, kvDim := hp.Heads*hd, hp.HeadsKV*hd
	group := hp.Heads / hp.HeadsKV
	q16, acc := j.q16[worker], j.acc[worker]
	for idx := lo; idx < hi; idx++ {
		t, h := idx/hp.Heads, idx%hp.Heads
		row := j.e.rows[t]
		kc, vc := row.s.k[j.layer], row.s.v[j.layer]
		pos := row.pos
		kvh := h / group
		q := j.a.Q[t*qDim+h*hd : t*qDim+(h+1)*hd]
		for d, v := range q {
			q16[d] = f16to32(quant.FP32ToFP16(v))
		}
		scores := j.scores[worker][:pos+1]
		for p := range scores {
			k := kc[p*kvDim+kvh*hd : p*kvDim+(kvh+1)*hd]
			var sum float64
			for d, kv := range k {
				sum += float64(q16[d] * f16to32(kv))
			}
			scores[p] = float32(sum) * j.scale
		}
		softMax(scores)
		clear(acc)
		for p, pr := range scores {
			pr16 := f16to32(quant.FP32ToFP16(pr))
			v := vc[p*kvDim+kvh*hd : p*kvDim+(kvh+1)*hd]
			for d, vv := range v {
				acc[d] += float64(pr16 * f16to32(vv))
			}
		}
		out := j.a.Attn[t*qDim+h*hd : t*qDim+(h+1)*hd]
		for d := range out {
			out[d] = float32(acc[d])
		}
	}
}

// refAttnJob runs attnRefRun through the pool the way the engine used to:
// contiguous ranges of (token, head) pairs.
type refAttnJob struct{ j *attnJob }

func (r refAttnJob) run(worker, lo, hi int) { attnRefRun(r.j, worker, lo, hi) }

// attnSession is an engine with only what attention reads: one session's
// KV cache of random F16 values for positions [0, pos+n) and n random query
// rows at positions pos...
func attnSession(hp HParams, pos, n, threads int, seed uint64) (*engine, *LayerActivations) {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &Model{HP: hp}
	nCtx := pos + n
	s := &Session{m: m, nCtx: nCtx, pos: pos}
	kvDim := hp.HeadsKV * hp.HeadDim
	s.k = [][]uint16{make([]uint16, nCtx*kvDim)}
	s.v = [][]uint16{make([]uint16, nCtx*kvDim)}
	for i := range s.k[0] {
		s.k[0][i] = quant.FP32ToFP16(float32(rng.NormFloat64()))
		s.v[0][i] = quant.FP32ToFP16(float32(rng.NormFloat64()))
	}
	a := newLayerActivations(hp, n)
	for i := range a.Q[:n*hp.Heads*hp.HeadDim] {
		a.Q[i] = float32(rng.NormFloat64() * 2)
	}
	e := &engine{m: m, maxTokens: n, pool: newPool(threads), rows: make([]seqRow, n)}
	for t := range e.rows {
		e.rows[t] = seqRow{s: s, pos: pos + t}
	}
	e.attn.init(e, threads, nCtx)
	return e, &a
}

var attnShapes = []struct {
	name string
	hp   HParams
}{
	{"tinyllama", HParams{Heads: 32, HeadsKV: 4, HeadDim: 64}},
	{"qwen2-small", HParams{Heads: 4, HeadsKV: 2, HeadDim: 16}},
	{"odd", HParams{Heads: 3, HeadsKV: 1, HeadDim: 7}},
	{"group8-odd-dim", HParams{Heads: 16, HeadsKV: 2, HeadDim: 5}},
	{"group4-dim12", HParams{Heads: 8, HeadsKV: 2, HeadDim: 12}},
}

// TestAttentionMatchesPlainLoop: the unrolled, round-robin kernels (per
// head, and per block of heads sharing a KV head, in Go and with the
// architecture kernels) give the same bits as the plain loop, for prompt
// batches and single tokens, with lengths that are and are not multiples
// of the unroll.
func TestAttentionMatchesPlainLoop(t *testing.T) {
	for _, sh := range attnShapes {
		for _, c := range []struct{ pos, n, threads int }{{0, 1, 1}, {0, 13, 2}, {37, 1, 2}, {5, 30, 3}, {100, 2, 1}} {
			t.Run(fmt.Sprintf("%s/pos%d/n%d/t%d", sh.name, c.pos, c.n, c.threads), func(t *testing.T) {
				s, a := attnSession(sh.hp, c.pos, c.n, c.threads, uint64(c.pos*1000+c.n))
				defer s.pool.close()
				attnRefRun(prepRef(&s.attn, a, c.n), 0, 0, c.n*sh.hp.Heads)
				want := append([]float32(nil), a.Attn[:c.n*sh.hp.Heads*sh.hp.HeadDim]...)
				blocks := []int{1}
				if sh.hp.Heads/sh.hp.HeadsKV%headBlock == 0 {
					blocks = append(blocks, headBlock)
				}
				kernels := attnKernels
				defer func() { attnKernels = kernels }()
				for _, kern := range []*attnKernelSet{kernels, nil} {
					attnKernels = kern
					for _, block := range blocks {
						clear(a.Attn)
						s.attendBlocks(0, a, c.n, block)
						for i, w := range want {
							if got := a.Attn[i]; math.Float32bits(got) != math.Float32bits(w) {
								t.Fatalf("%d heads per unit, kernels %v: element %d: %v, plain loop %v", block, kern != nil, i, got, w)
							}
						}
					}
				}
			})
		}
	}
}

// BenchmarkAttention compares the plain loop ("before", contiguous ranges)
// with the engine's kernels (grouped: with the architecture kernels where
// there are some; grouped-go: without) on one layer of TinyLlama-shaped attention: a
// 64-token prompt batch after 1472 cached tokens (pp) and one token at
// position 1536 (tg), on 1 and 2 threads.
func BenchmarkAttention(b *testing.B) {
	hp := attnShapes[0].hp
	for _, c := range []struct {
		name   string
		pos, n int
	}{{"pp64@1472", 1472, 64}, {"tg@1536", 1536, 1}} {
		for _, threads := range []int{1, 2} {
			s, a := attnSession(hp, c.pos, c.n, threads, 1)
			b.Run(fmt.Sprintf("%s/t%d/impl=plain", c.name, threads), func(b *testing.B) {
				for b.Loop() {
					s.pool.parallel(c.n*hp.Heads, 1, refAttnJob{prepRef(&s.attn, a, c.n)})
				}
			})
			b.Run(fmt.Sprintf("%s/t%d/impl=pairs", c.name, threads), func(b *testing.B) {
				for b.Loop() {
					s.attendBlocks(0, a, c.n, 1)
				}
			})
			b.Run(fmt.Sprintf("%s/t%d/impl=grouped", c.name, threads), func(b *testing.B) {
				for b.Loop() {
					s.attend(0, a, c.n)
				}
			})
			b.Run(fmt.Sprintf("%s/t%d/impl=grouped-go", c.name, threads), func(b *testing.B) {
				kernels, exp := attnKernels, expGroups
				attnKernels, expGroups = nil, nil
				defer func() { attnKernels, expGroups = kernels, exp }()
				for b.Loop() {
					s.attend(0, a, c.n)
				}
			})
			s.pool.close()
		}
	}
}

func prepRef(j *attnJob, a *LayerActivations, n int) *attnJob {
	j.prepare(0, a, n)
	return j
}

// TestRoundF16KernelMatchesGo: rounding the attention weights to half
// precision with the kernel gives FP32ToFP16's values, NaN groups, values
// that overflow or become subnormal halves, and ties included.
func TestRoundF16KernelMatchesGo(t *testing.T) {
	if attnKernels == nil {
		t.Skip("no attention kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	specials := []float32{0, float32(math.Copysign(0, -1)), 65504, 65520, 1e6, -1e6, 6e-8, 3e-8, 1e-40, float32(math.NaN()),
		float32(math.Inf(1)), float32(math.Inf(-1)), 1 + 1.0/2048, 1 + 3.0/2048, 0.5}
	for _, n := range []int{1, 7, 8, 9, 16, 23, 100, 1537} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-8)))
			if rng.IntN(6) == 0 {
				x[i] = specials[rng.IntN(len(specials))]
			}
		}
		got := append([]float32(nil), x...)
		attnKernels.roundF16InPlace(got)
		for i, v := range x {
			want := f16Table[quant.FP32ToFP16(v)]
			if math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("n=%d: %v rounded to %v (%#x), want %v (%#x)", n, v, got[i], math.Float32bits(got[i]), want, math.Float32bits(want))
			}
		}
	}
}
