package quant

import (
	"fmt"
	"math/rand/v2"
	"runtime"
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
//
// Besides wall time, each reports cpu-ns/op, the benchmark thread's own CPU
// time (Linux), which other processes on a shared machine disturb less;
// compare the minimum of several counts per impl, as ratios.
func BenchmarkVecDotTile(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	shapes := []struct{ n, rows int }{{2048, 256}, {2048, 5632}, {5632, 2048}}
	const maxTokens = 16
	for _, typ := range []Type{Q4_0, Q6_K, Q8_0, Q4_K} {
		for _, sh := range shapes {
			n, rows := sh.n, sh.rows
			b.Run(fmt.Sprintf("%s/n=%d/rows=%d", typ, n, rows), func(b *testing.B) {
				rb := mustRowBytes(b, typ, n)
				xb := mustRowBytes(b, VecDotType(typ), n)
				w := randomBlocks(r, typ, n*rows)
				x := randomBlocks(r, VecDotType(typ), n*maxTokens)
				dst := make([]float32, rows*maxTokens)
				row1 := vecDotKernels[typ]
				impls := []struct {
					name string
					run  func(tokens int)
				}{
					{"row1", func(tokens int) {
						for t := 0; t < tokens; t++ {
							for r := 0; r < rows; r++ {
								dst[t*rows+r] = row1(n, w[r*rb:(r+1)*rb], x[t*xb:(t+1)*xb])
							}
						}
					}},
					{"rows", func(tokens int) {
						for r0 := 0; r0 < rows; r0 += 16 {
							r1 := min(r0+16, rows)
							for t := 0; t < tokens; t++ {
								VecDotRows(typ, n, w[r0*rb:r1*rb], x[t*xb:(t+1)*xb], dst[t*rows+r0:t*rows+r1])
							}
						}
					}},
					{"tile", func(tokens int) { VecDotTile(typ, n, w, x, xb, tokens, dst, rows) }},
				}
				for _, tokens := range []int{1, 4, 8, 16} {
					for _, impl := range impls {
						b.Run(fmt.Sprintf("tokens=%d/impl=%s", tokens, impl.name), func(b *testing.B) {
							runtime.LockOSThread()
							defer runtime.UnlockOSThread()
							b.SetBytes(int64(len(w)))
							cpu0 := threadCPUTime()
							for b.Loop() {
								impl.run(tokens)
							}
							if cpu := threadCPUTime() - cpu0; cpu > 0 {
								b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
							}
						})
					}
				}
			})
		}
	}
}
