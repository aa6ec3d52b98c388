package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// VecDotType is the type ggml's CPU backend converts activations to before
// multiplying them with weights of type t (its type_traits_cpu vec_dot_type).
// Types without a dot-product kernel return themselves.
func VecDotType(t Type) Type {
	switch t {
	case Q4_0, Q8_0:
		return Q8_0
	case Q4_K, Q6_K:
		return Q8_K
	}
	return t
}

// VecDotFunc computes the dot product of one row of n weights (w) with n
// activations (x) already converted to the weight type's VecDotType.
type VecDotFunc func(n int, w, x []byte) float32

// vecDotKernels is the dispatch table VecDot uses, indexed by weight type. It
// starts with the pure-Go reference kernels; an architecture-specific file may
// replace entries in its init after checking CPU features (vecdot_amd64.go).
// Any replacement must return exactly what the reference returns, which the
// tests check via vecDotReference.
var vecDotKernels = [numTypes]VecDotFunc{
	F32:  vecDotF32,
	F16:  vecDotF16,
	BF16: vecDotBF16,
	Q4_0: vecDotQ4_0Q8_0,
	Q8_0: vecDotQ8_0Q8_0,
	Q4_K: vecDotQ4KQ8K,
	Q6_K: vecDotQ6KQ8K,
}

// vecDotReference keeps the reference kernels reachable when vecDotKernels
// has been given faster ones.
var vecDotReference = vecDotKernels

// HasVecDot reports whether VecDot supports weights of type t.
func HasVecDot(t Type) bool { return t < numTypes && vecDotKernels[t] != nil }

// VecDot returns the dot product of w, one row of n elements of type t, with
// x, n elements of VecDotType(t) (see QuantizeRow), summed in the order of
// ggml's scalar reference kernels so that results match llama.cpp bit for
// bit. Wrong sizes or a type without a kernel are programming errors and
// panic.
func VecDot(t Type, n int, w, x []byte) float32 {
	if !HasVecDot(t) {
		panic(fmt.Sprintf("quant: no dot-product kernel for %s", t))
	}
	f := vecDotKernels[t]
	checkVecDotArgs(t, n, w, x)
	return f(n, w, x)
}

// VecDotRows sets dst[r] to VecDot(t, n, w_r, x) for the len(dst)
// consecutive rows w_r of w, each RowBytes(t, n) bytes: one activation row
// against a slice of a weight matrix, with the sizes checked once instead of
// per row. Results are exactly VecDot's. Wrong sizes panic.
func VecDotRows(t Type, n int, w, x []byte, dst []float32) {
	if !HasVecDot(t) {
		panic(fmt.Sprintf("quant: no dot-product kernel for %s", t))
	}
	rb, err := RowBytes(t, n)
	if err != nil {
		panic("quant: VecDotRows: " + err.Error())
	}
	if rb*len(dst) != len(w) || len(dst) > 0 && len(w)/len(dst) != rb {
		panic(fmt.Sprintf("quant: VecDotRows %s n=%d: weights %d bytes for %d rows of %d bytes", t, n, len(w), len(dst), rb))
	}
	if xb, _ := RowBytes(VecDotType(t), n); len(x) != xb {
		panic(fmt.Sprintf("quant: VecDotRows %s n=%d: activations %d bytes, want %d", t, n, len(x), xb))
	}
	if k := vecDotRowsKernels[t]; k != nil {
		k(n, w, x, dst)
		return
	}
	f := vecDotKernels[t]
	for r := range dst {
		dst[r] = f(n, w[r*rb:(r+1)*rb:(r+1)*rb], x)
	}
}

// vecDotRowsFunc computes len(dst) consecutive rows at once (VecDotRows after
// its checks).
type vecDotRowsFunc func(n int, w, x []byte, dst []float32)

// vecDotRowsKernels optionally holds architecture kernels that loop over the
// rows themselves, saving a call per row; VecDotRows otherwise calls
// vecDotKernels row by row. Each must return exactly what the vecDotKernels
// entry of its type returns.
var vecDotRowsKernels [numTypes]vecDotRowsFunc

