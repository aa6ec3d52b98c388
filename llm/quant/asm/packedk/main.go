// Command packedk generates llm/quant's kernels for Q4_K weights repacked
// eight rows at a time (see llm/quant/packedk.go for the layout and the
// activation expansion).
//
// Every 32-bit lane holds one row. Per block, class and pair of sub-blocks
// jj, one VPMADDUBSW per nibble half against the expanded activations,
// added in int16 (|sum| ≤ 4·15·128 = 7680), and one VPMADDWD with the
// pair's scales as words give the row's exact scaled class sum; the four
// pairs added give the reference's integer lane. The float steps are the
// reference's, lane by lane: each class's partial sum gains
// d·float(lane), the running sum loses dmin·float(Σ mins·bsums), and the 8
// class sums are added to it in order at the end. In the multi-token
// kernels the float partial sums live in the frame: 9 per token do not fit
// in registers next to the unpacked weights, which all the tokens reuse.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Offsets in a packed block of 8 rows and in one block of expanded
// activations (both documented in llm/quant/packedk.go).
const (
	blockBytes   = 160 + 32*32
	offDmin      = 16
	offScales    = 32
	offMins      = 96
	offQuants    = 160
	auxBytes     = 288
	auxSumsOff   = 256
	auxScaleOff  = 272
	sumfSlot     = 8 // frame slot of the running sum, after the 8 classes
	slotsPerTok  = 10
	maxTokenRuns = 4
)

var mask0F Mem

var prefetch = flag.Int("prefetch", 2*blockBytes, "bytes ahead of the current block that the kernels prefetch")

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	mask0F = GLOBL("packedKMask0F", RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(i, U8(0x0F))
	}
	genQ4Kx8T1()
	for t := 2; t <= maxTokenRuns; t++ {
		genQ4Kx8(t)
	}
	Generate()
}

