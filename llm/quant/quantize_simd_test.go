package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"os"
	"testing"
)

// rowKernelTypes are the activation types that have row kernels on some
// architecture.
var rowKernelTypes = []Type{Q8_0, Q8_K, F16}

// quantizeRowReference is quantizeInto's pure-Go path for the row-kernel
// types, kept callable while a kernel is installed.
func quantizeRowReference(t Type, src []float32, dst []byte) {
	switch t {
	case Q8_0:
		for b := 0; b < len(src)/QK; b++ {
			quantizeQ8_0(src[b*QK:(b+1)*QK], dst[b*q8_0Bytes:(b+1)*q8_0Bytes])
		}
	case Q8_K:
		for b := 0; b < len(src)/QKK; b++ {
			quantizeQ8K(src[b*QKK:(b+1)*QKK], dst[b*q8KBytes:(b+1)*q8KBytes])
		}
	case F16:
		for i, f := range src {
			putF16(dst, 2*i, f)
		}
	default:
		panic("no reference row quantiser for " + t.String())
	}
}

// requireRowKernel skips where this build or CPU has no kernel for t: the
// comparison would only compare the reference with itself.
func requireRowKernel(t testing.TB, typ Type) {
	t.Helper()
	if quantizeRowKernels[typ] == nil {
		t.Skipf("no %s row kernel in this build or on this CPU", typ)
	}
}

// checkRow compares QuantizeRow (the installed kernel) with the reference on
// x and reports the first differing byte with the block and inputs around it.
func checkRow(t testing.TB, typ Type, x []float32, what string) {
	t.Helper()
	n, err := RowBytes(typ, len(x))
	if err != nil {
		t.Fatalf("%s %s: %v", typ, what, err)
	}
	got := make([]byte, n)
	want := make([]byte, n)
	// Poison both so a byte the kernel forgets to write shows.
	for i := range got {
		got[i], want[i] = 0xA5, 0x5A
	}
	QuantizeRow(typ, x, got)
	quantizeRowReference(typ, x, want)
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	bs, bb := typ.BlockSize(), typ.BlockBytes()
	blk := i / bb
	t.Fatalf("%s %s n=%d: byte %d (block %d, offset %d) is %#02x, reference %#02x\nblock input: %v",
		typ, what, len(x), i, blk, i%bb, got[i], want[i], x[blk*bs:(blk+1)*bs])
}

// rowLengths are row lengths the engine quantises: hidden and FFN sizes of
// the supported models.
var rowLengths = []int{256, 512, 896, 2048, 3072, 4864, 5632}

type rowMaker struct {
	name string
	fill func(r *rand.Rand, x []float32, blockSize int)
}

func scaled(scale float32) func(r *rand.Rand, x []float32, _ int) {
	return func(r *rand.Rand, x []float32, _ int) {
		for i := range x {
			x[i] = float32(r.NormFloat64()) * scale
		}
	}
}

