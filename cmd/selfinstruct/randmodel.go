package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/quant"
	"github.com/selfinstruct/selfinstruct/output"
)

func init() { rootCmd.AddCommand(newRandomModelCmd()) }

// modelShape is the architecture of a random-weight model: the dimensions
// that decide how fast a model runs, nothing more.
type modelShape struct {
	Layers, Embd, FF, Heads, HeadsKV, Context int
	RopeBase, RMSEps                          float32
}

// modelShapes are the shapes `random-model` knows. TinyLlama-1.1B is the
// engine benchmark's model; "tiny" exists so that tests can write a model of
// the same kind in milliseconds.
var modelShapes = map[string]modelShape{
	"tinyllama-1.1b": {Layers: 22, Embd: 2048, FF: 5632, Heads: 32, HeadsKV: 4, Context: 2048, RopeBase: 10000, RMSEps: 1e-5},
	"tiny":           {Layers: 2, Embd: 256, FF: 512, Heads: 8, HeadsKV: 2, Context: 256, RopeBase: 10000, RMSEps: 1e-5},
}

// quantMix is a llama.cpp quantisation preset: the type of each tensor.
type quantMix struct {
	fileType uint32 // general.file_type (llama_ftype)
	typeOf   func(tensor string, layer, layers int) quant.Type
}

// useMoreBits is llama.cpp's rule for the layers whose attn_v and ffn_down
// get more bits in the _M presets: the first and last eighth, and every
// third layer in between.
func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

var quantMixes = map[string]quantMix{
	// LLAMA_FTYPE_MOSTLY_Q4_0: everything Q4_0 but the output matrix (Q6_K).
	"q4_0": {fileType: 2, typeOf: func(tensor string, _, _ int) quant.Type {
		if tensor == "output" {
			return quant.Q6_K
		}
		return quant.Q4_0
	}},
	// LLAMA_FTYPE_MOSTLY_Q8_0: Q8_0 throughout.
	"q8_0": {fileType: 7, typeOf: func(string, int, int) quant.Type { return quant.Q8_0 }},
	// LLAMA_FTYPE_MOSTLY_Q4_K_M: Q4_K, with Q6_K for the output matrix and
	// for attn_v / ffn_down of the layers useMoreBits picks.
	"q4_k_m": {fileType: 15, typeOf: func(tensor string, layer, layers int) quant.Type {
		switch {
		case tensor == "output":
			return quant.Q6_K
		case (tensor == "attn_v" || tensor == "ffn_down") && useMoreBits(layer, layers):
			return quant.Q6_K
		}
		return quant.Q4_K
	}},
}

type randomModelFlags struct {
	shape string
	mix   string
	vocab string
	out   string
	seed  uint64
}

