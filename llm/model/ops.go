package model

import (
	"math"
)

// The element-wise operations of the forward pass. Each one follows the
// floating-point order of ggml's CPU backend as built for x86-64 without AVX
// (the build that produced the reference outputs): which values are summed
// in double, where float32 rounding happens, which exp is used. Greedy
// decoding of a random-weight model flips on logit gaps of 0.01, so "close"
// is not enough. Products that are followed by an addition are wrapped in
// float32(...) so that the compiler may not fuse them into an FMA (the Go
// spec allows fusion unless an explicit conversion rounds the product).

// rmsNorm writes x / sqrt(mean(x²) + eps) * w into dst. ggml sums the
// squares (each rounded to float32) in double, rounds the mean to float32,
// scales x and then multiplies by the weight in a separate op.
func rmsNorm(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(float32(v * v))
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / float32(math.Sqrt(float64(mean+eps)))
	for i, v := range x {
		dst[i] = float32(v*scale) * w[i]
	}
}

// expf is libm's single-precision exp; ggml uses it for the elements left
// over after the groups of four. float64 exp rounded to float32 agrees with
// glibc's expf except in rare last-bit cases.
func expf(x float32) float32 {
	return float32(math.Exp(float64(x)))
}

// expf4 is ggml's vectorised exp (SSE2 ggml_v_expf, adapted from Arm's
// optimized-routines expf): exp(x) = 2^n * (1 + poly(r)) with a degree-5
// polynomial, every step rounded to float32, without FMA. It is applied lane
// by lane; the lanes do not interact, so a scalar loop gives the same bits.
func expf4(x *[4]float32) {
	for i, v := range x {
		x[i] = vexpf(v)
	}
}

// Constants of ggml_v_expf (all exactly representable in float32).
const (
	expShift float32 = 0x1.8p23
	expInvLn float32 = 0x1.715476p+0
	expLn2Hi float32 = 0x1.62e4p-1
	expLn2Lo float32 = 0x1.7f7d1cp-20
	expC0    float32 = 0x1.0e4020p-7
	expC1    float32 = 0x1.573e2ep-5
	expC2    float32 = 0x1.555e66p-3
	expC3    float32 = 0x1.fffdb6p-2
	expC4    float32 = 0x1.ffffecp-1
)

func madd(a, b, c float32) float32 { return float32(a*b) + c }

func vexpf(x float32) float32 {
	z := madd(x, expInvLn, expShift)
	n := z - expShift
	b := float32(x - float32(n*expLn2Hi))
	b = b - float32(n*expLn2Lo)
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + math.Float32bits(1))
	u := float32(b * b)
	j := madd(madd(madd(expC0, b, expC1), u, madd(expC2, b, expC3)), u, float32(expC4*b))
	absn := float32(math.Abs(float64(n)))
	if !(absn > 126) {
		return madd(j, k, k)
	}
	// Out of the range where 2^n is a normal float: split the scale in two
	// so that large results overflow and small ones underflow gradually,
	// exactly as the vector code does.
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	s2 := math.Float32frombits(e - g)
	if absn > 192 {
		return s1 * s1
	}
	return float32(madd(s2, j, s2) * s1)
}

