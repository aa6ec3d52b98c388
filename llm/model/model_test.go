package model

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// tinySpec describes a synthetic model the tests write as an F32 GGUF.
type tinySpec struct {
	arch                       string
	vocab, embd, ff, layers    int
	heads, headsKV             int
	ropeBase, eps, ropeScaling float32
	tied, biases               bool
	seed                       uint64
	// wtype is the type of the 2-D weights (F32 when zero); the reference
	// pass uses their dequantised values.
	wtype quant.Type
}

// tinyModel keeps the float64 copies of the weights for the reference
// forward pass.
type tinyModel struct {
	spec    tinySpec
	tensors map[string][]float64
}

func (tm *tinyModel) t(name string) []float64 { return tm.tensors[name] }

// buildTiny writes a random model with the gguf Writer and parses it back.
func buildTiny(t *testing.T, sp tinySpec) (*gguf.File, *tinyModel) {
	t.Helper()
	rng := rand.New(rand.NewPCG(sp.seed, 7))
	w := gguf.NewWriter()
	w.SetString("general.architecture", sp.arch)
	a := sp.arch + "."
	w.SetUint32(a+"context_length", 64)
	w.SetUint32(a+"embedding_length", uint32(sp.embd))
	w.SetUint32(a+"block_count", uint32(sp.layers))
	w.SetUint32(a+"feed_forward_length", uint32(sp.ff))
	w.SetUint32(a+"attention.head_count", uint32(sp.heads))
	w.SetUint32(a+"attention.head_count_kv", uint32(sp.headsKV))
	w.SetFloat32(a+"attention.layer_norm_rms_epsilon", sp.eps)
	w.SetFloat32(a+"rope.freq_base", sp.ropeBase)
	if sp.ropeScaling != 0 {
		w.SetString(a+"rope.scaling.type", "linear")
		w.SetFloat32(a+"rope.scaling.factor", sp.ropeScaling)
	}
	tm := &tinyModel{spec: sp, tensors: map[string][]float64{}}
	add := func(name string, std, mean float64, dims ...int) {
		n := 1
		d64 := make([]uint64, len(dims))
		for i, d := range dims {
			n *= d
			d64[i] = uint64(d)
		}
		vals := make([]float32, n)
		raw := make([]byte, 4*n)
		for i := range vals {
			vals[i] = float32(mean + std*rng.NormFloat64())
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(vals[i]))
		}
		typ := quant.F32
		if len(dims) == 2 && sp.wtype != quant.F32 {
			typ = sp.wtype
			var err error
			if raw, err = quant.Quantize(typ, vals); err != nil {
				t.Fatal(err)
			}
			if err := quant.Dequantize(typ, raw, vals); err != nil {
				t.Fatal(err)
			}
		}
		f := make([]float64, n)
		for i, v := range vals {
			f[i] = float64(v)
		}
		tm.tensors[name] = f
		if err := w.AddTensor(name, typ, d64, raw); err != nil {
			t.Fatal(err)
		}
	}
	hd := sp.embd / sp.heads
	add("token_embd.weight", 0.5, 0, sp.embd, sp.vocab)
	add("output_norm.weight", 0.2, 1, sp.embd)
	if !sp.tied {
		add("output.weight", 0.5, 0, sp.embd, sp.vocab)
	}
	for l := 0; l < sp.layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", 0.2, 1, sp.embd)
		add(p+"attn_q.weight", 0.2, 0, sp.embd, sp.heads*hd)
		add(p+"attn_k.weight", 0.2, 0, sp.embd, sp.headsKV*hd)
		add(p+"attn_v.weight", 0.2, 0, sp.embd, sp.headsKV*hd)
		if sp.biases {
			add(p+"attn_q.bias", 0.5, 0, sp.heads*hd)
			add(p+"attn_k.bias", 0.5, 0, sp.headsKV*hd)
			add(p+"attn_v.bias", 0.5, 0, sp.headsKV*hd)
		}
		add(p+"attn_output.weight", 0.2, 0, sp.heads*hd, sp.embd)
		add(p+"ffn_norm.weight", 0.2, 1, sp.embd)
		add(p+"ffn_gate.weight", 0.2, 0, sp.embd, sp.ff)
		add(p+"ffn_up.weight", 0.2, 0, sp.embd, sp.ff)
		add(p+"ffn_down.weight", 0.2, 0, sp.ff, sp.embd)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f, tm
}