func newRandomModelCmd() *cobra.Command {
	var fl randomModelFlags
	cmd := &cobra.Command{
		Use:   "random-model --vocab V.gguf --out M.gguf",
		Short: "Write a random-weight LLaMA GGUF model of a known shape, for benchmarks",
		Long: `Writes a LLaMA-architecture GGUF file whose weights are random quantised blocks,
with the shape of a real model (--shape) and a llama.cpp quantisation preset
(--type): a model that both this engine and llama.cpp load and run at the real
model's speed, without downloading one. Its text is noise.

The tokenizer (every tokenizer.* key) is read from --vocab, a GGUF file with a
32000-token SentencePiece vocabulary such as llama.cpp's
ggml-vocab-llama-spm.gguf; the vocabulary size sets the embedding matrices.

Shapes: ` + strings.Join(sortedKeys(modelShapes), ", ") + `.
Types:  ` + strings.Join(sortedKeys(quantMixes), ", ") + ` (tensor types as llama-quantize assigns them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRandomModel(cmd, &fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.shape, "shape", "tinyllama-1.1b", "model shape")
	f.StringVar(&fl.mix, "type", "q4_0", "quantisation preset")
	f.StringVar(&fl.vocab, "vocab", "", "GGUF file to take the tokenizer from (required)")
	f.StringVarP(&fl.out, "out", "o", "", "GGUF file to write (required)")
	f.Uint64Var(&fl.seed, "seed", 1, "random seed (the same seed writes the same file)")
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// A handful of keys: insertion sort keeps this free of a sort import.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func runRandomModel(cmd *cobra.Command, fl *randomModelFlags) error {
	shape, ok := modelShapes[fl.shape]
	if !ok {
		return withCode(exitBadInput, fmt.Errorf("random-model: --shape %q: want one of %s", fl.shape, strings.Join(sortedKeys(modelShapes), ", ")))
	}
	mix, ok := quantMixes[strings.ToLower(fl.mix)]
	if !ok {
		return withCode(exitBadInput, fmt.Errorf("random-model: --type %q: want one of %s", fl.mix, strings.Join(sortedKeys(quantMixes), ", ")))
	}
	if fl.vocab == "" || fl.out == "" {
		return withCode(exitBadInput, errors.New("random-model: --vocab and --out are required"))
	}
	vf, err := gguf.Open(fl.vocab)
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("random-model: --vocab: %w", err))
	}
	defer vf.Close()
	w, err := randomModel(vf, shape, mix, fl.seed)
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("random-model: %s: %w", fl.vocab, err))
	}
	if err := writeGGUFAtomically(fl.out, w); err != nil {
		return fmt.Errorf("random-model: %w", err)
	}
	st, err := os.Stat(fl.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s %s, %s\n", fl.out, fl.shape, strings.ToLower(fl.mix), humanBytes(st.Size()))
	return nil
}

// randomModel builds the GGUF contents: the vocabulary's tokenizer keys,
// LLaMA hyper-parameters of the shape, and random quantised tensors.
func randomModel(vocab *gguf.File, shape modelShape, mix quantMix, seed uint64) (*gguf.Writer, error) {
	tokens, ok := vocab.Strings("tokenizer.ggml.tokens")
	if !ok || len(tokens) == 0 {
		return nil, errors.New("no tokenizer.ggml.tokens: not a vocabulary GGUF")
	}
	nVocab := len(tokens)
	w := gguf.NewWriter()
	w.SetString("general.architecture", "llama")
	w.SetString("general.name", "random-weight model (selfinstruct random-model)")
	w.SetUint32("general.file_type", mix.fileType)
	w.SetUint32("general.quantization_version", 2)
	w.SetUint32("llama.context_length", uint32(shape.Context))
	w.SetUint32("llama.embedding_length", uint32(shape.Embd))
	w.SetUint32("llama.block_count", uint32(shape.Layers))
	w.SetUint32("llama.feed_forward_length", uint32(shape.FF))
	w.SetUint32("llama.rope.dimension_count", uint32(shape.Embd/shape.Heads))
	w.SetUint32("llama.attention.head_count", uint32(shape.Heads))
	w.SetUint32("llama.attention.head_count_kv", uint32(shape.HeadsKV))
	w.SetFloat32("llama.attention.layer_norm_rms_epsilon", shape.RMSEps)
	w.SetFloat32("llama.rope.freq_base", shape.RopeBase)
	w.SetUint32("llama.vocab_size", uint32(nVocab))
	for _, kv := range vocab.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			w.Set(kv.Key, kv.Value)
		}
	}

	rng := rand.New(rand.NewPCG(seed, 0x5e1f))
	add := func(name string, typ quant.Type, cols, rows int) error {
		data, err := randomTensor(rng, typ, cols, rows)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		dims := []uint64{uint64(cols)}
		if rows > 0 {
			dims = append(dims, uint64(rows))
		}
		return w.AddTensor(name, typ, dims, data)
	}
	E, kvDim := shape.Embd, shape.Embd/shape.Heads*shape.HeadsKV
	if err := add("token_embd.weight", mix.typeOf("token_embd", -1, shape.Layers), E, nVocab); err != nil {
		return nil, err
	}
	for il := range shape.Layers {
		p := fmt.Sprintf("blk.%d.", il)
		t := func(name string) quant.Type { return mix.typeOf(name, il, shape.Layers) }
		for _, m := range []struct {
			name       string
			cols, rows int
		}{
			{"attn_q", E, E}, {"attn_k", E, kvDim}, {"attn_v", E, kvDim}, {"attn_output", E, E},
			{"ffn_gate", E, shape.FF}, {"ffn_up", E, shape.FF}, {"ffn_down", shape.FF, E},
		} {
			if err := add(p+m.name+".weight", t(m.name), m.cols, m.rows); err != nil {
				return nil, err
			}
		}
		for _, norm := range []string{"attn_norm", "ffn_norm"} {
			if err := add(p+norm+".weight", quant.F32, E, 0); err != nil {
				return nil, err
			}
		}
	}
	if err := add("output_norm.weight", quant.F32, E, 0); err != nil {
		return nil, err
	}
	if err := add("output.weight", mix.typeOf("output", -1, shape.Layers), E, nVocab); err != nil {
		return nil, err
	}
	return w, nil
}

// randomTensor returns rows (0 for a vector) of cols random elements of type
// typ. Quantised blocks get random quants and small positive scales, so that
// weights are of the order of 0.01 like a trained model's and activations
// stay finite through every layer; vectors (the norms) are near 1.
func randomTensor(rng *rand.Rand, typ quant.Type, cols, rows int) ([]byte, error) {
	if rows == 0 {
		if typ != quant.F32 {
			return nil, fmt.Errorf("vectors are F32, not %s", typ)
		}
		out := make([]byte, 4*cols)
		for i := range cols {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(0.9+0.2*rng.Float32()))
		}
		return out, nil
	}
	rb, err := quant.RowBytes(typ, cols)
	if err != nil {
		return nil, err
	}
	out := make([]byte, rb*rows)
	for i := 0; i+8 <= len(out); i += 8 {
		binary.LittleEndian.PutUint64(out[i:], rng.Uint64())
	}
	for i := len(out) &^ 7; i < len(out); i++ {
		out[i] = byte(rng.Uint32())
	}
	// The scales: random bits would include Inf and NaN.
	half := func(off int, lo, hi float32) {
		binary.LittleEndian.PutUint16(out[off:], quant.FP32ToFP16(lo+(hi-lo)*rng.Float32()))
	}
	bb := typ.BlockBytes()
	for b := 0; b < len(out); b += bb {
		switch typ {
		case quant.Q4_0: // d, then 16 bytes of nibbles: q-8 in [-8,7], std ~4.6
			half(b, 0.002, 0.006)
		case quant.Q8_0: // d, then 32 int8: std ~74
			half(b, 0.0001, 0.0003)
		case quant.Q4_K: // d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
			half(b, 0.00005, 0.00015)
			half(b+2, 0.00005, 0.00015)
		case quant.Q6_K: // 128 ql, 64 qh, 16 int8 scales, d last
			half(b+bb-2, 0.00001, 0.00003)
		default:
			return nil, fmt.Errorf("random-model has no generator for %s", typ)
		}
	}
	return out, nil
}

// writeGGUFAtomically writes w to path through a temporary file in the same
// directory, so an interrupted run leaves no truncated model behind.
func writeGGUFAtomically(path string, w *gguf.Writer) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return output.WriteFileAtomic(path, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if _, err := w.WriteTo(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}
