package model

import (
	"math"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// attnJob computes causal attention for (row, head) pairs against each
// row's own session's F16 cache, with llama.cpp's non-flash-attention
// numerics: Q rounded to F16, Q·K summed in double, scale applied inside the
// softmax, probabilities rounded to F16 before they weight V (again summed
// in double).
type attnJob struct {
	e      *engine
	layer  int
	a      *LayerActivations
	n      int
	stride int // number of workers: worker c takes units c, c+stride, ...
	block  int // query heads per unit: 1, or headBlock heads of one KV group
	units  int
	scale  float32
	scores [][]float32 // per worker [headBlock][longest context]
	q16    [][]float32 // per worker [headBlock][headDim]
	qT     [][]float32 // per worker [headDim][headBlock], for the kernels
	acc    [][]float64 // per worker [headBlock][headDim]
	// kio holds each worker's kernel operands: passed by pointer through
	// a func value they would escape, and be allocated on every call.
	kio []*attnKernelIO
}

type attnKernelIO struct {
	r, rn [4]float32
	out   [16]float64
}

// attnKernelSet holds architecture kernels for headGroup's two loops; each
// returns exactly the sums of the Go loops below (see llm/quant/asm/attn).
type attnKernelSet struct {
	// scores4x2 sets out[i], out[4+i] to head i's sums against k, kn;
	// scores4x4 the same for 4 rows.
	scores4x2 func(qT []float32, k, kn []uint16, out *[8]float64)
	scores4x4 func(qT []float32, k0, k1, k2, k3 []uint16, out *[16]float64)
	// accV4x2 and accV4x1 add one or two positions' weighted values to
	// the 4 heads' accumulators; len(v) must be a multiple of 4.
	accV4x2 func(acc []float64, v, vn []uint16, r, n *[4]float32)
	accV4x1 func(acc []float64, v []uint16, r *[4]float32)
	// roundF16 rounds groups of 8 values to half precision in place, as
	// FP32ToFP16 and back, and returns how many groups it did.
	roundF16 func(x []float32, groups int) int
}

// roundF16InPlace rounds every value of x to half precision and back, as
// ggml stores the attention weights before multiplying V: 8 at a time by
// the kernel, a group it leaves (a NaN) and the tail in Go.
func (k *attnKernelSet) roundF16InPlace(x []float32) {
	i, groups := 0, len(x)/8
	for i/8 < groups {
		i += 8 * k.roundF16(x[i:], groups-i/8)
		if i/8 < groups {
			for end := i + 8; i < end; i++ {
				x[i] = f16Table[quant.FP32ToFP16(x[i])]
			}
		}
	}
	for ; i < len(x); i++ {
		x[i] = f16Table[quant.FP32ToFP16(x[i])]
	}
}

var attnKernels *attnKernelSet

// headBlock is how many query heads that share one KV head (grouped-query
// attention: TinyLlama's 32 query heads use 4 KV heads) a unit of work
// takes together: each cached K and V element is then read and converted
// once for all of them, and their sums form independent chains. Every
// head's own sums keep ggml's order, so the bits do not change.
const headBlock = 4

func (j *attnJob) init(e *engine, workers, nCtx int) {
	j.e = e
	hd := e.m.HP.HeadDim
	j.scale = 1 / float32(math.Sqrt(float64(hd)))
	for range max(workers, 1) {
		j.scores = append(j.scores, make([]float32, headBlock*nCtx))
		j.q16 = append(j.q16, make([]float32, headBlock*hd))
		j.qT = append(j.qT, make([]float32, headBlock*hd))
		j.kio = append(j.kio, new(attnKernelIO))
		j.acc = append(j.acc, make([]float64, headBlock*hd))
	}
}

// fit grows the score rows to a session's context.
func (j *attnJob) fit(nCtx int) {
	for w := range j.scores {
		if len(j.scores[w]) < headBlock*nCtx {
			j.scores[w] = make([]float32, headBlock*nCtx)
		}
	}
}

func (j *attnJob) prepare(layer int, a *LayerActivations, n int) {
	j.layer, j.a, j.n = layer, a, n
}

// attend runs the job over all units of the step: (row, head) pairs, or
// (row, block of headBlock heads) when the heads of a KV group come in
// whole blocks and there are enough blocks to keep every worker busy. A
// unit's cost grows with its position, so contiguous ranges would give the
// last worker the longest rows of a prompt; dealing the units out
// round-robin keeps the workers' shares equal within one row.
func (e *engine) attend(layer int, a *LayerActivations, n int) {
	hp := e.m.HP
	block := 1
	if (hp.Heads/hp.HeadsKV)%headBlock == 0 && n*hp.Heads/headBlock >= 2*e.pool.n {
		block = headBlock
	}
	e.attendBlocks(layer, a, n, block)
}

// attendBlocks runs attention in units of block heads (1 or headBlock).
func (e *engine) attendBlocks(layer int, a *LayerActivations, n, block int) {
	j := &e.attn
	j.prepare(layer, a, n)
	j.block = block
	j.units = n * e.m.HP.Heads / block
	j.stride = min(e.pool.n, j.units)
	e.pool.parallel(j.stride, 1, j)
}

func (j *attnJob) run(worker, lo, hi int) {
	for c := lo; c < hi; c++ {
		for u := c; u < j.units; u += j.stride {
			if j.block == 1 {
				j.pair(worker, u)
			} else {
				j.headGroup(worker, u)
			}
		}
	}
}

// pair computes one (row, head) pair. The sums keep ggml's order (d
// ascending within a dot product, positions ascending for each output
// element); what changes is that four positions are in flight at once, so
// the double additions form four independent chains instead of one
// latency-bound chain, and each acc[d] is loaded and stored once per four
// positions.
func (j *attnJob) pair(worker, idx int) {
	hp := j.e.m.HP
	hd := hp.HeadDim
	qDim, kvDim := hp.Heads*hd, hp.HeadsKV*hd
	group := hp.Heads / hp.HeadsKV
	tab := f16Table
	q16, acc := j.q16[worker][:hd], j.acc[worker][:hd]
	t, h := idx/hp.Heads, idx%hp.Heads
	row := j.e.rows[t]
	kc, vc := row.s.k[j.layer], row.s.v[j.layer]
	pos := row.pos // the token attends to positions 0..pos
	off := h / group * hd
	q := j.a.Q[t*qDim+h*hd : t*qDim+(h+1)*hd]
	for d, v := range q {
		q16[d] = tab[quant.FP32ToFP16(v)]
	}
	scores := j.scores[worker][:pos+1]
	kvRow := func(c []uint16, p int) []uint16 { return c[p*kvDim+off : p*kvDim+off+hd : p*kvDim+off+hd] }
	p := 0
	for ; p+3 < len(scores); p += 4 {
		k0, k1, k2, k3 := kvRow(kc, p), kvRow(kc, p+1), kvRow(kc, p+2), kvRow(kc, p+3)
		var s0, s1, s2, s3 float64
		for d, qd := range q16 {
			s0 += float64(qd * tab[k0[d]])
			s1 += float64(qd * tab[k1[d]])
			s2 += float64(qd * tab[k2[d]])
			s3 += float64(qd * tab[k3[d]])
		}
		scores[p] = float32(s0) * j.scale
		scores[p+1] = float32(s1) * j.scale
		scores[p+2] = float32(s2) * j.scale
		scores[p+3] = float32(s3) * j.scale
	}
	for ; p < len(scores); p++ {
		k := kvRow(kc, p)
		var sum float64
		for d, qd := range q16 {
			sum += float64(qd * tab[k[d]])
		}
		scores[p] = float32(sum) * j.scale
	}
	softMax(scores)
	clear(acc)
	p = 0
	for ; p+3 < len(scores); p += 4 {
		r0, r1 := tab[quant.FP32ToFP16(scores[p])], tab[quant.FP32ToFP16(scores[p+1])]
		r2, r3 := tab[quant.FP32ToFP16(scores[p+2])], tab[quant.FP32ToFP16(scores[p+3])]
		v0, v1, v2, v3 := kvRow(vc, p), kvRow(vc, p+1), kvRow(vc, p+2), kvRow(vc, p+3)
		for d, a := range acc {
			a += float64(r0 * tab[v0[d]])
			a += float64(r1 * tab[v1[d]])
			a += float64(r2 * tab[v2[d]])
			a += float64(r3 * tab[v3[d]])
			acc[d] = a
		}
	}
	for ; p < len(scores); p++ {
		r := tab[quant.FP32ToFP16(scores[p])]
		v := kvRow(vc, p)
		for d := range acc {
			acc[d] += float64(r * tab[v[d]])
		}
	}
	out := j.a.Attn[t*qDim+h*hd : t*qDim+(h+1)*hd]
	for d := range out {
		out[d] = float32(acc[d])
	}
}

// headGroup computes headBlock query heads of one row that share a KV
// head: each K and V element is converted once and multiplies all four
// heads' values, four independent chains (one per head, each in ggml's
// order: d ascending in a dot product, positions ascending per output).
func (j *attnJob) headGroup(worker, unit int) {
	hp := j.e.m.HP
	hd := hp.HeadDim
	qDim, kvDim := hp.Heads*hd, hp.HeadsKV*hd
	group := hp.Heads / hp.HeadsKV
	blocks := hp.Heads / headBlock
	tab := f16Table
	t, h0 := unit/blocks, unit%blocks*headBlock
	row := j.e.rows[t]
	kc, vc := row.s.k[j.layer], row.s.v[j.layer]
	n := row.pos + 1 // the token attends to positions 0..pos
	off := h0 / group * hd

	qs := j.q16[worker][:headBlock*hd]
	for d, v := range j.a.Q[t*qDim+h0*hd : t*qDim+(h0+headBlock)*hd] {
		qs[d] = tab[quant.FP32ToFP16(v)]
	}
	q0, q1, q2, q3 := qs[:hd], qs[hd:2*hd], qs[2*hd:3*hd], qs[3*hd:4*hd]
	sc := j.scores[worker][:headBlock*n]
	s0, s1, s2, s3 := sc[:n], sc[n:2*n], sc[2*n:3*n], sc[3*n:4*n]
	kRow := func(p int) []uint16 { return kc[p*kvDim+off : p*kvDim+off+hd : p*kvDim+off+hd] }
	kern := attnKernels
	if hd%4 != 0 {
		kern = nil
	}
	p := 0
	if kern != nil {
		qT := j.qT[worker][:headBlock*hd]
		for d := range hd {
			qT[4*d], qT[4*d+1], qT[4*d+2], qT[4*d+3] = q0[d], q1[d], q2[d], q3[d]
		}
		io := j.kio[worker]
		for ; p+3 < n; p += 4 {
			kern.scores4x4(qT, kRow(p), kRow(p+1), kRow(p+2), kRow(p+3), &io.out)
			for r := range 4 {
				o := io.out[4*r:]
				s0[p+r], s1[p+r], s2[p+r], s3[p+r] = float32(o[0])*j.scale, float32(o[1])*j.scale, float32(o[2])*j.scale, float32(o[3])*j.scale
			}
		}
		out := (*[8]float64)(io.out[:8])
		for ; p < n; p += 2 {
			// A last odd position goes through as both rows; only its
			// first half is kept.
			kern.scores4x2(qT, kRow(p), kRow(min(p+1, n-1)), out)
			s0[p], s1[p], s2[p], s3[p] = float32(out[0])*j.scale, float32(out[1])*j.scale, float32(out[2])*j.scale, float32(out[3])*j.scale
			if p+1 < n {
				s0[p+1], s1[p+1], s2[p+1], s3[p+1] = float32(out[4])*j.scale, float32(out[5])*j.scale, float32(out[6])*j.scale, float32(out[7])*j.scale
			}
		}
	}
	for ; p+1 < n; p += 2 {
		k, kn := kRow(p), kRow(p+1)
		q0, q1, q2, q3 := q0[:len(k)], q1[:len(k)], q2[:len(k)], q3[:len(k)]
		kn = kn[:len(k)]
		var a0, a1, a2, a3, b0, b1, b2, b3 float64
		for d, kv := range k {
			kd, knd := tab[kv], tab[kn[d]]
			a0 += float64(q0[d] * kd)
			a1 += float64(q1[d] * kd)
			a2 += float64(q2[d] * kd)
			a3 += float64(q3[d] * kd)
			b0 += float64(q0[d] * knd)
			b1 += float64(q1[d] * knd)
			b2 += float64(q2[d] * knd)
			b3 += float64(q3[d] * knd)
		}
		s0[p], s0[p+1] = float32(a0)*j.scale, float32(b0)*j.scale
		s1[p], s1[p+1] = float32(a1)*j.scale, float32(b1)*j.scale
		s2[p], s2[p+1] = float32(a2)*j.scale, float32(b2)*j.scale
		s3[p], s3[p+1] = float32(a3)*j.scale, float32(b3)*j.scale
	}
	for ; p < n; p++ {
		k := kRow(p)
		q0, q1, q2, q3 := q0[:len(k)], q1[:len(k)], q2[:len(k)], q3[:len(k)]
		var a0, a1, a2, a3 float64
		for d, kv := range k {
			kd := tab[kv]
			a0 += float64(q0[d] * kd)
			a1 += float64(q1[d] * kd)
			a2 += float64(q2[d] * kd)
			a3 += float64(q3[d] * kd)
		}
		s0[p] = float32(a0) * j.scale
		s1[p] = float32(a1) * j.scale
		s2[p] = float32(a2) * j.scale
		s3[p] = float32(a3) * j.scale
	}
	softMax(s0)
	softMax(s1)
	softMax(s2)
	softMax(s3)

	acc := j.acc[worker][:headBlock*hd]
	clear(acc)
	c0, c1, c2, c3 := acc[:hd], acc[hd:2*hd], acc[2*hd:3*hd], acc[3*hd:4*hd]
	vRow := func(p int) []uint16 { return vc[p*kvDim+off : p*kvDim+off+hd : p*kvDim+off+hd] }
	f16 := func(x float32) float32 { return tab[quant.FP32ToFP16(x)] }
	p = 0
	if kern != nil {
		// The weights rounded to half precision once, in place: the same
		// values f16 gives below.
		for _, s := range [][]float32{s0, s1, s2, s3} {
			kern.roundF16InPlace(s)
		}
		io := j.kio[worker]
		for ; p+1 < n; p += 2 {
			io.r = [4]float32{s0[p], s1[p], s2[p], s3[p]}
			io.rn = [4]float32{s0[p+1], s1[p+1], s2[p+1], s3[p+1]}
			kern.accV4x2(acc, vRow(p), vRow(p+1), &io.r, &io.rn)
		}
		if p < n {
			io.r = [4]float32{s0[p], s1[p], s2[p], s3[p]}
			kern.accV4x1(acc, vRow(p), &io.r)
			p++
		}
	}
	for ; p+1 < n; p += 2 {
		r0, r1, r2, r3 := f16(s0[p]), f16(s1[p]), f16(s2[p]), f16(s3[p])
		n0, n1, n2, n3 := f16(s0[p+1]), f16(s1[p+1]), f16(s2[p+1]), f16(s3[p+1])
		v, vn := vRow(p), vRow(p+1)
		c0, c1, c2, c3 := c0[:len(v)], c1[:len(v)], c2[:len(v)], c3[:len(v)]
		vn = vn[:len(v)]
		for d, vv := range v {
			vd, vnd := tab[vv], tab[vn[d]]
			c0[d] = c0[d] + float64(r0*vd) + float64(n0*vnd)
			c1[d] = c1[d] + float64(r1*vd) + float64(n1*vnd)
			c2[d] = c2[d] + float64(r2*vd) + float64(n2*vnd)
			c3[d] = c3[d] + float64(r3*vd) + float64(n3*vnd)
		}
	}
	for ; p < n; p++ {
		r0, r1, r2, r3 := f16(s0[p]), f16(s1[p]), f16(s2[p]), f16(s3[p])
		v := vRow(p)
		c0, c1, c2, c3 := c0[:len(v)], c1[:len(v)], c2[:len(v)], c3[:len(v)]
		for d, vv := range v {
			vd := tab[vv]
			c0[d] += float64(r0 * vd)
			c1[d] += float64(r1 * vd)
			c2[d] += float64(r2 * vd)
			c3[d] += float64(r3 * vd)
		}
	}
	out := j.a.Attn[t*qDim+h0*hd : t*qDim+(h0+headBlock)*hd]
	for d := range out {
		out[d] = float32(acc[d])
	}
}
