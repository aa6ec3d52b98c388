package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// tileImpl is one way to compute a tile: VecDotTile as installed, a kernel
// set's tile kernel forced, or the per-token fallback.
type tileImpl struct {
	name string
	run  func(typ Type, n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int)
}

// tileImpls lists every path a tile of typ can take on this build and CPU.
func tileImpls(typ Type) []tileImpl {
	impls := []tileImpl{
		{"VecDotTile", VecDotTile},
		{"by rows", vecDotTileByRows},
	}
	for _, s := range kernelSets {
		if k := s.tile[typ]; s.usable && k != nil {
			impls = append(impls, tileImpl{s.name, func(_ Type, n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
				k(n, w, x, xStride, tokens, dst, dstStride)
			}})
		}
	}
	return impls
}

// tileCase is one tile's inputs: rows weight rows and tokens activation rows
// xStride bytes apart, results dstStride floats apart.
type tileCase struct {
	typ                Type
	n, rows, tokens    int
	w, x               []byte
	xStride, dstStride int
	what               string
}

func newTileCase(r *rand.Rand, typ Type, n, rows, tokens, xPad, dstPad int, fill func(typ Type, b []byte)) tileCase {
	xt := VecDotType(typ)
	xb := mustRowBytesNoT(xt, n)
	c := tileCase{typ: typ, n: n, rows: rows, tokens: tokens, xStride: xb + xPad, dstStride: rows + dstPad}
	c.w = randomBlocks(r, typ, n*rows)
	if tokens > 0 {
		c.x = make([]byte, (tokens-1)*c.xStride+xb)
	}
	for t := 0; t < tokens; t++ {
		copy(c.x[t*c.xStride:], randomBlocks(r, xt, n))
	}
	if fill != nil {
		fill(typ, c.w)
		for t := 0; t < tokens; t++ {
			fill(xt, c.x[t*c.xStride:t*c.xStride+xb])
		}
	}
	c.what = fmt.Sprintf("%s n=%d rows=%d tokens=%d xStride=%d dstStride=%d", typ, n, rows, tokens, c.xStride, c.dstStride)
	return c
}

// check runs impl on the case and compares every result with the bits of
// the pure-Go reference kernel, which VecDot's are (any NaN matching any
// NaN); dst cells outside the tile, including one past its end, must keep
// their sentinel. It reports the first mismatch with t.Errorf (it also runs
// on other goroutines than the test's).
func (c tileCase) check(t *testing.T, impl tileImpl) {
	t.Helper()
	rb := mustRowBytesNoT(c.typ, c.n)
	xb := mustRowBytesNoT(VecDotType(c.typ), c.n)
	const sentinel = -12345.5
	size := 0
	if c.tokens > 0 {
		size = (c.tokens-1)*c.dstStride + c.rows
	}
	dst := make([]float32, size+1)
	for i := range dst {
		dst[i] = sentinel
	}
	impl.run(c.typ, c.n, c.w, c.x, c.xStride, c.tokens, dst[:size:size], c.dstStride)
	for i, got := range dst {
		tok, row := i/max(c.dstStride, 1), i%max(c.dstStride, 1)
		if i == size || row >= c.rows {
			if got != sentinel {
				t.Errorf("%s: %s: wrote dst[%d], outside the tile", impl.name, c.what, i)
				return
			}
			continue
		}
		want := vecDotReference[c.typ](c.n, c.w[row*rb:(row+1)*rb], c.x[tok*c.xStride:tok*c.xStride+xb])
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Errorf("%s: %s: row %d token %d: %g (%#x), reference %g (%#x)",
				impl.name, c.what, row, tok, got, math.Float32bits(got), want, math.Float32bits(want))
			return
		}
	}
}

// tileTypes are the types with a dot product; the float ones have no tile
// kernel and take the per-token path.
var tileTypes = []Type{Q4_0, Q8_0, Q4_K, Q6_K, F32, F16, BF16}

func tileN(typ Type) int {
	switch typ.BlockSize() {
	case QKK:
		return 2 * QKK
	case 1:
		return 40
	}
	return 3 * QK
}

