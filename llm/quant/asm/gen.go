// Command asm generates llm/quant's amd64 dot-product kernels with avo.
//
// It is a module of its own so that avo's dependencies stay out of the main
// module. Run it through go generate in llm/quant (see vecdot_amd64.go).
//
// The quantised kernels reproduce the pure-Go reference bit for bit: integer
// block sums are exact whatever the grouping, and the float steps that follow
// (scaling, per-lane and per-block accumulation) use the reference's
// operations in the reference's order. The F32, F16 and BF16 kernels sum in
// float64 in 16 parallel sums and also return the sum of magnitudes, from
// which their Go wrappers prove that the reference's order rounds to the
// same float32 (or else run the reference).
//
// The tile kernels (tile.go) compute several weight rows against several
// tokens per call, for matrix products over a batch of tokens; they too
// keep every row's float operations and order exactly.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Block sizes in bytes (see blocks.go).
const (
	q4_0Bytes = 18
	q8_0Bytes = 34
	q4KBytes  = 144
	q6KBytes  = 210
	q8KBytes  = 292
)

var (
	mask0F, mask30, bytes32, bytes8, words1 Mem
	lanePair                                Mem // pairs bytes p and p+8 of each 16 for VPMADDUBSW
	q4KScaleMask                            [4]Mem
	q4KMinsMask                             Mem
	q6KScaleMask                            [4]Mem
)

func constBytes(name string, b []byte) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i, v := range b {
		DATA(i, U8(v))
	}
	return m
}

func repeat(b []byte, n int) []byte {
	var out []byte
	for len(out) < n {
		out = append(out, b...)
	}
	return out[:n]
}

func main() {
	ConstraintExpr("!purego")

	mask0F = constBytes("mask0F", repeat([]byte{0x0F}, 32))
	mask30 = constBytes("mask30", repeat([]byte{0x30}, 32))
	bytes32 = constBytes("bytes32", repeat([]byte{32}, 32))
	bytes8 = constBytes("bytes8", repeat([]byte{8}, 32))
	words1 = constBytes("words1", repeat([]byte{1, 0}, 32))
	lanePair = constBytes("lanePair", repeat([]byte{0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15}, 32))
	for j := range q4KScaleMask {
		// int16 pairs (scale 2j, scale 2j+1); 0x80 zeroes the high bytes.
		q4KScaleMask[j] = constBytes(fmt.Sprintf("q4KScaleMask%d", j), repeat([]byte{byte(2 * j), 0x80, byte(2*j + 1), 0x80}, 32))
	}
	q4KMinsMask = constBytes("q4KMinsMask", []byte{8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15})
	for p := range q6KScaleMask {
		b := byte(4 * p)
		q6KScaleMask[p] = constBytes(fmt.Sprintf("q6KScaleMask%d", p),
			append(repeat([]byte{b, b + 2}, 8), repeat([]byte{b + 1, b + 3}, 8)...))
	}

	genQ8_0()
	genQ4_0()
	genQ4K()
	genQ6K()
	genTiles()
	genFloat("dotF32AVX2", f32)
	genFloat("dotF16AVX2", f16)
	genFloat("dotBF16AVX2", bf16)
	Generate()
}

// body emits the block loop of a quantised kernel: it consumes nb blocks,
// advancing w and x past them, and returns an xmm whose lane 0 is the dot
// product. name prefixes its labels.
type body func(name string, w, x, nb Register) Register

// genKernel emits two functions around a body: dot<T>AVX2, one row, and
// dot<T>RowsAVX2, which runs the body over len(dst) consecutive weight rows
// against the same activations, so short rows do not pay a Go call each.
func genKernel(typ, what string, b body) {
	name := "dot" + typ + "AVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, nb int) float32")
	Doc(fmt.Sprintf("%s returns the reference %s dot product of nb blocks (AVX2, F16C).", name, what))
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	sum := b(name, w, x, nb)
	VZEROUPPER()
	Store(sum, ReturnIndex(0))
	RET()

	name = "dot" + typ + "RowsAVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, nb int, dst []float32)")
	Doc(fmt.Sprintf("%s sets dst[r] to the reference %s dot product of weight row r (nb blocks each, consecutive in w) with x (AVX2, F16C).", name, what))
	w = Load(Param("w").Base(), GP64())
	x0 := Load(Param("x").Base(), GP64())
	nb0 := Load(Param("nb"), GP64())
	d := Load(Param("dst").Base(), GP64())
	rows := Load(Param("dst").Len(), GP64())
	Label(name + "_row")
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_end"))
	x, nb = GP64(), GP64()
	MOVQ(x0, x)
	MOVQ(nb0, nb)
	sum = b(name, w, x, nb)
	VMOVSS(sum, Mem{Base: d})
	ADDQ(Imm(4), d)
	DECQ(rows)
	JMP(LabelRef(name + "_row"))
	Label(name + "_end")
	VZEROUPPER()
	RET()
}

