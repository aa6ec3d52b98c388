package tokenizer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

func openVocab(t testing.TB, name string) *Tokenizer {
	t.Helper()
	tok, err := Open(filepath.Join(vocabDir(t), "ggml-vocab-"+name+".gguf"))
	if err != nil {
		t.Fatal(err)
	}
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
