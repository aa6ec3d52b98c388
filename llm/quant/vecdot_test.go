package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

var dotTypes = []Type{F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K}

func randomRow(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

func mustQuantize(t testing.TB, typ Type, x []float32) []byte {
	t.Helper()
	b, err := Quantize(typ, x)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dequantF64(t testing.TB, typ Type, b []byte, n int) []float64 {
	t.Helper()
	f := make([]float32, n)
	if err := Dequantize(typ, b, f); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, n)
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// VecDot must agree with multiplying the dequantised operands in float64;
// the only differences allowed are float32 rounding of the partial sums.
func TestVecDotMatchesDequantizedProduct(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, typ := range dotTypes {
		for _, n := range []int{256, 1024, 4096} {
			for trial := 0; trial < 5; trial++ {
				w := mustQuantize(t, typ, randomRow(r, n, 0.3))
				xf := randomRow(r, n, 2)
				xt := VecDotType(typ)
				x := make([]byte, mustRowBytes(t, xt, n))
				QuantizeRow(xt, xf, x)
				wd, xd := dequantF64(t, typ, w, n), dequantF64(t, xt, x, n)
				var want, mag float64
				for i := range wd {
					want += wd[i] * xd[i]
					mag += math.Abs(wd[i] * xd[i])
				}
				got := VecDot(typ, n, w, x)
				if diff := math.Abs(float64(got) - want); diff > 1e-5*mag {
					t.Errorf("%s n=%d: VecDot %g, float64 reference %g (diff %g, magnitude %g)", typ, n, got, want, diff, mag)
				}
			}
		}
	}
}

func mustRowBytes(t testing.TB, typ Type, n int) int {
	t.Helper()
	b, err := RowBytes(typ, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ggmlStyleQ4K and ggmlStyleQ6K transcribe the structure of ggml's scalar
// kernels literally (aux8/aux16/aux32 arrays walked 8 at a time) so that the
// restructured kernels in vecdot.go are checked for the exact same float
// result, not just a close one.
func ggmlStyleQ4K(n int, w, x []byte) float32 {
	var sums [8]float32
	var sumf float32
	for i := 0; i < n/QKK; i++ {
		wb, xb := w[i*q4KBytes:], x[i*q8KBytes:]
		var aux8 [QKK]int8
		q4 := wb[16:]
		a := 0
		for j := 0; j < QKK/64; j++ {
			for l := 0; l < 32; l++ {
				aux8[a+l] = int8(q4[l] & 0xF)
			}
			a += 32
			for l := 0; l < 32; l++ {
				aux8[a+l] = int8(q4[l] >> 4)
			}
			a += 32
			q4 = q4[32:]
		}
		var scales, mins [8]uint8
		for j := 0; j < 8; j++ {
			scales[j], mins[j] = getScaleMinK4(j, wb[4:16])
		}
		var sumi int32
		for j := 0; j < QKK/16; j++ {
			sumi += int32(int16(binary.LittleEndian.Uint16(xb[q8KBsums+2*j:]))) * int32(mins[j/2])
		}
		var aux32 [8]int32
		q8 := xb[4:]
		a = 0
		for j := 0; j < QKK/32; j++ {
			scale := int32(scales[j])
			for k := 0; k < 4; k++ {
				var aux16 [8]int16
				for l := 0; l < 8; l++ {
					aux16[l] = int16(int8(q8[l])) * int16(aux8[a+l])
				}
				for l := 0; l < 8; l++ {
					aux32[l] += scale * int32(aux16[l])
				}
				q8 = q8[8:]
				a += 8
			}
		}
		yd := math.Float32frombits(binary.LittleEndian.Uint32(xb))
		d := FP16ToFP32(binary.LittleEndian.Uint16(wb)) * yd
		for l := 0; l < 8; l++ {
			sums[l] += float32(d * float32(aux32[l]))
		}
		dmin := FP16ToFP32(binary.LittleEndian.Uint16(wb[2:])) * yd
		sumf -= float32(dmin * float32(sumi))
	}
	for l := 0; l < 8; l++ {
		sumf += sums[l]
	}
	return sumf
}

func ggmlStyleQ6K(n int, w, x []byte) float32 {
	var sums [8]float32
	for i := 0; i < n/QKK; i++ {
		wb, xb := w[i*q6KBytes:], x[i*q8KBytes:]
		var aux8 [QKK]int8
		q4, qh := wb[0:], wb[128:]
		a := 0
		for j := 0; j < QKK; j += 128 {
			for l := 0; l < 32; l++ {
				aux8[a+l] = int8(q4[l]&0xF|((qh[l]>>0)&3)<<4) - 32
				aux8[a+l+32] = int8(q4[l+32]&0xF|((qh[l]>>2)&3)<<4) - 32
				aux8[a+l+64] = int8(q4[l]>>4|((qh[l]>>4)&3)<<4) - 32
				aux8[a+l+96] = int8(q4[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
			}
			a += 128
			q4 = q4[64:]
			qh = qh[32:]
		}
		var aux32 [8]int32
		q8 := xb[4:]
		a = 0
		for j := 0; j < QKK/16; j++ {
			scale := int32(int8(wb[192+j]))
			for k := 0; k < 2; k++ {
				var aux16 [8]int16
				for l := 0; l < 8; l++ {
					aux16[l] = int16(int8(q8[l])) * int16(aux8[a+l])
				}
				for l := 0; l < 8; l++ {
					aux32[l] += scale * int32(aux16[l])
				}
				q8 = q8[8:]
				a += 8
			}
		}
		d := FP16ToFP32(binary.LittleEndian.Uint16(wb[208:])) * math.Float32frombits(binary.LittleEndian.Uint32(xb))
		for l := 0; l < 8; l++ {
			sums[l] += float32(d * float32(aux32[l]))
		}
	}
	var sumf float32
	for l := 0; l < 8; l++ {
		sumf += sums[l]
	}
	return sumf
}

func TestKQuantKernelsMatchGGMLStructureExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 50; trial++ {
		n := QKK * (1 + trial%8)
		xf := randomRow(r, n, 1+float64(trial))
		x := make([]byte, mustRowBytes(t, Q8_K, n))
		QuantizeRow(Q8_K, xf, x)
		w4 := mustQuantize(t, Q4_K, randomRow(r, n, 0.2))
		if got, want := VecDot(Q4_K, n, w4, x), ggmlStyleQ4K(n, w4, x); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("Q4_K n=%d: %g, ggml-structured %g", n, got, want)
		}
		w6 := mustQuantize(t, Q6_K, randomRow(r, n, 0.2))
		if got, want := VecDot(Q6_K, n, w6, x), ggmlStyleQ6K(n, w6, x); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("Q6_K n=%d: %g, ggml-structured %g", n, got, want)
		}
	}
}

// Hand-computed results with exactly representable values pin down the block
// layout and the scaling order.
func TestVecDotKnownValues(t *testing.T) {
	// Q8_0: block of weights all 2 with d=0.5 (value 1), activations q=3,
	// d=0.25 (value 0.75): 32 * 6 * (0.5*0.25) = 24 per block.
	w := make([]byte, 2*q8_0Bytes)
	x := make([]byte, 2*q8_0Bytes)
	for b := 0; b < 2; b++ {
		putF16(w, b*q8_0Bytes, 0.5)
		putF16(x, b*q8_0Bytes, 0.25)
		for j := 0; j < QK; j++ {
			w[b*q8_0Bytes+2+j] = 2
			x[b*q8_0Bytes+2+j] = 3
		}
	}
	if got := VecDot(Q8_0, 64, w, x); got != 48 {
		t.Errorf("Q8_0 known value: %g, want 48", got)
	}
	// Q4_0: nibble 0 means -8, nibble 15 means 7.
	w4 := make([]byte, q4_0Bytes)
	putF16(w4, 0, 1)
	for j := 0; j < QK/2; j++ {
		w4[2+j] = 0xF0 // low nibble 0 (-8) for elements 0..15, high 15 (7) for 16..31
	}
	x1 := make([]byte, q8_0Bytes)
	putF16(x1, 0, 1)
	for j := 0; j < QK; j++ {
		x1[2+j] = 1
	}
	if got := VecDot(Q4_0, 32, w4, x1); got != 16*(-8)+16*7 {
		t.Errorf("Q4_0 known value: %g, want %d", got, 16*(-8)+16*7)
	}
}

// Extreme blocks: the largest and smallest quants, zero scales, the largest
// half-precision scales. Nothing may panic or produce NaN where the exact
// result is finite.
func TestVecDotEdgeCases(t *testing.T) {
	n := 2 * QKK
	for _, typ := range []Type{Q4_0, Q8_0, Q4_K, Q6_K} {
		for _, fill := range []byte{0x00, 0xFF, 0x88, 0x77} {
			for _, scale := range []float32{0, 1, 65504, 6e-8} {
				w := make([]byte, mustRowBytes(t, typ, n))
				for i := range w {
					w[i] = fill
				}
				setScales(typ, w, scale)
				for _, act := range []float32{0, 1, -1, 1e4} {
					xf := make([]float32, n)
					for i := range xf {
						xf[i] = act
						if i%3 == 0 {
							xf[i] = -act
						}
					}
					xt := VecDotType(typ)
					x := make([]byte, mustRowBytes(t, xt, n))
					QuantizeRow(xt, xf, x)
					got := VecDot(typ, n, w, x)
					wd, xd := dequantF64(t, typ, w, n), dequantF64(t, xt, x, n)
					var want, mag float64
					for i := range wd {
						want += wd[i] * xd[i]
						mag += math.Abs(wd[i] * xd[i])
					}
					if math.IsNaN(float64(got)) || math.Abs(float64(got)-want) > 1e-5*mag+1e-30 && !math.IsInf(want, 0) && mag < math.MaxFloat32 {
						t.Errorf("%s fill %#x scale %g act %g: %g, want %g", typ, fill, scale, act, got, want)
					}
				}
			}
		}
	}
}

// setScales overwrites every block's super-scale(s) with s.
func setScales(typ Type, w []byte, s float32) {
	bb := typ.BlockBytes()
	for off := 0; off < len(w); off += bb {
		switch typ {
		case Q4_0, Q8_0:
			putF16(w, off, s)
		case Q4_K:
			putF16(w, off, s)
			putF16(w, off+2, s)
		case Q6_K:
			putF16(w, off+q6KD, s)
		}
	}
}

func TestQuantizeRowQ8K(t *testing.T) {
	x := make([]float32, QKK)
	x[0] = -2            // the signed value of largest magnitude: iscale = -127/-2 = 63.5
	x[1] = 1             // 63.5 -> nearest even 64
	x[3] = 2 * 2.5 / 127 // 2.5 -> 2 (ties to even, unlike Q8_0's roundf)
	x[4] = 2 * 3.5 / 127 // 3.5 -> 4
	for i := 16; i < 32; i++ {
		x[i] = 1
	}
	b := make([]byte, q8KBytes)
	QuantizeRow(Q8_K, x, b)
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	if want := 1 / (float32(-127) / -2); d != want {
		t.Errorf("d %g want %g", d, want)
	}
	q := func(i int) int8 { return int8(b[q8KQs+i]) }
	if q(0) != -127 || q(1) != 64 || q(3) != 2 || q(4) != 4 {
		t.Errorf("quants %d %d %d %d, want -127 64 2 4", q(0), q(1), q(3), q(4))
	}
	for j := 0; j < QKK/16; j++ {
		var s int16
		for i := 0; i < 16; i++ {
			s += int16(q(16*j + i))
		}
		if got := int16(binary.LittleEndian.Uint16(b[q8KBsums+2*j:])); got != s {
			t.Errorf("bsum %d: %d, want %d", j, got, s)
		}
	}
	// A zero block is all zeros, bsums included.
	QuantizeRow(Q8_K, make([]float32, QKK), b)
	for i, v := range b {
		if v != 0 {
			t.Fatalf("zero block byte %d = %d", i, v)
		}
	}
}

func TestQuantizeRowQ8_0RoundsHalfAway(t *testing.T) {
	x := make([]float32, QK)
	x[0] = 127 // d = 1, id = 1
	x[1] = 2.5
	x[2] = -2.5
	x[3] = 0.5
	b := make([]byte, q8_0Bytes)
	QuantizeRow(Q8_0, x, b)
	if f16At(b, 0) != 1 || int8(b[3]) != 3 || int8(b[4]) != -3 || int8(b[5]) != 1 {
		t.Errorf("got d %g q %d %d %d, want 1, 3 -3 1", f16At(b, 0), int8(b[3]), int8(b[4]), int8(b[5]))
	}
}

func TestVecDotF16SumsInDouble(t *testing.T) {
	// 1 + 2^-30 * many: a float32 accumulator would lose the small terms.
	n := 1025
	wf := make([]float32, n)
	xf := make([]float32, n)
	wf[0], xf[0] = 1, 1
	for i := 1; i < n; i++ {
		wf[i], xf[i] = 1.0/(1<<15), 1.0/(1<<15)
	}
	w := mustQuantize(t, F16, wf)
	x := make([]byte, 2*n)
	QuantizeRow(F16, xf, x)
	want := float32(1 + 1024*math.Pow(2, -30))
	if got := VecDot(F16, n, w, x); got != want {
		t.Errorf("F16 dot %.10g, want %.10g", got, want)
	}
}

func TestVecDotPanicsOnBadSizes(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("VecDot with short activations did not panic")
		}
	}()
	VecDot(Q8_0, 64, make([]byte, 2*q8_0Bytes), make([]byte, q8_0Bytes))
}

func TestVecDotKernelTableMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range dotTypes {
		n := 1024
		w := mustQuantize(t, typ, randomRow(r, n, 0.5))
		x := make([]byte, mustRowBytes(t, VecDotType(typ), n))
		QuantizeRow(VecDotType(typ), randomRow(r, n, 1), x)
		got := VecDot(typ, n, w, x)
		want := vecDotReference[typ](n, w, x)
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("%s: installed kernel %g, reference %g", typ, got, want)
		}
	}
}

func BenchmarkVecDot(b *testing.B) {
	const n = 4096 // a typical hidden size: one row of a projection
	r := rand.New(rand.NewPCG(7, 8))
	for _, typ := range dotTypes {
		w, err := Quantize(typ, randomRow(r, n, 0.5))
		if err != nil {
			b.Fatal(err)
		}
		xt := VecDotType(typ)
		xb, _ := RowBytes(xt, n)
		x := make([]byte, xb)
		QuantizeRow(xt, randomRow(r, n, 1), x)
		b.Run(fmt.Sprint(typ), func(b *testing.B) {
			b.SetBytes(int64(len(w)))
			var sink float32
			for b.Loop() {
				sink += VecDot(typ, n, w, x)
			}
			_ = sink
		})
	}
}

func BenchmarkQuantizeRow(b *testing.B) {
	const n = 4096
	x := randomRow(rand.New(rand.NewPCG(9, 10)), n, 1)
	for _, typ := range []Type{Q8_0, Q8_K, F16} {
		nb, _ := RowBytes(typ, n)
		dst := make([]byte, nb)
		b.Run(fmt.Sprint(typ), func(b *testing.B) {
			for b.Loop() {
				QuantizeRow(typ, x, dst)
			}
		})
	}
}
