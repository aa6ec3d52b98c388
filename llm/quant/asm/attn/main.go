// Command attn generates llm/model's AVX2 attention kernels for a group of
// 4 query heads sharing a KV head (llm/model's headGroup). They keep its
// sums exactly: every float32 product rounded, then added in float64 in
// ggml's order (d ascending within a score, positions ascending for each
// output element). The 4 heads' sums are the 4 lanes of a vector of
// doubles, so the order of each sum is unchanged.
package main

import (
	"flag"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	genScores()
	genAccV(2)
	genAccV(1)
	Generate()
}

// genScores: out[i] (i < 4) is head i's score sum against row k, out[4+i]
// against row kn; qT holds the 4 heads' query values interleaved, d major.
func genScores() {
	TEXT("attnScores4x2AVX2", NOSPLIT, "func(qT []float32, k, kn []uint16, out *[8]float64)")
	Doc("attnScores4x2AVX2 sets out[i] and out[4+i] to Σ_d float64(qT[4d+i]*k[d]) and the same with kn, d ascending, for the 4 heads i (AVX2, F16C); len(kn) must be at least len(k).")
	q := Load(Param("qT").Base(), GP64())
	k := Load(Param("k").Base(), GP64())
	hd := Load(Param("k").Len(), GP64())
	kn := Load(Param("kn").Base(), GP64())
	a, b := YMM(), YMM()
	VXORPD(a, a, a)
	VXORPD(b, b, b)
	Label("scores_loop")
	TESTQ(hd, hd)
	JZ(LabelRef("scores_done"))
	q4 := XMM()
	VMOVUPS(Mem{Base: q}, q4)
	for i, acc := range []VecVirtual{a, b} {
		row := k
		if i == 1 {
			row = kn
		}
		x, p := XMM(), YMM()
		VPBROADCASTW(Mem{Base: row}, x)
		VCVTPH2PS(x, x)
		VMULPS(x, q4, x)
		VCVTPS2PD(x, p)
		VADDPD(p, acc, acc)
	}
	ADDQ(Imm(16), q)
	ADDQ(Imm(2), k)
	ADDQ(Imm(2), kn)
	DECQ(hd)
	JMP(LabelRef("scores_loop"))
	Label("scores_done")
	out := Load(Param("out"), GP64())
	VMOVUPD(a, Mem{Base: out})
	VMOVUPD(b, Mem{Base: out, Disp: 32})
	VZEROUPPER()
	RET()
}

// genAccV: for positions = 2, acc[h·hd+d] = acc[h·hd+d] + float64(r[h]·v[d])
// + float64(n[h]·vn[d]); for 1, only the first term.
func genAccV(positions int) {
	name := "attnAccV4x2AVX2"
	sig := "func(acc []float64, v, vn []uint16, r, n *[4]float32)"
	if positions == 1 {
		name = "attnAccV4x1AVX2"
		sig = "func(acc []float64, v []uint16, r *[4]float32)"
	}
	TEXT(name, NOSPLIT, sig)
	Doc(name + " adds the weighted value rows to the 4 heads' accumulators (head h at acc[h*len(v):]) in llm/model's order, 4 elements at a time; len(v) must be a multiple of 4 (AVX2, F16C).")
	acc := Load(Param("acc").Base(), GP64())
	hd := Load(Param("v").Len(), GP64())
	rows := []Register{Load(Param("v").Base(), GP64())}
	weights := []Register{Load(Param("r"), GP64())}
	if positions == 2 {
		rows = append(rows, Load(Param("vn").Base(), GP64()))
		weights = append(weights, Load(Param("n"), GP64()))
	}
	// The weights broadcast, per position and head.
	var w [2][4]VecVirtual
	for p := range positions {
		for h := 0; h < 4; h++ {
			w[p][h] = XMM()
			VBROADCASTSS(Mem{Base: weights[p], Disp: 4 * h}, w[p][h])
		}
	}
	stride := GP64() // bytes between two heads' accumulators
	MOVQ(hd, stride)
	SHLQ(Imm(3), stride)
	SHRQ(Imm(2), hd)
	Label(name + "_loop")
	TESTQ(hd, hd)
	JZ(LabelRef(name + "_done"))
	var vd [2]VecVirtual
	for p := range positions {
		vd[p] = XMM()
		VCVTPH2PS(Mem{Base: rows[p]}, vd[p])
	}
	ptr := GP64()
	MOVQ(acc, ptr)
	for h := 0; h < 4; h++ {
		c := YMM()
		VMOVUPD(Mem{Base: ptr}, c)
		for p := range positions {
			x, t := XMM(), YMM()
			VMULPS(vd[p], w[p][h], x)
			VCVTPS2PD(x, t)
			VADDPD(t, c, c)
		}
		VMOVUPD(c, Mem{Base: ptr})
		if h < 3 {
			ADDQ(stride, ptr)
		}
	}
	ADDQ(Imm(32), acc)
	for p := range positions {
		ADDQ(Imm(8), rows[p])
	}
	DECQ(hd)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
