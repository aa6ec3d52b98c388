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