// rowMakers cover the cases where a kernel could round or convert
// differently: extreme scales, magnitudes whose scale under- or overflows,
// exact rounding ties, signed zeros, subnormals, infinities and NaNs.
var rowMakers = []rowMaker{
	{"unit", scaled(1)},
	{"1e-30", scaled(1e-30)},
	{"1e-3", scaled(1e-3)},
	{"1e3", scaled(1e3)},
	{"1e30", scaled(1e30)},
	{"3e38", scaled(3e38)}, // some overflow to ±Inf
	{"one-huge", func(r *rand.Rand, x []float32, bs int) {
		scaled(1)(r, x, bs)
		for b := 0; b < len(x); b += bs {
			x[b+r.Intn(bs)] = float32(r.NormFloat64()) * 1e30
		}
	}},
	{"zeros", func(r *rand.Rand, x []float32, _ int) { clear(x) }},
	{"signed-zeros", func(r *rand.Rand, x []float32, _ int) {
		for i := range x {
			x[i] = math.Float32frombits(uint32(r.Intn(2)) << 31)
		}
	}},
	{"zero-blocks", func(r *rand.Rand, x []float32, bs int) {
		scaled(1)(r, x, bs)
		for b := 0; b < len(x); b += bs {
			if r.Intn(2) == 0 {
				clear(x[b : b+bs])
			}
		}
	}},
	{"subnormal", func(r *rand.Rand, x []float32, _ int) {
		for i := range x {
			x[i] = math.Float32frombits(uint32(r.Intn(2))<<31 | uint32(r.Intn(1<<23)))
		}
	}},
	{"tiny-subnormal", func(r *rand.Rand, x []float32, _ int) {
		// The block scale underflows to 0 or its inverse overflows.
		for i := range x {
			x[i] = math.Float32frombits(uint32(r.Intn(2))<<31 | uint32(r.Intn(300)))
		}
	}},
	{"random-bits", func(r *rand.Rand, x []float32, _ int) {
		for i := range x {
			b := r.Uint32()
			for b&0x7fffffff > 0x7f800000 { // no NaN here; see "nan"
				b = r.Uint32()
			}
			x[i] = math.Float32frombits(b)
		}
	}},
	{"inf", func(r *rand.Rand, x []float32, bs int) {
		scaled(1)(r, x, bs)
		for b := 0; b < len(x); b += bs {
			x[b+r.Intn(bs)] = float32(math.Inf(1 - 2*r.Intn(2)))
		}
	}},
	{"nan", func(r *rand.Rand, x []float32, bs int) {
		scaled(1)(r, x, bs)
		for b := 0; b < len(x); b += bs {
			if r.Intn(3) == 0 {
				// Payloads and signs differ, as they would after an Inf-Inf.
				x[b+r.Intn(bs)] = math.Float32frombits(uint32(r.Intn(2))<<31 | 0x7f800000 | uint32(1+r.Intn(1<<23-1)))
			}
		}
	}},
	{"ties", fillTies},
	{"max-sign-ties", func(r *rand.Rand, x []float32, bs int) {
		// Equal magnitudes of both signs: Q8_K must take the first.
		scaled(1)(r, x, bs)
		for b := 0; b < len(x); b += bs {
			m := float32(4 + r.Intn(4))
			for k := 0; k < 3; k++ {
				x[b+r.Intn(bs)] = m * float32(1-2*r.Intn(2))
			}
		}
	}},
}

// fillTies builds blocks whose scaled values are exact ties. A block whose
// largest magnitude is 127·2^e has Q8_0 scale d = 2^e and inverse 2^-e, and,
// as -127·2^e, Q8_K scale 2^-e, so (k+0.5)·2^e scales to exactly k+0.5; the
// neighbours of the ties and of 0.5 itself (0.49999997) are mixed in.
func fillTies(r *rand.Rand, x []float32, bs int) {
	for b := 0; b < len(x); b += bs {
		e := r.Intn(40) - 20
		s := float32(math.Ldexp(1, e))
		blk := x[b : b+bs]
		for i := range blk {
			v := float32(r.Intn(254)-127) + 0.5
			switch r.Intn(6) {
			case 0:
				v = math.Nextafter32(v, 0)
			case 1:
				v = math.Nextafter32(v, float32(math.Copysign(200, float64(v))))
			case 2:
				v = float32(math.Copysign(float64(math.Nextafter32(0.5, 0)), float64(v)))
			case 3:
				v = float32(math.Copysign(0.5, float64(v)))
			}
			blk[i] = v * s
		}
		blk[r.Intn(bs)] = -127 * s
	}
}

func TestQuantizeRowKernelsMatchReference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, typ := range rowKernelTypes {
		t.Run(typ.String(), func(t *testing.T) {
			requireRowKernel(t, typ)
			lengths := append([]int{0}, rowLengths...)
			if typ != Q8_K {
				lengths = append([]int{32, 64, 96, 160}, lengths...)
			}
			if typ == F16 {
				lengths = append([]int{1, 7, 8, 9, 15, 17, 31, 33, 2049}, lengths...)
			}
			for _, m := range rowMakers {
				for _, n := range lengths {
					if n%typ.BlockSize() != 0 {
						continue // 896 (Qwen2.5-0.5B) is no Q8_K row
					}
					for rep := 0; rep < 4; rep++ {
						x := make([]float32, n)
						m.fill(r, x, typ.BlockSize())
						checkRow(t, typ, x, m.name)
					}
				}
			}
		})
	}
}

