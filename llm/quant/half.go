package quant

import "math"

// fp16Table holds the float32 value of every half-precision bit pattern, as
// ggml's ggml_table_f32_f16 does, because block scales are decoded in every
// inner loop.
var fp16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = fp16ToFP32Slow(uint16(h))
	}
	return &t
}()

// FP16ToFP32 widens an IEEE half-precision value; the conversion is exact.
func FP16ToFP32(h uint16) float32 { return fp16Table[h] }

func fp16ToFP32Slow(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN; NaN payloads are kept, as ggml does
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: value = mant * 2^-24, exactly representable.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// FP32ToFP16 rounds to the nearest half-precision value, ties to even, as
// ggml's GGML_FP32_TO_FP16 does (and the F16C instruction). Values beyond the
// half range become infinities; NaNs become the quiet NaN 0x7e00 with the
// sign kept.
func FP32ToFP16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	abs := bits & 0x7fffffff
	switch {
	case abs > 0x7f800000:
		return sign | 0x7e00
	case abs >= 0x477ff000: // rounds to 65520 or more: infinity
		return sign | 0x7c00
	case abs >= 0x38800000: // normal half (2^-14 and up)
		// Re-bias the exponent, then round the 13 dropped mantissa bits to
		// nearest even; a carry into the exponent is the correct result.
		v := abs - (112 << 23)
		half := v >> 13
		rest := v & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	case abs < 0x33000000: // below half of the smallest subnormal: zero
		return sign
	}
	// Subnormal half: the value is mant * 2^(exp-150); in units of the
	// smallest subnormal, 2^-24, that is mant >> (126-exp), rounded to
	// nearest even.
	exp := abs >> 23
	mant := abs&0x7fffff | 0x800000
	shift := 126 - exp
	half := mant >> shift
	rest := mant & (1<<shift - 1)
	mid := uint32(1) << (shift - 1)
	if rest > mid || (rest == mid && half&1 == 1) {
		half++
	}
	return sign | uint16(half)
}

// BF16ToFP32 widens a bfloat16 value; the conversion is exact.
func BF16ToFP32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// FP32ToBF16 rounds to the nearest bfloat16, ties to even, and quiets NaNs,
// exactly like ggml_compute_fp32_to_bf16 (subnormals are kept, not flushed).
func FP32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