// refLogits is an independent float64 forward pass over the whole sequence,
// written from the architecture's definition (no caching, no F16, plain
// math): the logits after each token.
func refLogits(tm *tinyModel, tokens []int32) [][]float64 {
	sp := tm.spec
	E, hd := sp.embd, sp.embd/sp.heads
	n := len(tokens)
	// ggml converts the activations to the weights' vec-dot type before each
	// product (8-bit blocks for quantised weights); the reference does the
	// same conversion and nothing else of the engine's arithmetic.
	actType := quant.VecDotType(sp.wtype)
	matvec := func(w []float64, rows, cols int, x []float64) []float64 {
		if sp.wtype != quant.F32 {
			x32 := make([]float32, len(x))
			for i, v := range x {
				x32[i] = float32(v)
			}
			rb, err := quant.RowBytes(actType, len(x32))
			if err != nil {
				panic(err)
			}
			q := make([]byte, rb)
			quant.QuantizeRow(actType, x32, q)
			if err := quant.Dequantize(actType, q, x32); err != nil {
				panic(err)
			}
			x = make([]float64, len(x32))
			for i, v := range x32 {
				x[i] = float64(v)
			}
		}
		y := make([]float64, rows)
		for r := 0; r < rows; r++ {
			var s float64
			for c := 0; c < cols; c++ {
				s += w[r*cols+c] * x[c]
			}
			y[r] = s
		}
		return y
	}
	norm := func(x, w []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		sc := 1 / math.Sqrt(ss/float64(len(x))+float64(sp.eps))
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * sc * w[i]
		}
		return y
	}
	freqScale := 1.0
	if sp.ropeScaling != 0 {
		freqScale = 1 / float64(sp.ropeScaling)
	}
	ropeF := func(v []float64, pos int) {
		for i := 0; i < hd/2; i++ {
			ang := float64(pos) * freqScale * math.Pow(float64(sp.ropeBase), -2*float64(i)/float64(hd))
			c, s := math.Cos(ang), math.Sin(ang)
			a, b := 2*i, 2*i+1
			if sp.arch == "qwen2" {
				a, b = i, i+hd/2
			}
			x0, x1 := v[a], v[b]
			v[a] = x0*c - x1*s
			v[b] = x0*s + x1*c
		}
	}
	xs := make([][]float64, n)
	for i, id := range tokens {
		xs[i] = append([]float64(nil), tm.t("token_embd.weight")[int(id)*E:(int(id)+1)*E]...)
	}
	for l := 0; l < sp.layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		qs, ks, vs := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for i := range xs {
			h := norm(xs[i], tm.t(p+"attn_norm.weight"))
			qs[i] = matvec(tm.t(p+"attn_q.weight"), sp.heads*hd, E, h)
			ks[i] = matvec(tm.t(p+"attn_k.weight"), sp.headsKV*hd, E, h)
			vs[i] = matvec(tm.t(p+"attn_v.weight"), sp.headsKV*hd, E, h)
			if sp.biases {
				for j := range qs[i] {
					qs[i][j] += tm.t(p + "attn_q.bias")[j]
				}
				for j := range ks[i] {
					ks[i][j] += tm.t(p + "attn_k.bias")[j]
					vs[i][j] += tm.t(p + "attn_v.bias")[j]
				}
			}
			for h := 0; h < sp.heads; h++ {
				ropeF(qs[i][h*hd:(h+1)*hd], i)
			}
			for h := 0; h < sp.headsKV; h++ {
				ropeF(ks[i][h*hd:(h+1)*hd], i)
			}
		}
		for i := range xs {
			att := make([]float64, sp.heads*hd)
			for h := 0; h < sp.heads; h++ {
				kvh := h * sp.headsKV / sp.heads
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					var d float64
					for c := 0; c < hd; c++ {
						d += qs[i][h*hd+c] * ks[j][kvh*hd+c]
					}
					sc[j] = d / math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[j])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := range sc {
					for c := 0; c < hd; c++ {
						att[h*hd+c] += sc[j] / sum * vs[j][kvh*hd+c]
					}
				}
			}
			o := matvec(tm.t(p+"attn_output.weight"), E, sp.heads*hd, att)
			for j := range o {
				xs[i][j] += o[j]
			}
			h := norm(xs[i], tm.t(p+"ffn_norm.weight"))
			g := matvec(tm.t(p+"ffn_gate.weight"), sp.ff, E, h)
			u := matvec(tm.t(p+"ffn_up.weight"), sp.ff, E, h)
			for j := range g {
				g[j] = g[j] / (1 + math.Exp(-g[j])) * u[j]
			}
			d := matvec(tm.t(p+"ffn_down.weight"), E, sp.ff, g)
			for j := range d {
				xs[i][j] += d[j]
			}
		}
	}
	out := tm.t("output.weight")
	if sp.tied {
		out = tm.t("token_embd.weight")
	}
	res := make([][]float64, n)
	for i := range xs {
		res[i] = matvec(out, sp.vocab, E, norm(xs[i], tm.t("output_norm.weight")))
	}
	return res
}