// TestQuantizeRowKernelsUnaligned runs the kernels on rows that start at
// every 4-byte offset within a cache line and end just before memory the
// kernels must not read or write.
func TestQuantizeRowKernelsUnaligned(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, typ := range rowKernelTypes {
		requireRowKernel(t, typ)
		n := 2 * typ.BlockSize() * max(1, 32/typ.BlockSize())
		for off := 0; off < 16; off++ {
			buf := make([]float32, off+n)
			x := buf[off:]
			scaled(1)(r, x, typ.BlockSize())
			rb, _ := RowBytes(typ, n)
			out := make([]byte, off+rb+64)
			for i := range out {
				out[i] = 0xEE
			}
			QuantizeRow(typ, x, out[off:off+rb])
			want := make([]byte, rb)
			quantizeRowReference(typ, x, want)
			if !bytes.Equal(out[off:off+rb], want) {
				t.Fatalf("%s offset %d: differs from the reference", typ, off)
			}
			for i, b := range out {
				if (i < off || i >= off+rb) && b != 0xEE {
					t.Fatalf("%s offset %d: byte %d outside dst written", typ, off, i)
				}
			}
		}
	}
}

// f16Sweep returns non-NaN float32 bit patterns that, for every sign,
// exponent and top-10 mantissa bits, try the low 13 bits at and around each
// rounding boundary of FP32ToFP16, plus every mantissa in the exponents
// where halves are subnormal sampled with a stride.
func f16Sweep() []uint32 {
	lows := []uint32{0, 1, 2, 0x0fff, 0x1000, 0x1001, 0x17ff, 0x1800, 0x1fff}
	var out []uint32
	for sign := uint32(0); sign < 2; sign++ {
		for exp := uint32(0); exp < 255; exp++ {
			for top := uint32(0); top < 1<<10; top++ {
				for _, low := range lows {
					out = append(out, sign<<31|exp<<23|top<<13|low)
				}
			}
		}
		// Halves are subnormal for float32 exponents 102..112, where more
		// than 13 bits are dropped.
		for exp := uint32(100); exp <= 113; exp++ {
			for m := uint32(0); m < 1<<23; m += 97 {
				out = append(out, sign<<31|exp<<23|m)
			}
		}
		out = append(out, sign<<31|0x7f800000)
	}
	return out
}

func checkF16Bits(t *testing.T, bits []uint32) {
	t.Helper()
	x := make([]float32, len(bits))
	for i, b := range bits {
		x[i] = math.Float32frombits(b)
	}
	got := make([]byte, 2*len(x))
	QuantizeRow(F16, x, got)
	for i, f := range x {
		if g, w := binary.LittleEndian.Uint16(got[2*i:]), FP32ToFP16(f); g != w {
			t.Fatalf("F16 of %#08x: kernel %#04x, FP32ToFP16 %#04x", bits[i], g, w)
		}
	}
}

func TestFP16RowKernelSweep(t *testing.T) {
	requireRowKernel(t, F16)
	checkF16Bits(t, f16Sweep())
}

// TestFP16RowKernelExhaustive compares every float32 bit pattern; it takes
// about a minute, so it runs only with QUANT_EXHAUSTIVE=1.
func TestFP16RowKernelExhaustive(t *testing.T) {
	if os.Getenv("QUANT_EXHAUSTIVE") == "" {
		t.Skip("set QUANT_EXHAUSTIVE=1 to compare all 2^32 float32 values")
	}
	requireRowKernel(t, F16)
	const chunk = 1 << 20
	bits := make([]uint32, chunk)
	for start := uint64(0); start < 1<<32; start += chunk {
		for i := range bits {
			bits[i] = uint32(start) + uint32(i)
		}
		checkF16Bits(t, bits)
	}
}

// TestQuantizeRowKernelsExhaustiveRounding puts every float32 of magnitude
// at most 127 into blocks whose scale is exactly 1 (Q8_0 blocks led by 127,
// Q8_K blocks by -127), so the kernels round each value itself: roundf for
// Q8_0, nearestInt for Q8_K. Other scales only add an IEEE multiplication,
// the same instruction in both paths. It takes about a minute, so it runs
// only with QUANT_EXHAUSTIVE=1.
func TestQuantizeRowKernelsExhaustiveRounding(t *testing.T) {
	if os.Getenv("QUANT_EXHAUSTIVE") == "" {
		t.Skip("set QUANT_EXHAUSTIVE=1 to round every float32 in [-127, 127]")
	}
	const last = 0x42fe0000 // 127
	for _, typ := range []Type{Q8_0, Q8_K} {
		requireRowKernel(t, typ)
		bs := typ.BlockSize()
		lead := float32(127)
		if typ == Q8_K {
			lead = -127
		}
		const blocks = 4096
		x := make([]float32, blocks*bs)
		rb, _ := RowBytes(typ, len(x))
		got, want := make([]byte, rb), make([]byte, rb)
		next := uint64(0)
		for next <= 2*last+1 {
			for i := range x {
				if i%bs == 0 {
					x[i] = lead
					continue
				}
				// Values past the end repeat 127 harmlessly.
				b := min(next, 2*last+1)
				x[i] = math.Float32frombits(uint32(b>>1) | uint32(b&1)<<31)
				next++
			}
			QuantizeRow(typ, x, got)
			quantizeRowReference(typ, x, want)
			if !bytes.Equal(got, want) {
				checkRow(t, typ, x, "exhaustive rounding")
			}
		}
	}
}

