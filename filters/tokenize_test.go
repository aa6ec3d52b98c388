package filters

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokenizeRougeScore(t *testing.T) {
	cases := map[string][]string{
		"İstanbul is big":                  {"i", "stanbul", "is", "big"},
		"KELVIN \u212a":                    {"kelvin", "k"},
		"snake_case and kebab-case":        {"snake", "case", "and", "kebab", "case"},
		"3.14 is pi":                       {"3", "14", "is", "pi"},
		"café naïve":                       {"caf", "na", "ve"},
		"日本語のテキスト":                         nil,
		"":                                 nil,
		"ÀB\u0130C":                        {"bi", "c"},
		"tab\tseparated\nnew line\u00a0nb": {"tab", "separated", "new", "line", "nb"},
		"bad \xff utf8":                    {"bad", "utf8"},
	}
	for in, want := range cases {
		if got := Tokenize(in, TokenizerRougeScore); !slices.Equal(got, want) {
			t.Errorf("Tokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenizeUnicode(t *testing.T) {
	cases := map[string][]string{
		"Héllo Wörld, ΚΑΛΗΜΕΡΑ":       {"héllo", "wörld", "καλημερα"},
		"日本語のテキスト":                    {"日", "本", "語", "の", "テ", "キ", "ス", "ト"},
		"ภาษาไทย":                     {"ภ", "า", "ษ", "า", "ไ", "ท", "ย"},
		"abc中文def":                    {"abc", "中", "文", "def"},
		"e\u0301clair":                {"e\u0301clair"},
		"Привет, мир! 42":             {"привет", "мир", "42"},
		"한국어 문장":                      {"한국어", "문장"},
		"snake_case":                  {"snake", "case"},
		"\u0301 leading mark ignored": {"leading", "mark", "ignored"},
	}
	for in, want := range cases {
		if got := Tokenize(in, TokenizerUnicode); !slices.Equal(got, want) {
			t.Errorf("Tokenize(%q, unicode) = %q, want %q", in, got, want)
		}
	}
	for _, name := range []string{"rouge_score", "default", "unicode"} {
		if _, err := ParseTokenizer(name); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseTokenizer("bpe"); err == nil {
		t.Error("ParseTokenizer accepted an unknown name")
	}
}

// pythonRougeTokenize is rouge_score.tokenize.tokenize without a stemmer.
const pythonRougeTokenize = `
import json, re, sys
def tok(text):
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return [x for x in re.split(r"\s+", text) if re.match(r"^[a-z0-9]+$", x)]
print(json.dumps([tok(s) for s in json.load(sys.stdin)]))
`

// TestTokenizeAgainstPython runs rouge_score's tokenizer in CPython on
// random strings drawn from every Unicode plane, plus every code point
// once; it skips where python3 is not installed.
func TestTokenizeAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; the table test covers the known cases")
	}
	var inputs []string
	var all strings.Builder
	for r := rune(0); r <= 0x3ffff; r++ { // all assigned case mappings live below U+20000
		if utf8.ValidRune(r) {
			all.WriteRune(r)
			all.WriteByte('a')
		}
	}
	inputs = append(inputs, all.String())
	rng := rand.New(rand.NewPCG(9, 9))
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(30) {
			var r rune
			switch rng.IntN(4) {
			case 0:
				r = rune(rng.IntN(128))
			case 1:
				r = rune(128 + rng.IntN(0x2000))
			case 2:
				r = []rune{0x130, 0x212a, 0x131, 0x17f, 'I', 'K'}[rng.IntN(6)]
			default:
				r = rune(rng.IntN(0x110000))
			}
			if utf8.ValidRune(r) {
				b.WriteRune(r)
			}
		}
		inputs = append(inputs, b.String())
	}
	in, _ := json.Marshal(inputs)
	cmd := exec.Command(py, "-c", pythonRougeTokenize)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var want [][]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, s := range inputs {
		got := Tokenize(s, TokenizerRougeScore)
		if !slices.Equal(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
			t.Fatalf("Tokenize(%q) = %q, Python %q", s, got, want[i])
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "İstanbul is big", "KELVIN \u212a", "日本語", "a\u0301b", "\xff\xfe", "x_y-z 1.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range Tokenize(s, TokenizerRougeScore) {
			if tok == "" || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
				t.Fatalf("Tokenize(%q) gave token %q outside [a-z0-9]+", s, tok)
			}
		}
		for _, tok := range Tokenize(s, TokenizerUnicode) {
			if tok == "" {
				t.Fatalf("Tokenize(%q, unicode) gave an empty token", s)
			}
		}
		f := RougeL(s, s)
		if n := len(Tokenize(s, TokenizerRougeScore)); (n > 0 && f != 1) || (n == 0 && f != 0) {
			t.Fatalf("RougeL(%q, itself) = %v", s, f)
		}
	})
}