var tinySpecs = []tinySpec{
	{arch: "llama", vocab: 96, embd: 64, ff: 96, layers: 2, heads: 4, headsKV: 2, ropeBase: 10000, eps: 1e-5, seed: 1},
	{arch: "qwen2", vocab: 80, embd: 64, ff: 128, layers: 2, heads: 4, headsKV: 1, ropeBase: 1e6, eps: 1e-6, tied: true, biases: true, seed: 2},
	{arch: "llama", vocab: 64, embd: 32, ff: 70, layers: 3, heads: 2, headsKV: 2, ropeBase: 10000, eps: 1e-5, ropeScaling: 4, seed: 3},
	{arch: "llama", vocab: 40, embd: 64, ff: 96, layers: 2, heads: 4, headsKV: 2, ropeBase: 10000, eps: 1e-5, seed: 4, wtype: quant.Q8_0},
	{arch: "qwen2", vocab: 48, embd: 256, ff: 256, layers: 1, heads: 4, headsKV: 2, ropeBase: 1e6, eps: 1e-6, tied: true, biases: true, seed: 5, wtype: quant.Q4_K},
	{arch: "llama", vocab: 48, embd: 64, ff: 64, layers: 1, heads: 2, headsKV: 1, ropeBase: 10000, eps: 1e-5, seed: 6, wtype: quant.F16},
	// Q4_0: every matrix packed 8 rows at a time on AVX2; in the qwen2 one
	// the tied output (44 rows) stays row-major.
	{arch: "llama", vocab: 40, embd: 64, ff: 96, layers: 2, heads: 4, headsKV: 2, ropeBase: 10000, eps: 1e-5, seed: 7, wtype: quant.Q4_0},
	{arch: "qwen2", vocab: 44, embd: 96, ff: 160, layers: 1, heads: 4, headsKV: 2, ropeBase: 1e6, eps: 1e-6, tied: true, biases: true, seed: 8, wtype: quant.Q4_0},
	// Q6_K, packed too (the output matrix and some ffn_down/attn_v of
	// Q4_K_M models).
	{arch: "llama", vocab: 56, embd: 256, ff: 256, layers: 1, heads: 4, headsKV: 2, ropeBase: 10000, eps: 1e-5, seed: 9, wtype: quant.Q6_K},
}

// TestPackedMatchesRowMajor checks that repacking matrices at load (Q4_0,
// Q4_K, Q6_K) changes no bit of the logits, for prompts and single tokens.
func TestPackedMatchesRowMajor(t *testing.T) {
	tested := 0
	for _, sp := range tinySpecs {
		if quant.PackingFor(sp.wtype) == nil {
			continue
		}
		tested++
		f, _ := buildTiny(t, sp)
		packed, err := Load(f, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		if packed.Layers[0].Gate.packed == nil {
			t.Fatalf("%s %s: ffn_gate was not packed", sp.arch, sp.wtype)
		}
		packMatrices = false
		plain, err := Load(f, Options{Threads: 2})
		packMatrices = true
		if err != nil {
			t.Fatal(err)
		}
		if plain.Layers[0].Gate.packed != nil {
			t.Fatal("packing was not turned off")
		}
		sp1, _ := packed.NewSession(64)
		sp2, _ := plain.NewSession(64)
		for _, step := range [][]int32{{1, 5, 9, 13, 2, 7, 30}, {3}, {4}, {11, 12}, {0}} {
			a, err := sp1.Eval(step)
			if err != nil {
				t.Fatal(err)
			}
			b, err := sp2.Eval(step)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("%s %s: logit %d after %v: packed %v, row-major %v", sp.arch, sp.wtype, i, step, a[i], b[i])
				}
			}
		}
	}
	if tested == 0 {
		t.Skip("this CPU has no packed kernels: models keep their matrices row-major")
	}
}

