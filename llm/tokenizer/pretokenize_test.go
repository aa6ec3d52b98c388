package tokenizer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dlclark/regexp2"
)

// The regexes the hand-written splitters implement, as Hugging Face's
// tokenizer.json files (and llama.cpp's comments) give them.
var splitRegexes = map[splitStyle]string{
	splitGPT2:   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
	splitLlama3: `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	splitQwen2:  `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

// regexWords splits text the way llama.cpp's generic regex path does: the
// matches in order, with any unmatched gap as a word of its own.
func regexWords(t *testing.T, re *regexp2.Regexp, text string) []string {
	t.Helper()
	var words []string
	runes := []rune(text)
	prev := 0
	m, err := re.FindRunesMatch(runes)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		if m.Index > prev {
			words = append(words, string(runes[prev:m.Index]))
		}
		words = append(words, string(runes[m.Index:m.Index+m.Length]))
		prev = m.Index + m.Length
	}
	if err != nil {
		t.Fatal(err)
	}
	if prev < len(runes) {
		words = append(words, string(runes[prev:]))
	}
	return words
}

func splitWords(style splitStyle, text string) []string {
	cpts := []rune(text)
	var words []string
	pos := 0
	for _, n := range (preTokenizer{style: style}).split(cpts, nil) {
		words = append(words, string(cpts[pos:pos+n]))
		pos += n
	}
	return words
}

// TestSplittersMatchTheirRegex compares the hand-written splitters with a
// backtracking regex engine on random strings built from the characters the
// rules distinguish.
func TestSplittersMatchTheirRegex(t *testing.T) {
	alphabet := []rune("aZsStTdDlLmMrReEvV'' \t\n\r\v\f.,!?-$+<=>^~|`_(){}[]\"#%&*/:;@\\09" +
		"\u00e9\u00c4\u00df\u4e1c\u3042\u0661\u0663\u2167\u00bd\u00b2\u0301\u00a0\u3000\u2028\u0085\u1680\u2003\u202f" +
		"\x00\x1f\U0001F999\u2581\u0130\u017f\u212a\ufffd")
	rng := rand.New(rand.NewPCG(7, 11))
	for style, expr := range splitRegexes {
		re := regexp2.MustCompile(expr, regexp2.None)
		for i := 0; i < 8000; i++ {
			n := rng.IntN(24)
			text := make([]rune, n)
			for j := range text {
				text[j] = alphabet[rng.IntN(len(alphabet))]
			}
			want := regexWords(t, re, string(text))
			got := splitWords(style, string(text))
			if !slices.Equal(got, want) {
				t.Fatalf("style %d, %q:\n got %q\nwant %q", style, string(text), got, want)
			}
		}
	}
}

// llama.cpp's rule chains: each regex re-splits the words of the previous.
var chainRegexes = map[splitStyle][]string{
	splitDefault: {`[\p{P}\$\+<=>\^~\|]+`, splitRegexes[splitGPT2], `\p{N}+`, `[0-9][0-9][0-9]`},
	splitFalcon:  {`[\p{P}\$\+<=>\^~\|` + "`" + `]+`, splitRegexes[splitGPT2], `[0-9][0-9][0-9]`},
}

func TestChainSplittersMatchTheirRegexes(t *testing.T) {
	alphabet := []rune("aZs'' \t\n.,!?-$+<=>^~|`_(){}0123456789\u00e9\u4e1c\u0661\u00bd\u00a0\u3000\u00a1\u2014\u00ab")
	rng := rand.New(rand.NewPCG(5, 13))
	for style, exprs := range chainRegexes {
		var res []*regexp2.Regexp
		for _, e := range exprs {
			res = append(res, regexp2.MustCompile(e, regexp2.None))
		}
		for i := 0; i < 5000; i++ {
			text := make([]rune, rng.IntN(24))
			for j := range text {
				text[j] = alphabet[rng.IntN(len(alphabet))]
			}
			want := []string{string(text)}
			if len(text) == 0 {
				want = nil
			}
			for _, re := range res {
				var next []string
				for _, w := range want {
					next = append(next, regexWords(t, re, w)...)
				}
				want = next
			}
			got := splitWords(style, string(text))
			if !slices.Equal(got, want) {
				t.Fatalf("style %d, %q:\n got %q\nwant %q", style, string(text), got, want)
			}
		}
	}
}
