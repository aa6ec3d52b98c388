// Command packed generates llm/quant's kernels for Q4_0 weights repacked
// eight rows at a time (see llm/quant/packed.go for the layout).
//
// In the packed layout every 32-bit lane of a vector holds four quants of
// one row, so the products of 8 rows with one activation block accumulate
// lane by lane and need no horizontal reduction: per block, 8 VPMADDUBSW of
// the unpacked nibbles with broadcast activation quads, added in int16 in
// two chains of four (|sum| ≤ 8·2·15·128 = 30720; the shorter chains
// measured a few per cent faster), one VPMADDWD with ones, minus the block's
// 8·Σx, give each row's exact integer sum in its lane. The float steps are
// the reference's, lane by lane: (isum·d_w)·d_x added to the row's running
// sum block after block.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Sizes in bytes: a packed block of 8 rows (8 f16 scales, then 4 vectors of
// 32 nibble pairs), and one block of expanded activations: the 32 quants,
// 8·Σx as int32 and d_x as float32.
const (
	groupBlockBytes = 16 + 128
	auxSumOff       = 32
	auxScaleOff     = 36
	auxBytes        = 40
)

var mask0F, words1 Mem

var prefetch = flag.Int("prefetch", 1152, "bytes ahead of the current block that the kernels prefetch")

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	mask0F = constBytes("packedMask0F", 0x0F, 32)
	words1 = constWords("packedWords1", 1, 16)
	for t := 1; t <= 4; t++ {
		genQ4_0x8(t)
	}
	Generate()
}

func constBytes(name string, v byte, n int) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < n; i++ {
		DATA(i, U8(v))
	}
	return m
}

func constWords(name string, v uint16, n int) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < n; i++ {
		DATA(2*i, U16(v))
	}
	return m
}

// genQ4_0x8 emits the kernel for one group of 8 packed rows against tokens
// activation rows: the 8 unpacked weight vectors of a block stay in
// registers while each token's activations pass over them. The activations
// come expanded (see llm/quant.Q8_0Aux): the quants, the block's 8·Σx and
// d_x, each broadcast to a vector as it is read; the expansion, a fifth
// larger than the Q8_0 row, stays in L1 (pre-broadcast vectors, 9x larger,
// did not and measured 5-10% slower).
func genQ4_0x8(tokens int) {
	name := fmt.Sprintf("dotQ4_0x8T%dAVX2", tokens)
	TEXT(name, NOSPLIT, "func(w []byte, nb int, aux []byte, auxStride int, dst []float32, dstStride int)")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q4_0×Q8_0 dot product of packed row r (r < 8) with token t's expanded activations (t < %d), over nb blocks (AVX2, F16C).", name, tokens))
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
	acc := make([]VecVirtual, tokens)
	for t := range acc {
		acc[t] = YMM()
		VXORPS(acc[t], acc[t], acc[t])
	}

	Label(name + "_block")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	{
		// The weights stream from memory once per token; asking for them a
		// few blocks ahead keeps more of that stream in flight than the
		// hardware prefetcher does on its own.
		for off := 0; *prefetch > 0 && off < groupBlockBytes; off += 64 {
			PREFETCHT0(Mem{Base: w, Disp: *prefetch + off})
		}
		var v [8]VecVirtual
		for m := 0; m < 4; m++ {
			p := YMM()
			VMOVDQU(Mem{Base: w, Disp: 16 + 32*m}, p)
			v[2*m], v[2*m+1] = YMM(), YMM()
			VPAND(mask0F, p, v[2*m])
			VPSRLW(Imm(4), p, p)
			VPAND(mask0F, p, v[2*m+1])
		}
		dw := YMM()
		VCVTPH2PS(Mem{Base: w}, dw)
		for t := range tokens {
			s, s2, q := YMM(), YMM(), YMM()
			VPBROADCASTD(Mem{Base: ap[t]}, s)
			VPMADDUBSW(s, v[0], s)
			VPBROADCASTD(Mem{Base: ap[t], Disp: 16}, s2)
			VPMADDUBSW(s2, v[4], s2)
			for k := 1; k < 4; k++ {
				VPBROADCASTD(Mem{Base: ap[t], Disp: 4 * k}, q)
				VPMADDUBSW(q, v[k], q)
				VPADDW(q, s, s)
				VPBROADCASTD(Mem{Base: ap[t], Disp: 4 * (k + 4)}, q)
				VPMADDUBSW(q, v[k+4], q)
				VPADDW(q, s2, s2)
			}
			VPADDW(s2, s, s)
			VPMADDWD(words1, s, s)
			VPBROADCASTD(Mem{Base: ap[t], Disp: auxSumOff}, q)
			VPSUBD(q, s, s)
			VCVTDQ2PS(s, s)
			VMULPS(dw, s, s) // (isum*d_w)
			VBROADCASTSS(Mem{Base: ap[t], Disp: auxScaleOff}, q)
			VMULPS(q, s, s) // ... *d_x
			VADDPS(s, acc[t], acc[t])
		}
		ADDQ(U32(groupBlockBytes), w)
		for t := range tokens {
			ADDQ(U32(auxBytes), ap[t])
		}
		DECQ(nb)
		JMP(LabelRef(name + "_block"))
	}
	Label(name + "_done")
	d := Load(Param("dst").Base(), GP64())
	dStride := Load(Param("dstStride"), GP64())
	SHLQ(Imm(2), dStride)
	for t := range tokens {
		VMOVUPS(acc[t], Mem{Base: d})
		if t+1 < tokens {
			ADDQ(dStride, d)
		}
	}
	VZEROUPPER()
	RET()
}
