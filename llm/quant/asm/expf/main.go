// Command expf generates llm/model's AVX2 kernels built on its vexpf
// (ggml's vectorised exp): SwiGLU and softmax's in-place exp, 8 elements at
// a time, the same float32 operations in the same order as llm/model's Go
// code (multiplies and adds rounded separately, never fused), so the
// results are the same bits, vexpf's range splitting included.
package main

import (
	"flag"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The constants of llm/model's vexpf, and the other values the kernel
// broadcasts.
var consts = []struct {
	name string
	bits uint32
}{
	{"Shift", math.Float32bits(0x1.8p23)},
	{"InvLn", math.Float32bits(0x1.715476p+0)},
	{"Ln2Hi", math.Float32bits(0x1.62e4p-1)},
	{"Ln2Lo", math.Float32bits(0x1.7f7d1cp-20)},
	{"C0", math.Float32bits(0x1.0e4020p-7)},
	{"C1", math.Float32bits(0x1.573e2ep-5)},
	{"C2", math.Float32bits(0x1.555e66p-3)},
	{"C3", math.Float32bits(0x1.fffdb6p-2)},
	{"C4", math.Float32bits(0x1.ffffecp-1)},
	{"One", math.Float32bits(1)},
	{"AbsMask", 0x7fffffff},
	{"Limit", math.Float32bits(126)},
	{"Limit192", math.Float32bits(192)},
	{"SplitG", 0x82000000},
	{"Exp127", 0x7f000000},
}

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	c := map[string]Mem{}
	for _, k := range consts {
		m := GLOBL("swiglu"+k.name, RODATA|NOPTR)
		for i := 0; i < 8; i++ {
			DATA(4*i, U32(k.bits))
		}
		c[k.name] = m
	}

	genSwiGLU(c)
	genExp(c)
	Generate()
}

// expGroup emits vexpf of the 8 lanes of x. Lanes whose exponent leaves
// the normal range (|n| > 126) take vexpf's split scaling, and beyond 192
// its overflow or underflow, chosen by blends; NaN lanes take the normal
// path, as in Go.
func expGroup(c map[string]Mem, x VecVirtual) VecVirtual {
	z := YMM()
	VMULPS(c["InvLn"], x, z)
	VADDPS(c["Shift"], z, z) // z = x*InvLn + Shift
	n := YMM()
	VSUBPS(c["Shift"], z, n) // n = z - Shift
	b, t := YMM(), YMM()
	VMULPS(c["Ln2Hi"], n, t)
	VSUBPS(t, x, b) // b = x - n*Ln2Hi
	VMULPS(c["Ln2Lo"], n, t)
	VSUBPS(t, b, b) // b -= n*Ln2Lo
	e := YMM()
	VPSLLD(Imm(23), z, e) // e = bits(z) << 23
	u := YMM()
	VMULPS(b, b, u)
	t1, t2 := YMM(), YMM()
	VMULPS(c["C0"], b, t1)
	VADDPS(c["C1"], t1, t1) // C0*b + C1
	VMULPS(c["C2"], b, t2)
	VADDPS(c["C3"], t2, t2) // C2*b + C3
	VMULPS(u, t1, t1)
	VADDPS(t2, t1, t1) // (C0*b+C1)*u + (C2*b+C3)
	VMULPS(c["C4"], b, t2)
	VMULPS(u, t1, t1)
	VADDPS(t2, t1, t1) // j
	// Out of range: g = 0x82000000 where n <= 0, s1 = g + 0x7f000000,
	// s2 = e - g, result (s2*j + s2)*s1, or s1*s1 beyond 192.
	g := YMM()
	VXORPS(g, g, g)
	VCMPPS(Imm(0x12), g, n, g) // LE_OQ: n <= 0
	VANDPS(c["SplitG"], g, g)
	s1, s2 := YMM(), YMM()
	VPADDD(c["Exp127"], g, s1)
	VPSUBD(g, e, s2)
	r1 := YMM()
	VMULPS(t1, s2, r1)
	VADDPS(s2, r1, r1)
	VMULPS(s1, r1, r1)
	VMULPS(s1, s1, s1) // r2
	// Normal range: k = 2^n, result j*k + k.
	VPADDD(c["One"], e, e)
	VMULPS(e, t1, t1)
	VADDPS(e, t1, t1)
	a := YMM()
	VANDPS(c["AbsMask"], n, a)
	m := YMM()
	VCMPPS(Imm(0x1e), c["Limit"], a, m) // GT_OQ: |n| > 126
	VBLENDVPS(m, r1, t1, t1)
	VCMPPS(Imm(0x1e), c["Limit192"], a, m) // |n| > 192
	VBLENDVPS(m, s1, t1, t1)
	return t1
}

func genSwiGLU(c map[string]Mem) {
	TEXT("swiGLUAVX2", NOSPLIT, "func(dst, gate, up []float32, groups int)")
	Doc("swiGLUAVX2 computes dst[i] = gate[i]/(1+exp(-gate[i]))*up[i] for the first groups*8 elements, as llm/model's swiGLU does (AVX2).")
	dst := Load(Param("dst").Base(), GP64())
	gate := Load(Param("gate").Base(), GP64())
	up := Load(Param("up").Base(), GP64())
	groups := Load(Param("groups"), GP64())
	done := GP64()
	XORQ(done, done)

	Label("swiglu_loop")
	CMPQ(done, groups)
	JAE(LabelRef("swiglu_out"))
	g := YMM()
	VMOVUPS(Mem{Base: gate}, g)
	x := YMM()
	VXORPS(x, x, x)
	VSUBPS(g, x, x) // 0 - gate
	e := expGroup(c, x)
	VADDPS(c["One"], e, e)
	VDIVPS(e, g, g) // gate / (1 + exp)
	VMULPS(Mem{Base: up}, g, g)
	VMOVUPS(g, Mem{Base: dst})
	ADDQ(Imm(32), gate)
	ADDQ(Imm(32), up)
	ADDQ(Imm(32), dst)
	INCQ(done)
	JMP(LabelRef("swiglu_loop"))

	Label("swiglu_out")
	VZEROUPPER()
	RET()
}

func genExp(c map[string]Mem) {
	TEXT("expInPlaceAVX2", NOSPLIT, "func(x []float32, groups int)")
	Doc("expInPlaceAVX2 replaces x[i] with llm/model's vexpf(x[i]) for the first groups*8 elements (AVX2).")
	p := Load(Param("x").Base(), GP64())
	groups := Load(Param("groups"), GP64())
	done := GP64()
	XORQ(done, done)
	Label("exp_loop")
	CMPQ(done, groups)
	JAE(LabelRef("exp_out"))
	x := YMM()
	VMOVUPS(Mem{Base: p}, x)
	e := expGroup(c, x)
	VMOVUPS(e, Mem{Base: p})
	ADDQ(Imm(32), p)
	INCQ(done)
	JMP(LabelRef("exp_loop"))
	Label("exp_out")
	VZEROUPPER()
	RET()
}
