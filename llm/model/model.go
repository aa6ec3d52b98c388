// Package model runs LLaMA-family transformer models stored in GGUF files
// (architectures "llama" and "qwen2") on the CPU, reproducing the greedy
// tokens of llama.cpp's CPU backend exactly.
//
// Use:
//
//	f, err := gguf.Open(path)
//	m, err := model.Load(f, model.Options{Threads: 8})
//	s, err := m.NewSession(2048)        // own KV cache; one per goroutine
//	logits, err := s.Eval(promptIDs)    // whole prompt as one batch
//	gen, err := s.Generate(ctx, promptIDs, model.GenerateOptions{MaxTokens: 64, Stop: tok.IsEOG})
//
// A Model holds the weights read-only (slices into the GGUF file) and may be
// shared by any number of Sessions used concurrently. A Session is not safe
// for concurrent use.
//
// The forward pass is written as plain per-layer steps over explicit
// activation buffers (see LayerActivations) so that it stays readable and a
// training pass can keep the activations; the matrix products go through
// package quant, whose kernels follow ggml's scalar order.
package model

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// Options configure Load.
type Options struct {
	// Threads is the number of goroutines each Session uses for its matrix
	// products; 0 means runtime.NumCPU().
	Threads int
	// BatchSize bounds how many tokens Eval pushes through the layers at
	// once (llama.cpp's n_ubatch); 0 means 512. It sizes the scratch
	// buffers of every Session.
	BatchSize int
}

// Weight is one 2-D weight matrix: Rows rows of Cols elements each, stored
// row after row in ggml's block format. Data aliases the GGUF file.
type Weight struct {
	Name       string
	Type       quant.Type
	Rows, Cols int
	RowBytes   int
	Data       []byte

	// packed is the matrix repacked 8 rows at a time in packing's layout
	// where the CPU has kernels for it; the products use it, while Data
	// stays for row lookups (a tied embedding table).
	packed  []byte
	packing *quant.Packing
}

// Row returns the bytes of row r.
func (w *Weight) Row(r int) []byte { return w.Data[r*w.RowBytes : (r+1)*w.RowBytes] }

// Layer holds the tensors of one transformer block. Bias vectors are nil
// when the model has none.
type Layer struct {
	AttnNorm       []float32
	Wq, Wk, Wv, Wo *Weight
	Bq, Bk, Bv, Bo []float32
	FFNNorm        []float32
	Gate, Up, Down *Weight
}

// Model is a loaded GGUF model, immutable after Load.
type Model struct {
	HP         HParams
	TokenEmbd  *Weight
	OutputNorm []float32
	Output     *Weight // token_embd when the model ties its embeddings
	Layers     []Layer
	// RopeFreqs holds rope_freqs.weight (per-pair angle divisors) when the
	// model has it, as LLaMA 3.1 does; nil otherwise.
	RopeFreqs []float32

	threads, batch int
}

// Load builds a Model from an open GGUF file. It checks every tensor's
// presence, type and shape so that an unsupported file fails here with a
// clear error instead of later. The returned Model keeps slices of f's data.
func Load(f *gguf.File, opts Options) (*Model, error) {
	hp, err := readHParams(f)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &Model{HP: hp, threads: opts.Threads, batch: opts.BatchSize}
	if m.threads <= 0 {
		m.threads = runtime.NumCPU()
	}
	if m.batch <= 0 {
		m.batch = 512
	}
	l := loader{f: f}
	m.TokenEmbd = l.matrix("token_embd.weight", hp.Embd, -1)
	if m.TokenEmbd != nil {
		hp.Vocab = m.TokenEmbd.Rows
	}
	m.OutputNorm = l.vector("output_norm.weight", hp.Embd, true)
	if _, _, ok := f.Tensor("output.weight"); ok {
		m.Output = l.matrix("output.weight", hp.Embd, hp.Vocab)
	} else {
		m.Output = m.TokenEmbd
		hp.TiedOutput = true
	}
	if _, _, ok := f.Tensor("rope_freqs.weight"); ok {
		m.RopeFreqs = l.vector("rope_freqs.weight", hp.RopeDim/2, true)
	}
	qDim, kvDim := hp.Heads*hp.HeadDim, hp.HeadsKV*hp.HeadDim
	m.Layers = make([]Layer, hp.Layers)
	for i := range m.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		L := &m.Layers[i]
		L.AttnNorm = l.vector(p+"attn_norm.weight", hp.Embd, true)
		L.Wq = l.matrix(p+"attn_q.weight", hp.Embd, qDim)
		L.Wk = l.matrix(p+"attn_k.weight", hp.Embd, kvDim)
		L.Wv = l.matrix(p+"attn_v.weight", hp.Embd, kvDim)
		L.Wo = l.matrix(p+"attn_output.weight", qDim, hp.Embd)
		biasRequired := hp.Arch == "qwen2"
		L.Bq = l.vector(p+"attn_q.bias", qDim, biasRequired)
		L.Bk = l.vector(p+"attn_k.bias", kvDim, biasRequired)
		L.Bv = l.vector(p+"attn_v.bias", kvDim, biasRequired)
		L.Bo = l.vector(p+"attn_output.bias", hp.Embd, false)
		L.FFNNorm = l.vector(p+"ffn_norm.weight", hp.Embd, true)
		L.Gate = l.matrix(p+"ffn_gate.weight", hp.Embd, hp.FF)
		L.Up = l.matrix(p+"ffn_up.weight", hp.Embd, hp.FF)
		L.Down = l.matrix(p+"ffn_down.weight", hp.FF, hp.Embd)
	}
	hp.AttnBiasQKV = len(m.Layers) > 0 && m.Layers[0].Bq != nil
	if l.err != nil {
		return nil, fmt.Errorf("model: %w", l.err)
	}
	m.HP = hp
	if err := m.packWeights(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return m, nil
}

