package quant

import (
	"encoding/binary"
	"math"
)

// Block layouts (byte offsets), as ggml's block_* structs lay them out.
const (
	q4_0Bytes = 2 + QK/2 // d f16, qs[16]: low nibbles are elements 0..15, high 16..31
	q8_0Bytes = 2 + QK   // d f16, qs[32] int8

	q4KBytes    = 4 + 12 + QKK/2 // d f16, dmin f16, scales[12] (6-bit packed), qs[128]
	q4KScales   = 4
	q4KQs       = 16
	q6KBytes    = QKK/2 + QKK/4 + QKK/16 + 2 // ql[128], qh[64], scales[16] int8, d f16
	q6KQh       = QKK / 2
	q6KScales   = QKK/2 + QKK/4
	q6KD        = QKK/2 + QKK/4 + QKK/16
	q8KBytes    = 4 + QKK + QKK/16*2 // d f32, qs[256] int8, bsums[16] int16
	q8KQs       = 4
	q8KBsums    = 4 + QKK
	groupMaxEps = 1e-15 // ggml's GROUP_MAX_EPS: sub-blocks below this are all-zero
)

func f16At(b []byte, off int) float32 { return FP16ToFP32(binary.LittleEndian.Uint16(b[off:])) }

func putF16(b []byte, off int, f float32) { binary.LittleEndian.PutUint16(b[off:], FP32ToFP16(f)) }

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }

// nearestInt is ggml's nearest_int: round to nearest, ties to even, by adding
// 1.5*2^23 and reading the mantissa. Outside |f| <= 2^22 it returns the same
// wrapped value the C code does, so even degenerate blocks match.
func nearestInt(f float32) int32 {
	// float32(f) keeps a product passed in as f from being fused with the
	// addition into an FMA (Go may fuse across inlined calls).
	i := int32(math.Float32bits(float32(f) + 12582912))
	return (i & 0x007fffff) - 0x00400000
}

// truncInt32 converts like x86's cvttss2si, which C's float-to-int casts
// compile to: toward zero, with NaN and out-of-range values giving MinInt32.
func truncInt32(f float32) int32 {
	if f != f || f >= 2147483648 || f < -2147483648 {
		return math.MinInt32
	}
	return int32(f)
}

// getScaleMinK4 unpacks the 6-bit scale and min of sub-block j of a Q4_K
// block from its 12 packed bytes (ggml's get_scale_min_k4).
func getScaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}
