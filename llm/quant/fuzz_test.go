package quant

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzKernels feeds arbitrary bytes to every decoder and kernel as blocks of
// each type, and arbitrary floats (NaN, infinities, subnormals included) to
// every quantiser: nothing may panic, and the installed kernels must agree
// with the reference ones bit for bit.
func FuzzKernels(f *testing.F) {
	f.Add(make([]byte, 600), make([]byte, 600))
	ones := make([]byte, 600)
	for i := range ones {
		ones[i] = 0xFF
	}
	f.Add(ones, ones)
	nan := make([]byte, 0, 600)
	for len(nan) < 600 {
		nan = binary.LittleEndian.AppendUint32(nan, 0x7fc00001)
		nan = binary.LittleEndian.AppendUint32(nan, 0x7f800000)
		nan = binary.LittleEndian.AppendUint32(nan, 0x00000001)
	}
	f.Add(nan, ones)
	f.Fuzz(func(t *testing.T, wRaw, xRaw []byte) {
		for _, typ := range []Type{F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K, Q8_K} {
			n := typ.BlockSize() * max(1, 256/typ.BlockSize())
			wb, _ := RowBytes(typ, n)
			if len(wRaw) < wb {
				continue
			}
			w := wRaw[:wb]
			out := make([]float32, n)
			if err := Dequantize(typ, w, out); err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			if HasVecDot(typ) {
				xt := VecDotType(typ)
				xb, _ := RowBytes(xt, n)
				if len(xRaw) >= xb {
					x := xRaw[:xb]
					got := VecDot(typ, n, w, x)
					want := vecDotReference[typ](n, w, x)
					if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
						t.Fatalf("%s: kernel %g, reference %g", typ, got, want)
					}
					// The K-quant kernels are restructured; the literal
					// transcription of ggml's loops must agree on any bytes.
					var literal float32
					switch typ {
					case Q4_K:
						literal = ggmlStyleQ4K(n, w, x)
					case Q6_K:
						literal = ggmlStyleQ6K(n, w, x)
					default:
						literal = got
					}
					if math.Float32bits(got) != math.Float32bits(literal) && !(got != got && literal != literal) {
						t.Fatalf("%s: kernel %g, ggml's loop structure %g", typ, got, literal)
					}
				}
			}
			// Quantise floats read from the raw bytes, whatever they are.
			src := make([]float32, n)
			for i := range src {
				if 4*i+4 <= len(wRaw) {
					src[i] = math.Float32frombits(binary.LittleEndian.Uint32(wRaw[4*i:]))
				}
			}
			q, err := Quantize(typ, src)
			if err != nil || len(q) != wb {
				t.Fatalf("%s: Quantize: %v, %d bytes", typ, err, len(q))
			}
		}
	})
}
