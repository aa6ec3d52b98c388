// Command attn generates llm/model's AVX2 attention kernels for a group of
// 4 query heads sharing a KV head (llm/model's headGroup). They keep its
// sums exactly: every float32 product rounded, then added in float64 in
// ggml's order (d ascending within a score, positions ascending for each
// output element). The 4 heads' sums are the 4 lanes of a vector of
// doubles, so the order of each sum is unchanged.
package main

import (
	"flag"
	"fmt"
	"strings"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	genScores(2)
	genScores(4)
	genAccV(2)
	genAccV(1)
	genRoundF16()
	Generate()
}

// genScores: out[4r+i] (i < 4) is head i's score sum against the r-th of
// the rows k rows; qT holds the 4 heads' query values interleaved, d major.
// More rows in flight hide more of the float64 additions' latency (one
// chain per row) and of the cache misses on the rows.
func genScores(rows int) {
	name := fmt.Sprintf("attnScores4x%dAVX2", rows)
	args := []string{"k0"}
	for r := 1; r < rows; r++ {
		args = append(args, fmt.Sprintf("k%d", r))
	}
	TEXT(name, NOSPLIT, fmt.Sprintf("func(qT []float32, %s []uint16, out *[%d]float64)", strings.Join(args, ", "), 4*rows))
	Doc(fmt.Sprintf("%s sets out[4r+i] to Σ_d float64(qT[4d+i]*kr[d]), d ascending, for the 4 heads i and the %d rows kr (AVX2, F16C); every row must be at least as long as k0.", name, rows))
	q := Load(Param("qT").Base(), GP64())
	hd := Load(Param("k0").Len(), GP64())
	ptrs := make([]Register, rows)
	acc := make([]VecVirtual, rows)
	for r := range rows {
		ptrs[r] = Load(Param(args[r]).Base(), GP64())
		acc[r] = YMM()
		VXORPD(acc[r], acc[r], acc[r])
	}
	Label(name + "_loop")
	TESTQ(hd, hd)
	JZ(LabelRef(name + "_done"))
	q4 := XMM()
	VMOVUPS(Mem{Base: q}, q4)
	for r := range rows {
		x, p := XMM(), YMM()
		VPBROADCASTW(Mem{Base: ptrs[r]}, x)
		VCVTPH2PS(x, x)
		VMULPS(x, q4, x)
		VCVTPS2PD(x, p)
		VADDPD(p, acc[r], acc[r])
	}
	ADDQ(Imm(16), q)
	for r := range rows {
		ADDQ(Imm(2), ptrs[r])
	}
	DECQ(hd)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	out := Load(Param("out"), GP64())
	for r := range rows {
		VMOVUPD(acc[r], Mem{Base: out, Disp: 32 * r})
	}
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

// genRoundF16: x[i] rounded to half precision and back (VCVTPS2PH rounds to
// nearest even, as quant.FP32ToFP16 does), 8 at a time; a group holding a
// NaN stops it, whose payload the Go conversion may keep differently.
func genRoundF16() {
	TEXT("roundF16InPlaceAVX2", NOSPLIT, "func(x []float32, groups int) int")
	Doc("roundF16InPlaceAVX2 rounds x[i] to the nearest half-precision value, ties to even, for the first groups*8 elements and returns how many groups it did: it stops before a group holding a NaN (AVX2, F16C).")
	p := Load(Param("x").Base(), GP64())
	groups := Load(Param("groups"), GP64())
	done := GP64()
	XORQ(done, done)
	Label("round_loop")
	CMPQ(done, groups)
	JAE(LabelRef("round_out"))
	x, u := YMM(), YMM()
	VMOVUPS(Mem{Base: p}, x)
	VCMPPS(Imm(3), x, x, u) // unordered: NaN
	mask := GP32()
	VMOVMSKPS(u, mask)
	TESTL(mask, mask)
	JNZ(LabelRef("round_out"))
	h := XMM()
	VCVTPS2PH(Imm(0), x, h)
	VCVTPH2PS(h, x)
	VMOVUPS(x, Mem{Base: p})
	ADDQ(Imm(32), p)
	INCQ(done)
	JMP(LabelRef("round_loop"))
	Label("round_out")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
