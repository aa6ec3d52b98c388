package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// tinyBPE is a byte-level BPE vocabulary: every byte's rune plus a few
// merges, so that any input is encodable and round-trips.
func tinyBPE(t testing.TB, pre string) *Tokenizer {
	t.Helper()
	var toks []string
	for b := 0; b < 256; b++ {
		toks = append(toks, byteToRune[b])
	}
	merges := []string{"Ġ t", "h e", "Ġt he", "i n", "Ġ a"}
	toks = append(toks, "Ġt", "he", "Ġthe", "in", "Ġa", "<|endoftext|>")
	types := make([]TokenType, len(toks))
	for i := range types {
		types[i] = TypeNormal
	}
	types[len(types)-1] = TypeControl
	tok, err := New(Vocab{Model: "gpt2", Pre: pre, Tokens: toks, Types: types, Merges: merges})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type fuzzSubject struct {
	name      string
	tok       *Tokenizer
	roundTrip bool // Decode(Encode(s)) == s for valid UTF-8 s
}

var (
	fuzzOnce     sync.Once
	fuzzSubjects []fuzzSubject
)

func loadFuzzSubjects(t testing.TB) []fuzzSubject {
	fuzzOnce.Do(func() {
		fuzzSubjects = []fuzzSubject{
			{"tiny-spm", tinySPM(t, map[string]float32{"▁a": -1, "ab": -2}), false},
			{"tiny-gpt2", tinyBPE(t, "gpt-2"), true},
			{"tiny-llama3", tinyBPE(t, "llama-bpe"), true},
			{"tiny-qwen2", tinyBPE(t, "qwen2"), true},
			{"tiny-starcoder", tinyBPE(t, "starcoder"), true},
			{"tiny-default", tinyBPE(t, "default"), true},
			{"tiny-falcon", tinyBPE(t, "falcon"), true},
		}
		if _, err := os.Stat(filepath.Join(sharedDir, "models", "vocab")); err != nil {
			return
		}
		for _, name := range vectorVocabs {
			tok := openVocab(t, name)
			rt := name != "bert-bge" && name != "phi-3"
			fuzzSubjects = append(fuzzSubjects, fuzzSubject{name, tok, rt})
		}
	})
	return fuzzSubjects
}

// FuzzTokenizer feeds arbitrary bytes to every tokenizer: nothing may panic,
// ids must be in range, lossless vocabularies must give valid UTF-8 back
// (after llama.cpp's space clean-up where the vocabulary asks for it), and a
// stream decoder must never split a character.
func FuzzTokenizer(f *testing.F) {
	for _, s := range []string{"", " ", "Hello world", " the in a", "it's 12345!!\n\n x", "東京では雨",
		"\xff\xfe", "\xe6\x9d", "<|endoftext|>x", "<s></s>", "[PAD151646]", "\u2581\u2581a", "\r\n\t\v\f",
		"'S 'll 'VE", "a\u00a0b\u3000c", "\xed\xa0\x80", "\xc0\x80", "\U0001F999.cpp"} {
		f.Add(s)
	}
	subjects := loadFuzzSubjects(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, sub := range subjects {
			tok := sub.tok
			for _, mode := range [][2]bool{{false, false}, {true, true}} {
				ids := tok.Encode(s, mode[0], mode[1])
				for _, id := range ids {
					if id < 0 || int(id) >= tok.VocabSize() {
						t.Fatalf("%s: id %d out of range", sub.name, id)
					}
				}
				_ = tok.Decode(ids)
				d := tok.NewStreamDecoder()
				var chunks []string
				var streamed, whole strings.Builder
				for _, id := range ids {
					whole.WriteString(tok.textPiece(id))
					chunk := d.Add(id)
					chunks = append(chunks, chunk)
					streamed.WriteString(chunk)
				}
				streamed.WriteString(d.Flush())
				if streamed.String() != whole.String() {
					t.Fatalf("%s: stream %q != pieces %q", sub.name, streamed.String(), whole.String())
				}
				if utf8.ValidString(whole.String()) {
					for _, c := range chunks {
						if !utf8.ValidString(c) {
							t.Fatalf("%s: stream split a character: %q", sub.name, c)
						}
					}
				}
			}
			if sub.roundTrip && utf8.ValidString(s) && !strings.Contains(s, "\u2581") {
				want := s
				if tok.cleanSpaces {
					want = cleanSpaces(s)
				}
				if got := tok.Decode(tok.Encode(s, false, false)); got != want {
					t.Fatalf("%s: round trip %q -> %q, want %q", sub.name, s, got, want)
				}
			}
		}
	})
}