// TestForwardMatchesFloat64Reference checks the engine's logits against
// the plain float64 forward pass. They differ by the F16 KV cache and
// float32 rounding only, so they must be close but need not be equal.
func TestForwardMatchesFloat64Reference(t *testing.T) {
	for _, sp := range tinySpecs {
		t.Run(fmt.Sprintf("%s_%s_seed%d", sp.arch, sp.wtype, sp.seed), func(t *testing.T) {
			f, tm := buildTiny(t, sp)
			m, err := Load(f, Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			if m.HP.TiedOutput != sp.tied || m.HP.AttnBiasQKV != sp.biases || m.HP.Vocab != sp.vocab {
				t.Fatalf("hparams %+v do not match spec %+v", m.HP, sp)
			}
			rng := rand.New(rand.NewPCG(sp.seed, 99))
			tokens := make([]int32, 12)
			for i := range tokens {
				tokens[i] = int32(rng.IntN(sp.vocab))
			}
			ref := refLogits(tm, tokens)
			s, err := m.NewSession(32)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A prompt of 7 tokens as one batch, then one token at a time.
			check := func(i int, got []float32) {
				t.Helper()
				var ss, ssd float64
				for j, v := range got {
					d := float64(v) - ref[i][j]
					ss += ref[i][j] * ref[i][j]
					ssd += d * d
				}
				// The F16 KV cache alone costs ~1e-3. With 8-bit
				// activations that small difference flips the rounding of
				// a few quantised values (each a step of max/127), which
				// random weights amplify to a few percent. A wrong layout
				// or a missing step gives errors of the order of the logits.
				tol := 2e-3
				if vt := quant.VecDotType(sp.wtype); vt == quant.Q8_0 || vt == quant.Q8_K {
					tol = 0.05
				}
				if rel := math.Sqrt(ssd / ss); rel > tol {
					t.Errorf("position %d: relative RMS logit error %.5f > %g", i, rel, tol)
				}
			}
			logits, err := s.Eval(tokens[:7])
			if err != nil {
				t.Fatal(err)
			}
			check(6, logits)
			for i := 7; i < len(tokens); i++ {
				logits, err := s.Eval(tokens[i : i+1])
				if err != nil {
					t.Fatal(err)
				}
				check(i, logits)
			}
		})
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func argmax64(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestBatchEqualsSequential: llama.cpp's CPU kernels compute every token of
// a batch exactly as if it came alone, so a batched prompt, a prompt split
// over small batches, and token-by-token evaluation must give the same bits,
// whatever the thread count.
func TestBatchEqualsSequential(t *testing.T) {
	for _, i := range []int{1, 3, 4} {
		t.Run(fmt.Sprint(tinySpecs[i].wtype), func(t *testing.T) { testBatchEqualsSequential(t, tinySpecs[i]) })
	}
}

func testBatchEqualsSequential(t *testing.T, sp tinySpec) {
	f, _ := buildTiny(t, sp)
	tokens := []int32{3, 17, 42, 5, 5, 39, 1, 33, 8}
	for i := range tokens {
		tokens[i] %= int32(sp.vocab)
	}
	run := func(threads, batch int, chunks []int) []float32 {
		m, err := Load(f, Options{Threads: threads, BatchSize: batch})
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.NewSession(16)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var logits []float32
		at := 0
		for _, c := range chunks {
			logits, err = s.Eval(tokens[at : at+c])
			if err != nil {
				t.Fatal(err)
			}
			at += c
		}
		return append([]float32(nil), logits...)
	}
	want := run(1, 512, []int{len(tokens)})
	for _, tc := range []struct {
		threads, batch int
		chunks         []int
	}{
		{1, 512, []int{1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{3, 512, []int{len(tokens)}},
		{2, 4, []int{len(tokens)}},
		{4, 512, []int{5, 3, 1}},
	} {
		got := run(tc.threads, tc.batch, tc.chunks)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("threads %d batch %d chunks %v: logit %d = %v, want %v", tc.threads, tc.batch, tc.chunks, i, got[i], want[i])
			}
		}
	}
}

// TestConcurrentSessions runs sessions of one Model from several goroutines
// (run with -race) and checks they do not disturb each other.
func TestConcurrentSessions(t *testing.T) {
	f, _ := buildTiny(t, tinySpecs[0])
	m, err := Load(f, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	greedy := func(prompt []int32) []int32 {
		s, err := m.NewSession(40)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer s.Close()
		g, err := s.Generate(t.Context(), prompt, GenerateOptions{MaxTokens: 20})
		if err != nil {
			t.Error(err)
			return nil
		}
		return g.Tokens
	}
	prompts := [][]int32{{1, 2, 3}, {9, 8, 7, 6}, {50}}
	want := make([][]int32, len(prompts))
	for i, p := range prompts {
		want[i] = greedy(p)
	}
	var wg sync.WaitGroup
	got := make([][]int32, 3*len(prompts))
	for i := range got {
		wg.Go(func() { got[i] = greedy(prompts[i%len(prompts)]) })
	}
	wg.Wait()
	for i := range got {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i%len(prompts)]) {
			t.Errorf("concurrent run %d: %v, want %v", i, got[i], want[i%len(prompts)])
		}
	}
}

func TestSessionResetAndContext(t *testing.T) {
	f, _ := buildTiny(t, tinySpecs[0])
	m, err := Load(f, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Eval([]int32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	a = append([]float32(nil), a...)
	if _, err := s.Eval([]int32{4, 5, 6, 7, 8, 9}); err == nil {
		t.Fatal("Eval past the context succeeded")
	}
	if s.Pos() != 3 {
		t.Fatalf("a failed Eval moved the position to %d", s.Pos())
	}
	if _, err := s.Eval([]int32{int32(m.HP.Vocab)}); err == nil {
		t.Fatal("out-of-range token accepted")
	}
	s.Reset()
	b, err := s.Eval([]int32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("after Reset logit %d = %v, want %v", i, b[i], a[i])
		}
	}
}

func TestKeepActivations(t *testing.T) {
	f, tm := buildTiny(t, tinySpecs[0])
	m, err := Load(f, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.KeepActivations(true)
	if _, err := s.Eval([]int32{4, 5}); err != nil {
		t.Fatal(err)
	}
	acts := s.Activations()
	if len(acts) != m.HP.Layers {
		t.Fatalf("%d activation sets, want %d", len(acts), m.HP.Layers)
	}
	E := m.HP.Embd
	// Layer l's output is layer l+1's input: the residual identity must hold.
	for l := 1; l < len(acts); l++ {
		prev, a := acts[l-1], acts[l]
		for i := 0; i < 2*E; i++ {
			if a.FFNIn[i] != prev.Out[i]+a.AttnOut[i] {
				t.Fatalf("layer %d: FFNIn != previous Out + AttnOut at %d", l, i)
			}
		}
	}
	// The first layer's attention norm input is the embedding row.
	emb := tm.t("token_embd.weight")[5*E : 6*E]
	var ss float64
	for _, v := range emb {
		ss += v * v
	}
	sc := 1 / math.Sqrt(ss/float64(E)+1e-5)
	w := tm.t("blk.0.attn_norm.weight")
	for i := 0; i < E; i++ {
		want := emb[i] * sc * w[i]
		if d := math.Abs(float64(acts[0].AttnNorm[E+i]) - want); d > 1e-5*math.Max(1, math.Abs(want)) {
			t.Fatalf("AttnNorm[1][%d] = %v, want %v", i, acts[0].AttnNorm[E+i], want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("architecture", func(t *testing.T) {
		w := gguf.NewWriter()
		w.SetString("general.architecture", "mamba")
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(f, Options{})
		if err == nil || !strings.Contains(err.Error(), `unsupported architecture "mamba"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing tensor", func(t *testing.T) {
		w := gguf.NewWriter()
		w.SetString("general.architecture", "llama")
		for k, v := range map[string]uint32{"embedding_length": 32, "block_count": 1, "feed_forward_length": 64, "attention.head_count": 4} {
			w.SetUint32("llama."+k, v)
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(f, Options{})
		if err == nil || !strings.Contains(err.Error(), "missing tensor token_embd.weight") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("yarn", func(t *testing.T) {
		w := gguf.NewWriter()
		w.SetString("general.architecture", "llama")
		for k, v := range map[string]uint32{"embedding_length": 32, "block_count": 1, "feed_forward_length": 64, "attention.head_count": 4} {
			w.SetUint32("llama."+k, v)
		}
		w.SetString("llama.rope.scaling.type", "yarn")
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(f, Options{})
		if err == nil || !strings.Contains(err.Error(), "yarn") {
			t.Fatalf("err = %v", err)
		}
	})
}