// hsum4 reduces four int32x8 accumulators to the xmm [s0, s1, s2, s3].
func hsum4(acc [4]VecVirtual) Register {
	VPHADDD(acc[1], acc[0], acc[0])
	VPHADDD(acc[3], acc[2], acc[2])
	VPHADDD(acc[2], acc[0], acc[0])
	hi := XMM()
	VEXTRACTI128(Imm(1), acc[0], hi)
	out := XMM()
	VPADDD(hi, acc[0].AsX(), out)
	return out
}

// hsum1 reduces one int32x8 accumulator into lane 0 of an xmm.
func hsum1(acc VecVirtual) Register {
	hi := XMM()
	VEXTRACTI128(Imm(1), acc, hi)
	s := XMM()
	VPADDD(hi, acc.AsX(), s)
	VPHADDD(s, s, s)
	VPHADDD(s, s, s)
	return s
}

// addLanesInOrder adds lanes 0..n-1 of v to the scalar sum in lane order,
// as the reference's sequential float32 loop does.
func addLanesInOrder(v Register, n int, sum Register) {
	t := XMM()
	for l := 0; l < n; l++ {
		switch l {
		case 0:
			VADDSS(v, sum, sum)
			continue
		case 1:
			VMOVSHDUP(v, t)
		case 2:
			VMOVHLPS(v, v, t)
		case 3:
			VPSHUFD(Imm(3), v, t)
		}
		VADDSS(t, sum, sum)
	}
}

// q8Block returns the exact int32x8 partial sums of one Q8_0×Q8_0 block.
// Widening to int16 (instead of VPMADDUBSW's sign trick) keeps -128 exact.
func q8Block(w, x Register, off int) VecVirtual {
	a, b, t := YMM(), YMM(), YMM()
	VPMOVSXBW(Mem{Base: w, Disp: off + 2}, a)
	VPMOVSXBW(Mem{Base: x, Disp: off + 2}, t)
	VPMADDWD(t, a, a)
	VPMOVSXBW(Mem{Base: w, Disp: off + 18}, b)
	VPMOVSXBW(Mem{Base: x, Disp: off + 18}, t)
	VPMADDWD(t, b, b)
	VPADDD(b, a, a)
	return a
}

// q4Block returns the exact int32x8 partial sums of one Q4_0×Q8_0 block:
// (q-8)*x summed as q*x - 8*x in int16 pairs (at most 2*15*128), then
// widened.
func q4Block(w, x Register, wOff, xOff int) VecVirtual {
	q := YMM()
	VMOVDQU(Mem{Base: w, Disp: wOff + 2}, q.AsX())
	hi := XMM()
	VPSRLW(Imm(4), q.AsX(), hi)
	VINSERTI128(Imm(1), hi, q, q)
	VPAND(mask0F, q, q)
	xv, p, o := YMM(), YMM(), YMM()
	VMOVDQU(Mem{Base: x, Disp: xOff + 2}, xv)
	VPMADDUBSW(xv, q, p)
	VMOVDQU(bytes8, o)
	VPMADDUBSW(xv, o, o)
	VPSUBW(o, p, p)
	VPMADDWD(words1, p, p)
	return p
}

// genBlockDot generates Q8_0×Q8_0 or Q4_0×Q8_0: four blocks per iteration
// share one horizontal reduction; then block sums are scaled and added to the
// float32 total one block after another, like the reference.
func blockDot(wBytes int, block func(w, x Register, wOff, xOff int) VecVirtual, q4 bool) body {
	return func(name string, w, x, nb Register) Register {
		return blockDotBody(name, w, x, nb, wBytes, block, q4)
	}
}

