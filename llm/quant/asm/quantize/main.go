// Command quantize generates llm/quant's AVX2 (+F16C) kernels that convert
// float32 activation rows to Q8_0, Q8_K and F16, byte for byte what the
// pure-Go reference (llm/quant/quantize.go, half.go) writes.
//
// Exactness rests on three observations.
//
// Block maxima: for non-NaN floats with the sign bit cleared, the integer
// order of the bits is the float order, so VPMAXUD over |x| bits gives the
// reference's max(|x|) whatever the grouping, and a result above 0x7f800000
// says the block holds a NaN. The kernels stop before such a block and
// return how many blocks they finished, and the Go wrapper lets the
// reference handle it: NaN payloads are the one thing the hardware and the
// reference would treat differently.
//
// Q8_0 rounding: the reference is C's roundf (half away from zero), then a
// truncating int32 conversion. trunc(p + copysign(c, p)) with c = 0.5 - 2^-25,
// the float just below one half, is the same for every float32 p: if
// frac(|p|) < 1/2 it is at most 1/2 - ulp(p) and the sum rounds to at most
// n+1-ulp (for n = 0 to at most 1-2^-24), below n+1; if frac(|p|) >= 1/2 the
// sum is at least n+1-2^-25, within half an ulp of n+1, and rounds to it
// (the one tie, at p = 1/2, goes to the even 1.0); |p| >= 2^23 is already an
// integer and c vanishes in rounding. VCVTTPS2DQ then gives 0x80000000 for
// out-of-range values and NaN (0·Inf when d overflows), like the
// reference's truncInt32, and the stored byte is the low byte of the int32,
// as Go's byte(int32) conversion is; masking with 0xFF before the unsigned
// saturating packs keeps exactly that.
//
// Q8_K: nearestInt is a float trick (add 1.5·2^23, keep the low 23 bits of
// the result, subtract 2^22) that the kernel performs lane by lane before
// keeping the low byte, as the reference does. The reference's min(127, ·)
// never binds, so the kernel leaves it out: |v| <= |max| and iscale =
// fl(-127/max) give |fl(iscale·v)| <= 127·(1+2^-24)^2 < 127.5, and when
// iscale overflows to ±Inf the products are ±Inf or NaN, for which
// nearestInt gives -2^22 or 0. Its bsums are exact integer sums of the
// stored int8 quants. The first element of largest
// magnitude (the reference keeps the first on ties) is found by a scan that
// compares |x| with the block's maximum.
//
// F16: VCVTPS2PH with immediate 0 rounds to nearest even, with subnormal
// halves and overflow to infinity, as FP32ToFP16 does; only NaNs differ (the
// reference makes every NaN 0x7e00 with its sign), so groups holding a NaN
// are again left to the reference.
package main

import (
	"flag"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Block sizes in bytes (see llm/quant/blocks.go).
const (
	q8_0Bytes = 34
	q8KBytes  = 292
	q8KQs     = 4
	q8KBsums  = 4 + 256
)

var (
	absMask, signMask, belowHalf, lowByte, dwordInterleave Mem
	mantMask, nearestMagic, nearestBias, bytes1, words1    Mem
	f127, fMinus127, f1                                    Mem
)

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	absMask = constDwords("quantAbsMask", 0x7fffffff, 8)
	signMask = constDwords("quantSignMask", 0x80000000, 8)
	belowHalf = constDwords("quantBelowHalf", math.Float32bits(math.Nextafter32(0.5, 0)), 8)
	lowByte = constDwords("quantLowByte", 0xff, 8)
	mantMask = constDwords("quantMantMask", 0x007fffff, 8)
	nearestMagic = constDwords("quantNearestMagic", math.Float32bits(12582912), 8)
	nearestBias = constDwords("quantNearestBias", 0x00400000, 8)
	bytes1 = constDwords("quantBytes1", 0x01010101, 8)
	words1 = constDwords("quantWords1", 0x00010001, 8)
	f127 = constDwords("quantF127", math.Float32bits(127), 1)
	fMinus127 = constDwords("quantFMinus127", math.Float32bits(-127), 1)
	f1 = constDwords("quantF1", math.Float32bits(1), 1)
	// VPACKUSDW and VPACKUSWB work within 128-bit lanes; this VPERMD index
	// puts the dwords of the packed result back in source order.
	dwordInterleave = GLOBL("quantDwordInterleave", RODATA|NOPTR)
	for i, v := range []uint32{0, 4, 1, 5, 2, 6, 3, 7} {
		DATA(4*i, U32(v))
	}

	genQ8_0()
	genQ8K()
	genF16()
	Generate()
}

func constDwords(name string, v uint32, n int) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < n; i++ {
		DATA(4*i, U32(v))
	}
	return m
}

