package quant_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/quant"
)

var sharedModels = filepath.Join("..", "..", "..", "shared", "models")

func openShared(t testing.TB, rel string) *gguf.File {
	t.Helper()
	p := filepath.Join(sharedModels, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (shared/ must sit beside the repository): %v", p, err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func f32Tensor(t testing.TB, f *gguf.File, name string) []float32 {
	t.Helper()
	info, data, ok := f.Tensor(name)
	if !ok || info.Type != quant.F32 {
		t.Fatalf("tensor %s missing or not F32", name)
	}
	out := make([]float32, info.Elements())
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

// llama-quantize made the stories260K Q8_0 and Q4_0 files from the F32 file
// with the reference quantisers; quantising the F32 tensors again must give
// the stored bytes exactly, for every quantised tensor in both files.
func TestQuantizeMatchesLlamaQuantize(t *testing.T) {
	src := openShared(t, "stories260K.gguf")
	for _, file := range []string{"stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"} {
		q := openShared(t, file)
		checked := map[quant.Type]int{}
		for _, info := range q.Tensors {
			if info.Type == quant.F32 {
				continue
			}
			_, want, _ := q.Tensor(info.Name)
			x := f32Tensor(t, src, info.Name)
			got, err := quant.Quantize(info.Type, x)
			if err != nil {
				t.Fatalf("%s %s: %v", file, info.Name, err)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for got[i] == want[i] {
					i++
				}
				t.Errorf("%s %s (%s): quantized bytes differ from llama-quantize's at byte %d of %d", file, info.Name, info.Type, i, len(want))
			}
			// Dequantising the file's bytes must also agree with an
			// independent float64 decoding of the block format.
			deq := make([]float32, len(x))
			if err := quant.Dequantize(info.Type, want, deq); err != nil {
				t.Fatal(err)
			}
			checkAgainstSlowDequant(t, info.Type, want, deq)
			checked[info.Type]++
		}
		t.Logf("%s: %v tensors reproduced byte for byte", file, checked)
		if checked[quant.F16] != 5 || checked[quant.Q8_0] == 0 {
			t.Errorf("%s: unexpected tensor mix %v", file, checked)
		}
	}
}

// The Q4_K_M model's K-quant tensors were written by llama-quantize from an
// F16 original that is not available, so the quantisers are checked by
// requantising the dequantised values: an exact reimplementation lands on
// llama.cpp's own blocks almost everywhere (the searches are not exactly
// idempotent, and a Q6_K sub-block may flip the sign of both its scale and
// its quants, which decodes to the same values).
func TestKQuantsOfRandomModel(t *testing.T) {
	f := openShared(t, "random/llama-spm-small-q4_k_m.gguf")
	var blocks, sameBytes, values, sameValues int
	seen := map[quant.Type]int{}
	for _, info := range f.Tensors {
		if info.Type != quant.Q4_K && info.Type != quant.Q6_K {
			continue
		}
		seen[info.Type]++
		_, data, _ := f.Tensor(info.Name)
		// The two 8M-element tensors are sampled to keep the test fast.
		elems := min(info.Elements(), 1<<20)
		data = data[:elems/256*uint64(info.Type.BlockBytes())]
		x := make([]float32, elems)
		if err := quant.Dequantize(info.Type, data, x); err != nil {
			t.Fatal(err)
		}
		checkAgainstSlowDequant(t, info.Type, data, x)
		re, err := quant.Quantize(info.Type, x)
		if err != nil {
			t.Fatal(err)
		}
		x2 := make([]float32, len(x))
		if err := quant.Dequantize(info.Type, re, x2); err != nil {
			t.Fatal(err)
		}
		bb := info.Type.BlockBytes()
		tensorSame := 0
		for b := 0; b < len(data)/bb; b++ {
			if bytes.Equal(re[b*bb:(b+1)*bb], data[b*bb:(b+1)*bb]) {
				tensorSame++
			}
		}
		blocks += len(data) / bb
		sameBytes += tensorSame
		for i := range x {
			if x[i] == x2[i] {
				sameValues++
			}
		}
		values += len(x)
		// Small Q4_K tensors (every block but a few in token_embd) come back
		// byte for byte.
		if info.Type == quant.Q4_K && info.Name != "token_embd.weight" && tensorSame != len(data)/bb {
			t.Errorf("%s: %d of %d blocks requantise to llama.cpp's bytes", info.Name, tensorSame, len(data)/bb)
		}
	}
	if seen[quant.Q4_K] != 13 || seen[quant.Q6_K] != 3 {
		t.Fatalf("tensor mix %v", seen)
	}
	t.Logf("%d/%d blocks byte-identical, %d/%d values identical after requantising", sameBytes, blocks, sameValues, values)
	if float64(sameValues) < 0.9999*float64(values) {
		t.Errorf("only %d of %d values survive requantisation", sameValues, values)
	}
}

// Activations quantised to Q8_K and multiplied with the model's own K-quant
// rows must agree with the float64 product of the dequantised operands.
func TestVecDotOnModelRows(t *testing.T) {
	cases := []struct{ file, tensor string }{
		{"random/llama-spm-small-q4_k_m.gguf", "blk.0.ffn_gate.weight"}, // Q4_K
		{"random/llama-spm-small-q4_k_m.gguf", "blk.1.ffn_down.weight"}, // Q6_K
		{"random/llama-spm-small-q4_k_m.gguf", "output.weight"},         // Q6_K
		{"stories260K-Q4_0.gguf", "blk.0.attn_q.weight"},                // Q4_0
		{"stories260K-Q4_0.gguf", "blk.0.ffn_down.weight"},              // F16
		{"stories260K-Q8_0.gguf", "output.weight"},                      // Q8_0
		{"stories260K.gguf", "blk.0.ffn_up.weight"},                     // F32
	}
	for _, c := range cases {
		f := openShared(t, c.file)
		name := c.tensor
		info, data, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		n := int(info.Dims[0])
		rowBytes, _ := quant.RowBytes(info.Type, n)
		xf := make([]float32, n)
		for i := range xf {
			xf[i] = float32(math.Sin(float64(i)*0.37) * 3)
		}
		xt := quant.VecDotType(info.Type)
		xb, _ := quant.RowBytes(xt, n)
		x := make([]byte, xb)
		quant.QuantizeRow(xt, xf, x)
		xd := slowDequant(xt, x, n)
		for row := 0; row < 8; row++ {
			w := data[row*rowBytes : (row+1)*rowBytes]
			wd := slowDequant(info.Type, w, n)
			var want, mag float64
			for i := range wd {
				want += wd[i] * xd[i]
				mag += math.Abs(wd[i] * xd[i])
			}
			got := quant.VecDot(info.Type, n, w, x)
			if math.Abs(float64(got)-want) > 1e-5*mag {
				t.Errorf("%s row %d: %g, float64 %g", name, row, got, want)
			}
		}
	}
}
