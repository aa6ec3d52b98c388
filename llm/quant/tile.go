package quant

import "fmt"

// VecDotTile sets dst[t*dstStride+r] = VecDot(typ, n, w_r, x_t) for every
// weight row r in [0, rows), rows = len(w)/RowBytes(typ, n) (rows consecutive
// in w), and every activation row t in [0, tokens), x_t = x[t*xStride :
// t*xStride+RowBytes(VecDotType(typ), n)]. Results are exactly VecDot's.
//
// It is a matrix product's tile: architecture kernels unpack each weight block
// once for several tokens and keep several rows' sums in one vector, which
// VecDotRows, one token at a time, cannot. Each call first summarises every
// token's activations (work proportional to tokens·n, shared by all rows),
// so a caller should pass as many rows per call as its work split allows.
// Wrong sizes panic (programming errors), like VecDotRows.
func VecDotTile(typ Type, n int, w []byte, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	if !HasVecDot(typ) {
		panic(fmt.Sprintf("quant: no dot-product kernel for %s", typ))
	}
	rb, err := RowBytes(typ, n)
	if err != nil {
		panic("quant: VecDotTile: " + err.Error())
	}
	xb, err := RowBytes(VecDotType(typ), n)
	if err != nil {
		panic("quant: VecDotTile: " + err.Error())
	}
	rows := 0
	if rb > 0 {
		rows = len(w) / rb
	}
	checkTileArgs(typ, n, rb, xb, len(w), len(x), xStride, tokens, len(dst), dstStride)
	if rows == 0 || tokens == 0 {
		return
	}
	if k := vecDotTileKernels[typ]; k != nil {
		k(n, w, x, xStride, tokens, dst, dstStride)
		return
	}
	vecDotTileByRows(typ, n, w, x, xStride, tokens, dst, dstStride)
}

// vecDotTileByRows is VecDotTile for types without a tile kernel: VecDotRows
// once per token.
func vecDotTileByRows(typ Type, n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	rb, _ := RowBytes(typ, n)
	xb, _ := RowBytes(VecDotType(typ), n)
	rows := len(w) / rb
	for t := 0; t < tokens; t++ {
		VecDotRows(typ, n, w, x[t*xStride:t*xStride+xb], dst[t*dstStride:t*dstStride+rows])
	}
}

// checkTileArgs panics unless w holds whole rows, x holds tokens activation
// rows xStride bytes apart and dst holds tokens result rows dstStride floats
// apart, without overlapping (a stride below the row size is accepted only
// for a single token, where it is never used).
func checkTileArgs(typ Type, n, rb, xb, wLen, xLen, xStride, tokens, dstLen, dstStride int) {
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("quant: VecDotTile %s n=%d: ", typ, n) + fmt.Sprintf(format, args...))
	}
	if rb == 0 {
		if wLen != 0 {
			fail("weights %d bytes for rows of 0 bytes", wLen)
		}
	} else if wLen%rb != 0 {
		fail("weights %d bytes are not whole rows of %d bytes", wLen, rb)
	}
	rows := 0
	if rb > 0 {
		rows = wLen / rb
	}
	if tokens < 0 || xStride < 0 || dstStride < 0 {
		fail("negative tokens (%d) or stride (x %d, dst %d)", tokens, xStride, dstStride)
	}
	if tokens == 0 {
		return
	}
	if tokens > 1 && xStride < xb {
		fail("activation stride %d bytes is below the row's %d bytes", xStride, xb)
	}
	if need := (tokens-1)*xStride + xb; xLen < need {
		fail("activations %d bytes, want at least %d for %d tokens %d bytes apart", xLen, need, tokens, xStride)
	}
	if rows == 0 {
		return
	}
	if tokens > 1 && dstStride < rows {
		fail("dst stride %d is below the tile's %d rows", dstStride, rows)
	}
	if need := (tokens-1)*dstStride + rows; dstLen < need {
		fail("dst has %d floats, want at least %d for %d tokens of %d rows %d apart", dstLen, need, tokens, rows, dstStride)
	}
}

// vecDotTileFunc is VecDotTile after its checks, with at least one row and
// one token.
type vecDotTileFunc func(n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int)

// vecDotTileKernels optionally holds architecture tile kernels; VecDotTile
// otherwise calls VecDotRows per token. Each must return exactly what the
// vecDotKernels entry of its type returns.
var vecDotTileKernels [numTypes]vecDotTileFunc
