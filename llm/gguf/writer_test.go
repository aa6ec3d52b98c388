package gguf

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

func copyToWriter(t testing.TB, f *File) *Writer {
	t.Helper()
	w := NewWriter()
	for _, kv := range f.KV {
		w.Set(kv.Key, kv.Value)
	}
	for _, ti := range f.Tensors {
		_, data, _ := f.Tensor(ti.Name)
		if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, data); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// Copying a llama.cpp-written file through Writer must reproduce it byte for
// byte: same encoding, order, padding and offsets.
func TestRewriteSharedFilesIdentical(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "stories260K-Q4_0.gguf", "stories260K-Q8_0.gguf",
		"random/llama-spm-small-q4_k_m.gguf", "random/qwen2-small-q8_0.gguf", "vocab/ggml-vocab-llama-spm.gguf"} {
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(sharedFile(t, name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(orig)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := copyToWriter(t, f).WriteTo(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) {
				t.Errorf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				i := 0
				for i < len(orig) && i < buf.Len() && orig[i] == buf.Bytes()[i] {
					i++
				}
				t.Fatalf("rewritten file differs at byte %d (lengths %d vs %d)", i, buf.Len(), len(orig))
			}
		})
	}
}

func TestRoundTripAllValueTypes(t *testing.T) {
	w := NewWriter()
	w.SetUint32(AlignmentKey, 64)
	w.SetUint8("u8", 200)
	w.SetInt8("i8", -100)
	w.SetUint16("u16", 65000)
	w.SetInt16("i16", -30000)
	w.SetUint32("u32", 4e9)
	w.SetInt32("i32", -2e9)
	w.SetUint64("u64", math.MaxUint64)
	w.SetInt64("i64", math.MinInt64)
	w.SetFloat32("f32", 1.5e-7)
	w.SetFloat64("f64", math.Pi)
	w.SetBool("yes", true)
	w.SetBool("no", false)
	w.SetString("s", "héllo\x00world")
	w.SetString("empty", "")
	w.SetStrings("strs", []string{"a", "", "ü"})
	w.SetFloat32s("f32s", []float32{1, -2.5, float32(math.Inf(1))})
	w.SetInt32s("i32s", []int32{math.MinInt32, 0, math.MaxInt32})
	w.SetStrings("replaced", []string{"old"})
	inner1 := Int32sValue([]int32{1, 2})
	inner2 := StringsValue([]string{"x"})
	if err := w.SetArray("nested", TypeArray, []Value{inner1, inner2}); err != nil {
		t.Fatal(err)
	}
	if err := w.SetArray("u8s", TypeUint8, []Value{Uint8Value(1), Uint8Value(255)}); err != nil {
		t.Fatal(err)
	}
	if err := w.SetArray("mixed", TypeUint8, []Value{Uint8Value(1), Int8Value(1)}); err == nil {
		t.Error("SetArray accepted mixed element types")
	}
	w.SetUint16("replaced", 7) // keeps its position, changes type

	tensors := []struct {
		name string
		typ  quant.Type
		dims []uint64
	}{
		{"a", quant.F32, []uint64{3}},
		{"b", quant.Q8_0, []uint64{64, 2}},
		{"c", quant.Q4_K, []uint64{256, 1, 1, 2}},
		{"d", quant.F16, []uint64{5, 3, 1}},
		{"e", quant.Q5_K, []uint64{256}}, // layout known, no kernels: still storable
	}
	var datas [][]byte
	for i, tc := range tensors {
		rb, _ := quant.RowBytes(tc.typ, int(tc.dims[0]))
		rows := 1
		for _, d := range tc.dims[1:] {
			rows *= int(d)
		}
		data := bytes.Repeat([]byte{byte(i + 1)}, rb*rows)
		datas = append(datas, data)
		if err := w.AddTensor(tc.name, tc.typ, tc.dims, data); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("WriteFile left %d files behind", len(entries))
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Alignment != 64 {
		t.Errorf("alignment %d", f.Alignment)
	}
	if len(f.KV) != len(w.kv) {
		t.Fatalf("%d keys read, %d written", len(f.KV), len(w.kv))
	}
	for i, kv := range w.kv {
		got := f.KV[i]
		if got.Key != kv.Key || !reflect.DeepEqual(got.Value, kv.Value) {
			t.Errorf("entry %d: got %s=%s (%s), want %s=%s (%s)", i, got.Key, got.Value, got.Value.Type, kv.Key, kv.Value, kv.Value.Type)
		}
	}
	if f.KV[len(f.KV)-3].Key != "replaced" {
		t.Errorf("replaced key moved: order %v", f.KV[len(f.KV)-3].Key)
	}
	if v, ok := f.Uint("u64"); !ok || v != math.MaxUint64 {
		t.Errorf("u64 %d", v)
	}
	if _, ok := f.Int("u64"); ok {
		t.Error("Int accepted a uint64 above MaxInt64")
	}
	if v, ok := f.Int("i8"); !ok || v != -100 {
		t.Errorf("i8 %d", v)
	}
	if _, ok := f.Uint("i8"); ok {
		t.Error("Uint accepted a negative value")
	}
	if v, ok := f.Uint("u8"); !ok || v != 200 {
		t.Errorf("u8 %d", v)
	}
	if v, ok := f.Float("f32"); !ok || float32(v) != 1.5e-7 {
		t.Errorf("f32 %v", v)
	}
	for key, want := range map[string]string{"f32": "1.5e-07", "i8": "-100", "u64": "18446744073709551615", "yes": "true",
		"s": `"héllo\x00world"`, "strs": `[3 x string: "a" "" "ü"]`, "i32s": "[3 x int32: -2147483648 0 2147483647]"} {
		if v, _ := f.Lookup(key); v.String() != want {
			t.Errorf("%s formats as %s, want %s", key, v.String(), want)
		}
	}
	if v, ok := f.Bool("yes"); !ok || !v {
		t.Error("yes")
	}
	if v, ok := f.String("s"); !ok || v != "héllo\x00world" {
		t.Errorf("s %q", v)
	}
	if v, ok := f.Int32s("u8s"); !ok || !reflect.DeepEqual(v, []int32{1, 255}) {
		t.Errorf("u8s as int32s: %v", v)
	}
	nested, _ := f.Lookup("nested")
	arr, _ := nested.AsArray()
	if arr.Len() != 2 {
		t.Fatal("nested length")
	}
	a0, _ := arr.Index(0).AsArray()
	if xs, ok := a0.Int32s(); !ok || !reflect.DeepEqual(xs, []int32{1, 2}) {
		t.Errorf("nested[0] %v", xs)
	}
	for i, tc := range tensors {
		ti, data, ok := f.Tensor(tc.name)
		if !ok || ti.Type != tc.typ || !reflect.DeepEqual(ti.Dims, tc.dims) || !bytes.Equal(data, datas[i]) {
			t.Errorf("tensor %s: %+v", tc.name, ti)
		}
		if ti.Offset%64 != 0 {
			t.Errorf("tensor %s at %d, not 64-aligned", tc.name, ti.Offset)
		}
	}
	if err := f.CheckSupported(); err == nil || !strings.Contains(err.Error(), "unsupported tensor type Q5_K") {
		t.Errorf("CheckSupported: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Tensor("a"); ok {
		t.Error("Tensor after Close returned data")
	}
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter()
	if err := w.AddTensor("t", quant.Q8_0, []uint64{33}, make([]byte, 34)); err == nil {
		t.Error("accepted a partial block")
	}
	if err := w.AddTensor("t", quant.F32, []uint64{4}, make([]byte, 15)); err == nil {
		t.Error("accepted short data")
	}
	if err := w.AddTensor("t", quant.Type(99), []uint64{4}, make([]byte, 16)); err == nil {
		t.Error("accepted an unknown type")
	}
	if err := w.AddTensor("t", quant.F32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)); err == nil {
		t.Error("accepted 5 dims")
	}
	if err := w.AddTensor("t", quant.F32, []uint64{4}, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("t", quant.F32, []uint64{4}, make([]byte, 16)); err == nil {
		t.Error("accepted a duplicate tensor")
	}
	w.SetUint32(AlignmentKey, 48)
	if _, err := w.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("wrote alignment 48")
	}
	w.SetUint32(AlignmentKey, 32)
	w.SetString("bad\xff", "x")
	if _, err := w.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("wrote a non-UTF-8 key")
	}
	if err := w.WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir.gguf")); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}
