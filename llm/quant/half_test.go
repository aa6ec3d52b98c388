package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// halfValue decodes a half-precision pattern in float64 straight from the
// IEEE definition.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 31:
		if mant != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

func TestFP16ToFP32Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got, want := float64(FP16ToFP32(uint16(h))), halfValue(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(got) {
				t.Fatalf("%#04x: %g, want NaN", h, got)
			}
			continue
		}
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("%#04x: %g, want %g", h, got, want)
		}
	}
}

// roundToHalfSlow finds the nearest half by comparing against the two
// neighbouring representable values, ties to the even pattern.
func roundToHalfSlow(f float32) uint16 {
	v := float64(f)
	if math.IsNaN(v) {
		return 0x7e00 | uint16(math.Float32bits(f)>>16)&0x8000
	}
	sign := uint16(0)
	if math.Signbit(v) {
		sign, v = 0x8000, -v
	}
	// Binary search over the ordered non-negative patterns 0..0x7c00.
	lo, hi := uint16(0), uint16(0x7c00)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if halfValue(mid) <= v {
			lo = mid
		} else {
			hi = mid
		}
	}
	if halfValue(lo) == v {
		return sign | lo
	}
	if lo == 0x7bff && v >= 65520 { // 65504 + half an ulp and beyond: infinity
		return sign | 0x7c00
	}
	dlo, dhi := v-halfValue(lo), halfValue(hi)-v
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | hi
	case lo&1 == 0:
		return sign | lo
	}
	return sign | hi
}

func TestFP32ToFP16(t *testing.T) {
	check := func(f float32) {
		t.Helper()
		if got, want := FP32ToFP16(f), roundToHalfSlow(f); got != want {
			t.Fatalf("FP32ToFP16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
	// Every half value, and the midpoints and their neighbours between
	// consecutive halves, where the tie rule decides.
	for h := uint16(0); h < 0x7c00; h++ {
		a := halfValue(h)
		check(float32(a))
		check(-float32(a))
		mid := float32((a + halfValue(h+1)) / 2)
		check(mid)
		check(math.Nextafter32(mid, 0))
		check(math.Nextafter32(mid, 1e9))
	}
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 200000; i++ {
		check(math.Float32frombits(r.Uint32()))
	}
	for _, f := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), 65519.99, 65520, 1e-8, 3e-8} {
		check(f)
	}
	if got := FP32ToFP16(float32(math.NaN())); got&0x7fff != 0x7e00 {
		t.Errorf("NaN -> %#04x", got)
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x7f7fffff, 0x7f80}, // max float rounds to infinity
		{0x00000001, 0x0000}, // smallest subnormal: kept as subnormal, rounds to 0
		{0x00018000, 0x0002}, // subnormals are rounded, not flushed
		{0x7fc00000, 0x7fc0}, // quiet NaN
		{0x7f800001, 0x7fc0}, // signalling NaN is quieted
		{0xff800000, 0xff80}, // -inf
	}
	for _, c := range cases {
		if got := FP32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("FP32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	for h := 0; h < 1<<16; h++ {
		f := BF16ToFP32(uint16(h))
		if f == f && FP32ToBF16(f) != uint16(h) {
			t.Fatalf("BF16 %#04x does not round trip", h)
		}
	}
}

func TestTypeBasics(t *testing.T) {
	cases := []struct {
		typ        Type
		name       string
		block, siz int
		supported  bool
	}{
		{F32, "F32", 1, 4, true}, {F16, "F16", 1, 2, true}, {BF16, "BF16", 1, 2, true},
		{Q4_0, "Q4_0", 32, 18, true}, {Q8_0, "Q8_0", 32, 34, true},
		{Q4_K, "Q4_K", 256, 144, true}, {Q6_K, "Q6_K", 256, 210, true}, {Q8_K, "Q8_K", 256, 292, true},
		{Q5_K, "Q5_K", 256, 176, false}, {IQ4_XS, "IQ4_XS", 256, 136, false}, {MXFP4, "MXFP4", 32, 17, false},
		{Type(4), "type(4)", 0, 0, false}, {Type(1000), "type(1000)", 0, 0, false},
	}
	for _, c := range cases {
		if c.typ.String() != c.name || c.typ.BlockSize() != c.block || c.typ.BlockBytes() != c.siz || c.typ.Supported() != c.supported {
			t.Errorf("%d: %s %d %d %v", uint32(c.typ), c.typ, c.typ.BlockSize(), c.typ.BlockBytes(), c.typ.Supported())
		}
	}
	if n, err := RowBytes(Q4_K, 512); err != nil || n != 288 {
		t.Errorf("RowBytes(Q4_K, 512) = %d, %v", n, err)
	}
	if _, err := RowBytes(Q8_0, 33); err == nil {
		t.Error("RowBytes accepted a partial block")
	}
	if _, err := RowBytes(Type(77), 32); err == nil {
		t.Error("RowBytes accepted an unknown type")
	}
	if _, err := RowBytes(F32, maxInt/2); err == nil {
		t.Error("RowBytes did not report overflow")
	}
}

func TestDequantizeQuantizeErrors(t *testing.T) {
	if err := Dequantize(Q5_K, make([]byte, 176), make([]float32, 256)); err == nil {
		t.Error("Dequantize of Q5_K succeeded")
	}
	if err := Dequantize(Q8_0, make([]byte, 33), make([]float32, 32)); err == nil {
		t.Error("Dequantize accepted a short block")
	}
	if err := Dequantize(Q8_0, make([]byte, 34), make([]float32, 31)); err == nil {
		t.Error("Dequantize accepted a partial block")
	}
	if _, err := Quantize(Q4_K, make([]float32, 100)); err == nil {
		t.Error("Quantize accepted a partial block")
	}
	if _, err := Quantize(IQ4_NL, make([]float32, 32)); err == nil {
		t.Error("Quantize of an unsupported type succeeded")
	}
}

// Quantising and dequantising random data must stay within each format's
// resolution; this catches gross layout mistakes independent of llama.cpp.
func TestQuantizeRoundTripError(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	limits := map[Type]float64{F16: 1e-3, BF16: 8e-3, Q8_0: 1e-2, Q6_K: 3e-2, Q4_0: 0.15, Q4_K: 0.12, Q8_K: 1e-2}
	for typ, limit := range limits {
		x := make([]float32, 4096)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		b, err := Quantize(typ, x)
		if err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		if err := Dequantize(typ, b, y); err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for i := range x {
			d := float64(x[i] - y[i])
			num += d * d
			den += float64(x[i]) * float64(x[i])
		}
		if rel := math.Sqrt(num / den); rel > limit {
			t.Errorf("%s: relative RMS error %.4f above %.4f", typ, rel, limit)
		}
	}
}