func checkVecDotArgs(t Type, n int, w, x []byte) {
	wb, err := RowBytes(t, n)
	if err != nil {
		panic("quant: VecDot: " + err.Error())
	}
	xb, err := RowBytes(VecDotType(t), n)
	if err != nil {
		panic("quant: VecDot: " + err.Error())
	}
	if len(w) != wb || len(x) != xb {
		panic(fmt.Sprintf("quant: VecDot %s n=%d: weights %d bytes (want %d), activations %d bytes (want %d)", t, n, len(w), wb, len(x), xb))
	}
}

// QuantizeRow converts activations x into dst, encoded as type t, which is
// meant to be a VecDotType (Q8_0, Q8_K, F16, BF16 or F32): the conversion
// ggml's from_float performs before a dot product. dst must hold exactly
// RowBytes(t, len(x)) bytes; anything else panics.
func QuantizeRow(t Type, x []float32, dst []byte) {
	if !t.Supported() {
		panic(fmt.Sprintf("quant: QuantizeRow: unsupported type %s", t))
	}
	want, err := RowBytes(t, len(x))
	if err != nil {
		panic("quant: QuantizeRow: " + err.Error())
	}
	if len(dst) != want {
		panic(fmt.Sprintf("quant: QuantizeRow %s: dst has %d bytes, want %d", t, len(dst), want))
	}
	quantizeInto(t, x, dst)
}

func f32At(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }

// vecDotF32 is ggml_vec_dot_f32's scalar loop: float32 products summed in
// float64.
func vecDotF32(n int, w, x []byte) float32 {
	var sum float64
	for i := 0; i < n; i++ {
		sum += float64(f32At(w, i) * f32At(x, i))
	}
	return float32(sum)
}

// vecDotF16 is ggml_vec_dot_f16's scalar loop. Half-precision products are
// exact in float32; they are summed in float64.
func vecDotF16(n int, w, x []byte) float32 {
	w, x = w[:2*n], x[:2*n]
	var sum float64
	for i := 0; i < len(w); i += 2 {
		a := FP16ToFP32(binary.LittleEndian.Uint16(w[i:]))
		b := FP16ToFP32(binary.LittleEndian.Uint16(x[i:]))
		sum += float64(a * b)
	}
	return float32(sum)
}

// vecDotBF16 is ggml_vec_dot_bf16's scalar loop.
func vecDotBF16(n int, w, x []byte) float32 {
	w, x = w[:2*n], x[:2*n]
	var sum float64
	for i := 0; i < len(w); i += 2 {
		a := BF16ToFP32(binary.LittleEndian.Uint16(w[i:]))
		b := BF16ToFP32(binary.LittleEndian.Uint16(x[i:]))
		sum += float64(a * b)
	}
	return float32(sum)
}

// vecDotQ8_0Q8_0 is ggml_vec_dot_q8_0_q8_0_generic: an exact integer sum per
// block, scaled by (d_w*d_x) and accumulated in float32 block after block.
func vecDotQ8_0Q8_0(n int, w, x []byte) float32 {
	var sum float32
	for b := 0; b < n/QK; b++ {
		wb := w[b*q8_0Bytes : (b+1)*q8_0Bytes]
		xb := x[b*q8_0Bytes : (b+1)*q8_0Bytes]
		isum := dotInt8x32((*[QK]byte)(wb[2:q8_0Bytes]), (*[QK]byte)(xb[2:q8_0Bytes]))
		sum += float32(float32(isum) * float32(f16At(wb, 0)*f16At(xb, 0)))
	}
	return sum
}

// vecDotQ4_0Q8_0 is ggml_vec_dot_q4_0_q8_0_generic. Unlike Q8_0 it scales as
// (isum*d_w)*d_x.
func vecDotQ4_0Q8_0(n int, w, x []byte) float32 {
	var sum float32
	for b := 0; b < n/QK; b++ {
		wb := w[b*q4_0Bytes : (b+1)*q4_0Bytes]
		xb := x[b*q8_0Bytes : (b+1)*q8_0Bytes]
		wq, xq := wb[2:q4_0Bytes], xb[2:q8_0Bytes]
		var lo, hi int32
		for j, q := range wq {
			lo += (int32(q&0x0F) - 8) * int32(int8(xq[j]))
			hi += (int32(q>>4) - 8) * int32(int8(xq[j+QK/2]))
		}
		sum += float32(float32(float32(lo+hi)*f16At(wb, 0)) * f16At(xb, 0))
	}
	return sum
}