// horizontalMaxU reduces the eight uint32 lanes of m to their maximum, left
// in every lane of the returned xmm register.
func horizontalMaxU(m VecVirtual) VecVirtual {
	t, u := XMM(), XMM()
	VEXTRACTI128(Imm(1), m, t)
	VPMAXUD(t, m.AsX(), t)
	VPSHUFD(Imm(0x4e), t, u)
	VPMAXUD(u, t, t)
	VPSHUFD(Imm(0xb1), t, u)
	VPMAXUD(u, t, t)
	return t
}

// packLowBytes stores the low bytes of the 32 int32 lanes of v, in order,
// as 32 bytes at dst, and returns the packed vector.
func packLowBytes(v [4]VecVirtual, dst Mem) VecVirtual {
	for _, r := range v {
		VPAND(lowByte, r, r)
	}
	VPACKUSDW(v[1], v[0], v[0])
	VPACKUSDW(v[3], v[2], v[2])
	VPACKUSWB(v[2], v[0], v[0])
	idx := YMM()
	VMOVDQU(dwordInterleave, idx)
	VPERMD(v[0], idx, v[0])
	VMOVDQU(v[0], dst)
	return v[0]
}

func genQ8_0() {
	TEXT("quantizeQ8_0AVX2", NOSPLIT, "func(x []float32, y []byte, nb int) int")
	Doc("quantizeQ8_0AVX2 writes up to nb Q8_0 blocks of x to y, as quantizeQ8_0 does, stopping before the first block that holds a NaN; it returns the number of blocks written (AVX2, F16C).")
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	done := GP64()
	XORQ(done, done)

	Label("q8_0_block")
	CMPQ(done, nb)
	JGE(LabelRef("q8_0_done"))
	var v [4]VecVirtual
	m := YMM()
	for k := range v {
		v[k] = YMM()
		VMOVUPS(Mem{Base: x, Disp: 32 * k}, v[k])
	}
	a := YMM()
	VANDPS(absMask, v[0], m)
	for k := 1; k < 4; k++ {
		VANDPS(absMask, v[k], a)
		VPMAXUD(a, m, m)
	}
	amax := horizontalMaxU(m)
	bits := GP32()
	VMOVD(amax, bits)
	CMPL(bits, U32(0x7f800000))
	JA(LabelRef("q8_0_done"))

	// d = amax/127 goes out as a half; id = 1/d, or 0 when d is 0.
	d, id, nz := XMM(), XMM(), XMM()
	VDIVSS(f127, amax, d)
	VCVTPS2PH(Imm(0), d, nz)
	VPEXTRW(Imm(0), nz, Mem{Base: y})
	one := XMM()
	VMOVSS(f1, one)
	VDIVSS(d, one, id)
	VXORPS(nz, nz, nz)
	VCMPSS(Imm(4), nz, d, nz) // d != 0
	VANDPS(nz, id, id)
	idv := YMM()
	VBROADCASTSS(id, idv)

	for k := range v {
		s := YMM()
		VMULPS(idv, v[k], v[k])
		VANDPS(signMask, v[k], s)
		VORPS(belowHalf, s, s)
		VADDPS(s, v[k], v[k])
		VCVTTPS2DQ(v[k], v[k])
	}
	packLowBytes(v, Mem{Base: y, Disp: 2})

	ADDQ(Imm(128), x)
	ADDQ(Imm(q8_0Bytes), y)
	INCQ(done)
	JMP(LabelRef("q8_0_block"))

	Label("q8_0_done")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func genQ8K() {
	TEXT("quantizeQ8KAVX2", NOSPLIT, "func(x []float32, y []byte, nb int) int")
	Doc("quantizeQ8KAVX2 writes up to nb Q8_K blocks of x to y, as quantizeQ8K does, stopping before the first block that holds a NaN; it returns the number of blocks written (AVX2).")
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	done := GP64()
	XORQ(done, done)

	Label("q8k_block")
	CMPQ(done, nb)
	JGE(LabelRef("q8k_done"))
	{
		// Four running maxima keep the 32 VPMAXUD from forming one chain.
		abs := YMM()
		VMOVDQU(absMask, abs)
		var m [4]VecVirtual
		for i := range m {
			m[i] = YMM()
			VANDPS(Mem{Base: x, Disp: 32 * i}, abs, m[i])
		}
		for k := 4; k < 32; k++ {
			a := YMM()
			VANDPS(Mem{Base: x, Disp: 32 * k}, abs, a)
			VPMAXUD(a, m[k%4], m[k%4])
		}
		VPMAXUD(m[1], m[0], m[0])
		VPMAXUD(m[3], m[2], m[2])
		VPMAXUD(m[2], m[0], m[0])
		amax := horizontalMaxU(m[0])
		bits := GP32()
		VMOVD(amax, bits)
		CMPL(bits, U32(0x7f800000))
		JA(LabelRef("q8k_done"))
		TESTL(bits, bits)
		JZ(LabelRef("q8k_zero"))

		// The first element whose magnitude is the maximum gives the sign.
		amaxv := YMM()
		VPBROADCASTD(amax, amaxv)
		p := GP64()
		MOVQ(x, p)
		mask := GP32()
		Label("q8k_scan")
		{
			t := YMM()
			VANDPS(Mem{Base: p}, abs, t)
			VPCMPEQD(amaxv, t, t)
			VMOVMSKPS(t, mask)
			ADDQ(Imm(32), p)
			TESTL(mask, mask)
			JZ(LabelRef("q8k_scan"))
		}
		BSFL(mask, mask)
		maxv, iscale, d := XMM(), XMM(), XMM()
		VMOVSS(Mem{Base: p, Index: mask.As64(), Scale: 4, Disp: -32}, maxv)
		VMOVSS(fMinus127, iscale)
		VDIVSS(maxv, iscale, iscale)
		VMOVSS(f1, d)
		VDIVSS(iscale, d, d)
		VMOVSS(d, Mem{Base: y})
		isv := YMM()
		VBROADCASTSS(iscale, isv)

		var sums [8]VecVirtual
		for g := 0; g < 8; g++ {
			var v [4]VecVirtual
			for k := range v {
				v[k] = YMM()
				VMULPS(Mem{Base: x, Disp: 128*g + 32*k}, isv, v[k])
				VADDPS(nearestMagic, v[k], v[k])
				VPAND(mantMask, v[k], v[k])
				VPSUBD(nearestBias, v[k], v[k])
			}
			q := packLowBytes(v, Mem{Base: y, Disp: q8KQs + 32*g})
			// Sums of 4 quants per dword; a 128-bit lane is one bsum.
			sums[g] = YMM()
			VMOVDQU(bytes1, sums[g])
			VPMADDUBSW(q, sums[g], sums[g])
			VPMADDWD(words1, sums[g], sums[g])
			if g%2 == 1 {
				VPHADDD(sums[g], sums[g-1], sums[g-1])
			}
			if g%4 == 3 {
				VPHADDD(sums[g-1], sums[g-3], sums[g-3])
			}
		}
		// sums[0] holds bsums 0,2,4,6 | 1,3,5,7 and sums[4] 8..14 | 9..15.
		idx := YMM()
		VMOVDQU(dwordInterleave, idx)
		VPERMD(sums[0], idx, sums[0])
		VPERMD(sums[4], idx, sums[4])
		VPACKSSDW(sums[4], sums[0], sums[0])
		VPERMQ(Imm(0xd8), sums[0], sums[0])
		VMOVDQU(sums[0], Mem{Base: y, Disp: q8KBsums})
		JMP(LabelRef("q8k_next"))
	}

	Label("q8k_zero")
	{
		z := YMM()
		VPXOR(z, z, z)
		for off := 0; off+32 <= q8KBytes; off += 32 {
			VMOVDQU(z, Mem{Base: y, Disp: off})
		}
		MOVL(U32(0), Mem{Base: y, Disp: q8KBytes - 4})
	}

	Label("q8k_next")
	ADDQ(U32(1024), x)
	ADDQ(U32(q8KBytes), y)
	INCQ(done)
	JMP(LabelRef("q8k_block"))

	Label("q8k_done")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func genF16() {
	TEXT("fp32ToFP16AVX2", NOSPLIT, "func(x []float32, y []byte, n int) int")
	Doc("fp32ToFP16AVX2 writes FP32ToFP16 of x[i] to y[2i:] for i < n, 8 at a time, stopping before the first group of 8 that holds a NaN or before a partial group; it returns the number of values written (F16C).")
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	n := Load(Param("n"), GP64())
	done := GP64()
	XORQ(done, done)
	SUBQ(Imm(8), n)

	Label("f16_loop")
	CMPQ(done, n)
	JG(LabelRef("f16_done"))
	v, nan := YMM(), YMM()
	VMOVUPS(Mem{Base: x, Index: done, Scale: 4}, v)
	VCMPPS(Imm(3), v, v, nan) // unordered: NaN lanes
	VPTEST(nan, nan)
	JNZ(LabelRef("f16_done"))
	VCVTPS2PH(Imm(0), v, Mem{Base: y, Index: done, Scale: 2})
	ADDQ(Imm(8), done)
	JMP(LabelRef("f16_loop"))

	Label("f16_done")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
