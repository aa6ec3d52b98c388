package tokenizer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// sharedDir is the read-only reference data that lives beside the checkout.
var sharedDir = filepath.Join("..", "..", "..", "shared")

func vocabDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(sharedDir, "models", "vocab")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference data %s is absent (it lives beside the checkout as ../shared): %v", dir, err)
	}
	return dir
}

type vectorCase struct {
	text string
	ids  []int32
}

// readVectors parses llama.cpp's tokenizer test vectors: NAME.inp holds the
// strings separated by "\n__ggml_vocab_test__\n", NAME.out one line of ids
// per string.
func readVectors(t testing.TB, base string) []vectorCase {
	t.Helper()
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	texts := strings.Split(string(inp), sep)
	if last := texts[len(texts)-1]; last != "" {
		t.Fatalf("%s.inp does not end with a separator line: %q", base, last)
	}
	texts = texts[:len(texts)-1]
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d strings but %d id lines", base, len(texts), len(lines))
	}
	cases := make([]vectorCase, len(texts))
	for i, text := range texts {
		cases[i].text = text
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", base, i+1, err)
			}
			cases[i].ids = append(cases[i].ids, int32(id))
		}
	}
	return cases
}

var (
	openedMu sync.Mutex
	opened   = map[string]*Tokenizer{}
)

// openVocab loads a reference vocabulary once per test binary; tokenizers
// are immutable, so tests can share them.
func openVocab(t testing.TB, name string) *Tokenizer {
	t.Helper()
	openedMu.Lock()
	defer openedMu.Unlock()
	if tok, ok := opened[name]; ok {
		return tok
	}
	tok, err := Open(filepath.Join(vocabDir(t), "ggml-vocab-"+name+".gguf"))
	if err != nil {
		t.Fatal(err)
	}
	opened[name] = tok
	return tok
}

func sameIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var vectorVocabs = []string{"llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "bert-bge"}

func TestLlamaCppVectors(t *testing.T) {
	dir := vocabDir(t)
	for _, name := range vectorVocabs {
		t.Run(name, func(t *testing.T) {
			tok := openVocab(t, name)
			cases := readVectors(t, filepath.Join(dir, "ggml-vocab-"+name+".gguf"))
			failed := 0
			for i, c := range cases {
				got := tok.Encode(c.text, false, false)
				if !sameIDs(got, c.ids) {
					failed++
					t.Errorf("case %d %q:\n got %v\nwant %v", i, c.text, got, c.ids)
				}
			}
			t.Logf("%d/%d vectors match", len(cases)-failed, len(cases))
		})
	}
}

// TestDecodeRoundTrip checks that decoding the reference ids gives the input
// back wherever llama.cpp's detokenizer does: SentencePiece and byte-level
// BPE are lossless (GPT-2 after llama.cpp's clean-up of spaces before
// punctuation); WordPiece lower-cases and drops whitespace, so it is not.
func TestDecodeRoundTrip(t *testing.T) {
	dir := vocabDir(t)
	for _, name := range []string{"llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2"} {
		t.Run(name, func(t *testing.T) {
			tok := openVocab(t, name)
			for i, c := range readVectors(t, filepath.Join(dir, "ggml-vocab-"+name+".gguf")) {
				want := c.text
				if tok.cleanSpaces {
					want = cleanSpaces(want)
				}
				if got := tok.Decode(c.ids); got != want {
					t.Errorf("case %d: Decode = %q, want %q", i, got, want)
				}
			}
		})
	}
}

func mustID(t *testing.T, tok *Tokenizer, text string) int32 {
	t.Helper()
	id, ok := tok.TokenID(text)
	if !ok {
		t.Fatalf("no token %q", text)
	}
	return id
}

func concatIDs(parts ...[]int32) []int32 {
	var out []int32
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestSpecialTokensInRealVocabs(t *testing.T) {
	vocabDir(t)
	t.Run("qwen2", func(t *testing.T) {
		tok := openVocab(t, "qwen2")
		start, end := mustID(t, tok, "<|im_start|>"), mustID(t, tok, "<|im_end|>")
		text := "<|im_start|>user\nHi there<|im_end|>\n"
		want := concatIDs([]int32{start}, tok.Encode("user\nHi there", false, false), []int32{end}, tok.Encode("\n", false, false))
		if got := tok.Encode(text, true, true); !sameIDs(got, want) {
			t.Errorf("parseSpecial: got %v, want %v", got, want)
		}
		for _, id := range tok.Encode(text, true, false) {
			if id == start || id == end {
				t.Errorf("control token %d parsed without parseSpecial", id)
			}
		}
		if !tok.IsEOG(end) || !tok.IsEOG(mustID(t, tok, "<|endoftext|>")) || tok.IsEOG(start) {
			t.Error("EOG set: want <|im_end|> and <|endoftext|>, not <|im_start|>")
		}
		if tok.AddBOS() {
			t.Error("Qwen2 adds no BOS")
		}
		if got := tok.Piece(end); got != "<|im_end|>" {
			t.Errorf("Piece(<|im_end|>) = %q", got)
		}
		if got := tok.Decode(tok.Encode(text, false, true)); got != "user\nHi there\n" {
			t.Errorf("Decode hides control tokens: got %q", got)
		}
	})
	t.Run("llama-bpe", func(t *testing.T) {
		tok := openVocab(t, "llama-bpe")
		bos := mustID(t, tok, "<|begin_of_text|>")
		if tok.BOS() != bos || !tok.AddBOS() {
			t.Fatalf("BOS %d add %v", tok.BOS(), tok.AddBOS())
		}
		if got := tok.Encode("Hello", true, false); len(got) != 2 || got[0] != bos {
			t.Errorf("Encode with addSpecial = %v", got)
		}
		if !tok.IsEOG(mustID(t, tok, "<|eot_id|>")) || !tok.IsEOG(mustID(t, tok, "<|end_of_text|>")) {
			t.Error("<|eot_id|> and <|end_of_text|> end generation")
		}
	})
	t.Run("phi-3", func(t *testing.T) {
		// llama.cpp makes Phi-3's special tokens swallow the whitespace
		// after them, so "<|user|>\nHi" tokenizes like "<|user|>Hi".
		tok := openVocab(t, "phi-3")
		user, end := mustID(t, tok, "<|user|>"), mustID(t, tok, "<|end|>")
		got := tok.Encode("<|user|>\nHi<|end|>\n", false, true)
		want := concatIDs([]int32{user}, tok.Encode("Hi", false, false), []int32{end})
		if !sameIDs(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if !tok.IsEOG(end) {
			t.Error("<|end|> ends generation")
		}
	})
}

// TestEncodeDoesNotAllocate holds AppendEncode to its promise: with a
// reused destination, tokenizing allocates nothing per call.
func TestEncodeDoesNotAllocate(t *testing.T) {
	vocabDir(t)
	text := "The quick brown fox, 12345 times: \"jumps\" over   the lazy dog!\n\tÄpfel 東京 🦙 <|im_start|>"
	for _, name := range vectorVocabs {
		tok := openVocab(t, name)
		dst := tok.AppendEncode(nil, text, true, true)
		if n := testing.AllocsPerRun(50, func() { dst = tok.AppendEncode(dst[:0], text, true, true) }); n != 0 {
			t.Errorf("%s: %v allocations per AppendEncode", name, n)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	dir := vocabDir(b)
	var text strings.Builder
	for _, c := range readVectors(b, filepath.Join(dir, "ggml-vocab-llama-bpe.gguf")) {
		text.WriteString(c.text)
		text.WriteString("\n")
	}
	for _, name := range vectorVocabs {
		b.Run(name, func(b *testing.B) {
			tok := openVocab(b, name)
			var dst []int32
			b.SetBytes(int64(text.Len()))
			b.ReportAllocs()
			for b.Loop() {
				dst = tok.AppendEncode(dst[:0], text.String(), false, false)
			}
		})
	}
}
