package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The tile kernels keep up to 640 bytes of locals, more than a NOSPLIT
// function may safely take from its caller's stack guard, so they are
// declared without NOSPLIT and get the assembler's stack check.
//
// The tile kernels compute 8 weight rows against T tokens at once. Each
// vector lane holds one weight row, so the reference's sequential float32
// sum over blocks becomes one VADDPS per block for 8 rows (every lane keeps
// its own row's order exactly), and each weight block is unpacked once for
// all T tokens.

var (
	bytes80      Mem // 0x80 in every byte: int8 to offset-128 uint8
	nibbleShifts Mem // shifts the high 128 bits' qwords right by 4
)

func tileConstants() {
	bytes80 = constBytes("bytes80", repeat([]byte{0x80}, 32))
	nibbleShifts = constBytes("nibbleShifts", append(make([]byte, 16), 4, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0))
}

// tileAddr addresses 8 rows (or 4 tokens) at a fixed stride: base0 + i*stride
// for i < 4, base4 + (i-4)*stride above, with stride3 = 3*stride.
type tileAddr struct {
	base0, base4, stride, stride3 Register
}

func (a tileAddr) at(i, disp int) Mem {
	base := a.base0
	if i >= 4 {
		base = a.base4
		i -= 4
	}
	switch i {
	case 0:
		return Mem{Base: base, Disp: disp}
	case 1:
		return Mem{Base: base, Index: a.stride, Scale: 1, Disp: disp}
	case 2:
		return Mem{Base: base, Index: a.stride, Scale: 2, Disp: disp}
	default:
		return Mem{Base: base, Index: a.stride3, Scale: 1, Disp: disp}
	}
}

// rowSums8 reduces 8 int16x16 vectors p(r), row r's VPMADDUBSW pair sums,
// to the int32 sums of each row's 16 words, in lane r. Two unpack-and-add
// levels keep each row's words adjacent (dword, then qword unpacks), with
// sums of at most 8 words (|.| ≤ 8*3840 = 30720, inside int16 by the
// callers' bounds); VPMADDWD with ones then widens adjacent pairs, giving
// per 128-bit half the sums of 4 rows, and a cross-half add finishes.
// p is called in row order as the tree needs its vectors, so that few are
// live at once (8 more registers hold weights).
func rowSums8(p func(r int) VecVirtual) VecVirtual {
	add := func(a, b VecVirtual, lo, hi func(...Op)) VecVirtual {
		l, h := YMM(), YMM()
		lo(b, a, l)
		hi(b, a, h)
		VPADDW(h, l, l)
		return l
	}
	level1 := func(r int) VecVirtual { return add(p(r), p(r+1), VPUNPCKLDQ, VPUNPCKHDQ) }
	four := func(r int) VecVirtual {
		a := level1(r)
		b := add(a, level1(r+2), VPUNPCKLQDQ, VPUNPCKHQDQ)
		VPMADDWD(words1, b, b)
		return b
	}
	lo := four(0)
	hi := four(4)
	l, h := YMM(), YMM()
	VPERM2I128(Imm(0x20), hi, lo, l)
	VPERM2I128(Imm(0x31), hi, lo, h)
	VPADDD(h, l, l)
	return l
}

// Weights too big for L2 arrive late: the kernels are slow enough per byte
// that the hardware prefetcher does not run ahead of them (measured: up to
// 2x slower per block on TinyLlama's larger matrices than on L2-resident
// ones, until these prefetches). prefetchDistance bytes ahead covers the
// latency of several blocks.
const prefetchDistance = 1024

// prefetchAhead prefetches, for a kernel reading one row of blockBytes-byte
// blocks from w, the cache lines of the block prefetchDistance ahead.
func prefetchAhead(w Register, blockBytes int) {
	for off := 0; off < blockBytes; off += 64 {
		PREFETCHT0(Mem{Base: w, Disp: prefetchDistance + off})
	}
}

