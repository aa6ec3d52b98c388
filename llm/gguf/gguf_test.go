package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// sharedModels is the reference data folder that CI places beside the clone.
var sharedModels = filepath.Join("..", "..", "..", "shared", "models")

func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(sharedModels, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (shared/ must sit beside the repository): %v", p, err)
	}
	return p
}

func typeCounts(f *File) map[quant.Type]int {
	m := map[quant.Type]int{}
	for _, t := range f.Tensors {
		m[t.Type]++
	}
	return m
}

// The tensor inventories below are the ones the shared READMEs document.
func TestSharedModels(t *testing.T) {
	cases := []struct {
		file    string
		tensors map[quant.Type]int
		uints   map[string]uint64
		arch    string
	}{
		{"stories260K.gguf", map[quant.Type]int{quant.F32: 48},
			map[string]uint64{"llama.block_count": 5, "llama.embedding_length": 64, "llama.attention.head_count": 8, "llama.attention.head_count_kv": 4, "llama.feed_forward_length": 172}, "llama"},
		{"stories260K-Q8_0.gguf", map[quant.Type]int{quant.Q8_0: 32, quant.F16: 5, quant.F32: 11},
			map[string]uint64{"llama.block_count": 5, "general.file_type": 7}, "llama"},
		{"stories260K-Q4_0.gguf", map[quant.Type]int{quant.Q4_0: 31, quant.F16: 5, quant.Q8_0: 1, quant.F32: 11},
			map[string]uint64{"llama.block_count": 5, "general.file_type": 2}, "llama"},
		{"random/llama-spm-small-q4_k_m.gguf", map[quant.Type]int{quant.Q4_K: 13, quant.Q6_K: 3, quant.F32: 5},
			map[string]uint64{"llama.block_count": 2, "llama.embedding_length": 256, "llama.vocab_size": 32000, "llama.feed_forward_length": 512}, "llama"},
		{"random/qwen2-small-q8_0.gguf", map[quant.Type]int{quant.Q8_0: 15, quant.F32: 11},
			map[string]uint64{"qwen2.block_count": 2, "qwen2.embedding_length": 64, "qwen2.attention.head_count_kv": 2}, "qwen2"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := Open(sharedFile(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != 3 || f.Alignment != DefaultAlignment {
				t.Errorf("version %d alignment %d, want 3 and %d", f.Version, f.Alignment, DefaultAlignment)
			}
			got := typeCounts(f)
			if len(got) != len(c.tensors) {
				t.Errorf("tensor types %v, want %v", got, c.tensors)
			}
			for typ, n := range c.tensors {
				if got[typ] != n {
					t.Errorf("%d tensors of type %s, want %d", got[typ], typ, n)
				}
			}
			if arch, _ := f.String("general.architecture"); arch != c.arch {
				t.Errorf("architecture %q, want %q", arch, c.arch)
			}
			for k, want := range c.uints {
				if v, ok := f.Uint(k); !ok || v != want {
					t.Errorf("%s = %d (%v), want %d", k, v, ok, want)
				}
			}
			if err := f.CheckSupported(); err != nil {
				t.Error(err)
			}
			var prevEnd uint64
			for _, ti := range f.Tensors {
				info, data, ok := f.Tensor(ti.Name)
				if !ok || uint64(len(data)) != ti.Size || info.Offset != ti.Offset {
					t.Fatalf("Tensor(%q): ok %v, %d bytes, want %d", ti.Name, ok, len(data), ti.Size)
				}
				rb, err := quant.RowBytes(ti.Type, int(ti.Dims[0]))
				if err != nil || uint64(rb)*(ti.Elements()/ti.Dims[0]) != ti.Size {
					t.Errorf("%s: size %d disagrees with RowBytes %d (%v)", ti.Name, ti.Size, rb, err)
				}
				if ti.Offset%f.Alignment != 0 || ti.Offset < prevEnd {
					t.Errorf("%s: offset %d misaligned or overlapping", ti.Name, ti.Offset)
				}
				prevEnd = ti.Offset + ti.Size
			}
			if _, _, ok := f.Tensor("no.such.tensor"); ok {
				t.Error("Tensor found a tensor that does not exist")
			}
		})
	}
}

func TestStories260KDetails(t *testing.T) {
	f, err := Open(sharedFile(t, "stories260K-Q4_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, _, ok := f.Tensor("token_embd.weight")
	if !ok || ti.Type != quant.Q4_0 || len(ti.Dims) != 2 || ti.Dims[0] != 64 || ti.Dims[1] != 512 {
		t.Errorf("token_embd.weight: %+v", ti)
	}
	ti, _, ok = f.Tensor("blk.0.ffn_down.weight")
	if !ok || ti.Type != quant.F16 || ti.Dims[0] != 172 || ti.Dims[1] != 64 {
		t.Errorf("blk.0.ffn_down.weight: %+v", ti)
	}
	ti, _, ok = f.Tensor("output.weight")
	if !ok || ti.Type != quant.Q8_0 {
		t.Errorf("output.weight: %+v", ti)
	}
	eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon")
	if !ok || float32(eps) != 1e-5 {
		t.Errorf("rms eps %v %v", eps, ok)
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != 512 || toks[1] != "<s>" {
		t.Errorf("tokens: %d %v", len(toks), ok)
	}
	types, ok := f.Int32s("tokenizer.ggml.token_type")
	if !ok || len(types) != 512 || types[0] != 2 || types[1] != 3 {
		t.Errorf("token types: %v", ok)
	}
	scores, ok := f.Float32s("tokenizer.ggml.scores")
	if !ok || len(scores) != 512 {
		t.Errorf("scores: %v", ok)
	}
	// Integer getters accept any width; the wrong kind fails.
	if v, ok := f.Int("tokenizer.ggml.seperator_token_id"); !ok || v != 4294967295 {
		t.Errorf("Int of uint32 max: %d %v", v, ok)
	}
	if _, ok := f.String("llama.block_count"); ok {
		t.Error("String accepted an integer")
	}
	if _, ok := f.Uint("general.name"); ok {
		t.Error("Uint accepted a string")
	}
	if _, ok := f.Strings("tokenizer.ggml.scores"); ok {
		t.Error("Strings accepted a float array")
	}
}

func TestVocabFiles(t *testing.T) {
	cases := map[string]struct {
		model  string
		tokens int
		merges int
	}{
		"ggml-vocab-llama-spm.gguf": {"llama", 32000, 0},
		"ggml-vocab-phi-3.gguf":     {"llama", 32064, 0},
		"ggml-vocab-llama-bpe.gguf": {"gpt2", 128256, 280147},
		"ggml-vocab-qwen2.gguf":     {"gpt2", 151936, 151387},
		"ggml-vocab-gpt-2.gguf":     {"gpt2", 50257, 50000},
		"ggml-vocab-bert-bge.gguf":  {"bert", 30522, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := Open(sharedFile(t, filepath.Join("vocab", name)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if len(f.Tensors) != 0 {
				t.Errorf("%d tensors in a vocab-only file", len(f.Tensors))
			}
			if m, _ := f.String("tokenizer.ggml.model"); m != c.model {
				t.Errorf("model %q, want %q", m, c.model)
			}
			toks, ok := f.Strings("tokenizer.ggml.tokens")
			if !ok || len(toks) != c.tokens {
				t.Errorf("%d tokens, want %d", len(toks), c.tokens)
			}
			types, ok := f.Int32s("tokenizer.ggml.token_type")
			if !ok || len(types) != c.tokens {
				t.Errorf("%d token types, want %d", len(types), c.tokens)
			}
			merges, _ := f.Strings("tokenizer.ggml.merges")
			if len(merges) != c.merges {
				t.Errorf("%d merges, want %d", len(merges), c.merges)
			}
		})
	}
}

// Every proper prefix of a file must fail cleanly, with the truncation
// reported, never a panic: every prefix of small files covering all value
// and tensor kinds, and a sparse walk through a real model.
func TestTruncatedFiles(t *testing.T) {
	check := func(name string, data []byte, stride int) {
		t.Helper()
		f, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: full file: %v", name, err)
		}
		// Padding after the last tensor is optional; everything before its
		// end is required.
		required := len(data)
		if len(f.Tensors) > 0 {
			required = 0
			for _, ti := range f.Tensors {
				required = max(required, int(ti.Offset+ti.Size))
			}
		}
		for n := 0; n < required; n += stride {
			if n > int(f.DataOffset)+64 {
				stride = 4099 // the data section is only sized, not parsed
			}
			_, err := Parse(data[:n])
			if err == nil {
				t.Fatalf("%s: prefix of %d bytes parsed without error", name, n)
			}
			if n >= 8 && !errors.Is(err, errTruncated) {
				t.Fatalf("%s: prefix of %d bytes: error %q does not report truncation", name, n, err)
			}
		}
	}
	for i, seed := range fuzzSeeds(t) {
		if len(seed) > 24 { // the empty file parses at its full 24 bytes only
			check(fmt.Sprintf("seed %d", i), seed, 1)
		}
	}
	data, err := os.ReadFile(sharedFile(t, "stories260K-Q4_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	check("stories260K-Q4_0.gguf", data, 31)
}

func header(version uint32, nTensors, nKV uint64) []byte {
	b := []byte(Magic)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint64(b, nTensors)
	return binary.LittleEndian.AppendUint64(b, nKV)
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func TestHostileHeaders(t *testing.T) {
	kvU32 := func(b []byte, key string, v uint32) []byte {
		b = appendString(b, key)
		b = binary.LittleEndian.AppendUint32(b, uint32(TypeUint32))
		return binary.LittleEndian.AppendUint32(b, v)
	}
	tensor := func(b []byte, name string, dims []uint64, typ uint32, off uint64) []byte {
		b = appendString(b, name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dims)))
		for _, d := range dims {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		b = binary.LittleEndian.AppendUint32(b, typ)
		return binary.LittleEndian.AppendUint64(b, off)
	}
	pad := func(b []byte, n int) []byte {
		for len(b)%32 != 0 {
			b = append(b, 0)
		}
		return append(b, make([]byte, n)...)
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":          {nil, "end of file"},
		"bad magic":      {[]byte("GGML\x03\x00\x00\x00"), "not a GGUF file"},
		"version 1":      {header(1, 0, 0), "version 1 is not supported"},
		"version 4":      {header(4, 0, 0), "unsupported GGUF version 4"},
		"huge kv count":  {header(3, 0, 1<<62), "metadata count"},
		"huge tensors":   {header(3, 1<<40, 0), "tensor count"},
		"huge string":    {append(binary.LittleEndian.AppendUint64(header(3, 0, 1), 1<<60), "xxxxxxxxxxxxxxxxxxxx"...), "exceeds"},
		"empty key":      {append(appendString(header(3, 0, 1), ""), make([]byte, 8)...), "empty key"},
		"bad utf8 key":   {kvU32(header(3, 0, 1), "a\xff", 1), "not valid UTF-8"},
		"duplicate key":  {kvU32(kvU32(header(3, 0, 2), "k", 1), "k", 2), `duplicate key "k"`},
		"unknown vtype":  {binary.LittleEndian.AppendUint32(appendString(header(3, 0, 1), "k"), 13), "unknown value type 13"},
		"bad bool":       {append(binary.LittleEndian.AppendUint32(appendString(header(3, 0, 1), "k"), uint32(TypeBool)), 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "neither 0 nor 1"},
		"alignment 3":    {kvU32(header(3, 0, 1), AlignmentKey, 3), "not a power of two"},
		"alignment 0":    {kvU32(header(3, 0, 1), AlignmentKey, 0), "not a power of two"},
		"huge array":     {binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(appendString(header(3, 0, 1), "k"), uint32(TypeArray)), uint32(TypeUint64)), 1<<61), "cannot fit"},
		"zero dims":      {pad(tensor(header(3, 1, 0), "t", nil, 0, 0), 64), "0 dimensions"},
		"five dims":      {pad(tensor(header(3, 1, 0), "t", []uint64{1, 1, 1, 1, 1}, 0, 0), 64), "5 dimensions"},
		"zero dim":       {pad(tensor(header(3, 1, 0), "t", []uint64{4, 0}, 0, 0), 64), "dimension 1 is 0"},
		"elem overflow":  {pad(tensor(header(3, 1, 0), "t", []uint64{1 << 32, 1 << 32}, 0, 0), 64), "overflows"},
		"unknown type":   {pad(tensor(header(3, 1, 0), "t", []uint64{4}, 99, 0), 64), "unsupported tensor type type(99)"},
		"partial block":  {pad(tensor(header(3, 1, 0), "t", []uint64{33}, uint32(quant.Q8_0), 0), 64), "not a multiple of the Q8_0 block size 32"},
		"misaligned":     {pad(tensor(header(3, 1, 0), "t", []uint64{4}, 0, 8), 64), "not a multiple of the alignment"},
		"out of bounds":  {pad(tensor(header(3, 1, 0), "t", []uint64{32}, 0, 0), 64), "runs past the end"},
		"offset past":    {pad(tensor(header(3, 1, 0), "t", []uint64{4}, 0, 1<<63), 64), "runs past the end"},
		"overlap":        {pad(tensor(tensor(header(3, 2, 0), "a", []uint64{16}, 0, 0), "b", []uint64{16}, 0, 32), 128), `"a" and "b" overlap`},
		"dup tensor":     {pad(tensor(tensor(header(3, 2, 0), "a", []uint64{4}, 0, 0), "a", []uint64{4}, 0, 32), 128), `duplicate tensor name "a"`},
		"no data at all": {tensor(header(3, 1, 0), "t", []uint64{4}, 0, 0), "beyond the end"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(c.data)
			if err == nil {
				t.Fatalf("parsed without error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

// Version 2 has the same layout as version 3 (which only added a marker for
// big-endian files), so a v3 file relabelled as v2 must read the same.
func TestVersion2(t *testing.T) {
	w := NewWriter()
	w.SetString("general.architecture", "llama")
	if err := w.AddTensor("t", quant.F32, []uint64{2, 2}, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	binary.LittleEndian.PutUint32(data[4:], 2)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 2 || len(f.Tensors) != 1 || f.Tensors[0].Elements() != 4 {
		t.Errorf("v2 file: version %d, tensors %+v", f.Version, f.Tensors)
	}
	if arch, _ := f.String("general.architecture"); arch != "llama" {
		t.Errorf("architecture %q", arch)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	empty := filepath.Join(t.TempDir(), "empty.gguf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Open of an empty file: %v", err)
	}
}