func genQ4Kx8(tokens int) {
	name := fmt.Sprintf("dotQ4Kx8T%dAVX2", tokens)
	TEXT(name, 0, "func(w []byte, nb int, aux []byte, auxStride int, dst []float32, dstStride int)")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q4_K×Q8_K dot product of packed row r (r < 8) with token t's expanded activations (t < %d), over nb blocks (AVX2, F16C).", name, tokens))
	// Per token: the 8 class sums, the running sum, then d·d_x of the
	// current block.
	frame := AllocLocal(32 * slotsPerTok * tokens)
	slot := func(t, s int) Mem { return frame.Offset(32 * (slotsPerTok*t + s)) }

	w := Load(Param("w").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	a0 := Load(Param("aux").Base(), GP64())
	auxStride := Load(Param("auxStride"), GP64())
	ap := make([]Register, tokens)
	for t := range tokens {
		ap[t] = GP64()
		if t == 0 {
			MOVQ(a0, ap[t])
			continue
		}
		LEAQ(Mem{Base: ap[t-1], Index: auxStride, Scale: 1}, ap[t])
	}
	{
		z := YMM()
		VXORPS(z, z, z)
		for t := range tokens {
			for s := 0; s <= sumfSlot; s++ {
				VMOVUPS(z, slot(t, s))
			}
		}
	}

	Label(name + "_block")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	for off := 0; *prefetch > 0 && off < blockBytes; off += 64 {
		PREFETCHT0(Mem{Base: w, Disp: *prefetch + off})
	}
	var sc [4]VecVirtual
	for jj := range sc {
		sc[jj] = YMM()
		VPMOVZXBW(Mem{Base: w, Disp: offScales + 16*jj}, sc[jj])
	}
	for t := range tokens {
		blockScales(w, ap[t], slot(t, sumfSlot+1), slot(t, sumfSlot))
	}
	unpack := func(l, jj int) (lo, hi VecVirtual) {
		p := YMM()
		VMOVDQU(Mem{Base: w, Disp: offQuants + 32*(4*l+jj)}, p)
		lo, hi = YMM(), YMM()
		VPAND(mask0F, p, lo)
		VPSRLW(Imm(4), p, p)
		VPAND(mask0F, p, hi)
		return lo, hi
	}
	classToken := func(l, t int, lo, hi []VecVirtual) {
		var c VecVirtual
		for jj := 0; jj < 4; jj++ {
			x := Mem{Base: ap[t], Disp: 4 * 2 * (4*l + jj)}
			m1, m2 := YMM(), YMM()
			VPBROADCASTD(x, m1)
			VPMADDUBSW(m1, lo[jj], m1)
			VPBROADCASTD(x.Offset(4), m2)
			VPMADDUBSW(m2, hi[jj], m2)
			VPADDW(m2, m1, m1)
			VPMADDWD(sc[jj], m1, m1)
			if jj == 0 {
				c = m1
			} else {
				VPADDD(m1, c, c)
			}
		}
		VCVTDQ2PS(c, c)
		VMULPS(slot(t, sumfSlot+1), c, c)
		VADDPS(slot(t, l), c, c)
		VMOVUPS(c, slot(t, l))
	}
	for l := 0; l < 8; l++ {
		lo, hi := make([]VecVirtual, 4), make([]VecVirtual, 4)
		for jj := 0; jj < 4; jj++ {
			lo[jj], hi[jj] = unpack(l, jj)
		}
		for t := range tokens {
			classToken(l, t, lo, hi)
		}
	}
	ADDQ(U32(blockBytes), w)
	for t := range tokens {
		ADDQ(U32(auxBytes), ap[t])
	}
	DECQ(nb)
	JMP(LabelRef(name + "_block"))

	Label(name + "_done")
	d := Load(Param("dst").Base(), GP64())
	dStride := Load(Param("dstStride"), GP64())
	SHLQ(Imm(2), dStride)
	for t := range tokens {
		s := YMM()
		VMOVUPS(slot(t, sumfSlot), s)
		for l := 0; l < 8; l++ {
			VADDPS(slot(t, l), s, s)
		}
		VMOVUPS(s, Mem{Base: d})
		if t+1 < tokens {
			ADDQ(dStride, d)
		}
	}
	VZEROUPPER()
	RET()
}

// genQ4Kx8T1 emits the one-token kernel, which keeps the 8 class sums in
// registers (d·d_x and the running sum go to the frame), and multiplies
// in place of the unpacked nibbles to fit in 16 registers; alternated with
// the multi-token structure in one run it measured ~9% faster.
func genQ4Kx8T1() {
	name := "dotQ4Kx8T1AVX2"
	TEXT(name, 0, "func(w []byte, nb int, aux []byte, auxStride int, dst []float32, dstStride int)")
	Doc(fmt.Sprintf("%s sets dst[r] to the reference Q4_K×Q8_K dot product of packed row r (r < 8) with one token's expanded activations, over nb blocks (AVX2, F16C).", name))
	frame := AllocLocal(32 * 2)
	dSlot, sumfSlotM := frame.Offset(0), frame.Offset(32)

	w := Load(Param("w").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	ap := Load(Param("aux").Base(), GP64())
	var acc [8]VecVirtual
	for l := range acc {
		acc[l] = YMM()
		VXORPS(acc[l], acc[l], acc[l])
	}
	VMOVUPS(acc[0], sumfSlotM)

	Label(name + "_block")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	for off := 0; *prefetch > 0 && off < blockBytes; off += 64 {
		PREFETCHT0(Mem{Base: w, Disp: *prefetch + off})
	}
	var sc [4]VecVirtual
	for jj := range sc {
		sc[jj] = YMM()
		VPMOVZXBW(Mem{Base: w, Disp: offScales + 16*jj}, sc[jj])
	}
	blockScales(w, ap, dSlot, sumfSlotM)
	for l := 0; l < 8; l++ {
		var c VecVirtual
		for jj := 0; jj < 4; jj++ {
			p := YMM()
			VMOVDQU(Mem{Base: w, Disp: offQuants + 32*(4*l+jj)}, p)
			lo := YMM()
			VPAND(mask0F, p, lo)
			VPSRLW(Imm(4), p, p)
			VPAND(mask0F, p, p)
			x := Mem{Base: ap, Disp: 4 * 2 * (4*l + jj)}
			m := YMM()
			VPBROADCASTD(x, m)
			VPMADDUBSW(m, lo, lo)
			VPBROADCASTD(x.Offset(4), m)
			VPMADDUBSW(m, p, p)
			VPADDW(p, lo, lo)
			VPMADDWD(sc[jj], lo, lo)
			if jj == 0 {
				c = lo
			} else {
				VPADDD(lo, c, c)
			}
		}
		VCVTDQ2PS(c, c)
		VMULPS(dSlot, c, c)
		VADDPS(c, acc[l], acc[l])
	}
	ADDQ(U32(blockBytes), w)
	ADDQ(U32(auxBytes), ap)
	DECQ(nb)
	JMP(LabelRef(name + "_block"))

	Label(name + "_done")
	d := Load(Param("dst").Base(), GP64())
	s := YMM()
	VMOVUPS(sumfSlotM, s)
	for l := 0; l < 8; l++ {
		VADDPS(acc[l], s, s)
	}
	VMOVUPS(s, Mem{Base: d})
	VZEROUPPER()
	RET()
}

// blockScales emits, for one block and one token, d·d_x of the 8 rows into
// dSlot, and takes dmin·d_x·Σ mins·(sub-block sums) off the running sums
// in sumfSlot.
func blockScales(w, ap Register, dSlot, sumfSlot Mem) {
	dx := YMM()
	VBROADCASTSS(Mem{Base: ap, Disp: auxScaleOff}, dx)
	d := YMM()
	VCVTPH2PS(Mem{Base: w}, d)
	VMULPS(dx, d, d)
	VMOVUPS(d, dSlot)
	var m VecVirtual
	for k := 0; k < 4; k++ {
		q, bs := YMM(), YMM()
		VPMOVZXBW(Mem{Base: w, Disp: offMins + 16*k}, q)
		VPBROADCASTD(Mem{Base: ap, Disp: auxSumsOff + 4*k}, bs)
		VPMADDWD(bs, q, q)
		if k == 0 {
			m = q
		} else {
			VPADDD(q, m, m)
		}
	}
	VCVTDQ2PS(m, m)
	dmin := YMM()
	VCVTPH2PS(Mem{Base: w, Disp: offDmin}, dmin)
	VMULPS(dx, dmin, dmin)
	VMULPS(dmin, m, m)
	s := YMM()
	VMOVUPS(sumfSlot, s)
	VSUBPS(m, s, s)
	VMOVUPS(s, sumfSlot)
}
