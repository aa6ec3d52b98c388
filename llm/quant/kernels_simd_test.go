package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// usableKernelSets returns the assembly kernel sets this CPU can run, or
// skips: with -tags purego or on other architectures there are none and
// VecDot uses the reference kernels, which the other tests cover.
func usableKernelSets(t testing.TB) []kernelSet {
	var sets []kernelSet
	for _, s := range kernelSets {
		if s.usable {
			sets = append(sets, s)
		}
	}
	if len(sets) == 0 {
		t.Skip("no assembly kernels for this CPU/build (purego, or no AVX2+F16C)")
	}
	return sets
}

// randomHalf returns a finite half-precision value of roughly the given
// magnitude (scales must not be NaN or Inf, or no comparison is meaningful).
func randomHalf(r *rand.Rand, mag float64) uint16 {
	return FP32ToFP16(float32(r.NormFloat64() * mag))
}

// randomBlocks fills a row of n elements of type t with arbitrary bytes,
// every value a quant can take (int8 -128 included) but finite scales.
func randomBlocks(r *rand.Rand, t Type, n int) []byte {
	b := make([]byte, mustRowBytesNoT(t, n))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	bb := t.BlockBytes()
	for off := 0; off < len(b); off += bb {
		switch t {
		case Q4_0, Q8_0:
			binary.LittleEndian.PutUint16(b[off:], randomHalf(r, 0.01))
		case Q4_K:
			binary.LittleEndian.PutUint16(b[off:], randomHalf(r, 0.01))
			binary.LittleEndian.PutUint16(b[off+2:], randomHalf(r, 0.01))
		case Q6_K:
			binary.LittleEndian.PutUint16(b[off+q6KD:], randomHalf(r, 0.01))
		case Q8_K:
			binary.LittleEndian.PutUint32(b[off:], math.Float32bits(float32(r.NormFloat64()*0.02)))
		case F16:
			binary.LittleEndian.PutUint16(b[off:], randomHalf(r, 2))
		case F32:
			binary.LittleEndian.PutUint32(b[off:], math.Float32bits(float32(r.NormFloat64()*2)))
		case BF16:
			binary.LittleEndian.PutUint16(b[off:], FP32ToBF16(float32(r.NormFloat64()*2)))
		}
	}
	return b
}

func mustRowBytesNoT(t Type, n int) int {
	b, err := RowBytes(t, n)
	if err != nil {
		panic(err)
	}
	return b
}

// checkKernel compares an assembly kernel with the reference on one input:
// every kernel must return the reference's bits (any NaN matching any NaN).
func checkKernel(t *testing.T, set string, typ Type, n int, w, x []byte, what string) {
	t.Helper()
	got := set0(typ, set)(n, w, x)
	want := vecDotReference[typ](n, w, x)
	if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
		t.Errorf("%s %s n=%d %s: %g (%#x), reference %g (%#x)", set, typ, n, what, got, math.Float32bits(got), want, math.Float32bits(want))
	}
}

func set0(typ Type, name string) VecDotFunc {
	for _, s := range kernelSets {
		if s.name == name {
			return s.kernels[typ]
		}
	}
	panic("no kernel set " + name)
}

// blockCounts cover one block, the four-block main loops with and without a
// tail, and longer rows.
func blockCounts(typ Type) []int {
	if typ.BlockSize() == 1 {
		return []int{1, 2, 7, 15, 16, 17, 31, 32, 33, 64, 100, 1025, 4096}
	}
	return []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 33}
}

// Every assembly kernel, forced explicitly (so AVX2 is tested even where a
// wider set is installed), on arbitrary blocks, on quantised real rows, and
// at odd offsets (the kernels must not assume alignment).
func TestKernelSetsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range usableKernelSets(t) {
		for typ, k := range s.kernels {
			typ := Type(typ)
			if k == nil {
				continue
			}
			xt := VecDotType(typ)
			for _, blocks := range blockCounts(typ) {
				n := blocks * typ.BlockSize()
				for trial := 0; trial < 4; trial++ {
					checkKernel(t, s.name, typ, n, randomBlocks(r, typ, n), randomBlocks(r, xt, n), "random bytes")

					w := mustQuantize(t, typ, randomRow(r, n, 0.3))
					x := make([]byte, mustRowBytes(t, xt, n))
					QuantizeRow(xt, randomRow(r, n, 2), x)
					checkKernel(t, s.name, typ, n, w, x, "quantised")

					wo := make([]byte, len(w)+1)[1:]
					xo := make([]byte, len(x)+3)[3:]
					copy(wo, w)
					copy(xo, x)
					checkKernel(t, s.name, typ, n, wo, xo, "unaligned")
				}
			}
		}
	}
}

