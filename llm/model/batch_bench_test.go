package model

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// buildBenchModel writes a random LLaMA with weights of type wtype, large
// enough that its weights do not fit in cache (decoding then streams them
// from memory, as with a real model), without the float64 copies buildTiny
// keeps: one random matrix per shape, repeated in every layer.
func buildBenchModel(tb testing.TB, wtype quant.Type, embd, ff, layers, heads, headsKV, vocab int) *Model {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	w := gguf.NewWriter()
	w.SetString("general.architecture", "llama")
	w.SetUint32("llama.context_length", 2048)
	w.SetUint32("llama.embedding_length", uint32(embd))
	w.SetUint32("llama.block_count", uint32(layers))
	w.SetUint32("llama.feed_forward_length", uint32(ff))
	w.SetUint32("llama.attention.head_count", uint32(heads))
	w.SetUint32("llama.attention.head_count_kv", uint32(headsKV))
	w.SetFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5)
	shapes := map[[2]int][]byte{}
	add := func(name string, dims ...int) {
		typ := quant.F32
		if len(dims) == 2 {
			typ = wtype
		}
		n := 1
		d64 := make([]uint64, len(dims))
		for i, d := range dims {
			n *= d
			d64[i] = uint64(d)
		}
		key := [2]int{dims[0], n / dims[0]}
		raw, ok := shapes[key]
		if !ok || typ == quant.F32 {
			vals := make([]float32, n)
			for i := range vals {
				vals[i] = float32(rng.NormFloat64() * 0.05)
				if typ == quant.F32 {
					vals[i] += 1 // norm weights
				}
			}
			var err error
			if raw, err = quant.Quantize(typ, vals); err != nil {
				tb.Fatal(err)
			}
			if typ != quant.F32 {
				shapes[key] = raw
			}
		}
		if err := w.AddTensor(name, typ, d64, raw); err != nil {
			tb.Fatal(err)
		}
	}
	hd := embd / heads
	add("token_embd.weight", embd, vocab)
	add("output_norm.weight", embd)
	add("output.weight", embd, vocab)
	for l := range layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", embd)
		add(p+"attn_q.weight", embd, heads*hd)
		add(p+"attn_k.weight", embd, headsKV*hd)
		add(p+"attn_v.weight", embd, headsKV*hd)
		add(p+"attn_output.weight", heads*hd, embd)
		add(p+"ffn_norm.weight", embd)
		add(p+"ffn_gate.weight", embd, ff)
		add(p+"ffn_up.weight", embd, ff)
		add(p+"ffn_down.weight", ff, embd)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	m, err := Load(f, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkBatchedDecode measures the aggregate decoding speed of k
// sequences that each add one token per step through one Batcher, on a
// Q4_0 model with TinyLlama-1.1B's layer shapes (2048 wide, 5632 FFN, 32
// query and 4 KV heads; 4 layers and an 8K vocabulary to keep it quick to
// build: about 118 MB of weights, far more than any cache). Each sequence
// holds 128 to 511 tokens of context.
// tok/s is tokens of all sequences per second; x_vs_k1 is that against k=1
// measured in the same run.
func BenchmarkBatchedDecode(b *testing.B) {
	m := buildBenchModel(b, quant.Q4_0, 2048, 5632, 4, 32, 4, 8192)
	const nCtx, prefill = 512, 128
	var base float64
	for _, k := range []int{1, 4, 8, 16} {
		b.Run(fmt.Sprintf("seqs=%d", k), func(b *testing.B) {
			bt, err := m.NewBatcher(prefill)
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close()
			items := make([]BatchItem, k)
			prompt := make([]int32, prefill)
			for i := range items {
				s, err := m.NewSession(nCtx)
				if err != nil {
					b.Fatal(err)
				}
				for j := range prompt {
					prompt[j] = int32((i*131 + j*7) % m.HP.Vocab)
				}
				if _, err := bt.Eval([]BatchItem{{Session: s, Tokens: prompt}}); err != nil {
					b.Fatal(err)
				}
				items[i] = BatchItem{Session: s, Tokens: []int32{int32(i)}}
			}
			start := time.Now()
			steps := 0
			for b.Loop() {
				if items[0].Session.Pos() == nCtx {
					for _, it := range items {
						it.Session.Truncate(prefill)
					}
				}
				if _, err := bt.Eval(items); err != nil {
					b.Fatal(err)
				}
				steps++
			}
			tps := float64(k*steps) / time.Since(start).Seconds()
			b.ReportMetric(tps, "tok/s")
			if k == 1 {
				base = tps
			} else if base > 0 {
				b.ReportMetric(tps/base, "x_vs_k1")
			}
		})
	}
}
