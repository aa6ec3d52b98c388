// Command packedq6k generates llm/quant's kernels for Q6_K weights repacked
// eight rows at a time (see llm/quant/packedq6k.go for the layout and the
// activation expansion).
//
// Every 32-bit lane holds one row. Per block, class l and 64-element part
// jj, the two vectors of unsigned quants (0..63) are rebuilt from P and N
// (q0 = P&63, q1 = P>>2&48 | nibble of N) once for all the tokens; per
// token and half, one VPMADDUBSW against the broadcast quad gives the words
// of two 16-element groups (|word| ≤ 2·63·128), VPSUBW of the broadcast
// offset words 32·Σx removes the +32 of the quants (the difference is the
// reference's Σ(q-32)·x, |·| ≤ 2·32·128), and VPMADDWD with the groups'
// scales gives the row's exact scaled class sum for the half; the eight
// (jj, h) added give the reference's integer lane. The float steps are the
// reference's, lane by lane: each class's partial sum gains d·float(lane),
// and the 8 class sums are added to zero in order at the end. The float
// partial sums and the sign-extended scales live in the frame: the former
// do not fit in registers next to the weights once there are two tokens,
// and the latter are extended once per block and read 8 times.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Offsets in a packed block of 8 rows and in one block of expanded
// activations (both documented in llm/quant/packedq6k.go).
const (
	blockBytes  = 8 * 210
	offScales   = 16
	offQuants   = 144
	classBytes  = 192
	auxXU       = 64 * 8 // the quads of x+128, after the (quad, offset) pairs
	auxScaleOff = auxXU + 64*4
	auxBytes    = auxScaleOff + 32
	dSlot       = 8 // frame slot of d·d_x, after the 8 class sums
	slotsPerTok = 9
	scaleSlots  = 8
)

// tokenRuns are the token counts with a kernel of their own. Eight tokens
// (their accumulators still fit in registers) share each block's unpacking
// and excess over the most tokens: 5-10% faster than two calls of four
// (BenchmarkPackedQ6KRatio, 8 tokens); the others cover remainders.
var tokenRuns = []int{1, 2, 3, 4, 8}

var mask0F, mask30, mask3F, bytes32, bytes128 Mem

// Eight blocks ahead measured best on the 54 MB output matrix of TinyLlama
// (BenchmarkPackedQ6KRatio, rows=32000); two blocks left one token at parity
// with the row-major kernel there.
var prefetch = flag.Int("prefetch", 8*blockBytes, "bytes ahead of the current block that the kernels prefetch")

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	mask0F = constBytes("packedQ6KMask0F", 0x0F)
	mask30 = constBytes("packedQ6KMask30", 0x30)
	mask3F = constBytes("packedQ6KMask3F", 0x3F)
	bytes32 = constBytes("packedQ6KBytes32", 32)
	bytes128 = constBytes("packedQ6KBytes128", 128)
	for _, t := range tokenRuns {
		genQ6Kx8(t)
	}
	Generate()
}

func constBytes(name string, v byte) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(i, U8(v))
	}
	return m
}

func pOff(l, jj int) int { return offQuants + classBytes*l + 96*(jj/2) + 32*(jj%2) }
func nOff(l, jj int) int { return offQuants + classBytes*l + 96*(jj/2) + 64 }