// FuzzQuantizeRow feeds arbitrary float32 bit patterns (NaNs included) to
// the installed row kernels; their bytes must be the reference's.
func FuzzQuantizeRow(f *testing.F) {
	seed := func(vals ...float32) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	f.Add(uint8(0), seed(127, 0.5, -0.5, 1.5, -2.5, math.Nextafter32(0.5, 0), 126.5))
	f.Add(uint8(1), seed(-127, 0.5, -0.5, 1.5, -2.5, 3, -3, 126.5))
	f.Add(uint8(2), seed(65504, 65520, 65519.996, 6e-8, 3e-8, 2.98e-8, -0.0, 1e-45))
	f.Add(uint8(0), seed(float32(math.Inf(1)), 1, -1, 0))
	f.Add(uint8(1), seed(1e-45, -1e-45, 0, 3e-45))
	f.Add(uint8(0), []byte{0x01, 0x00, 0xc0, 0x7f, 0, 0, 0x80, 0x3f})
	f.Add(uint8(2), bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		typ := rowKernelTypes[int(which)%len(rowKernelTypes)]
		if quantizeRowKernels[typ] == nil {
			return
		}
		// The bytes fill a whole number of blocks, cycled, so short inputs
		// still reach every lane.
		vals := make([]float32, 0, len(raw)/4)
		for i := 0; i+4 <= len(raw); i += 4 {
			vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))
		}
		if len(vals) == 0 {
			return
		}
		bs := typ.BlockSize()
		n := max(bs, (len(vals)+bs-1)/bs*bs)
		x := make([]float32, n)
		for i := range x {
			x[i] = vals[i%len(vals)]
		}
		checkRow(t, typ, x, "fuzz")
	})
}

// BenchmarkQuantizeRowKernels times the reference (impl=go) and the installed
// kernel (impl=avx2) side by side on rows of the engine's sizes.
func BenchmarkQuantizeRowKernels(b *testing.B) {
	r := rand.New(rand.NewSource(3))
	for _, typ := range []Type{Q8_0, Q8_K, F16} {
		for _, n := range []int{2048, 5632} {
			x := make([]float32, n)
			scaled(1)(r, x, typ.BlockSize())
			rb, _ := RowBytes(typ, n)
			dst := make([]byte, rb)
			impls := []struct {
				name string
				f    func()
			}{
				{"go", func() { quantizeRowReference(typ, x, dst) }},
			}
			if quantizeRowKernels[typ] != nil {
				impls = append(impls, struct {
					name string
					f    func()
				}{"avx2", func() { QuantizeRow(typ, x, dst) }})
			}
			for _, impl := range impls {
				b.Run(fmt.Sprintf("type=%s/n=%d/impl=%s", typ, n, impl.name), func(b *testing.B) {
					b.SetBytes(int64(4 * n))
					for b.Loop() {
						impl.f()
					}
				})
			}
		}
	}
}

func TestFP32ToFP16Row(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for _, n := range []int{0, 1, 7, 8, 9, 64, 100, 4096 + 5} {
		src := make([]float32, n)
		for i := range src {
			src[i] = math.Float32frombits(r.Uint32()) // NaNs included
		}
		dst := make([]uint16, n)
		FP32ToFP16Row(dst, src)
		for i, f := range src {
			if want := FP32ToFP16(f); dst[i] != want {
				t.Fatalf("n=%d: value %d (%#08x) gives %#04x, FP32ToFP16 %#04x", n, i, math.Float32bits(f), dst[i], want)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("mismatched lengths did not panic")
		}
	}()
	FP32ToFP16Row(make([]uint16, 3), make([]float32, 4))
}