// Every path gives VecDot's bits for every row count up to 20 (8-row groups
// and leftovers), token counts up to 17 (4-token groups and leftovers) and
// strides wider than the rows.
func TestVecDotTileMatchesVecDot(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, typ := range tileTypes {
		for _, impl := range tileImpls(typ) {
			n := tileN(typ)
			for rows := 1; rows <= 20; rows++ {
				for tokens := 1; tokens <= 17; tokens++ {
					if typ.BlockSize() == 1 && tokens > 5 {
						break // no tile kernel: the per-token loop is all there is
					}
					newTileCase(r, typ, n, rows, tokens, 3*(rows%2), rows%3, nil).check(t, impl)
				}
			}
			// One long row: the kernels' block loops.
			newTileCase(r, typ, 64*typ.BlockSize(), 9, 6, 0, 0, nil).check(t, impl)
		}
	}
}

// Extreme blocks: every quant at its minimum or maximum (Q4_0 nibbles 0 and
// 15, i.e. -8 and 7; int8 -128 and 127), zero scales, and the largest finite
// scales, whose products overflow to Inf (and Inf-Inf to NaN) exactly where
// the reference's do.
func TestVecDotTileExtremes(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	fills := map[string]func(typ Type, b []byte){
		"min quants":       func(typ Type, b []byte) { fillQuants(typ, b, func(int) byte { return 0x00 }, 0x80) },
		"max quants":       func(typ Type, b []byte) { fillQuants(typ, b, func(int) byte { return 0xFF }, 0x7F) },
		"alternating":      func(typ Type, b []byte) { fillQuants(typ, b, func(i int) byte { return byte(0xF0 * (i % 2)) }, 0x80) },
		"random -128":      func(typ Type, b []byte) { fillQuants(typ, b, func(i int) byte { return byte(r.Uint32()) }, 0x80) },
		"zero scales":      func(typ Type, b []byte) { setTileScales(typ, b, 0, 0) },
		"largest scales":   func(typ Type, b []byte) { setTileScales(typ, b, 0x7BFF, math.MaxFloat32/4) },
		"largest negative": func(typ Type, b []byte) { setTileScales(typ, b, 0xFBFF, -math.MaxFloat32/4) },
	}
	for name, fill := range fills {
		for _, typ := range []Type{Q4_0, Q8_0, Q4_K, Q6_K} {
			for _, impl := range tileImpls(typ) {
				for _, shape := range [][2]int{{8, 1}, {8, 4}, {13, 5}, {16, 8}} {
					c := newTileCase(r, typ, tileN(typ), shape[0], shape[1], 0, 0, fill)
					c.what += " " + name
					c.check(t, impl)
				}
			}
		}
	}
}

// fillQuants sets every quant of the blocks in b: the weight types' quant
// bytes to v(i) (Q6_K's high bits too), the activation types' int8 quants to
// x. Scales stay as they are.
func fillQuants(typ Type, b []byte, v func(i int) byte, x byte) {
	bb := typ.BlockBytes()
	for off := 0; off < len(b); off += bb {
		blk := b[off : off+bb]
		var q []byte
		switch typ {
		case Q4_0:
			q = blk[2:]
		case Q8_0:
			for i := range blk[2:] {
				blk[2+i] = x
			}
		case Q4_K:
			q = blk[q4KQs:]
		case Q6_K:
			q = blk[:q6KScales]
		case Q8_K:
			for i := range blk[q8KQs:q8KBsums] {
				blk[q8KQs+i] = x
			}
			for j := 0; j < QKK/16; j++ {
				binary.LittleEndian.PutUint16(blk[q8KBsums+2*j:], uint16(int16(16*int8(x))))
			}
		}
		for i := range q {
			q[i] = v(i)
		}
	}
}

// setTileScales sets every block scale of b: half-precision ones to h, Q8_K's
// float32 one to f.
func setTileScales(typ Type, b []byte, h uint16, f float32) {
	bb := typ.BlockBytes()
	for off := 0; off < len(b); off += bb {
		switch typ {
		case Q4_0, Q8_0:
			binary.LittleEndian.PutUint16(b[off:], h)
		case Q4_K:
			binary.LittleEndian.PutUint16(b[off:], h)
			binary.LittleEndian.PutUint16(b[off+2:], h)
		case Q6_K:
			binary.LittleEndian.PutUint16(b[off+q6KD:], h)
		case Q8_K:
			binary.LittleEndian.PutUint32(b[off:], math.Float32bits(f))
		}
	}
}

// The tile kernels read only inside the weights and the activation rows:
// both placed against inaccessible pages (on Linux; see rowBuffer).
func TestVecDotTileStaysInside(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for _, typ := range []Type{Q4_0, Q8_0, Q4_K, Q6_K} {
		for _, impl := range tileImpls(typ) {
			for _, shape := range [][2]int{{8, 1}, {8, 4}, {19, 7}, {9, 11}} {
				for _, atEnd := range []bool{false, true} {
					c := newTileCase(r, typ, 3*typ.BlockSize(), shape[0], shape[1], 0, 0, nil)
					w, x := rowBuffer(t, len(c.w), atEnd), rowBuffer(t, len(c.x), atEnd)
					copy(w, c.w)
					copy(x, c.x)
					c.w, c.x = w, x
					c.check(t, impl)
				}
			}
		}
	}
}