func blockDotBody(name string, w, x, nb Register, wBytes int, block func(w, x Register, wOff, xOff int) VecVirtual, q4 bool) Register {
	sum := XMM()
	VXORPS(sum, sum, sum)

	Label(name + "_loop4")
	CMPQ(nb, Imm(4))
	JL(LabelRef(name + "_tail"))
	{
		var acc [4]VecVirtual
		for k := range acc {
			acc[k] = block(w, x, k*wBytes, k*q8_0Bytes)
		}
		isums := hsum4(acc)
		sc := XMM()
		VPXOR(sc, sc, sc)
		for k := 0; k < 4; k++ {
			VPINSRW(Imm(uint64(k)), Mem{Base: w, Disp: k * wBytes}, sc, sc)
			VPINSRW(Imm(uint64(4+k)), Mem{Base: x, Disp: k * q8_0Bytes}, sc, sc)
		}
		f := scaleBlocks(isums, sc, q4)
		addLanesInOrder(f, 4, sum)
		ADDQ(U32(4*wBytes), w)
		ADDQ(U32(4*q8_0Bytes), x)
		SUBQ(Imm(4), nb)
		JMP(LabelRef(name + "_loop4"))
	}
	Label(name + "_tail")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	{
		isum := hsum1(block(w, x, 0, 0))
		sc := XMM()
		VPXOR(sc, sc, sc)
		VPINSRW(Imm(0), Mem{Base: w}, sc, sc)
		VPINSRW(Imm(4), Mem{Base: x}, sc, sc)
		f := scaleBlocks(isum, sc, q4)
		VADDSS(f, sum, sum)
		ADDQ(Imm(uint64(wBytes)), w)
		ADDQ(Imm(q8_0Bytes), x)
		DECQ(nb)
		JMP(LabelRef(name + "_tail"))
	}
	Label(name + "_done")
	return sum
}

// scaleBlocks turns int32 block sums into the float32 terms the reference
// adds: sc holds the weight scales (f16) in words 0..3 and the activation
// scales in words 4..7.
func scaleBlocks(isums, sc Register, q4 bool) Register {
	f := XMM()
	VCVTDQ2PS(isums, f)
	scf := YMM()
	VCVTPH2PS(sc, scf)
	dx := XMM()
	VEXTRACTF128(Imm(1), scf, dx)
	if q4 {
		VMULPS(scf.AsX(), f, f) // (isum*d_w)*d_x
		VMULPS(dx, f, f)
	} else {
		VMULPS(dx, scf.AsX(), dx) // isum*(d_w*d_x)
		VMULPS(dx, f, f)
	}
	return f
}

func genQ8_0() {
	genKernel("Q8_0", "Q8_0×Q8_0", blockDot(q8_0Bytes, func(w, x Register, wOff, _ int) VecVirtual { return q8Block(w, x, wOff) }, false))
}

func genQ4_0() {
	genKernel("Q4_0", "Q4_0×Q8_0", blockDot(q4_0Bytes, q4Block, true))
}

// combineLanes adds the two 128-bit halves of the lane 0-3 and lane 4-7
// accumulators into the 8 reference lanes, in order.
func combineLanes(accLo, accHi VecVirtual) VecVirtual {
	a, b := YMM(), YMM()
	VPERM2I128(Imm(0x20), accHi, accLo, a)
	VPERM2I128(Imm(0x31), accHi, accLo, b)
	VPADDD(b, a, a)
	return a
}

// accumulatePairs multiplies the int16 lane sums of two sub-block pairs by
// their scales (s holds the matching int16 scale pairs) and adds them to the
// lane accumulators. VPMADDWD sums adjacent words, so A and B are interleaved
// first: each int32 then belongs to a single lane.
func accumulatePairs(a, b, s, accLo, accHi VecVirtual) {
	l, h := YMM(), YMM()
	VPUNPCKLWD(b, a, l)
	VPUNPCKHWD(b, a, h)
	VPMADDWD(s, l, l)
	VPMADDWD(s, h, h)
	VPADDD(l, accLo, accLo)
	VPADDD(h, accHi, accHi)
}

// finishLanes adds the 8 float32 lane sums to sumf in lane order.
func finishLanes(sums VecVirtual, sumf Register) {
	hi := XMM()
	VEXTRACTF128(Imm(1), sums, hi)
	addLanesInOrder(sums.AsX(), 4, sumf)
	addLanesInOrder(hi, 4, sumf)
}

