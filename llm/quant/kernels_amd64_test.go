//go:build !purego

package quant

import (
	"encoding/binary"
	"math"
	"testing"
)

// roundsAlike must refuse whenever two summation orders could round apart,
// and accept clear cases.
func TestRoundsAlike(t *testing.T) {
	for _, c := range []struct {
		s, abs float64
		n      int
		ok     bool
	}{
		{0, 0, 10, true},
		{1, 1, 1, true},
		{1, 100, 4096, true},                // error bound ~1e-10, float32 ulp ~1e-7
		{1 + 0x1p-24, 3, 3, false},          // a float32 rounding midpoint
		{1 + 0x1p-24 + 0x1p-40, 3, 3, true}, // clearly above it
		{1e-30, 1e30, 3, false},             // cancellation: the sum is noise
		{1, math.Inf(1), 3, false},
		{math.NaN(), math.NaN(), 3, false},
		{3e38, 3e38, 1, true},
		{4e38, 4e38, 2, true}, // rounds to +Inf in every order
	} {
		got, ok := roundsAlike(c.s, c.abs, c.n)
		if ok != c.ok || ok && got != float32(c.s) {
			t.Errorf("roundsAlike(%g, %g, %d) = %g, %v; want ok=%v", c.s, c.abs, c.n, got, ok, c.ok)
		}
	}
}

// Rows built so that summation order matters (huge products that cancel,
// around small ones) must still give the reference's bits: the float kernels
// have to notice and fall back to the reference.
func TestFloatKernelsUnderCancellation(t *testing.T) {
	for _, s := range usableKernelSets(t) {
		for _, typ := range []Type{F32, F16, BF16} {
			if s.kernels[typ] == nil {
				continue
			}
			for _, n := range []int{3, 16, 35, 1024} {
				w := make([]byte, n*typ.BlockBytes())
				x := make([]byte, n*typ.BlockBytes())
				// F16 products span at most 80 bits, so the small ones
				// must be subnormal for float64 sums to round at all.
				big, small := float32(1e18), float32(1)
				if typ == F16 {
					big, small = 60000, 0x1p-24
				}
				fallbacks := 0
				for trial := 0; trial < 8; trial++ {
					for i := 0; i < n; i++ {
						v := float32(1+i%7+trial) * small
						switch {
						case i%3 == 0 && i+2 < n: // partnered below
							v = big
						case i%3 == 2:
							v = -big
						}
						put(typ, w, i, v)
						// Equal activations under +big and -big: their
						// products cancel exactly, swamping the small ones
						// in between in the reference's sequential order.
						c := float32(1+(i/3+trial)%3) * 0.5
						if i%3 == 1 {
							c = small
						}
						put(typ, x, i, c)
					}
					checkKernel(t, s.name, typ, n, w, x, "cancellation")
					if !roundsAlikeRow(typ, n, w, x) {
						fallbacks++
					}
				}
				if n >= 16 && fallbacks == 0 {
					t.Errorf("%s %s n=%d: no row needed the reference; the test does not test the fallback", s.name, typ, n)
				}
			}
		}
	}
}

func put(typ Type, b []byte, i int, v float32) {
	switch typ {
	case F32:
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	case F16:
		putF16(b, 2*i, v)
	case BF16:
		binary.LittleEndian.PutUint16(b[2*i:], FP32ToBF16(v))
	}
}

// roundsAlikeRow reports whether the float kernel can decide the row without
// the reference.
func roundsAlikeRow(typ Type, n int, w, x []byte) bool {
	var sum, abs float64
	for i := 0; i < n; i++ {
		var a, b float32
		switch typ {
		case F32:
			a, b = f32At(w, i), f32At(x, i)
		case F16:
			a, b = f16At(w, 2*i), f16At(x, 2*i)
		case BF16:
			a = BF16ToFP32(binary.LittleEndian.Uint16(w[2*i:]))
			b = BF16ToFP32(binary.LittleEndian.Uint16(x[2*i:]))
		}
		p := float64(a * b)
		sum += p
		abs += math.Abs(p)
	}
	_, ok := roundsAlike(sum, abs, n)
	return ok
}

// Rows longer than maxFloatKernelN go to the reference directly.
func TestFloatKernelsLongRows(t *testing.T) {
	for _, s := range usableKernelSets(t) {
		n := maxFloatKernelN + 16
		w, x := make([]byte, 4*n), make([]byte, 4*n)
		for i := 0; i < n; i++ {
			put(F32, w, i, float32(i%5)-2)
			put(F32, x, i, float32(i%3)+0.25)
		}
		checkKernel(t, s.name, F32, n, w, x, "long")
	}
}