func TestVecDotTilePanicsOnBadSizes(t *testing.T) {
	const n = 64
	rb := 2 * q4_0Bytes
	xb := 2 * q8_0Bytes
	for _, c := range []struct {
		name                 string
		typ                  Type
		n                    int
		w, x, xStride        int
		tokens, dst, dStride int
		wantsPanic           bool
	}{
		{"ok", Q4_0, n, 3 * rb, 2 * xb, xb, 2, 6, 3, false},
		{"ok, strides wider than rows", Q4_0, n, 3 * rb, 2*xb + 5, xb + 5, 2, 9, 5, false},
		{"ok, one token, stride unused", Q4_0, n, 3 * rb, xb, 0, 1, 3, 0, false},
		{"ok, no tokens", Q4_0, n, 3 * rb, 0, 0, 0, 0, 0, false},
		{"ok, no rows", Q4_0, n, 0, 2 * xb, xb, 2, 0, 0, false},
		{"weights not whole rows", Q4_0, n, 3*rb + 1, 2 * xb, xb, 2, 6, 3, true},
		{"short activations", Q4_0, n, 3 * rb, 2*xb - 1, xb, 2, 6, 3, true},
		{"short activations, no rows", Q4_0, n, 0, 2*xb - 1, xb, 2, 0, 0, true},
		{"activation rows overlap", Q4_0, n, 3 * rb, 2 * xb, xb - 1, 2, 6, 3, true},
		{"short dst", Q4_0, n, 3 * rb, 2 * xb, xb, 2, 5, 3, true},
		{"dst rows overlap", Q4_0, n, 3 * rb, 2 * xb, xb, 2, 6, 2, true},
		{"negative tokens", Q4_0, n, 3 * rb, 2 * xb, xb, -1, 6, 3, true},
		{"negative stride", Q4_0, n, 3 * rb, 2 * xb, -xb, 1, 6, 3, true},
		{"n not whole blocks", Q4_0, n + 1, 3 * rb, 2 * xb, xb, 2, 6, 3, true},
		{"no kernel", Q5_0, n, 3 * rb, 2 * xb, xb, 2, 6, 3, true},
		{"ok, empty rows", Q4_0, 0, 0, 0, 0, 2, 0, 0, false},
		{"weights for empty rows", Q4_0, 0, 1, 0, 0, 2, 0, 0, true},
	} {
		func() {
			defer func() {
				if got := recover() != nil; got != c.wantsPanic {
					t.Errorf("%s: panicked %v, want %v", c.name, got, c.wantsPanic)
				}
			}()
			VecDotTile(c.typ, c.n, make([]byte, c.w), make([]byte, c.x), c.xStride, c.tokens, make([]float32, c.dst), c.dStride)
		}()
	}
}

// A model calls VecDotTile (and VecDotRows) for every matrix product of
// every token; neither may allocate per call.
func TestVecDotTileDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items on purpose")
	}
	r := rand.New(rand.NewPCG(37, 38))
	for _, typ := range []Type{Q4_0, Q8_0, Q4_K, Q6_K} {
		for _, tokens := range []int{1, 7} {
			c := newTileCase(r, typ, 4*typ.BlockSize(), 19, tokens, 0, 0, nil)
			dst := make([]float32, tokens*c.dstStride)
			allocs := testing.AllocsPerRun(20, func() {
				VecDotTile(typ, c.n, c.w, c.x, c.xStride, tokens, dst, c.dstStride)
			})
			if allocs != 0 {
				t.Errorf("%s: %v allocations per call", c.what, allocs)
			}
		}
	}
}

// Matrix products run tiles from several goroutines at once; the buffers
// the kernels share (a pool of activation summaries) must not mix calls.
func TestVecDotTileConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 39))
			for i := 0; i < 10; i++ {
				for _, typ := range []Type{Q4_0, Q8_0, Q4_K, Q6_K} {
					newTileCase(r, typ, 20*typ.BlockSize(), 9+i%8, 5+i, 0, 0, nil).check(t, tileImpl{"VecDotTile", VecDotTile})
				}
			}
		}(uint64(g))
	}
	wg.Wait()
}