// packMatrices lets tests load a model both ways and compare.
var packMatrices = true

// packWeights repacks the matrices the CPU multiplies faster in an 8-row
// interleaved layout (quant.PackingFor; one token's Q4_0 product runs about
// 3x faster on AVX2, see quant.BenchmarkPackedQ4_0), once, at load, on all
// cores. It costs a copy of those matrices in memory; the file's pages of
// them are not read again.
func (m *Model) packWeights() error {
	if !packMatrices {
		return nil
	}
	var ws []*Weight
	for i := range m.Layers {
		L := &m.Layers[i]
		ws = append(ws, L.Wq, L.Wk, L.Wv, L.Wo, L.Gate, L.Up, L.Down)
	}
	ws = append(ws, m.Output)
	var todo []*Weight
	seen := map[*Weight]bool{}
	for _, w := range ws {
		if quant.PackingFor(w.Type) != nil && w.Rows%8 == 0 && !seen[w] {
			seen[w] = true
			todo = append(todo, w)
		}
	}
	errs := make([]error, len(todo))
	next := make(chan int, len(todo))
	for i := range todo {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(todo)) {
		wg.Go(func() {
			for i := range next {
				w := todo[i]
				pk := quant.PackingFor(w.Type)
				p, err := pk.Pack(w.Data, w.Rows, w.Cols)
				if err != nil {
					errs[i] = fmt.Errorf("tensor %s: %w", w.Name, err)
					continue
				}
				w.packed, w.packing = p, pk
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loader collects the first error so that Load reads as a list of tensors.
type loader struct {
	f   *gguf.File
	err error
}

// matrix looks up a 2-D tensor of cols x rows (ggml order: dims[0] is the
// row length); rows < 0 accepts any row count.
func (l *loader) matrix(name string, cols, rows int) *Weight {
	if l.err != nil {
		return nil
	}
	info, data, ok := l.f.Tensor(name)
	if !ok {
		l.err = fmt.Errorf("missing tensor %s", name)
		return nil
	}
	if len(info.Dims) != 2 || int(info.Dims[0]) != cols || (rows >= 0 && int(info.Dims[1]) != rows) {
		l.err = fmt.Errorf("tensor %s has shape %v, want [%d %d]", name, info.Dims, cols, rows)
		return nil
	}
	if !quant.HasVecDot(info.Type) {
		l.err = fmt.Errorf("tensor %s: unsupported tensor type %s (no dot-product kernel)", name, info.Type)
		return nil
	}
	rb, err := quant.RowBytes(info.Type, cols)
	if err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
		return nil
	}
	switch vt := quant.VecDotType(info.Type); vt {
	case quant.F32, quant.F16, quant.BF16, quant.Q8_0, quant.Q8_K:
		if _, err := quant.RowBytes(vt, cols); err != nil {
			l.err = fmt.Errorf("tensor %s: activations as %s: %w", name, vt, err)
			return nil
		}
	default:
		l.err = fmt.Errorf("tensor %s: unsupported tensor type %s (dot products in %s)", name, info.Type, vt)
		return nil
	}
	n := int(info.Dims[1])
	if len(data) < rb*n {
		l.err = fmt.Errorf("tensor %s: %d bytes of data, want %d", name, len(data), rb*n)
		return nil
	}
	return &Weight{Name: name, Type: info.Type, Rows: n, Cols: cols, RowBytes: rb, Data: data[:rb*n]}
}

// vector reads a 1-D tensor of n elements as float32 (norm weights and
// biases are F32 in practice; other types are dequantised).
func (l *loader) vector(name string, n int, required bool) []float32 {
	if l.err != nil {
		return nil
	}
	info, data, ok := l.f.Tensor(name)
	if !ok {
		if required {
			l.err = fmt.Errorf("missing tensor %s", name)
		}
		return nil
	}
	if len(info.Dims) != 1 || int(info.Dims[0]) != n {
		l.err = fmt.Errorf("tensor %s has shape %v, want [%d]", name, info.Dims, n)
		return nil
	}
	out := make([]float32, n)
	if err := quant.Dequantize(info.Type, data, out); err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
		return nil
	}
	return out
}

// Threads is the number of goroutines a Session uses.
func (m *Model) Threads() int { return m.threads }
