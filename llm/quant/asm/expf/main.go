// Command expf generates llm/model's AVX2 kernels built on its vexpf
// (ggml's vectorised exp): SwiGLU and softmax's in-place exp, 8 elements at
// a time, the same float32 operations in the same order as llm/model's Go
// code (multiplies and adds rounded separately, never fused), so the
// results are the same bits. A group with an element whose exponent leaves
// the normal range (|n| > 126) or is NaN stops a kernel; the caller does
// that group in Go.
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

// expGroup emits vexpf of the 8 lanes of x, or a jump to out when a lane's
// exponent leaves the normal range or is NaN.
func expGroup(c map[string]Mem, x VecVirtual, out string) VecVirtual {
	z := YMM()
	VMULPS(c["InvLn"], x, z)
	VADDPS(c["Shift"], z, z) // z = x*InvLn + Shift
	n := YMM()
	VSUBPS(c["Shift"], z, n) // n = z - Shift
	a := YMM()
	VANDPS(c["AbsMask"], n, a)
	VCMPPS(Imm(0x16), c["Limit"], a, a) // NLE_UQ: !(|n| <= 126)
	mask := GP32()
	VMOVMSKPS(a, mask)
	TESTL(mask, mask)
	JNZ(LabelRef(out))
	b, t := YMM(), YMM()
	VMULPS(c["Ln2Hi"], n, t)
	VSUBPS(t, x, b) // b = x - n*Ln2Hi
	VMULPS(c["Ln2Lo"], n, t)
	VSUBPS(t, b, b) // b -= n*Ln2Lo
	k := YMM()
	VPSLLD(Imm(23), z, k)
	VPADDD(c["One"], k, k) // k = 2^n
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
	VMULPS(k, t1, t1)
	VADDPS(k, t1, t1) // exp = j*k + k
	return t1
}

func genSwiGLU(c map[string]Mem) {
	TEXT("swiGLUAVX2", NOSPLIT, "func(dst, gate, up []float32, groups int) int")
	Doc("swiGLUAVX2 computes dst[i] = gate[i]/(1+exp(-gate[i]))*up[i] for the first groups*8 elements, as llm/model's swiGLU does, and returns how many groups it did: it stops before a group where the exponent leaves the normal range or is NaN (AVX2).")
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
	e := expGroup(c, x, "swiglu_out")
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
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func genExp(c map[string]Mem) {
	TEXT("expInPlaceAVX2", NOSPLIT, "func(x []float32, groups int) int")
	Doc("expInPlaceAVX2 replaces x[i] with llm/model's vexpf(x[i]) for the first groups*8 elements and returns how many groups it did: it stops before a group where the exponent leaves the normal range or is NaN (AVX2).")
	p := Load(Param("x").Base(), GP64())
	groups := Load(Param("groups"), GP64())
	done := GP64()
	XORQ(done, done)
	Label("exp_loop")
	CMPQ(done, groups)
	JAE(LabelRef("exp_out"))
	x := YMM()
	VMOVUPS(Mem{Base: p}, x)
	e := expGroup(c, x, "exp_out")
	VMOVUPS(e, Mem{Base: p})
	ADDQ(Imm(32), p)
	INCQ(done)
	JMP(LabelRef("exp_loop"))
	Label("exp_out")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