// dotInt8x32 is the exact integer dot product of two blocks of 32 int8.
// Integer sums are associative, so four independent accumulators shorten the
// dependency chain without changing the result.
func dotInt8x32(w, x *[QK]byte) int32 {
	var s0, s1, s2, s3 int32
	for j := 0; j < QK; j += 4 {
		s0 += int32(int8(w[j])) * int32(int8(x[j]))
		s1 += int32(int8(w[j+1])) * int32(int8(x[j+1]))
		s2 += int32(int8(w[j+2])) * int32(int8(x[j+2]))
		s3 += int32(int8(w[j+3])) * int32(int8(x[j+3]))
	}
	return s0 + s1 + s2 + s3
}

// The K-quant kernels follow ggml's scalar versions, which accumulate the
// integer products into 8 lanes (element index mod 8) per block, scale each
// lane by d_w*d_x into 8 float32 partial sums, and add the lanes at the very
// end. The integer parts are exact, so only that float order matters.

// vecDotQ4KQ8K is ggml_vec_dot_q4_K_q8_K_generic.
func vecDotQ4KQ8K(n int, w, x []byte) float32 {
	var sums [8]float32
	var sumf float32
	for b := 0; b < n/QKK; b++ {
		wb := w[b*q4KBytes : (b+1)*q4KBytes]
		xb := x[b*q8KBytes : (b+1)*q8KBytes]
		packed := wb[q4KScales : q4KScales+12]
		qs := wb[q4KQs:q4KBytes]
		q8 := xb[q8KQs : q8KQs+QKK]

		var scales, mins [8]int32
		for j := range scales {
			sc, m := getScaleMinK4(j, packed)
			scales[j], mins[j] = int32(sc), int32(m)
		}
		// The mins multiply the activation sums of each 16 (bsums), two per
		// 32-element sub-block.
		var sumMins int32
		for j := 0; j < QKK/16; j++ {
			bsum := int32(int16(binary.LittleEndian.Uint16(xb[q8KBsums+2*j:])))
			sumMins += bsum * mins[j/2]
		}
		lanes := q4KLanes((*[QKK / 2]byte)(qs), (*[QKK]byte)(q8), &scales)
		dx := f32At(xb, 0)
		d := f16At(wb, 0) * dx
		for l := range sums {
			sums[l] += float32(d * float32(lanes[l]))
		}
		dmin := f16At(wb, 2) * dx
		sumf -= float32(dmin * float32(sumMins))
	}
	for _, s := range sums {
		sumf += s
	}
	return sumf
}

// q4KLanes returns the integer part of a Q4_K block's dot product, split
// into ggml's 8 lanes (element index mod 8). Eight local accumulators per
// nibble half keep the sums in registers; integer addition is exact, so the
// grouping does not change the lanes.
func q4KLanes(qs *[QKK / 2]byte, q8 *[QKK]byte, scales *[8]int32) (lanes [8]int32) {
	for j := 0; j < QKK/64; j++ {
		lowScale, highScale := scales[2*j], scales[2*j+1]
		var a0, a1, a2, a3, a4, a5, a6, a7 int32 // low nibbles: elements 64j..64j+31
		var b0, b1, b2, b3, b4, b5, b6, b7 int32 // high nibbles: elements 64j+32..64j+63
		for l := 0; l < 32; l += 8 {
			q := (*[8]byte)(qs[32*j+l : 32*j+l+8])
			x := (*[8]byte)(q8[64*j+l : 64*j+l+8])
			y := (*[8]byte)(q8[64*j+32+l : 64*j+32+l+8])
			a0 += int32(q[0]&0xF) * int32(int8(x[0]))
			a1 += int32(q[1]&0xF) * int32(int8(x[1]))
			a2 += int32(q[2]&0xF) * int32(int8(x[2]))
			a3 += int32(q[3]&0xF) * int32(int8(x[3]))
			a4 += int32(q[4]&0xF) * int32(int8(x[4]))
			a5 += int32(q[5]&0xF) * int32(int8(x[5]))
			a6 += int32(q[6]&0xF) * int32(int8(x[6]))
			a7 += int32(q[7]&0xF) * int32(int8(x[7]))
			b0 += int32(q[0]>>4) * int32(int8(y[0]))
			b1 += int32(q[1]>>4) * int32(int8(y[1]))
			b2 += int32(q[2]>>4) * int32(int8(y[2]))
			b3 += int32(q[3]>>4) * int32(int8(y[3]))
			b4 += int32(q[4]>>4) * int32(int8(y[4]))
			b5 += int32(q[5]>>4) * int32(int8(y[5]))
			b6 += int32(q[6]>>4) * int32(int8(y[6]))
			b7 += int32(q[7]>>4) * int32(int8(y[7]))
		}
		lanes[0] += lowScale*a0 + highScale*b0
		lanes[1] += lowScale*a1 + highScale*b1
		lanes[2] += lowScale*a2 + highScale*b2
		lanes[3] += lowScale*a3 + highScale*b3
		lanes[4] += lowScale*a4 + highScale*b4
		lanes[5] += lowScale*a5 + highScale*b5
		lanes[6] += lowScale*a6 + highScale*b6
		lanes[7] += lowScale*a7 + highScale*b7
	}
	return lanes
}

