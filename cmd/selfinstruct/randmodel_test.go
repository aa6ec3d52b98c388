package main

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/model"
	"github.com/selfinstruct/selfinstruct/llm/quant"
	"github.com/selfinstruct/selfinstruct/llm/tokenizer"
)

// writeTestVocab writes a small SentencePiece-style vocabulary GGUF, so the
// generator can be tested without the reference data.
func writeTestVocab(t *testing.T, n int) string {
	t.Helper()
	w := gguf.NewWriter()
	w.SetString("tokenizer.ggml.model", "llama")
	toks := []string{"<unk>", "<s>", "</s>"}
	for i := len(toks); i < n; i++ {
		toks = append(toks, "▁t"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26)))
	}
	w.SetStrings("tokenizer.ggml.tokens", toks)
	w.SetFloat32s("tokenizer.ggml.scores", make([]float32, n))
	types := make([]int32, n)
	for i := range types {
		types[i] = 1
	}
	types[0], types[1], types[2] = 2, 3, 3
	w.SetInt32s("tokenizer.ggml.token_type", types)
	w.SetUint32("tokenizer.ggml.bos_token_id", 1)
	w.SetUint32("tokenizer.ggml.eos_token_id", 2)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runRandomModelCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCmd(t, newRandomModelCmd(), args...)
}

func TestRandomModelLoadsAndRuns(t *testing.T) {
	vocab := writeTestVocab(t, 512)
	dir := t.TempDir()
	for _, mix := range []string{"q4_0", "q4_k_m", "q8_0"} {
		t.Run(mix, func(t *testing.T) {
			path := filepath.Join(dir, mix+".gguf")
			if out, err := runRandomModelCmd(t, "--shape", "tiny", "--type", mix, "--vocab", vocab, "--out", path); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := model.Load(f, model.Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			hp := m.HP
			if hp.Arch != "llama" || hp.Layers != 2 || hp.Embd != 256 || hp.FF != 512 || hp.Heads != 8 || hp.HeadsKV != 2 || hp.Vocab != 512 {
				t.Fatalf("hyper-parameters %+v", hp)
			}
			// The preset's tensor types, as llama-quantize assigns them.
			want := map[string]quant.Type{
				"q4_0":   quant.Q4_0,
				"q4_k_m": quant.Q4_K,
				"q8_0":   quant.Q8_0,
			}[mix]
			if m.Layers[0].Wq.Type != want || m.TokenEmbd.Type != want {
				t.Errorf("attn_q %s, token_embd %s, want %s", m.Layers[0].Wq.Type, m.TokenEmbd.Type, want)
			}
			wantOut := quant.Q6_K
			if mix == "q8_0" {
				wantOut = quant.Q8_0
			}
			if m.Output.Type != wantOut {
				t.Errorf("output %s, want %s", m.Output.Type, wantOut)
			}
			if mix == "q4_k_m" {
				// 2 layers: n/8 = 0, 7n/8 = 1, so layer 1 gets more bits and layer 0 does not.
				if m.Layers[0].Down.Type != quant.Q4_K || m.Layers[1].Down.Type != quant.Q6_K || m.Layers[1].Wv.Type != quant.Q6_K {
					t.Errorf("ffn_down %s/%s, attn_v %s", m.Layers[0].Down.Type, m.Layers[1].Down.Type, m.Layers[1].Wv.Type)
				}
			}
			s, err := m.NewSession(64)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			logits, err := s.Eval([]int32{1, 100, 200, 300})
			if err != nil {
				t.Fatal(err)
			}
			var spread float64
			for _, l := range logits {
				if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
					t.Fatalf("non-finite logit %v", l)
				}
				spread = max(spread, math.Abs(float64(l-logits[0])))
			}
			if spread == 0 {
				t.Error("all logits equal: the weights do not reach the output")
			}
			if _, err := tokenizer.FromGGUF(f); err != nil {
				t.Errorf("tokenizer from the written model: %v", err)
			}
		})
	}
}

func TestRandomModelIsDeterministic(t *testing.T) {
	vocab := writeTestVocab(t, 300)
	dir := t.TempDir()
	var files [3][]byte
	for i, seed := range []string{"7", "7", "8"} {
		path := filepath.Join(dir, "m"+string(rune('0'+i))+".gguf")
		if out, err := runRandomModelCmd(t, "--shape", "tiny", "--vocab", vocab, "--out", path, "--seed", seed); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = b
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("the same seed wrote different files")
	}
	if bytes.Equal(files[0], files[2]) {
		t.Error("different seeds wrote the same file")
	}
}

func TestRandomModelBadInput(t *testing.T) {
	vocab := writeTestVocab(t, 300)
	out := filepath.Join(t.TempDir(), "m.gguf")
	notVocab := filepath.Join(t.TempDir(), "x.gguf")
	if err := os.WriteFile(notVocab, []byte("not a gguf"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--shape", "nope", "--vocab", vocab, "--out", out}, `--shape "nope"`},
		{[]string{"--type", "q5_k", "--vocab", vocab, "--out", out}, `--type "q5_k"`},
		{[]string{"--vocab", vocab}, "--vocab and --out are required"},
		{[]string{"--vocab", notVocab, "--out", out}, "x.gguf"},
	} {
		_, err := runRandomModelCmd(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
		var ce *codedError
		if !errors.As(err, &ce) || ce.code != exitBadInput {
			t.Errorf("%v: %v is not a bad-input error (exit %d)", tc.args, err, exitBadInput)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s behind", out)
	}
}

func TestRandomModelWithLlamaVocab(t *testing.T) {
	requireSharedModels(t)
	vocab := filepath.Join(completeShared, "vocab", "ggml-vocab-llama-spm.gguf")
	path := filepath.Join(t.TempDir(), "m.gguf")
	if out, err := runRandomModelCmd(t, "--shape", "tiny", "--vocab", vocab, "--out", path); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("Hello world", true, false)
	// llama.cpp's ids for this text with the LLaMA SentencePiece vocabulary.
	if want := []int32{1, 15043, 3186}; !equalIDs(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}
