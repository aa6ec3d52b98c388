package quant

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkVecDotTile measures a matrix product's worth of dot products on
// TinyLlama-1.1B's shapes, with impl=row1 (the installed single-row kernel,
// row by row and token by token: what VecDotRows did before the tile
// kernels), impl=rows (the model's path: VecDotRows once per token over
// 16-row tiles) and impl=tile (one VecDotTile over all rows and tokens) side
// by side, so that their ratios come from one run:
//
//	go test -run '^$' -bench VecDotTile -benchtime 200ms -count 3 ./llm/quant
func BenchmarkVecDotTile(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	shapes := []struct{ n, rows int }{{2048, 256}, {2048, 5632}, {5632, 2048}}
	for _, sh := range shapes {
		for _, typ := range []Type{Q4_0, Q6_K, Q8_0, Q4_K} {
			n, rows := sh.n, sh.rows
			rb := mustRowBytes(b, typ, n)
			xb := mustRowBytes(b, VecDotType(typ), n)
			w := randomBlocks(r, typ, n*rows)
			const maxTokens = 16
			x := randomBlocks(r, VecDotType(typ), n*maxTokens)
			dst := make([]float32, rows*maxTokens)
			for _, tokens := range []int{1, 4, 8, 16} {
				name := fmt.Sprintf("%s/n=%d/rows=%d/tokens=%d", typ, n, rows, tokens)
				b.Run(name+"/impl=row1", func(b *testing.B) {
					k := vecDotKernels[typ]
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						for t := 0; t < tokens; t++ {
							for r := 0; r < rows; r++ {
								dst[t*rows+r] = k(n, w[r*rb:(r+1)*rb], x[t*xb:(t+1)*xb])
							}
						}
					}
				})
				b.Run(name+"/impl=rows", func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						for r0 := 0; r0 < rows; r0 += 16 {
							r1 := min(r0+16, rows)
							for t := 0; t < tokens; t++ {
								VecDotRows(typ, n, w[r0*rb:r1*rb], x[t*xb:(t+1)*xb], dst[t*rows+r0:t*rows+r1])
							}
						}
					}
				})
				b.Run(name+"/impl=tile", func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						VecDotTile(typ, n, w, x, xb, tokens, dst, rows)
					}
				})
			}
		}
	}
}
