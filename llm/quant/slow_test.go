package quant_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// The helpers here decode blocks straight from the format description, in
// float64 and without any of the package's code paths, as an independent
// check of Dequantize and VecDot.

func halfToF64(b []byte) float64 {
	h := binary.LittleEndian.Uint16(b)
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
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

func slowDequant(t quant.Type, src []byte, n int) []float64 {
	out := make([]float64, n)
	switch t {
	case quant.F32:
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:])))
		}
	case quant.F16:
		for i := range out {
			out[i] = halfToF64(src[2*i:])
		}
	case quant.BF16:
		for i := range out {
			out[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16))
		}
	case quant.Q8_0:
		for i := range out {
			blk := src[(i/32)*34:]
			out[i] = halfToF64(blk) * float64(int8(blk[2+i%32]))
		}
	case quant.Q4_0:
		for i := range out {
			blk := src[(i/32)*18:]
			j := i % 32
			nib := int(blk[2+j%16] & 0xF)
			if j >= 16 {
				nib = int(blk[2+j%16] >> 4)
			}
			out[i] = halfToF64(blk) * float64(nib-8)
		}
	case quant.Q8_K:
		for i := range out {
			blk := src[(i/256)*292:]
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(blk))) * float64(int8(blk[4+i%256]))
		}
	case quant.Q4_K:
		for i := range out {
			blk := src[(i/256)*144:]
			j := i % 256
			sub := j / 32 // sub-block of 32
			sc, m := scaleMin6(blk[4:16], sub)
			// qs: each 64-element chunk uses 32 bytes, low nibbles first.
			b := blk[16+(j/64)*32+j%32]
			q := int(b & 0xF)
			if (j/32)%2 == 1 {
				q = int(b >> 4)
			}
			out[i] = halfToF64(blk)*float64(sc)*float64(q) - halfToF64(blk[2:])*float64(m)
		}
	case quant.Q6_K:
		for i := range out {
			blk := src[(i/256)*210:]
			j := i % 256
			half, r := j/128, j%128
			quarter, l := r/32, r%32
			ql := blk[64*half:]
			qh := blk[128+32*half:]
			var low int
			switch quarter {
			case 0:
				low = int(ql[l] & 0xF)
			case 1:
				low = int(ql[l+32] & 0xF)
			case 2:
				low = int(ql[l] >> 4)
			case 3:
				low = int(ql[l+32] >> 4)
			}
			high := int(qh[l]>>(2*quarter)) & 3
			q := low | high<<4 - 32
			sc := int8(blk[192+j/16])
			out[i] = halfToF64(blk[208:]) * float64(sc) * float64(q)
		}
	default:
		panic("slowDequant: " + t.String())
	}
	return out
}

// scaleMin6 reads the j-th 6-bit scale and min of a Q4_K block: the first
// four live in the low 6 bits of bytes 0-3 / 4-7, the last four in the
// nibbles of bytes 8-11 with their top 2 bits in the high bits of 0-7.
func scaleMin6(s []byte, j int) (int, int) {
	if j < 4 {
		return int(s[j] & 63), int(s[j+4] & 63)
	}
	sc := int(s[j+4]&0xF) | int(s[j-4]>>6)<<4
	m := int(s[j+4]>>4) | int(s[j]>>6)<<4
	return sc, m
}

func checkAgainstSlowDequant(t testing.TB, typ quant.Type, src []byte, got []float32) {
	t.Helper()
	want := slowDequant(typ, src, len(got))
	for i := range got {
		// The package computes in float32 like ggml; the float64 decoding
		// differs by at most a couple of float32 roundings.
		if diff := math.Abs(float64(got[i]) - want[i]); diff > 1e-6*math.Abs(want[i])+1e-30 && !(math.IsNaN(want[i]) && math.IsNaN(float64(got[i]))) {
			t.Fatalf("%s element %d: %g, float64 decoding gives %g", typ, i, got[i], want[i])
		}
	}
}
