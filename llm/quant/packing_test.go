package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// packingF16Fields are the byte offsets of each block's f16 scales, which
// random weights must keep finite.
var packingF16Fields = map[Type][]int{Q4_0: {0}, Q4_K: {0, 2}, Q6_K: {q6KD}}

// randomPackingMatrix returns rows random rows of type t. Modes give edge
// cases: every quant byte 0x00 or 0xFF with the largest scales, zero
// scales.
func randomPackingMatrix(rng *rand.Rand, t Type, rows, n int, mode string) []byte {
	rb, _ := RowBytes(t, n)
	w := make([]byte, rows*rb)
	for i := range w {
		w[i] = byte(rng.Uint32())
		switch mode {
		case "min":
			w[i] = 0
		case "max":
			w[i] = 0xFF
		}
	}
	bb := t.BlockBytes()
	for b := 0; b < len(w); b += bb {
		for _, off := range packingF16Fields[t] {
			d := float32(rng.NormFloat64()) * 0.01
			switch mode {
			case "min", "max":
				d = 65504
				if mode == "min" {
					d = -65504
				}
			case "zero":
				if rng.IntN(2) == 0 {
					d = 0
				}
			}
			binary.LittleEndian.PutUint16(w[b+off:], FP32ToFP16(d))
		}
	}
	return w
}

// randomActivationRows returns tokens rows of VecDotType(t) at stride
// bytes; in the extreme modes every quant is -128 or 127.
func randomActivationRows(rng *rand.Rand, t Type, tokens, n, stride int, mode string) []byte {
	xt := VecDotType(t)
	rb, _ := RowBytes(xt, n)
	x := make([]byte, tokens*stride)
	f := make([]float32, n)
	for tk := 0; tk < tokens; tk++ {
		for i := range f {
			f[i] = float32(rng.NormFloat64())
		}
		row := x[tk*stride : tk*stride+rb]
		QuantizeRow(xt, f, row)
		if mode != "min" && mode != "max" {
			continue
		}
		q := byte(0x80)
		if mode == "max" {
			q = 0x7F
		}
		switch xt {
		case Q8_0:
			for b := 0; b < n/QK; b++ {
				for j := 0; j < QK; j++ {
					row[b*q8_0Bytes+2+j] = q
				}
			}
		case Q8_K:
			for b := 0; b < n/QKK; b++ {
				xb := row[b*q8KBytes:]
				for j := 0; j < QKK; j++ {
					xb[q8KQs+j] = q
				}
				for j := 0; j < QKK/16; j++ {
					binary.LittleEndian.PutUint16(xb[q8KBsums+2*j:], uint16(16*int16(int8(q))))
				}
			}
		}
	}
	return x
}

// TestPackingsMatchVecDot checks every packed layout, with the installed
// and the portable kernels, against the reference dot products, bit for
// bit, on random and extreme weights and activations, odd strides and
// token counts that leave remainders.
func TestPackingsMatchVecDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for typ, p := range packings {
		if p == nil {
			continue
		}
		bs := Type(typ).BlockSize()
		for _, mode := range []string{"random", "min", "max", "zero"} {
			for _, shape := range []struct{ rows, blocks, tokens int }{{8, 1, 1}, {16, 2, 2}, {24, 3, 3}, {8, 1, 4}, {32, 8, 5}, {16, 5, 9}, {8, 1, 17}} {
				n := shape.blocks * bs
				rb, _ := RowBytes(Type(typ), n)
				xb, _ := RowBytes(VecDotType(Type(typ)), n)
				w := randomPackingMatrix(rng, Type(typ), shape.rows, n, mode)
				xStride := xb + 4*rng.IntN(3)
				x := randomActivationRows(rng, Type(typ), shape.tokens, n, xStride, mode)
				ab := p.AuxBytes(n)
				auxStride := ab + 32*rng.IntN(2)
				aux := make([]byte, shape.tokens*auxStride)
				for tk := 0; tk < shape.tokens; tk++ {
					p.Aux(x[tk*xStride:tk*xStride+xb], n, aux[tk*auxStride:tk*auxStride+ab])
				}
				packed, err := p.Pack(w, shape.rows, n)
				if err != nil {
					t.Fatal(err)
				}
				for name, dot := range map[string]func(int, []byte, []byte, int, int, []float32, int){"installed": p.Dot, "generic": p.dotGeneric} {
					dstStride := shape.rows + rng.IntN(3)
					dst := make([]float32, shape.tokens*dstStride)
					for i := range dst {
						dst[i] = float32(math.NaN())
					}
					dot(n, packed, aux, auxStride, shape.tokens, dst, dstStride)
					for tk := 0; tk < shape.tokens; tk++ {
						for r := 0; r < shape.rows; r++ {
							want := vecDotReference[typ](n, w[r*rb:(r+1)*rb], x[tk*xStride:tk*xStride+xb])
							got := dst[tk*dstStride+r]
							if math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("%s %s %s rows=%d n=%d token %d row %d: %v, want %v", Type(typ), name, mode, shape.rows, n, tk, r, got, want)
							}
						}
						for r := shape.rows; r < dstStride; r++ {
							if !math.IsNaN(float64(dst[tk*dstStride+r])) {
								t.Fatalf("%s %s wrote past the rows at token %d", Type(typ), name, tk)
							}
						}
					}
				}
			}
		}
	}
}

func TestPackingsRejectBadShapes(t *testing.T) {
	for typ, p := range packings {
		if p == nil {
			continue
		}
		bs := Type(typ).BlockSize()
		rb, _ := RowBytes(Type(typ), 2*bs)
		for _, bad := range []struct{ rows, n, len int }{{12, 2 * bs, 12 * rb}, {16, 2*bs - 16, 16 * rb}, {16, 2 * bs, 16*rb - 1}, {0, 2 * bs, 0}} {
			if _, err := p.Pack(make([]byte, bad.len), bad.rows, bad.n); err == nil {
				t.Errorf("%s rows=%d n=%d len=%d: no error", Type(typ), bad.rows, bad.n, bad.len)
			}
		}
	}
}

// BenchmarkPackings compares, in one run, each packed layout's kernels
// with the row-major VecDotTile on the matrices of a TinyLlama-1.1B layer.
func BenchmarkPackings(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 14))
	for typ, p := range packings {
		if p == nil {
			continue
		}
		for _, shape := range []struct{ rows, n int }{{2048, 2048}, {2048, 5632}} {
			w := randomPackingMatrix(rng, Type(typ), shape.rows, shape.n, "random")
			packed, _ := p.Pack(w, shape.rows, shape.n)
			for _, tokens := range []int{1, 4, 8} {
				xb, _ := RowBytes(VecDotType(Type(typ)), shape.n)
				x := randomActivationRows(rng, Type(typ), tokens, shape.n, xb, "random")
				ab := p.AuxBytes(shape.n)
				aux := make([]byte, tokens*ab)
				dst := make([]float32, tokens*shape.rows)
				name := fmt.Sprintf("type=%s/rows=%d/n=%d/tokens=%d", Type(typ), shape.rows, shape.n, tokens)
				b.Run(name+"/impl=tile", func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						VecDotTile(Type(typ), shape.n, w, x, xb, tokens, dst, shape.rows)
					}
				})
				b.Run(name+"/impl=packed", func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						for t := 0; t < tokens; t++ {
							p.Aux(x[t*xb:(t+1)*xb], shape.n, aux[t*ab:(t+1)*ab])
						}
						p.Dot(shape.n, packed, aux, ab, tokens, dst, shape.rows)
					}
				})
			}
		}
	}
}