// prefetchRows8 prefetches, for a kernel walking 8 rows in step, a line of
// each row prefetchDistance/4 ahead (a row's blocks are small, so a line
// per row per block keeps well ahead).
func prefetchRows8(wa tileAddr) {
	for r := 0; r < 8; r++ {
		PREFETCHT0(wa.at(r, prefetchDistance/4))
	}
}

// genQ8_0TileAux emits q8_0TileAuxAVX2, which precomputes, once per token,
// what every 8-row group of a Q4_0 tile needs of each activation block:
// 8*Σx as an int32 (the nibbles' -8 offset, applied once per row sum rather
// than per product) and d_x as a float32.
func genQ8_0TileAux() {
	TEXT("q8_0TileAuxAVX2", NOSPLIT, "func(x []byte, nb int, aux []uint32)")
	Pragma("noescape")
	Doc("q8_0TileAuxAVX2 sets aux[2b] to 8 times the sum of the quants of Q8_0 block b of x (an int32) and aux[2b+1] to its scale as float32 bits, for nb blocks (AVX2, F16C).")
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	a := Load(Param("aux").Base(), GP64())
	c80, zero := YMM(), YMM()
	VMOVDQU(bytes80, c80)
	VPXOR(zero, zero, zero)
	Label("q8_0TileAux_loop")
	TESTQ(nb, nb)
	JZ(LabelRef("q8_0TileAux_done"))
	// x+128 is unsigned, so VPSADBW against zero sums it: Σx = Σ(x+128) - 4096.
	u := YMM()
	VPXOR(Mem{Base: x, Disp: 2}, c80, u)
	VPSADBW(zero, u, u)
	s, t := XMM(), XMM()
	VEXTRACTI128(Imm(1), u, s)
	VPADDQ(u.AsX(), s, s)
	VPSHUFD(Imm(0x4e), s, t)
	VPADDQ(t, s, s)
	sum := GP32()
	VMOVD(s, sum)
	SUBL(U32(32*128), sum)
	SHLL(Imm(3), sum)
	MOVL(sum, Mem{Base: a})
	h := GP32()
	MOVWLZX(Mem{Base: x}, h)
	d := XMM()
	VMOVD(h, d)
	VCVTPH2PS(d, d)
	VMOVSS(d, Mem{Base: a, Disp: 4})
	ADDQ(Imm(q8_0Bytes), x)
	ADDQ(Imm(8), a)
	DECQ(nb)
	JMP(LabelRef("q8_0TileAux_loop"))
	Label("q8_0TileAux_done")
	VZEROUPPER()
	RET()
}

