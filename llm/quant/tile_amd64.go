//go:build !purego

package quant

import "sync"

// tileAuxPool recycles the per-call activation summaries of the Q4_0 and
// K-quant tile kernels, which a model's matrix products would otherwise
// allocate per call.
var tileAuxPool = sync.Pool{New: func() any { return new([]uint32) }}

// q4_0TileTokens is how many of the remaining tokens the next Q4_0 tile
// kernel call takes: 8, or up to 4.
func q4_0TileTokens(left int) int {
	if left >= 8 {
		return 8
	}
	return min(4, left)
}

// q4_0Tile calls the kernel for T tokens directly (a call through a function
// value would make aux escape, and with it tileQ4_0AVX2's stack buffer).
func q4_0Tile(T int, w []byte, rowBytes int, x []byte, xStride int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int) {
	switch T {
	case 1:
		dotQ4_0Tile8x1AVX2(w, rowBytes, x, xStride, aux, auxStride, nb, dst, dstStride)
	case 2:
		dotQ4_0Tile8x2AVX2(w, rowBytes, x, xStride, aux, auxStride, nb, dst, dstStride)
	case 3:
		dotQ4_0Tile8x3AVX2(w, rowBytes, x, xStride, aux, auxStride, nb, dst, dstStride)
	case 4:
		dotQ4_0Tile8x4AVX2(w, rowBytes, x, xStride, aux, auxStride, nb, dst, dstStride)
	default:
		dotQ4_0Tile8x8AVX2(w, rowBytes, x, xStride, aux, auxStride, nb, dst, dstStride)
	}
}

var q6KTiles = [4]func(w []byte, rowBytes int, rows int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int){
	dotQ6KTile1AVX2, dotQ6KTile2AVX2, dotQ6KTile3AVX2, dotQ6KTile4AVX2,
}

// q8KAuxWords is q8KTileAuxAVX2's output per block, in uint32s.
const q8KAuxWords = (8*32 + 8*32 + 32 + 32) / 4

var q4KTiles = [4]func(w []byte, rowBytes int, rows int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int){
	dotQ4KTile1AVX2, dotQ4KTile2AVX2, dotQ4KTile3AVX2, dotQ4KTile4AVX2,
}

func tileQ6KAVX2(n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	tileQ8K(&q6KTiles, n, q6KBytes, w, x, xStride, tokens, dst, dstStride)
}

// tileQ4KAVX2 leaves a single token to the row kernel, which measures
// faster than the tile kernel's setup (scales through the stack, a prepared
// copy of the activations) with nothing to share it over.
func tileQ4KAVX2(n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	if tokens == 1 {
		rows := len(w) / (n / QKK * q4KBytes)
		dotQ4KRowsAVX2(w, x[:n/QKK*q8KBytes], n/QKK, dst[:rows])
		return
	}
	tileQ8K(&q4KTiles, n, q4KBytes, w, x, xStride, tokens, dst, dstStride)
}

// getTileAux returns a buffer of at least size words from tileAuxPool.
func getTileAux(size int) *[]uint32 {
	bufp := tileAuxPool.Get().(*[]uint32)
	if cap(*bufp) < size {
		*bufp = make([]uint32, size)
	}
	*bufp = (*bufp)[:size]
	return bufp
}

// tileQ8K prepares every token's activations once (q8KTileAuxAVX2), then
// runs a K-quant's 8-row × up-to-4-token tiles, rows outer so that the 8
// rows' weights stay in L1.
func tileQ8K(k *[4]func(w []byte, rowBytes int, rows int, aux []uint32, auxStride int, nb int, dst []float32, dstStride int),
	n, blockBytes int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	nb := n / QKK
	rowBytes, xBytes := nb*blockBytes, nb*q8KBytes
	rows := len(w) / rowBytes
	auxStride := nb * q8KAuxWords
	bufp := getTileAux(tokens * auxStride)
	aux := *bufp
	for t := 0; t < tokens; t++ {
		q8KTileAuxAVX2(x[t*xStride:t*xStride+xBytes], nb, aux[t*auxStride:(t+1)*auxStride])
	}
	for r := 0; r < rows; r += 8 {
		R := min(8, rows-r)
		wr := w[r*rowBytes : (r+R)*rowBytes]
		for t := 0; t < tokens; t += 4 {
			T := min(4, tokens-t)
			k[T-1](wr, rowBytes, R, aux[t*auxStride:(t+T)*auxStride], auxStride, nb, dst[t*dstStride+r:(t+T-1)*dstStride+r+R], dstStride)
		}
	}
	tileAuxPool.Put(bufp)
}