// q4KScalesMins unpacks a Q4_K block's 6-bit scales and mins (the block at
// w) into an xmm of bytes: 0-7 the scales, 8-15 the mins.
func q4KScalesMins(w Register) VecVirtual {
	u0, u1, u2, u3, t := GP32(), GP32(), GP32(), GP32(), GP32()
	MOVL(Mem{Base: w, Disp: 4}, u0)
	MOVL(Mem{Base: w, Disp: 8}, u1)
	MOVL(Mem{Base: w, Disp: 12}, u2)
	MOVL(u2, u3)
	SHRL(Imm(4), u3)
	ANDL(U32(0x0f0f0f0f), u3)
	MOVL(u1, t)
	SHRL(Imm(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(Imm(4), t)
	ORL(t, u3)                // mins 4-7
	ANDL(U32(0x3f3f3f3f), u1) // mins 0-3
	MOVL(u0, t)
	SHRL(Imm(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(Imm(4), t)
	ANDL(U32(0x0f0f0f0f), u2)
	ORL(t, u2)                // scales 4-7
	ANDL(U32(0x3f3f3f3f), u0) // scales 0-3
	sc := YMM()
	VMOVD(u0, sc.AsX())
	VPINSRD(Imm(1), u2, sc.AsX(), sc.AsX())
	VPINSRD(Imm(2), u1, sc.AsX(), sc.AsX())
	VPINSRD(Imm(3), u3, sc.AsX(), sc.AsX())
	return sc
}

func genQ4K() { genKernel("Q4K", "Q4_K×Q8_K", q4KBody) }

func q4KBody(name string, w, x, nb Register) Register {
	sums, sumf := YMM(), XMM()
	VXORPS(sums, sums, sums)
	VXORPS(sumf, sumf, sumf)

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))

	// Unpack the 6-bit scales and mins: bytes 0-7 scales, 8-15 mins.
	sc := q4KScalesMins(w)

	// sumMins = Σ bsums[j]*mins[j/2], exact in int32.
	mins := YMM()
	VPSHUFB(q4KMinsMask, sc.AsX(), mins.AsX())
	VPMOVZXBW(mins.AsX(), mins)
	VPMADDWD(Mem{Base: x, Disp: 4 + 256}, mins, mins)
	sumMins := hsum1(mins)

	VINSERTI128(Imm(1), sc.AsX(), sc, sc)
	accLo, accHi := YMM(), YMM()
	VPXOR(accLo, accLo, accLo)
	VPXOR(accHi, accHi, accHi)
	for j := 0; j < 4; j++ {
		q, lo := YMM(), YMM()
		VMOVDQU(Mem{Base: w, Disp: 16 + 32*j}, q)
		VPSHUFB(lanePair, q, q)
		VPAND(mask0F, q, lo)
		VPSRLW(Imm(4), q, q)
		VPAND(mask0F, q, q)
		xl, xh := YMM(), YMM()
		VMOVDQU(Mem{Base: x, Disp: 4 + 64*j}, xl)
		VPSHUFB(lanePair, xl, xl)
		VMOVDQU(Mem{Base: x, Disp: 4 + 64*j + 32}, xh)
		VPSHUFB(lanePair, xh, xh)
		VPMADDUBSW(xl, lo, lo) // ≤ 2*15*128: no saturation
		VPMADDUBSW(xh, q, q)
		s := YMM()
		VPSHUFB(q4KScaleMask[j], sc, s)
		accumulatePairs(lo, q, s, accLo, accHi)
	}
	lanes := combineLanes(accLo, accHi)

	// d = d_w*d_x, dmin = dmin_w*d_x, each a float32 product.
	dd := XMM()
	VPXOR(dd, dd, dd)
	VPINSRW(Imm(0), Mem{Base: w}, dd, dd)
	VPINSRW(Imm(1), Mem{Base: w, Disp: 2}, dd, dd)
	VCVTPH2PS(dd, dd)
	dx := XMM()
	VBROADCASTSS(Mem{Base: x}, dx)
	VMULPS(dx, dd, dd)
	db, fl := YMM(), YMM()
	VBROADCASTSS(dd, db)
	VCVTDQ2PS(lanes, fl)
	VMULPS(db, fl, fl)
	VADDPS(fl, sums, sums)
	fm, dmin := XMM(), XMM()
	VCVTDQ2PS(sumMins, fm)
	VMOVSHDUP(dd, dmin)
	VMULSS(fm, dmin, dmin)
	VSUBSS(dmin, sumf, sumf)

	ADDQ(U32(q4KBytes), w)
	ADDQ(U32(q8KBytes), x)
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	finishLanes(sums, sumf)
	return sumf
}

// q6KHalf loads half h (128 quants) of the Q6_K block at w, lane-paired
// like the activations, and returns a function that emits the 6-bit values
// of its group k (32 quants, unsigned 0..63). Word shifts move bits across
// bytes, but the 0x30 mask keeps only bits that come from the byte itself.
func q6KHalf(w Register, h int) func(k int) VecVirtual {
	ql0, ql1, qh := YMM(), YMM(), YMM()
	VMOVDQU(Mem{Base: w, Disp: 64 * h}, ql0)
	VPSHUFB(lanePair, ql0, ql0)
	VMOVDQU(Mem{Base: w, Disp: 64*h + 32}, ql1)
	VPSHUFB(lanePair, ql1, ql1)
	VMOVDQU(Mem{Base: w, Disp: 128 + 32*h}, qh)
	VPSHUFB(lanePair, qh, qh)
	return func(k int) VecVirtual {
		g, hb := YMM(), YMM()
		ql := ql0
		if k%2 == 1 {
			ql = ql1
		}
		if k < 2 {
			VPAND(mask0F, ql, g)
		} else {
			VPSRLW(Imm(4), ql, g)
			VPAND(mask0F, g, g)
		}
		switch k {
		case 0:
			VPSLLW(Imm(4), qh, hb)
			VPAND(mask30, hb, hb)
		case 1:
			VPSLLW(Imm(2), qh, hb)
			VPAND(mask30, hb, hb)
		case 2:
			VPAND(mask30, qh, hb)
		case 3:
			VPSRLW(Imm(2), qh, hb)
			VPAND(mask30, hb, hb)
		}
		VPOR(hb, g, g)
		return g
	}
}

func genQ6K() { genKernel("Q6K", "Q6_K×Q8_K", q6KBody) }

func q6KBody(name string, w, x, nb Register) Register {
	sums := YMM()
	VXORPS(sums, sums, sums)

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))

	sc := XMM()
	VMOVDQU(Mem{Base: w, Disp: 192}, sc)
	accLo, accHi := YMM(), YMM()
	VPXOR(accLo, accLo, accLo)
	VPXOR(accHi, accHi, accHi)
	for h := 0; h < 2; h++ {
		values := q6KHalf(w, h)
		group := func(k int) VecVirtual {
			g := values(k)
			// (g-32)*x in int16 pairs: g*x - 32*x, each ≤ 2*63*128.
			xv, o := YMM(), YMM()
			VMOVDQU(Mem{Base: x, Disp: 4 + 128*h + 32*k}, xv)
			VPSHUFB(lanePair, xv, xv)
			VPMADDUBSW(xv, g, g)
			VMOVDQU(bytes32, o)
			VPMADDUBSW(xv, o, o)
			VPSUBW(o, g, g)
			return g
		}
		for p := 0; p < 2; p++ {
			a := group(2 * p)
			b := group(2*p + 1)
			s := YMM()
			VPSHUFB(q6KScaleMask[2*h+p], sc, s.AsX())
			VPMOVSXBW(s.AsX(), s)
			accumulatePairs(a, b, s, accLo, accHi)
		}
	}
	lanes := combineLanes(accLo, accHi)

	d := XMM()
	VPXOR(d, d, d)
	VPINSRW(Imm(0), Mem{Base: w, Disp: 208}, d, d)
	VCVTPH2PS(d, d)
	VMULSS(Mem{Base: x}, d, d)
	db, fl := YMM(), YMM()
	VBROADCASTSS(d, db)
	VCVTDQ2PS(lanes, fl)
	VMULPS(db, fl, fl)
	VADDPS(fl, sums, sums)

	prefetchAhead(w, q6KBytes)
	ADDQ(U32(q6KBytes), w)
	ADDQ(U32(q8KBytes), x)
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	sumf := XMM()
	VXORPS(sumf, sumf, sumf)
	finishLanes(sums, sumf)
	return sumf
}