// genQ4_0Tile emits dotQ4_0Tile8x<T>AVX2: 8 Q4_0 rows × T Q8_0 tokens.
//
// Per block and row, the unsigned nibbles q (low nibbles in the low 128 bits,
// high nibbles in the high 128, matching x's element order) meet each token
// in one VPMADDUBSW: int16 pair sums of q*x, |.| ≤ 2*15*128. The 8 rows'
// vectors are transposed and added in int16 (16 elements, |.| ≤ 30720),
// leaving in word r of each 128-bit half row r's sum over that half; the
// halves are widened and added, and 8*Σx (from q8_0TileAuxAVX2) subtracted:
// the exact Σ(q-8)*x of each row. Then float32(float32(isum)*d_w)*d_x is
// added to the token's accumulator, the reference's order.
func genQ4_0Tile(T int) {
	name := fmt.Sprintf("dotQ4_0Tile8x%dAVX2", T)
	TEXT(name, 0, "func(w []byte, rowBytes int, x []byte, xStride int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q4_0×Q8_0 dot product of weight row r < 8 (rowBytes apart in w) with token t < %d (xStride apart in x, its q8_0TileAuxAVX2 output auxStride apart in aux), nb blocks each (AVX2, F16C).", name, T))
	acc := AllocLocal(32 * T)

	wa := tileAddr{base0: Load(Param("w").Base(), GP64()), base4: GP64(), stride: Load(Param("rowBytes"), GP64()), stride3: GP64()}
	LEAQ(Mem{Base: wa.stride, Index: wa.stride, Scale: 2}, wa.stride3)
	LEAQ(Mem{Base: wa.base0, Index: wa.stride, Scale: 4}, wa.base4)
	xa := tileAddr{base0: Load(Param("x").Base(), GP64()), stride: Load(Param("xStride"), GP64()), stride3: GP64()}
	LEAQ(Mem{Base: xa.stride, Index: xa.stride, Scale: 2}, xa.stride3)
	aa := tileAddr{base0: Load(Param("aux").Base(), GP64()), stride: Load(Param("auxStride"), GP64()), stride3: GP64()}
	SHLQ(Imm(2), aa.stride)
	LEAQ(Mem{Base: aa.stride, Index: aa.stride, Scale: 2}, aa.stride3)
	if T > 4 {
		xa.base4, aa.base4 = GP64(), GP64()
		LEAQ(Mem{Base: xa.base0, Index: xa.stride, Scale: 4}, xa.base4)
		LEAQ(Mem{Base: aa.base0, Index: aa.stride, Scale: 4}, aa.base4)
	}
	nb := Load(Param("nb"), GP64())

	z := YMM()
	VXORPS(z, z, z)
	for t := 0; t < T; t++ {
		VMOVUPS(z, acc.Offset(32*t))
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	{
		sc := XMM()
		VPXOR(sc, sc, sc)
		for r := 0; r < 8; r++ {
			VPINSRW(Imm(uint64(r)), wa.at(r, 0), sc, sc)
		}
		dw := YMM()
		VCVTPH2PS(sc, dw)

		var q [8]VecVirtual
		for r := range q {
			q[r] = YMM()
			VBROADCASTI128(wa.at(r, 2), q[r])
			VPSRLVQ(nibbleShifts, q[r], q[r])
			VPAND(mask0F, q[r], q[r])
		}
		for t := 0; t < T; t++ {
			xv := YMM()
			VMOVDQU(xa.at(t, 2), xv)
			lo := rowSums8(func(r int) VecVirtual {
				p := YMM()
				VPMADDUBSW(xv, q[r], p)
				return p
			})
			o := YMM()
			VPBROADCASTD(aa.at(t, 0), o)
			VPSUBD(o, lo, lo)
			f := YMM()
			VCVTDQ2PS(lo, f)
			VMULPS(dw, f, f)
			dx := YMM()
			VBROADCASTSS(aa.at(t, 4), dx)
			VMULPS(dx, f, f)
			VADDPS(acc.Offset(32*t), f, f)
			VMOVUPS(f, acc.Offset(32*t))
		}
		prefetchRows8(wa)
		ADDQ(Imm(q4_0Bytes), wa.base0)
		ADDQ(Imm(q4_0Bytes), wa.base4)
		ADDQ(Imm(q8_0Bytes), xa.base0)
		ADDQ(Imm(8), aa.base0)
		if T > 4 {
			ADDQ(Imm(q8_0Bytes), xa.base4)
			ADDQ(Imm(8), aa.base4)
		}
		DECQ(nb)
		JMP(LabelRef(name + "_loop"))
	}
	Label(name + "_done")
	storeTile(acc, T)
	VZEROUPPER()
	RET()
}

// storeTile copies the T accumulators of 8 floats to dst, dstStride floats
// apart.
func storeTile(acc Mem, T int) {
	d := Load(Param("dst").Base(), GP64())
	ds := Load(Param("dstStride"), GP64())
	SHLQ(Imm(2), ds)
	for t := 0; t < T; t++ {
		v := YMM()
		VMOVUPS(acc.Offset(32*t), v)
		VMOVUPS(v, Mem{Base: d})
		if t+1 < T {
			ADDQ(ds, d)
		}
	}
}

