package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// randomQ4_0Matrix returns rows random Q4_0 rows of n elements. Modes give
// edge cases: all quants -8 or 7 with the largest scales, zero scales.
func randomQ4_0Matrix(rng *rand.Rand, rows, n int, mode string) []byte {
	rb, _ := RowBytes(Q4_0, n)
	w := make([]byte, rows*rb)
	for i := range w {
		w[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(w); b += q4_0Bytes {
		d := float32(rng.NormFloat64()) * 0.01
		switch mode {
		case "min":
			d = 65504
			for j := 2; j < q4_0Bytes; j++ {
				w[b+j] = 0x00
			}
		case "max":
			d = -65504
			for j := 2; j < q4_0Bytes; j++ {
				w[b+j] = 0xFF
			}
		case "zero":
			if rng.IntN(2) == 0 {
				d = 0
			}
		}
		binary.LittleEndian.PutUint16(w[b:], FP32ToFP16(d))
	}
	return w
}

func randomQ8_0Rows(rng *rand.Rand, tokens, n, stride int, mode string) []byte {
	x := make([]byte, tokens*stride)
	f := make([]float32, n)
	for t := 0; t < tokens; t++ {
		for i := range f {
			f[i] = float32(rng.NormFloat64())
			if mode == "min" || mode == "max" {
				f[i] = -1 // every quant -127 after scaling... then pushed to -128 below
			}
		}
		rb, _ := RowBytes(Q8_0, n)
		QuantizeRow(Q8_0, f, x[t*stride:t*stride+rb])
		if mode == "min" || mode == "max" {
			for b := 0; b < n/QK; b++ {
				for j := 0; j < QK; j++ {
					x[t*stride+b*q8_0Bytes+2+j] = 0x80 // -128
				}
			}
		}
	}
	return x
}

func TestPackedQ4_0MatchesVecDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	kernels := map[string]func([]byte, int, []byte, int, int, []float32, int){
		"generic":   dotPackedQ4_0GroupGeneric,
		"installed": dotPackedQ4_0Group,
	}
	for _, mode := range []string{"random", "min", "max", "zero"} {
		for _, shape := range []struct{ rows, n, tokens int }{{8, 32, 1}, {16, 64, 2}, {24, 96, 3}, {8, 256, 4}, {32, 2048, 5}, {16, 160, 9}, {8, 32, 17}} {
			rb, _ := RowBytes(Q4_0, shape.n)
			xb, _ := RowBytes(Q8_0, shape.n)
			w := randomQ4_0Matrix(rng, shape.rows, shape.n, mode)
			xStride := xb + 34*rng.IntN(3)
			x := randomQ8_0Rows(rng, shape.tokens, shape.n, xStride, mode)
			auxStride := Q8_0AuxBytes(shape.n) + 32*rng.IntN(2)
			aux := make([]byte, shape.tokens*auxStride)
			for tk := 0; tk < shape.tokens; tk++ {
				Q8_0Aux(x[tk*xStride:tk*xStride+xb], shape.n, aux[tk*auxStride:tk*auxStride+Q8_0AuxBytes(shape.n)])
			}
			packed, err := PackQ4_0x8(w, shape.rows, shape.n)
			if err != nil {
				t.Fatal(err)
			}
			for name, k := range kernels {
				saved := dotPackedQ4_0Group
				dotPackedQ4_0Group = k
				dstStride := shape.rows + rng.IntN(3)
				dst := make([]float32, shape.tokens*dstStride)
				for i := range dst {
					dst[i] = float32(math.NaN())
				}
				DotPackedQ4_0(shape.n, packed, aux, auxStride, shape.tokens, dst, dstStride)
				dotPackedQ4_0Group = saved
				for tk := 0; tk < shape.tokens; tk++ {
					for r := 0; r < shape.rows; r++ {
						want := vecDotReference[Q4_0](shape.n, w[r*rb:(r+1)*rb], x[tk*xStride:tk*xStride+xb])
						got := dst[tk*dstStride+r]
						if math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%s %s rows=%d n=%d token %d row %d: %v, want %v", name, mode, shape.rows, shape.n, tk, r, got, want)
						}
					}
					for r := shape.rows; r < dstStride; r++ {
						if !math.IsNaN(float64(dst[tk*dstStride+r])) {
							t.Fatalf("%s wrote past the rows at token %d", name, tk)
						}
					}
				}
			}
		}
	}
}

