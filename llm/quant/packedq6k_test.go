package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// checkPackedQ6KLayout decodes every quant, scale and d of a packed matrix
// through the layout's documented places and compares them with the
// row-major blocks, so that a packing mistake is named by element rather
// than seen only as a wrong dot product.
func checkPackedQ6KLayout(t testing.TB, w, packed []byte, rows, n int) {
	t.Helper()
	rb, _ := RowBytes(Q6_K, n)
	nb := n / QKK
	for r := 0; r < rows; r++ {
		g, i := r/8, r%8
		for b := 0; b < nb; b++ {
			src := w[r*rb+b*q6KBytes:][:q6KBytes]
			blk := packed[(g*nb+b)*PackedQ6KBlockBytes:][:PackedQ6KBlockBytes]
			if got, want := binary.LittleEndian.Uint16(blk[2*i:]), binary.LittleEndian.Uint16(src[q6KD:]); got != want {
				t.Fatalf("row %d block %d: d %#x, want %#x", r, b, got, want)
			}
			var vals [QKK]int32
			for half := 0; half < 2; half++ {
				ql, qh := src[64*half:], src[q6KQh+32*half:]
				for l := 0; l < 32; l++ {
					e := 128*half + l
					vals[e], vals[e+32], vals[e+64], vals[e+96] = q6KValues(ql, qh, l)
				}
			}
			for l := 0; l < 8; l++ {
				for jj := 0; jj < 4; jj++ {
					for h := 0; h < 2; h++ {
						sc := blk[pkQ6KScales+16*(2*jj+h)+2*i:]
						for k, o := range q6KQuadOffsets {
							e := 64*jj + l + 16*h + o
							if got := packedQ6KQuant(blk, i, l, jj, h, k) - 32; got != vals[e] {
								t.Fatalf("row %d block %d element %d: %d, want %d", r, b, e, got, vals[e])
							}
							if got, want := int8(sc[k/2]), int8(src[q6KScales+e/16]); got != want {
								t.Fatalf("row %d block %d element %d: scale %d, want %d", r, b, e, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func TestPackQ6KLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, mode := range []string{"random", "min", "max"} {
		const rows, n = 16, 3 * QKK
		w := randomPackingMatrix(rng, Q6_K, rows, n, mode)
		packed, err := PackQ6Kx8(w, rows, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(packed) != len(w) {
			t.Fatalf("%s: packed %d bytes, the rows have %d", mode, len(packed), len(w))
		}
		checkPackedQ6KLayout(t, w, packed, rows, n)
	}
}

func TestQ6KAuxRejectsBadSizes(t *testing.T) {
	x := make([]byte, q8KBytes)
	for _, c := range []struct{ n, x, aux int }{{QKK, q8KBytes, Q6KAuxBlockBytes - 1}, {QKK, q8KBytes - 1, Q6KAuxBlockBytes}, {QKK + 16, q8KBytes, Q6KAuxBlockBytes}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("n=%d x=%d aux=%d: no panic", c.n, c.x, c.aux)
				}
			}()
			Q6KAux(x[:c.x], c.n, make([]byte, c.aux))
		}()
	}
}

// FuzzPackedQ6K packs 8 arbitrary Q6_K rows of one block and checks the
// layout and both kernels against the reference dot product with an
// arbitrary Q8_K row (bsums as quantisation would make them). NaN results
// compare equal whatever their payload: which NaN operand an addition
// returns depends on operand order, which the reference does not fix.
func FuzzPackedQ6K(f *testing.F) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, mode := range []string{"random", "min", "max", "zero"} {
		w := randomPackingMatrix(rng, Q6_K, 8, QKK, mode)
		x := randomActivationRows(rng, Q6_K, 1, QKK, q8KBytes, mode)
		f.Add(w, x)
	}
	f.Fuzz(func(t *testing.T, wIn, xIn []byte) {
		w := make([]byte, 8*q6KBytes)
		copy(w, wIn)
		x := make([]byte, q8KBytes)
		copy(x, xIn)
		for j := 0; j < QKK/16; j++ {
			var s int16
			for _, q := range x[q8KQs+16*j : q8KQs+16*j+16] {
				s += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(x[q8KBsums+2*j:], uint16(s))
		}
		packed, err := PackQ6Kx8(w, 8, QKK)
		if err != nil {
			t.Fatal(err)
		}
		checkPackedQ6KLayout(t, w, packed, 8, QKK)
		aux := make([]byte, Q6KAuxBytes(QKK))
		Q6KAux(x, QKK, aux)
		p := packings[Q6_K]
		for name, dot := range map[string]func(int, []byte, []byte, int, int, []float32, int){"installed": p.Dot, "generic": p.dotGeneric} {
			var dst [8]float32
			dot(QKK, packed, aux, len(aux), 1, dst[:], 8)
			for r := range dst {
				want := vecDotReference[Q6_K](QKK, w[r*q6KBytes:(r+1)*q6KBytes], x)
				got := dst[r]
				if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
					t.Fatalf("%s row %d: %v, want %v", name, r, got, want)
				}
			}
		}
	})
}

// BenchmarkPackedQ6KRatio times the packed Q6_K kernels (expansion
// included) and the row-major tile kernels in alternating rounds on the
// same thread and reports the ratio of their fastest rounds
// (tile/packed: above 1 means packed is faster). Alternating and taking
// minima keeps a shared, noisy machine from favouring either side.
func BenchmarkPackedQ6KRatio(b *testing.B) {
	rng := rand.New(rand.NewPCG(25, 26))
	p := packings[Q6_K]
	if !p.accelerated() {
		b.Skip("no packed Q6_K kernels on this CPU")
	}
	// A layer's matrices, and TinyLlama's output matrix, which no cache
	// holds.
	for _, shape := range []struct{ rows, n int }{{2048, 2048}, {2048, 5632}, {32000, 2048}} {
		w := randomPackingMatrix(rng, Q6_K, shape.rows, shape.n, "random")
		packed, err := p.Pack(w, shape.rows, shape.n)
		if err != nil {
			b.Fatal(err)
		}
		for _, tokens := range []int{1, 4, 8} {
			xb, _ := RowBytes(Q8_K, shape.n)
			x := randomActivationRows(rng, Q6_K, tokens, shape.n, xb, "random")
			ab := p.AuxBytes(shape.n)
			aux := make([]byte, tokens*ab)
			dst := make([]float32, tokens*shape.rows)
			runPacked := func() {
				for t := 0; t < tokens; t++ {
					p.Aux(x[t*xb:(t+1)*xb], shape.n, aux[t*ab:(t+1)*ab])
				}
				p.Dot(shape.n, packed, aux, ab, tokens, dst, shape.rows)
			}
			runTile := func() { VecDotTile(Q6_K, shape.n, w, x, xb, tokens, dst, shape.rows) }
			b.Run(fmt.Sprintf("rows=%d/n=%d/tokens=%d", shape.rows, shape.n, tokens), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				// Wall time per call: the thread's CPU time ticks too coarsely
				// for a call, and a round that lost the CPU is not the minimum.
				round := func(run func()) time.Duration {
					t0 := time.Now()
					run()
					return time.Since(t0)
				}
				var tp, tt []time.Duration
				for b.Loop() {
					tp = append(tp, round(runPacked))
					tt = append(tt, round(runTile))
				}
				mp, mt := slices.Min(tp), slices.Min(tt)
				b.ReportMetric(float64(mp.Nanoseconds()), "packed-ns/call")
				b.ReportMetric(float64(mt.Nanoseconds()), "tile-ns/call")
				b.ReportMetric(float64(mt)/float64(mp), "tile/packed")
			})
		}
	}
}

// BenchmarkPackQ6K is the load-time cost of packing: the output matrix of
// a TinyLlama (32000×2048) is 54 MB of Q6_K.
func BenchmarkPackQ6K(b *testing.B) {
	rng := rand.New(rand.NewPCG(27, 28))
	const rows, n = 256, 2048
	w := randomPackingMatrix(rng, Q6_K, rows, n, "random")
	b.SetBytes(int64(len(w)))
	for b.Loop() {
		if _, err := PackQ6Kx8(w, rows, n); err != nil {
			b.Fatal(err)
		}
	}
}