func genTiles() {
	tileConstants()
	genQ8_0TileAux()
	genQ8KTileAux()
	genQ4_0Tile(8)
	for T := 1; T <= 4; T++ {
		genQ4_0Tile(T)
		genQ6KTile(T)
		genQ8_0Tile(T)
		genQ4KTile(T)
	}
}

// q8KAuxBytes is what q8KTileAuxAVX2 writes per Q8_K block: the 8 groups of
// 32 quants in lanePair order, the 8 matching VPMADDUBSW(32, x) offsets
// (for Q6_K), the 16 bsums (for Q4_K's mins) and d_x (padded to 32 bytes).
const (
	q8KAuxBytes = 8*32 + 8*32 + 32 + 32
	q8KAuxBsums = 512
	q8KAuxD     = 544
)

// genQ8KTileAux emits q8KTileAuxAVX2, the per-token half of the Q6_K tile
// kernels' work: each token's quants in the pairing the weights are
// shuffled to (see q6KBody), and the products of 32 with them that turn the
// unsigned 6-bit weights into signed ones, done once per token rather than
// once per row.
func genQ8KTileAux() {
	TEXT("q8KTileAuxAVX2", NOSPLIT, "func(x []byte, nb int, aux []uint32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("q8KTileAuxAVX2 writes %d bytes per Q8_K block of x to aux: its quants in lanePair order, their products with 32 summed in pairs (VPMADDUBSW), its bsums and d_x (AVX2).", q8KAuxBytes))
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	a := Load(Param("aux").Base(), GP64())
	pair, c32 := YMM(), YMM()
	VMOVDQU(lanePair, pair)
	VMOVDQU(bytes32, c32)
	Label("q8KTileAux_loop")
	TESTQ(nb, nb)
	JZ(LabelRef("q8KTileAux_done"))
	for g := 0; g < 8; g++ {
		v, o := YMM(), YMM()
		VMOVDQU(Mem{Base: x, Disp: 4 + 32*g}, v)
		VPSHUFB(pair, v, v)
		VMOVDQU(v, Mem{Base: a, Disp: 32 * g})
		VPMADDUBSW(v, c32, o)
		VMOVDQU(o, Mem{Base: a, Disp: 256 + 32*g})
	}
	bs := YMM()
	VMOVDQU(Mem{Base: x, Disp: 4 + 256}, bs)
	VMOVDQU(bs, Mem{Base: a, Disp: q8KAuxBsums})
	d := GP32()
	MOVL(Mem{Base: x}, d)
	MOVL(d, Mem{Base: a, Disp: q8KAuxD})
	ADDQ(U32(q8KBytes), x)
	ADDQ(U32(q8KAuxBytes), a)
	DECQ(nb)
	JMP(LabelRef("q8KTileAux_loop"))
	Label("q8KTileAux_done")
	VZEROUPPER()
	RET()
}

// genQ6KTile emits dotQ6KTile<T>AVX2: rows Q6_K rows × T Q8_K tokens. The
// reference keeps 8 float lanes per row, which the single-row kernel already
// holds in one vector; what a tile adds is decoding each block's 6-bit
// values and scales once for T tokens, with the tokens' shuffles and offsets
// precomputed by q8KTileAuxAVX2. The integer lanes, the float32 product
// d_w*d_x, the per-lane update and the final in-order lane sum are the
// single-row kernel's.
func genQ6KTile(T int) {
	name := fmt.Sprintf("dotQ6KTile%dAVX2", T)
	TEXT(name, 0, "func(w []byte, rowBytes int, rows int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q6_K×Q8_K dot product of weight row r < rows (rowBytes apart in w) with token t < %d, given as its q8KTileAuxAVX2 output (auxStride apart in aux), nb blocks each (AVX2, F16C).", name, T))
	acc := AllocLocal(32 * T)
	scales := AllocLocal(32 * 4)
	dwMem := AllocLocal(8)

	wRow := Load(Param("w").Base(), GP64())
	rb := Load(Param("rowBytes"), GP64())
	rows := Load(Param("rows"), GP64())
	aux0 := Load(Param("aux").Base(), GP64())
	aa := tileAddr{base0: GP64(), stride: Load(Param("auxStride"), GP64()), stride3: GP64()}
	SHLQ(Imm(2), aa.stride)
	LEAQ(Mem{Base: aa.stride, Index: aa.stride, Scale: 2}, aa.stride3)
	da := tileAddr{base0: Load(Param("dst").Base(), GP64()), stride: Load(Param("dstStride"), GP64()), stride3: GP64()}
	SHLQ(Imm(2), da.stride)
	LEAQ(Mem{Base: da.stride, Index: da.stride, Scale: 2}, da.stride3)

	Label(name + "_row")
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	z := YMM()
	VXORPS(z, z, z)
	for t := 0; t < T; t++ {
		VMOVUPS(z, acc.Offset(32*t))
	}
	w := GP64()
	MOVQ(wRow, w)
	MOVQ(aux0, aa.base0)
	nb := Load(Param("nb"), GP64())

	Label(name + "_block")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_rowDone"))
	{
		sc := XMM()
		VMOVDQU(Mem{Base: w, Disp: 192}, sc)
		for p := 0; p < 4; p++ {
			s := YMM()
			VPSHUFB(q6KScaleMask[p], sc, s.AsX())
			VPMOVSXBW(s.AsX(), s)
			VMOVDQU(s, scales.Offset(32*p))
		}
		dw := XMM()
		VPXOR(dw, dw, dw)
		VPINSRW(Imm(0), Mem{Base: w, Disp: 208}, dw, dw)
		VCVTPH2PS(dw, dw)
		VMOVSS(dw, dwMem)

		var g [8]VecVirtual
		for h := 0; h < 2; h++ {
			values := q6KHalf(w, h)
			for k := 0; k < 4; k++ {
				g[4*h+k] = values(k)
			}
		}
		for t := 0; t < T; t++ {
			accLo, accHi := YMM(), YMM()
			VPXOR(accLo, accLo, accLo)
			VPXOR(accHi, accHi, accHi)
			for p := 0; p < 4; p++ {
				// (g-32)*x in int16 pairs: g*x - 32*x, each ≤ 2*63*128.
				var ab [2]VecVirtual
				for i := range ab {
					k := 2*p + i
					ab[i] = YMM()
					VPMADDUBSW(aa.at(t, 32*k), g[k], ab[i])
					VPSUBW(aa.at(t, 256+32*k), ab[i], ab[i])
				}
				l, h := YMM(), YMM()
				VPUNPCKLWD(ab[1], ab[0], l)
				VPUNPCKHWD(ab[1], ab[0], h)
				VPMADDWD(scales.Offset(32*p), l, l)
				VPMADDWD(scales.Offset(32*p), h, h)
				VPADDD(l, accLo, accLo)
				VPADDD(h, accHi, accHi)
			}
			lanes := combineLanes(accLo, accHi)
			d := XMM()
			VMOVSS(dwMem, d)
			VMULSS(aa.at(t, q8KAuxD), d, d)
			db, fl := YMM(), YMM()
			VBROADCASTSS(d, db)
			VCVTDQ2PS(lanes, fl)
			VMULPS(db, fl, fl)
			VADDPS(acc.Offset(32*t), fl, fl)
			VMOVUPS(fl, acc.Offset(32*t))
		}
		prefetchAhead(w, q6KBytes)
		ADDQ(U32(q6KBytes), w)
		ADDQ(U32(q8KAuxBytes), aa.base0)
		DECQ(nb)
		JMP(LabelRef(name + "_block"))
	}
	Label(name + "_rowDone")
	for t := 0; t < T; t++ {
		sums := YMM()
		VMOVUPS(acc.Offset(32*t), sums)
		sumf := XMM()
		VXORPS(sumf, sumf, sumf)
		finishLanes(sums, sumf)
		VMOVSS(sumf, da.at(t, 0))
	}
	ADDQ(Imm(4), da.base0)
	ADDQ(rb, wRow)
	DECQ(rows)
	JMP(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// transposeSumD reduces 8 int32x8 vectors p(r) to one whose lane r is the sum
// of p(r)'s lanes: the int32 counterpart of transposeSumW, its last level
// crossing the 128-bit halves.
func transposeSumD(p func(r int) VecVirtual) VecVirtual {
	add := func(a, b VecVirtual, lo, hi func(...Op)) VecVirtual {
		l, h := YMM(), YMM()
		lo(b, a, l)
		hi(b, a, h)
		VPADDD(h, l, l)
		return l
	}
	level1 := func(r int) VecVirtual { return add(p(r), p(r+1), VPUNPCKLDQ, VPUNPCKHDQ) }
	level2 := func(r int) VecVirtual {
		a := level1(r)
		return add(a, level1(r+2), VPUNPCKLQDQ, VPUNPCKHQDQ)
	}
	b0 := level2(0)
	b1 := level2(4)
	l, h := YMM(), YMM()
	VPERM2I128(Imm(0x20), b1, b0, l)
	VPERM2I128(Imm(0x31), b1, b0, h)
	VPADDD(h, l, l)
	return l
}

// genQ8_0Tile emits dotQ8_0Tile8x<T>AVX2: 8 Q8_0 rows × T Q8_0 tokens, lane
// r of each vector holding row r. Weights and activations are widened to
// int16 (VPMADDUBSW's unsigned-times-signed would lose -128×-128 pairs) and
// multiplied with VPMADDWD; each block's widened weights go to the stack
// once and serve all T tokens. The 8 rows' int32 partial sums are transposed
// and added into exact row sums, then float32(isum)*float32(d_w*d_x) is
// added to the token's accumulator, the reference's order.
func genQ8_0Tile(T int) {
	name := fmt.Sprintf("dotQ8_0Tile8x%dAVX2", T)
	TEXT(name, 0, "func(w []byte, rowBytes int, x []byte, xStride int, nb int, dst []float32, dstStride int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q8_0×Q8_0 dot product of weight row r < 8 (rowBytes apart in w) with token t < %d (xStride apart in x), nb blocks each (AVX2, F16C).", name, T))
	acc := AllocLocal(32 * T)
	wide := AllocLocal(8 * 64)

	wa := tileAddr{base0: Load(Param("w").Base(), GP64()), base4: GP64(), stride: Load(Param("rowBytes"), GP64()), stride3: GP64()}
	LEAQ(Mem{Base: wa.stride, Index: wa.stride, Scale: 2}, wa.stride3)
	LEAQ(Mem{Base: wa.base0, Index: wa.stride, Scale: 4}, wa.base4)
	xa := tileAddr{base0: Load(Param("x").Base(), GP64()), stride: Load(Param("xStride"), GP64()), stride3: GP64()}
	LEAQ(Mem{Base: xa.stride, Index: xa.stride, Scale: 2}, xa.stride3)
	nb := Load(Param("nb"), GP64())

	z := YMM()
	VXORPS(z, z, z)
	for t := 0; t < T; t++ {
		VMOVUPS(z, acc.Offset(32*t))
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	{
		sc := XMM()
		VPXOR(sc, sc, sc)
		for r := 0; r < 8; r++ {
			VPINSRW(Imm(uint64(r)), wa.at(r, 0), sc, sc)
		}
		dw := YMM()
		VCVTPH2PS(sc, dw)
		for r := 0; r < 8; r++ {
			for half := 0; half < 2; half++ {
				v := YMM()
				VPMOVSXBW(wa.at(r, 2+16*half), v)
				VMOVDQU(v, wide.Offset(64*r+32*half))
			}
		}
		for t := 0; t < T; t++ {
			x0, x1 := YMM(), YMM()
			VPMOVSXBW(xa.at(t, 2), x0)
			VPMOVSXBW(xa.at(t, 18), x1)
			isum := transposeSumD(func(r int) VecVirtual {
				p, q := YMM(), YMM()
				VPMADDWD(wide.Offset(64*r), x0, p)
				VPMADDWD(wide.Offset(64*r+32), x1, q)
				VPADDD(q, p, p)
				return p
			})
			ds := YMM()
			VPBROADCASTW(xa.at(t, 0), ds.AsX())
			VCVTPH2PS(ds.AsX(), ds)
			VMULPS(ds, dw, ds) // d_w*d_x
			f := YMM()
			VCVTDQ2PS(isum, f)
			VMULPS(ds, f, f)
			VADDPS(acc.Offset(32*t), f, f)
			VMOVUPS(f, acc.Offset(32*t))
		}
		prefetchRows8(wa)
		ADDQ(Imm(q8_0Bytes), wa.base0)
		ADDQ(Imm(q8_0Bytes), wa.base4)
		ADDQ(Imm(q8_0Bytes), xa.base0)
		DECQ(nb)
		JMP(LabelRef(name + "_loop"))
	}
	Label(name + "_done")
	storeTile(acc, T)
	VZEROUPPER()
	RET()
}

// genQ4KTile emits dotQ4KTile<T>AVX2: rows Q4_K rows × T Q8_K tokens, like
// genQ6KTile: each block's nibbles, scales and mins are unpacked once for T
// tokens (whose shuffled quants, bsums and d_x come from q8KTileAuxAVX2),
// and the float steps are the single-row kernel's (q4KBody): 8 lane sums
// plus a scalar sum of the mins' terms, lanes added to it in order at the end.
func genQ4KTile(T int) {
	name := fmt.Sprintf("dotQ4KTile%dAVX2", T)
	TEXT(name, 0, "func(w []byte, rowBytes int, rows int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets dst[t*dstStride+r] to the reference Q4_K×Q8_K dot product of weight row r < rows (rowBytes apart in w) with token t < %d, given as its q8KTileAuxAVX2 output (auxStride apart in aux), nb blocks each (AVX2, F16C).", name, T))
	acc := AllocLocal(32 * T)
	minSums := AllocLocal(4 * 4) // the scalar sumf of each token
	scales := AllocLocal(32 * 4)
	minsMem := AllocLocal(32)
	dMem := AllocLocal(8) // d_w, dmin_w

	// Rows are consecutive and nb blocks long, so the block loop leaves w at
	// the next row. General registers are short (the scale unpacking needs
	// five), hence the reloads.
	w := Load(Param("w").Base(), GP64())
	rows := Load(Param("rows"), GP64())
	aa := tileAddr{base0: GP64(), stride: Load(Param("auxStride"), GP64()), stride3: GP64()}
	SHLQ(Imm(2), aa.stride)
	LEAQ(Mem{Base: aa.stride, Index: aa.stride, Scale: 2}, aa.stride3)
	dRow := Load(Param("dst").Base(), GP64())
	ds := Load(Param("dstStride"), GP64())
	SHLQ(Imm(2), ds)

	Label(name + "_row")
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	z := YMM()
	VXORPS(z, z, z)
	for t := 0; t < T; t++ {
		VMOVUPS(z, acc.Offset(32*t))
	}
	VMOVUPS(z.AsX(), minSums)
	Load(Param("aux").Base(), aa.base0)
	nb := Load(Param("nb"), GP64())

	Label(name + "_block")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_rowDone"))
	{
		// The 6-bit scales and mins: bytes 0-7 scales, 8-15 mins.
		sc := q4KScalesMins(w)
		mins := YMM()
		VPSHUFB(q4KMinsMask, sc.AsX(), mins.AsX())
		VPMOVZXBW(mins.AsX(), mins)
		VMOVDQU(mins, minsMem)
		VINSERTI128(Imm(1), sc.AsX(), sc, sc)
		for j := 0; j < 4; j++ {
			s := YMM()
			VPSHUFB(q4KScaleMask[j], sc, s)
			VMOVDQU(s, scales.Offset(32*j))
		}
		dd := XMM()
		VPXOR(dd, dd, dd)
		VPINSRW(Imm(0), Mem{Base: w}, dd, dd)
		VPINSRW(Imm(1), Mem{Base: w, Disp: 2}, dd, dd)
		VCVTPH2PS(dd, dd)
		VMOVQ(dd, dMem)

		var nib [8]VecVirtual // low nibbles of 64j.., high nibbles of 64j+32..
		for j := 0; j < 4; j++ {
			q, lo := YMM(), YMM()
			VMOVDQU(Mem{Base: w, Disp: 16 + 32*j}, q)
			VPSHUFB(lanePair, q, q)
			VPAND(mask0F, q, lo)
			VPSRLW(Imm(4), q, q)
			VPAND(mask0F, q, q)
			nib[2*j], nib[2*j+1] = lo, q
		}
		for tk := 0; tk < T; tk++ {
			// sumMins = Σ bsums[j]*mins[j/2], exact in int32.
			m := YMM()
			VMOVDQU(minsMem, m)
			VPMADDWD(aa.at(tk, q8KAuxBsums), m, m)
			sumMins := hsum1(m)

			accLo, accHi := YMM(), YMM()
			VPXOR(accLo, accLo, accLo)
			VPXOR(accHi, accHi, accHi)
			for j := 0; j < 4; j++ {
				lo, hi := YMM(), YMM()
				VPMADDUBSW(aa.at(tk, 64*j), nib[2*j], lo) // ≤ 2*15*128: no saturation
				VPMADDUBSW(aa.at(tk, 64*j+32), nib[2*j+1], hi)
				l, h := YMM(), YMM()
				VPUNPCKLWD(hi, lo, l)
				VPUNPCKHWD(hi, lo, h)
				VPMADDWD(scales.Offset(32*j), l, l)
				VPMADDWD(scales.Offset(32*j), h, h)
				VPADDD(l, accLo, accLo)
				VPADDD(h, accHi, accHi)
			}
			lanes := combineLanes(accLo, accHi)

			// d = d_w*d_x, dmin = dmin_w*d_x, each a float32 product.
			d := XMM()
			VMOVQ(dMem, d)
			dx := XMM()
			VBROADCASTSS(aa.at(tk, q8KAuxD), dx)
			VMULPS(dx, d, d)
			db, fl := YMM(), YMM()
			VBROADCASTSS(d, db)
			VCVTDQ2PS(lanes, fl)
			VMULPS(db, fl, fl)
			VADDPS(acc.Offset(32*tk), fl, fl)
			VMOVUPS(fl, acc.Offset(32*tk))
			fm, dmin := XMM(), XMM()
			VCVTDQ2PS(sumMins, fm)
			VMOVSHDUP(d, dmin)
			VMULSS(fm, dmin, dmin)
			sf := XMM()
			VMOVSS(minSums.Offset(4*tk), sf)
			VSUBSS(dmin, sf, sf)
			VMOVSS(sf, minSums.Offset(4*tk))
		}
		prefetchAhead(w, q4KBytes)
		ADDQ(U32(q4KBytes), w)
		ADDQ(U32(q8KAuxBytes), aa.base0)
		DECQ(nb)
		JMP(LabelRef(name + "_block"))
	}
	Label(name + "_rowDone")
	d := GP64()
	MOVQ(dRow, d)
	for tk := 0; tk < T; tk++ {
		sums := YMM()
		VMOVUPS(acc.Offset(32*tk), sums)
		sumf := XMM()
		VMOVSS(minSums.Offset(4*tk), sumf)
		finishLanes(sums, sumf)
		VMOVSS(sumf, Mem{Base: d})
		if tk+1 < T {
			ADDQ(ds, d)
		}
	}
	ADDQ(Imm(4), dRow)
	DECQ(rows)
	JMP(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