type floatKind int

const (
	f32 floatKind = iota
	f16
	bf16
)

// loadFloats loads 8 elements at m as float32s.
func loadFloats(kind floatKind, m Mem, dst VecVirtual) {
	switch kind {
	case f32:
		VMOVUPS(m, dst)
	case f16:
		VCVTPH2PS(m, dst)
	case bf16:
		// A bfloat16 is the high half of a float32.
		VPMOVZXWD(m, dst)
		VPSLLD(Imm(16), dst, dst)
	}
}

// genFloat generates the F32, F16 or BF16 kernel over n elements, n a
// multiple of 16: float32 products (exact for F16 and BF16), widened and
// summed in float64 in 16 parallel sums. It also returns the sum of the
// products' magnitudes, which bounds how far any other summation order (the
// reference's sequential one) can be from the returned sum.
func genFloat(name string, kind floatKind) {
	TEXT(name, NOSPLIT, "func(w, x []byte, n int) (sum float64, abs float32)")
	Doc(name + " returns the float64 sum of the float32 products of n elements, n a multiple of 16, and the float32 sum of their magnitudes (AVX2, F16C).")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("n"), GP64())
	// The magnitudes only bound the rounding error, so float32 sums (whose
	// own error the Go side allows for) do, at a quarter of the cost.
	var acc [4]VecVirtual
	var abs [2]VecVirtual
	for i := range acc {
		acc[i] = YMM()
		VXORPD(acc[i], acc[i], acc[i])
	}
	for i := range abs {
		abs[i] = YMM()
		VXORPS(abs[i], abs[i], abs[i])
	}
	signOff := YMM()
	VPCMPEQD(signOff, signOff, signOff)
	VPSRLD(Imm(1), signOff, signOff) // 0x7fffffff: clears a float32's sign
	size := 4
	if kind != f32 {
		size = 2
	}
	// widenAdd converts the 8 float32s of v to float64 and adds them to
	// the accumulator pair a.
	widenAdd := func(v VecVirtual, a0, a1 VecVirtual) {
		hi := XMM()
		VEXTRACTF128(Imm(1), v, hi)
		lo, hd := YMM(), YMM()
		VCVTPS2PD(v.AsX(), lo)
		VCVTPS2PD(hi, hd)
		VADDPD(lo, a0, a0)
		VADDPD(hd, a1, a1)
	}
	Label(name + "_loop")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	for k := 0; k < 2; k++ {
		a, b := YMM(), YMM()
		if kind == f32 {
			VMOVUPS(Mem{Base: w, Disp: 32 * k}, a)
			VMULPS(Mem{Base: x, Disp: 32 * k}, a, a)
		} else {
			loadFloats(kind, Mem{Base: w, Disp: 8 * size * k}, a)
			loadFloats(kind, Mem{Base: x, Disp: 8 * size * k}, b)
			VMULPS(b, a, a)
		}
		widenAdd(a, acc[2*k], acc[2*k+1])
		VANDPS(signOff, a, a)
		VADDPS(a, abs[k], abs[k])
	}
	ADDQ(Imm(uint64(16*size)), w)
	ADDQ(Imm(uint64(16*size)), x)
	SUBQ(Imm(16), n)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	reduce := func(acc [4]VecVirtual) Register {
		VADDPD(acc[1], acc[0], acc[0])
		VADDPD(acc[3], acc[2], acc[2])
		VADDPD(acc[2], acc[0], acc[0])
		hi := XMM()
		VEXTRACTF128(Imm(1), acc[0], hi)
		s := XMM()
		VADDPD(hi, acc[0].AsX(), s)
		t := XMM()
		VUNPCKHPD(s, s, t)
		VADDSD(t, s, s)
		return s
	}
	s := reduce(acc)
	VADDPS(abs[1], abs[0], abs[0])
	ahi := XMM()
	VEXTRACTF128(Imm(1), abs[0], ahi)
	a := XMM()
	VADDPS(ahi, abs[0].AsX(), a)
	t := XMM()
	VMOVHLPS(a, a, t)
	VADDPS(t, a, a)
	VMOVSHDUP(a, t)
	VADDSS(t, a, a)
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	Store(a, ReturnIndex(1))
	RET()
}
