package gguf

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// fuzzSeeds are small but complete files covering every value type, nested
// arrays, a non-default alignment and tensors of several types, so that the
// fuzzer starts from inputs that get past the header.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	build := func(fill func(w *Writer)) {
		w := NewWriter()
		fill(w)
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	build(func(w *Writer) {})
	build(func(w *Writer) {
		w.SetString("general.architecture", "llama")
		w.SetUint32("llama.block_count", 2)
		w.SetFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5)
		w.SetBool("tokenizer.ggml.add_bos_token", true)
		w.SetStrings("tokenizer.ggml.tokens", []string{"<unk>", "<s>", "a"})
		w.SetFloat32s("tokenizer.ggml.scores", []float32{0, 0, -1})
		w.SetInt32s("tokenizer.ggml.token_type", []int32{2, 3, 1})
	})
	build(func(w *Writer) {
		w.SetUint32(AlignmentKey, 64)
		w.SetUint8("u8", 1)
		w.SetInt8("i8", -1)
		w.SetUint16("u16", 2)
		w.SetInt16("i16", -2)
		w.SetInt64("i64", -3)
		w.SetUint64("u64", 3)
		w.SetFloat64("f64", 0.5)
		w.SetArray("nested", TypeArray, []Value{Int32sValue([]int32{1}), StringsValue([]string{"x"})})
		w.AddTensor("a", quant.F32, []uint64{4}, make([]byte, 16))
		w.AddTensor("b", quant.Q8_0, []uint64{32, 2}, make([]byte, 68))
	})
	build(func(w *Writer) {
		w.AddTensor("k", quant.Q4_K, []uint64{256}, make([]byte, 144))
		w.AddTensor("f", quant.F16, []uint64{3, 1, 1, 2}, make([]byte, 12))
	})
	return seeds
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		// Everything a caller can reach must be in bounds and consistent.
		for _, kv := range file.KV {
			exerciseValue(kv.Value, 0)
			file.String(kv.Key)
			file.Uint(kv.Key)
			file.Int(kv.Key)
			file.Float(kv.Key)
			file.Bool(kv.Key)
			file.Strings(kv.Key)
			file.Float32s(kv.Key)
			file.Int32s(kv.Key)
		}
		w := NewWriter()
		for _, kv := range file.KV {
			w.Set(kv.Key, kv.Value)
		}
		for _, ti := range file.Tensors {
			info, tdata, ok := file.Tensor(ti.Name)
			if !ok || uint64(len(tdata)) != info.Size || info.Offset+info.Size > uint64(len(data)) {
				t.Fatalf("tensor %q: inconsistent info %+v, %d bytes", ti.Name, info, len(tdata))
			}
			if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, tdata); err != nil {
				t.Fatalf("a parsed tensor cannot be written back: %v", err)
			}
		}
		// Whatever parses must survive a round trip through the Writer.
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatalf("a parsed file cannot be written back: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		if len(again.KV) != len(file.KV) || len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("round trip changed counts")
		}
		for i := range file.KV {
			if again.KV[i].Key != file.KV[i].Key || !reflect.DeepEqual(again.KV[i].Value, file.KV[i].Value) {
				t.Fatalf("round trip changed key %q", file.KV[i].Key)
			}
		}
		for _, ti := range file.Tensors {
			_, a, _ := file.Tensor(ti.Name)
			_, b, ok := again.Tensor(ti.Name)
			if !ok || !bytes.Equal(a, b) {
				t.Fatalf("round trip changed tensor %q", ti.Name)
			}
		}
	})
}

func exerciseValue(v Value, depth int) {
	_ = v.String()
	v.AsUint()
	v.AsInt()
	v.AsFloat()
	v.AsBool()
	v.AsString()
	if a, ok := v.AsArray(); ok && depth < 4 {
		a.Strings()
		a.Float32s()
		a.Int32s()
		a.Int64s()
		for i := 0; i < a.Len() && i < 16; i++ {
			exerciseValue(a.Index(i), depth+1)
		}
	}
}

// The seeds themselves must parse; a seed that fails would only exercise the
// header checks.
func TestFuzzSeedsParse(t *testing.T) {
	for i, s := range fuzzSeeds(t) {
		if _, err := Parse(s); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