// q4_0Quant is the unsigned nibble of element e of a Q4_0 block.
func q4_0Quant(block []byte, e int) byte {
	if e < QK/2 {
		return block[2+e] & 0x0F
	}
	return block[2+e-QK/2] >> 4
}

func TestPackQ4_0x8RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := randomQ4_0Matrix(rng, 16, 64, "random")
	p, err := PackQ4_0x8(w, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := RowBytes(Q4_0, 64)
	for g := 0; g < 2; g++ {
		for b := 0; b < 2; b++ {
			blk := p[(g*2+b)*PackedQ4_0BlockBytes:][:PackedQ4_0BlockBytes]
			for i := 0; i < 8; i++ {
				src := w[(8*g+i)*rb+b*q4_0Bytes:][:q4_0Bytes]
				if blk[2*i] != src[0] || blk[2*i+1] != src[1] {
					t.Fatalf("group %d block %d row %d: scale moved wrongly", g, b, i)
				}
				for e := 0; e < QK; e++ {
					if packedQuant(blk, i, e) != q4_0Quant(src, e) {
						t.Fatalf("group %d block %d row %d quant %d differs", g, b, i, e)
					}
				}
			}
		}
	}
	for _, bad := range []struct{ rows, n, len int }{{12, 64, 12 * 36}, {16, 48, 16 * 36}, {16, 64, 16*36 - 1}, {0, 64, 0}} {
		if _, err := PackQ4_0x8(make([]byte, bad.len), bad.rows, bad.n); err == nil {
			t.Errorf("rows=%d n=%d len=%d: no error", bad.rows, bad.n, bad.len)
		}
	}
}

func TestDotPackedQ4_0PanicsOnBadSizes(t *testing.T) {
	w := make([]byte, 2*PackedQ4_0BlockBytes) // one group, n = 64
	ab := Q8_0AuxBytes(64)
	aux := make([]byte, ab)
	dst := make([]float32, 8)
	for name, f := range map[string]func(){
		"weights": func() { DotPackedQ4_0(64, w[:len(w)-1], aux, ab, 1, dst, 8) },
		"aux":     func() { DotPackedQ4_0(64, w, aux[:ab-1], ab, 1, dst, 8) },
		"dst":     func() { DotPackedQ4_0(64, w, aux, ab, 1, dst[:7], 8) },
		"stride":  func() { DotPackedQ4_0(64, w, aux, ab, 1, dst, 7) },
		"n":       func() { DotPackedQ4_0(48, w, aux, ab, 1, dst, 8) },
		"q8aux":   func() { Q8_0Aux(make([]byte, 68), 64, aux[:ab-1]) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// BenchmarkPackedQ4_0 compares, in one run, the packed kernels with today's
// row-major VecDotTile on the matrices of a TinyLlama-1.1B layer.
func BenchmarkPackedQ4_0(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, shape := range []struct{ rows, n int }{{16, 2048}, {2048, 2048}, {5632, 2048}, {2048, 5632}} {
		w := randomQ4_0Matrix(rng, shape.rows, shape.n, "random")
		packed, _ := PackQ4_0x8(w, shape.rows, shape.n)
		for _, tokens := range []int{1, 4, 8, 16} {
			xb, _ := RowBytes(Q8_0, shape.n)
			x := randomQ8_0Rows(rng, tokens, shape.n, xb, "random")
			ab := Q8_0AuxBytes(shape.n)
			aux := make([]byte, tokens*ab)
			dst := make([]float32, tokens*shape.rows)
			name := fmt.Sprintf("rows=%d/n=%d/tokens=%d", shape.rows, shape.n, tokens)
			b.Run(name+"/impl=tile", func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					VecDotTile(Q4_0, shape.n, w, x, xb, tokens, dst, shape.rows)
				}
			})
			// The kernel alone, the activations expanded beforehand as the
			// model does once per input for all the matrices that read it.
			for t := 0; t < tokens; t++ {
				Q8_0Aux(x[t*xb:(t+1)*xb], shape.n, aux[t*ab:(t+1)*ab])
			}
			b.Run(name+"/impl=packed-kernel", func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					DotPackedQ4_0(shape.n, packed, aux, ab, tokens, dst, shape.rows)
				}
			})
			b.Run(name+"/impl=packed", func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					for t := 0; t < tokens; t++ {
						Q8_0Aux(x[t*xb:(t+1)*xb], shape.n, aux[t*ab:(t+1)*ab])
					}
					DotPackedQ4_0(shape.n, packed, aux, ab, tokens, dst, shape.rows)
				}
			})
		}
	}
}