// vecDotQ6KQ8K is ggml_vec_dot_q6_K_q8_K_generic.
func vecDotQ6KQ8K(n int, w, x []byte) float32 {
	var sums [8]float32
	for b := 0; b < n/QKK; b++ {
		wb := w[b*q6KBytes : (b+1)*q6KBytes]
		xb := x[b*q8KBytes : (b+1)*q8KBytes]
		lanes := q6KLanes((*[q6KBytes]byte)(wb), (*[QKK]byte)(xb[q8KQs:q8KQs+QKK]))
		d := f16At(wb, q6KD) * f32At(xb, 0)
		for l := range sums {
			sums[l] += float32(d * float32(lanes[l]))
		}
	}
	var sumf float32
	for _, s := range sums {
		sumf += s
	}
	return sumf
}

// q6KLanes returns the integer part of a Q6_K block's dot product in ggml's 8
// lanes: the 6-bit values are decoded first (as ggml does), then each
// 16-element sub-block is summed in locals and scaled once.
func q6KLanes(wb *[q6KBytes]byte, q8 *[QKK]byte) (lanes [8]int32) {
	var vals [QKK]int8
	for half := 0; half < 2; half++ {
		ql := wb[64*half : 64*half+64]
		qh := wb[q6KQh+32*half : q6KQh+32*half+32]
		v := (*[128]int8)(vals[128*half : 128*half+128])
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := q6KValues(ql, qh, l)
			v[l], v[l+32], v[l+64], v[l+96] = int8(q1), int8(q2), int8(q3), int8(q4)
		}
	}
	for j := 0; j < QKK/16; j++ {
		q := (*[16]int8)(vals[16*j : 16*j+16])
		x := (*[16]byte)(q8[16*j : 16*j+16])
		s := int32(int8(wb[q6KScales+j]))
		lanes[0] += s * (int32(q[0])*int32(int8(x[0])) + int32(q[8])*int32(int8(x[8])))
		lanes[1] += s * (int32(q[1])*int32(int8(x[1])) + int32(q[9])*int32(int8(x[9])))
		lanes[2] += s * (int32(q[2])*int32(int8(x[2])) + int32(q[10])*int32(int8(x[10])))
		lanes[3] += s * (int32(q[3])*int32(int8(x[3])) + int32(q[11])*int32(int8(x[11])))
		lanes[4] += s * (int32(q[4])*int32(int8(x[4])) + int32(q[12])*int32(int8(x[12])))
		lanes[5] += s * (int32(q[5])*int32(int8(x[5])) + int32(q[13])*int32(int8(x[13])))
		lanes[6] += s * (int32(q[6])*int32(int8(x[6])) + int32(q[14])*int32(int8(x[14])))
		lanes[7] += s * (int32(q[7])*int32(int8(x[7])) + int32(q[15])*int32(int8(x[15])))
	}
	return lanes
}