// tileQ4_0AVX2 covers the tile with 8-row × 8-token (then up-to-4-token)
// kernels, rows outer so that 8 rows' weights stay in L1 while every token passes over
// them; rows beyond a multiple of 8 go to the multi-row kernel token by
// token. Each token's block sums and scales are computed once, up front.
func tileQ4_0AVX2(n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	nb := n / QK
	rowBytes, xBytes := nb*q4_0Bytes, nb*q8_0Bytes
	rows := len(w) / rowBytes
	full := rows &^ 7
	if full > 0 {
		auxStride := 2 * nb
		// A single token (VecDotRows, and generation) usually fits a stack
		// buffer, sparing the pool on the model's most frequent call.
		var small [512]uint32
		aux := small[:]
		if tokens*auxStride > len(small) {
			bufp := getTileAux(tokens * auxStride)
			defer tileAuxPool.Put(bufp)
			aux = *bufp
		}
		for t := 0; t < tokens; t++ {
			q8_0TileAuxAVX2(x[t*xStride:t*xStride+xBytes], nb, aux[t*auxStride:(t+1)*auxStride])
		}
		for r := 0; r < full; r += 8 {
			wr := w[r*rowBytes : (r+8)*rowBytes]
			for t := 0; t < tokens; t += q4_0TileTokens(tokens - t) {
				T := q4_0TileTokens(tokens - t)
				q4_0Tile(T, wr, rowBytes, x[t*xStride:(t+T-1)*xStride+xBytes], xStride,
					aux[t*auxStride:(t+T)*auxStride], auxStride, nb, dst[t*dstStride+r:(t+T-1)*dstStride+r+8], dstStride)
			}
		}
	}
	if full == rows {
		return
	}
	for t := 0; t < tokens; t++ {
		dotQ4_0RowsAVX2(w[full*rowBytes:], x[t*xStride:t*xStride+xBytes], nb, dst[t*dstStride+full:t*dstStride+rows])
	}
}

var q8_0Tiles = [4]func(w []byte, rowBytes int, x []byte, xStride int, nb int, dst []float32, dstStride int){
	dotQ8_0Tile8x1AVX2, dotQ8_0Tile8x2AVX2, dotQ8_0Tile8x3AVX2, dotQ8_0Tile8x4AVX2,
}

// tileQ8_0AVX2 is tileQ4_0AVX2's loop for Q8_0, whose kernels need no
// per-token preparation. A single token stays on the row kernel: the tile
// kernel's widened weights round-trip through the stack, which only pays
// when tokens share them (measured slower at one token on L3-sized weights).
func tileQ8_0AVX2(n int, w, x []byte, xStride, tokens int, dst []float32, dstStride int) {
	nb := n / QK
	rowBytes := nb * q8_0Bytes
	rows := len(w) / rowBytes
	full := rows &^ 7
	if tokens == 1 {
		full = 0
	}
	for r := 0; r < full; r += 8 {
		wr := w[r*rowBytes : (r+8)*rowBytes]
		for t := 0; t < tokens; t += 4 {
			T := min(4, tokens-t)
			q8_0Tiles[T-1](wr, rowBytes, x[t*xStride:(t+T-1)*xStride+rowBytes], xStride, nb, dst[t*dstStride+r:(t+T-1)*dstStride+r+8], dstStride)
		}
	}
	if full == rows {
		return
	}
	for t := 0; t < tokens; t++ {
		dotQ8_0RowsAVX2(w[full*rowBytes:], x[t*xStride:t*xStride+rowBytes], nb, dst[t*dstStride+full:t*dstStride+rows])
	}
}