func genQ6Kx8(tokens int) {
	name := fmt.Sprintf("dotQ6Kx8T%dAVX2", tokens)
	// Not NOSPLIT: the frame (up to 2.6 KB, 8 tokens) is over the nosplit
	// limit, so the assembler adds the stack check.
	TEXT(name, 0, "func(w []byte, nb int, aux []byte, auxStride int, dst []float32, dstStride int)")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q6_K×Q8_K dot product of packed row r (r < 8) with token t's expanded activations (t < %d), over nb blocks (AVX2, F16C).", name, tokens))
	// The block's scales as words, then per token the 8 class sums and
	// d·d_x of the current block.
	frame := AllocLocal(32 * (scaleSlots + slotsPerTok*tokens))
	scale := func(s int) Mem { return frame.Offset(32 * s) }
	slot := func(t, s int) Mem { return frame.Offset(32 * (scaleSlots + slotsPerTok*t + s)) }

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
			for s := 0; s < 8; s++ {
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
	for s := 0; s < scaleSlots; s++ {
		sc := YMM()
		VPMOVSXBW(Mem{Base: w, Disp: offScales + 16*s}, sc)
		VMOVDQU(sc, scale(s))
	}
	{
		dw := YMM()
		VCVTPH2PS(Mem{Base: w}, dw)
		for t := range tokens {
			d := YMM()
			VMULPS(Mem{Base: ap[t], Disp: auxScaleOff}, dw, d)
			VMOVUPS(d, slot(t, dSlot))
		}
	}
	for l := 0; l < 8; l++ {
		c := make([]VecVirtual, tokens)
		var nib, excess VecVirtual
		for jj := 0; jj < 4; jj++ {
			if jj%2 == 0 {
				nib = YMM()
				VMOVDQU(Mem{Base: w, Disp: nOff(l, jj)}, nib)
			}
			p := YMM()
			VMOVDQU(Mem{Base: w, Disp: pOff(l, jj)}, p)
			q0, q1, lo := YMM(), YMM(), YMM()
			VPAND(mask3F, p, q0)
			VPSRLW(Imm(2), p, q1)
			VPAND(mask30, q1, q1)
			if jj%2 == 0 {
				VPAND(mask0F, nib, lo)
			} else {
				VPSRLW(Imm(4), nib, lo)
				VPAND(mask0F, lo, lo)
			}
			VPOR(lo, q1, q1)
			if tokens == 1 {
				// Unsigned quants against the quad, less 32·Σx.
				for h, q := range []VecVirtual{q0, q1} {
					v := 2*(4*l+jj) + h
					m, off := YMM(), YMM()
					VPBROADCASTD(Mem{Base: ap[0], Disp: 8 * v}, m)
					VPMADDUBSW(m, q, m)
					VPBROADCASTD(Mem{Base: ap[0], Disp: 8*v + 4}, off)
					VPSUBW(off, m, m)
					VPMADDWD(scale(2*jj+h), m, m)
					if jj == 0 && h == 0 {
						c[0] = m
					} else {
						VPADDD(m, c[0], c[0])
					}
				}
				continue
			}
			// The signed weights w = q-32, and the part's two scale vectors,
			// read once for the excess and all the tokens.
			wq := [2]VecVirtual{q0, q1}
			var sc [2]VecVirtual
			for h := range wq {
				VPSUBB(bytes32, wq[h], wq[h])
				sc[h] = YMM()
				VMOVDQU(scale(2*jj+h), sc[h])
			}
			// The excess 128·Σ scale·w that the offset activations add.
			for h := range wq {
				e := YMM()
				VMOVDQU(bytes128, e)
				VPMADDUBSW(wq[h], e, e)
				VPMADDWD(sc[h], e, e)
				if jj == 0 && h == 0 {
					excess = e
				} else {
					VPADDD(e, excess, excess)
				}
			}
			for t := range tokens {
				for h := range wq {
					v := 2*(4*l+jj) + h
					m := YMM()
					VPBROADCASTD(Mem{Base: ap[t], Disp: auxXU + 4*v}, m)
					VPMADDUBSW(wq[h], m, m)
					VPMADDWD(sc[h], m, m)
					if jj == 0 && h == 0 {
						c[t] = m
					} else {
						VPADDD(m, c[t], c[t])
					}
				}
			}
		}
		for t := range tokens {
			if tokens > 1 {
				VPSUBD(excess, c[t], c[t])
			}
			VCVTDQ2PS(c[t], c[t])
			VMULPS(slot(t, dSlot), c[t], c[t])
			VADDPS(slot(t, l), c[t], c[t])
			VMOVUPS(c[t], slot(t, l))
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
		// Zero plus the classes in order, as the reference: 0 + -0 is +0.
		s := YMM()
		VXORPS(s, s, s)
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