// Extreme blocks: every quant at its minimum or maximum (all -8 or 7 nibbles,
// int8 -128 and 127, 6-bit scales 63, Q6_K scales -128), zero scales and the
// largest finite half-precision scales, against extreme activations.
func TestKernelSetsEdgeCases(t *testing.T) {
	fills := []byte{0x00, 0xFF, 0x80, 0x7F, 0x88, 0x77, 0x0F, 0xF0}
	scales := []float32{0, 1, 65504, 6e-8, -2}
	for _, s := range usableKernelSets(t) {
		for typ, k := range s.kernels {
			typ := Type(typ)
			if k == nil {
				continue
			}
			xt := VecDotType(typ)
			for _, blocks := range []int{1, 5} {
				n := blocks * typ.BlockSize()
				for _, wf := range fills {
					for _, xf := range fills {
						for _, ws := range scales {
							for _, xs := range scales {
								w := make([]byte, mustRowBytes(t, typ, n))
								x := make([]byte, mustRowBytes(t, xt, n))
								fillBlocks(typ, w, wf, ws)
								fillBlocks(xt, x, xf, xs)
								checkKernel(t, s.name, typ, n, w, x, fmt.Sprintf("fills %#x/%#x scales %g/%g", wf, xf, ws, xs))
							}
						}
					}
				}
			}
		}
	}
}

// fillBlocks sets every byte of b to fill and then every block's scales to
// s (F32 and F16 rows become s everywhere, negated where fill is odd).
func fillBlocks(typ Type, b []byte, fill byte, s float32) {
	for i := range b {
		b[i] = fill
	}
	switch typ {
	case F32:
		for i := 0; i < len(b); i += 4 {
			v := s
			if fill&1 == 1 && i%8 == 0 {
				v = -s
			}
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(v))
		}
	case F16, BF16:
		for i := 0; i < len(b); i += 2 {
			v := s
			if fill&1 == 1 && i%4 == 0 {
				v = -s
			}
			if typ == F16 {
				putF16(b, i, v)
			} else {
				binary.LittleEndian.PutUint16(b[i:], FP32ToBF16(v))
			}
		}
	case Q8_K:
		for off := 0; off < len(b); off += q8KBytes {
			binary.LittleEndian.PutUint32(b[off:], math.Float32bits(s))
		}
	default:
		setScales(typ, b, s)
	}
}

// The installed table uses the widest usable set's kernels.
func TestInstalledKernelsAreWidestUsable(t *testing.T) {
	sets := usableKernelSets(t)
	best := sets[len(sets)-1]
	for typ, k := range best.kernels {
		if k == nil {
			continue
		}
		r := rand.New(rand.NewPCG(uint64(typ), 3))
		typ := Type(typ)
		n := 4 * typ.BlockSize() * 16
		w, x := randomBlocks(r, typ, n), randomBlocks(r, VecDotType(typ), n)
		if got, want := VecDot(typ, n, w, x), k(n, w, x); math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("%s: VecDot %g, %s kernel %g", typ, got, best.name, want)
		}
	}
}

// BenchmarkVecDotKernels runs the reference and every usable kernel set side
// by side on one 4096-element row per type, so their ratios come from one
// run: go test -run '^$' -bench VecDotKernels -count 5 ./llm/quant
func BenchmarkVecDotKernels(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(7, 8))
	for _, typ := range []Type{F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K} {
		w, err := Quantize(typ, randomRow(r, n, 0.5))
		if err != nil {
			b.Fatal(err)
		}
		xt := VecDotType(typ)
		x := make([]byte, mustRowBytes(b, xt, n))
		QuantizeRow(xt, randomRow(r, n, 1), x)
		impls := []struct {
			name string
			k    VecDotFunc
		}{{"ref", vecDotReference[typ]}}
		for _, s := range kernelSets {
			if s.usable && s.kernels[typ] != nil {
				impls = append(impls, struct {
					name string
					k    VecDotFunc
				}{s.name, s.kernels[typ]})
			}
		}
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/%s", typ, im.name), func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				var sink float32
				for b.Loop() {
					sink += im.k(n, w, x)
				}
				_ = sink
			})
		}
	}
}
