package quant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// VecDotRows must return exactly VecDot's value for every row, for every
// type, whichever kernels are installed.
func TestVecDotRowsMatchesVecDot(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, typ := range dotTypes {
		for _, n := range []int{256, 512 + 256} {
			for _, rows := range []int{0, 1, 3, 17} {
				rb := mustRowBytes(t, typ, n)
				w := make([]byte, 0, rows*rb)
				for range rows {
					w = append(w, mustQuantize(t, typ, randomRow(r, n, 0.4))...)
				}
				x := make([]byte, mustRowBytes(t, VecDotType(typ), n))
				QuantizeRow(VecDotType(typ), randomRow(r, n, 1.5), x)
				dst := make([]float32, rows)
				VecDotRows(typ, n, w, x, dst)
				for i := range dst {
					want := VecDot(typ, n, w[i*rb:(i+1)*rb], x)
					if math.Float32bits(dst[i]) != math.Float32bits(want) {
						t.Errorf("%s n=%d row %d of %d: %g, VecDot %g", typ, n, i, rows, dst[i], want)
					}
				}
			}
		}
	}
}

func TestVecDotRowsPanicsOnBadSizes(t *testing.T) {
	rb := q8_0Bytes * 2 // one Q8_0 row of 64
	for _, c := range []struct {
		name        string
		w, x        int
		rows        int
		t           Type
		n           int
		wantsPanics bool
	}{
		{"ok", 3 * rb, rb, 3, Q8_0, 64, false},
		{"no rows", 0, rb, 0, Q8_0, 64, false},
		{"weights not whole rows", 3*rb + 1, rb, 3, Q8_0, 64, true},
		{"too few rows in dst", 3 * rb, rb, 2, Q8_0, 64, true},
		{"short activations", 3 * rb, rb - 1, 3, Q8_0, 64, true},
		{"short activations, no rows", 0, rb - 1, 0, Q8_0, 64, true},
		{"n not whole blocks", 3 * rb, rb, 3, Q8_0, 63, true},
		{"no kernel", 3 * rb, rb, 3, Q5_0, 64, true},
	} {
		func() {
			defer func() {
				if got := recover() != nil; got != c.wantsPanics {
					t.Errorf("%s: panicked %v, want %v", c.name, got, c.wantsPanics)
				}
			}()
			VecDotRows(c.t, c.n, make([]byte, c.w), make([]byte, c.x), make([]float32, c.rows))
		}()
	}
}

// BenchmarkVecDotRows compares VecDotRows with calling VecDot per row over a
// 64-row weight slice (one worker's share of a projection), for long rows and
// for short ones, where VecDot's per-call size checks cost more than the
// arithmetic: go test -run '^$' -bench VecDotRows -count 5 ./llm/quant
func BenchmarkVecDotRows(b *testing.B) {
	const rows = 64
	r := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{256, 4096} {
		for _, typ := range []Type{Q4_0, Q8_0, Q4_K, Q6_K} {
			rb := mustRowBytes(b, typ, n)
			var w []byte
			for range rows {
				w = append(w, mustQuantize(b, typ, randomRow(r, n, 0.5))...)
			}
			x := make([]byte, mustRowBytes(b, VecDotType(typ), n))
			QuantizeRow(VecDotType(typ), randomRow(r, n, 1), x)
			dst := make([]float32, rows)
			b.Run(fmt.Sprintf("n=%d/%s/VecDot", n, typ), func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					for i := range dst {
						dst[i] = VecDot(typ, n, w[i*rb:(i+1)*rb], x)
					}
				}
			})
			b.Run(fmt.Sprintf("n=%d/%s/VecDotRows", n, typ), func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					VecDotRows(typ, n, w, x, dst)
				}
			})
		}
	}
}

// rowBuffer returns size bytes to run a kernel on; on Linux,
// kernels_guard_linux_test.go makes it memory between inaccessible pages.
var rowBuffer = func(t *testing.T, size int, atEnd bool) []byte { return make([]byte, size) }

// Every multi-row kernel, forced explicitly, must give each row the
// reference's bits, read only its rows (guard pages on Linux) and write only
// dst.
func TestKernelSetsRowsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for _, s := range usableKernelSets(t) {
		for typ, k := range s.rows {
			typ := Type(typ)
			if k == nil {
				continue
			}
			xt := VecDotType(typ)
			for _, blocks := range blockCounts(typ) {
				n := blocks * typ.BlockSize()
				rb := mustRowBytes(t, typ, n)
				for _, rows := range []int{0, 1, 2, 5} {
					w0, x0 := randomBlocks(r, typ, n*rows), randomBlocks(r, xt, n)
					for _, atEnd := range []bool{false, true} {
						w, x := rowBuffer(t, len(w0), atEnd), rowBuffer(t, len(x0), atEnd)
						copy(w, w0)
						copy(x, x0)
						buf := make([]float32, rows+1)
						buf[rows] = 12345
						k(n, w, x, buf[:rows:rows])
						if buf[rows] != 12345 {
							t.Errorf("%s %s n=%d rows=%d: wrote past dst", s.name, typ, n, rows)
						}
						for i := 0; i < rows; i++ {
							want := vecDotReference[typ](n, w[i*rb:(i+1)*rb], x)
							if math.Float32bits(buf[i]) != math.Float32bits(want) {
								t.Errorf("%s %s n=%d row %d of %d: %g, reference %g", s.name, typ, n, i, rows, buf[i], want)
							}
						}
					}
				}
			}
		}
	}
}
