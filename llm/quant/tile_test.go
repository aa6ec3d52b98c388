package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// checkTile runs VecDotTile on random rows and compares every result with
// VecDot; dst cells outside the tile must keep their sentinel.
func checkTile(t *testing.T, r *rand.Rand, typ Type, n, rows, tokens, xPad, dstPad int) {
	t.Helper()
	rb := mustRowBytesNoT(typ, n)
	xb := mustRowBytesNoT(VecDotType(typ), n)
	w := randomBlocks(r, typ, n*rows)
	xStride := xb + xPad
	x := make([]byte, tokens*xStride)
	for tok := 0; tok < tokens; tok++ {
		copy(x[tok*xStride:], randomBlocks(r, VecDotType(typ), n))
	}
	dstStride := rows + dstPad
	const sentinel = -12345.5
	dst := make([]float32, tokens*dstStride+1)
	for i := range dst {
		dst[i] = sentinel
	}
	VecDotTile(typ, n, w, x, xStride, tokens, dst[:len(dst)-1], dstStride)
	for tok := 0; tok < tokens; tok++ {
		for i := 0; i < dstStride; i++ {
			got := dst[tok*dstStride+i]
			if i >= rows {
				if got != sentinel {
					t.Fatalf("%s n=%d rows=%d tokens=%d: wrote dst[%d], outside the tile", typ, n, rows, tokens, tok*dstStride+i)
				}
				continue
			}
			want := VecDot(typ, n, w[i*rb:(i+1)*rb], x[tok*xStride:tok*xStride+xb])
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("%s n=%d rows=%d tokens=%d: row %d token %d: %g (%#x), VecDot %g (%#x)",
					typ, n, rows, tokens, i, tok, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
	if dst[len(dst)-1] != sentinel {
		t.Fatalf("%s n=%d rows=%d tokens=%d: wrote past dst", typ, n, rows, tokens)
	}
}

func TestVecDotTileMatchesVecDot(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, typ := range dotTypes {
		n := 2 * QKK
		for rows := 1; rows <= 20; rows++ {
			for _, tokens := range []int{1, 2, 3, 4, 5, 8, 17} {
				checkTile(t, r, typ, n, rows, tokens, 3*(rows%2), rows%3)
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