// softMax turns x (already scaled and masked) into probabilities in place.
// ggml exponentiates groups of four with the vectorised exp, adds each
// group in float32 as (e0+e1)+(e2+e3) before adding it to a double sum, and
// scales by float32(1/sum). Positions past len(x) are masked (-inf, exp 0)
// in llama.cpp, whose KV length is padded to a multiple of 4 at least, so
// the last partial group is completed with zeros rather than sent to libm.
func softMax(x []float32) {
	maxv := float32(math.Inf(-1))
	for _, v := range x {
		if v > maxv {
			maxv = v
		}
	}
	// Whole groups of 4 are shifted and exponentiated in place (8 at a
	// time by a kernel where there is one), then summed group by group;
	// the last, partial group is padded with -Inf as ggml pads it.
	full := len(x) / 4 * 4
	for i := range x[:full] {
		x[i] -= maxv
	}
	i := 0
	if expGroups != nil {
		expGroups(x, full/8)
		i = full / 8 * 8
	}
	for ; i < full; i += 4 {
		expf4((*[4]float32)(x[i : i+4]))
	}
	var sum float64
	for i := 0; i < full; i += 4 {
		sum += float64((x[i] + x[i+1]) + (x[i+2] + x[i+3]))
	}
	if full < len(x) {
		var g [4]float32
		for l := range g {
			if full+l < len(x) {
				g[l] = x[full+l] - maxv
			} else {
				g[l] = float32(math.Inf(-1))
			}
		}
		expf4(&g)
		copy(x[full:], g[:])
		sum += float64((g[0] + g[1]) + (g[2] + g[3]))
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

// expGroups, where an architecture file sets it, replaces the first
// groups groups of 8 values of x with vexpf's, with the same bits.
var expGroups func(x []float32, groups int)

// swiGLU writes silu(gate) * up into dst: ggml_vec_swiglu_f32, vectorised
// exp for groups of four, libm expf for the rest.
func swiGLU(dst, gate, up []float32) {
	n := len(gate)
	i := 0
	// Whole groups of 8 of the part done 4 at a time go to the kernel
	// where there is one.
	if swiGLUGroups != nil {
		groups := n / 4 * 4 / 8
		swiGLUGroups(dst, gate, up, groups)
		i = 8 * groups
	}
	for ; i+3 < n; i += 4 {
		swiGLU4(dst[i:], gate[i:], up[i:])
	}
	for ; i < n; i++ {
		dst[i] = gate[i] / (1 + expf(-gate[i])) * up[i]
	}
}

// swiGLUGroups, where an architecture file sets it, computes swiGLU's
// first groups groups of 8 with the same bits.
var swiGLUGroups func(dst, gate, up []float32, groups int)

func swiGLU4(dst, gate, up []float32) {
	var g [4]float32
	for l := range g {
		g[l] = 0 - gate[l]
	}
	expf4(&g)
	for l := range g {
		dst[l] = gate[l] / (1 + g[l]) * up[l]
	}
}

// ropeCache fills cos/sin for the rotation pairs of one position: the angle
// starts at pos and is multiplied by thetaScale = powf(base, -2/nRot) for
// each pair, in float32, as ggml_rope_cache_init does (not pos*base^(-2i/d)
// computed directly, which rounds differently). freqScale is the linear
// scaling factor 1/s; freqFactors, when present, divide each angle.
func ropeCache(cos, sin []float32, pos int, thetaScale, freqScale float32, freqFactors []float32) {
	theta := float32(pos)
	for i := range cos {
		t := theta
		if freqFactors != nil {
			t /= freqFactors[i]
		}
		t *= freqScale
		cos[i] = float32(math.Cos(float64(t)))
		sin[i] = float32(math.Sin(float64(t)))
		theta *= thetaScale
	}
}

// Rotary embedding layouts.
const (
	ropeNorm = iota // LLaMA: rotate adjacent pairs (x[2i], x[2i+1])
	ropeNeox        // Qwen2, GPT-NeoX: rotate (x[i], x[i+nRot/2])
)

// rope rotates the first 2*len(cos) dimensions of one head vector in place.
func rope(x, cos, sin []float32, style int) {
	nPairs := len(cos)
	for i := 0; i < nPairs; i++ {
		var a, b int
		if style == ropeNeox {
			a, b = i, i+nPairs
		} else {
			a, b = 2*i, 2*i+1
		}
		x0, x1 := x[a], x[b]
		x[a] = float32(x0*cos[i]) - float32(x1*sin[i])
		x[b] = float32(x0*sin[i]) + float32(x1*cos[i])
	}
}
