package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Dequantize decodes len(dst) elements of type t from src, which must hold
// exactly that many elements.
func Dequantize(t Type, src []byte, dst []float32) error {
	if !t.Supported() {
		return fmt.Errorf("quant: unsupported tensor type %s", t)
	}
	want, err := RowBytes(t, len(dst))
	if err != nil {
		return fmt.Errorf("quant: dequantize: %w", err)
	}
	if len(src) != want {
		return fmt.Errorf("quant: dequantize %d %s elements: got %d bytes, want %d", len(dst), t, len(src), want)
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = FP16ToFP32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFP32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q4_0:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ4_0(src[b*q4_0Bytes:(b+1)*q4_0Bytes], dst[b*QK:(b+1)*QK])
		}
	case Q8_0:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ8_0(src[b*q8_0Bytes:(b+1)*q8_0Bytes], dst[b*QK:(b+1)*QK])
		}
	case Q4_K:
		for b := 0; b < len(dst)/QKK; b++ {
			dequantQ4K(src[b*q4KBytes:(b+1)*q4KBytes], dst[b*QKK:(b+1)*QKK])
		}
	case Q6_K:
		for b := 0; b < len(dst)/QKK; b++ {
			dequantQ6K(src[b*q6KBytes:(b+1)*q6KBytes], dst[b*QKK:(b+1)*QKK])
		}
	case Q8_K:
		for b := 0; b < len(dst)/QKK; b++ {
			dequantQ8K(src[b*q8KBytes:(b+1)*q8KBytes], dst[b*QKK:(b+1)*QKK])
		}
	default:
		return fmt.Errorf("quant: unsupported tensor type %s", t)
	}
	return nil
}

func dequantQ4_0(blk []byte, y []float32) {
	d := f16At(blk, 0)
	qs := blk[2 : 2+QK/2]
	for j, q := range qs {
		y[j] = float32(int32(q&0x0F)-8) * d
		y[j+QK/2] = float32(int32(q>>4)-8) * d
	}
}

func dequantQ8_0(blk []byte, y []float32) {
	d := f16At(blk, 0)
	for j, q := range blk[2 : 2+QK] {
		y[j] = float32(int8(q)) * d
	}
}

func dequantQ4K(blk []byte, y []float32) {
	d := f16At(blk, 0)
	dmin := f16At(blk, 2)
	scales := blk[q4KScales : q4KScales+12]
	q := blk[q4KQs:q4KBytes]
	for j := 0; j < QKK/64; j++ {
		sc, m := getScaleMinK4(2*j, scales)
		d1, m1 := d*float32(sc), float32(dmin*float32(m))
		sc, m = getScaleMinK4(2*j+1, scales)
		d2, m2 := d*float32(sc), float32(dmin*float32(m))
		qj := q[32*j : 32*j+32]
		out := y[64*j : 64*j+64]
		for l, b := range qj {
			// float32(...) keeps the product rounded before the subtraction,
			// as in C; Go may otherwise fuse it into an FMA on some CPUs.
			out[l] = float32(d1*float32(b&0xF)) - m1
			out[l+32] = float32(d2*float32(b>>4)) - m2
		}
	}
}

// q6KValue decodes element l+32*k (k = 0..3) of a 128-element half of a Q6_K
// block: 4 low bits from ql, 2 high bits from qh, offset by -32.
func q6KValues(ql, qh []byte, l int) (q1, q2, q3, q4 int32) {
	h := qh[l]
	q1 = int32(ql[l]&0xF|(h>>0&3)<<4) - 32
	q2 = int32(ql[l+32]&0xF|(h>>2&3)<<4) - 32
	q3 = int32(ql[l]>>4|(h>>4&3)<<4) - 32
	q4 = int32(ql[l+32]>>4|(h>>6&3)<<4) - 32
	return
}

func dequantQ6K(blk []byte, y []float32) {
	d := f16At(blk, q6KD)
	for half := 0; half < 2; half++ {
		ql := blk[64*half : 64*half+64]
		qh := blk[q6KQh+32*half : q6KQh+32*half+32]
		sc := blk[q6KScales+8*half : q6KScales+8*half+8]
		out := y[128*half : 128*half+128]
		for l := 0; l < 32; l++ {
			is := l / 16
			q1, q2, q3, q4 := q6KValues(ql, qh, l)
			out[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
			out[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
			out[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
			out[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
		}
	}
}

func dequantQ8K(blk []byte, y []float32) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(blk))
	for j, q := range blk[q8KQs : q8KQs+QKK] {
		y[j] = d * float32(int8(q))
	}
}
