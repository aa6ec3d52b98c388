package filters

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reason names why a candidate instruction was dropped.
type Reason string

// The reasons, in the order Alpaca's post_process_gpt3_response tests them;
// ReasonTooSimilar is the novelty filter's.
const (
	ReasonTooShort              Reason = "too_short"
	ReasonTooLong               Reason = "too_long"
	ReasonBlacklist             Reason = "blacklist"
	ReasonWriteAProgram         Reason = "write_a_program"
	ReasonStartsWithPunctuation Reason = "starts_with_punctuation"
	ReasonStartsNonASCII        Reason = "starts_non_ascii"
	ReasonTooSimilar            Reason = "too_similar"
)

// HeuristicOptions are the cheap filters applied before the novelty check.
type HeuristicOptions struct {
	// Blacklist holds words or phrases matched as whole words,
	// case-insensitively, like Python's re.search(r"\b(word)\b", s,
	// re.IGNORECASE). Entries are literal text, not regular expressions.
	Blacklist []string
	// An instruction passes with MinWordsExclusive < words <= MaxWords
	// (words as Python's str.split() counts them). MaxWords <= 0 means no
	// upper limit.
	MinWordsExclusive, MaxWords int
}

// AlpacaHeuristics returns the filters of Stanford Alpaca's
// generate_instruction.py: 3 < words <= 150 and its blacklist.
func AlpacaHeuristics() HeuristicOptions {
	return HeuristicOptions{
		Blacklist: []string{
			"image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
			"map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
		},
		MinWordsExclusive: 3,
		MaxWords:          150,
	}
}

// SelfInstructHeuristics returns the filters of the original Self-Instruct
// (yizhongw/self-instruct, bootstrap_instructions.py), whose blacklist lacks
// Alpaca's media words (video, audio, music, flowchart, diagram).
func SelfInstructHeuristics() HeuristicOptions {
	return HeuristicOptions{
		Blacklist: []string{
			"image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
			"map", "maps", "draw", "plot", "go to",
		},
		MinWordsExclusive: 3,
		MaxWords:          150,
	}
}

// pythonPunctuation is Python's string.punctuation.
const pythonPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// Check applies the filters in Alpaca's order and returns the first reason
// that fails, or ok = true. The instruction is taken as given; Alpaca strips
// it while parsing, before these checks.
func (o HeuristicOptions) Check(instruction string) (Reason, bool) {
	words := PythonWordCount(instruction)
	if words <= o.MinWordsExclusive {
		return ReasonTooShort, false
	}
	if o.MaxWords > 0 && words > o.MaxWords {
		return ReasonTooLong, false
	}
	if len(o.Blacklist) > 0 {
		folded := foldForMatch(instruction)
		for _, w := range o.Blacklist {
			if containsWholeWord(folded, foldForMatch(w)) {
				return ReasonBlacklist, false
			}
		}
	}
	if strings.HasPrefix(instruction, "Write a program") {
		return ReasonWriteAProgram, false
	}
	if instruction == "" {
		// Reachable only with MinWordsExclusive < 0; Python would raise
		// IndexError on inst[0].
		return ReasonTooShort, false
	}
	first, _ := utf8.DecodeRuneInString(instruction)
	if first < utf8.RuneSelf && strings.ContainsRune(pythonPunctuation, first) {
		return ReasonStartsWithPunctuation, false
	}
	if first >= utf8.RuneSelf {
		return ReasonStartsNonASCII, false
	}
	return "", true
}

// BlacklistedWord returns the first blacklist entry found in instruction as
// a whole word, or "".
func (o HeuristicOptions) BlacklistedWord(instruction string) string {
	folded := foldForMatch(instruction)
	for _, w := range o.Blacklist {
		if containsWholeWord(folded, foldForMatch(w)) {
			return w
		}
	}
	return ""
}

// pythonIsSpace is Python's str.isspace for one code point: Go's
// unicode.IsSpace plus the ASCII information separators U+001C..U+001F,
// which Python also splits on (checked over all of Unicode with CPython).
func pythonIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// PythonWordCount returns len(s.split()) with Python's whitespace.
func PythonWordCount(s string) int {
	n := 0
	in := false
	for _, r := range s {
		if pythonIsSpace(r) {
			in = false
		} else if !in {
			in = true
			n++
		}
	}
	return n
}

// foldForMatch maps each code point to the value Python's re compares under
// IGNORECASE for str patterns: the simple lowercase mapping, plus the extra
// equivalences sre adds (dotless i ~ i, long s ~ s, micro sign ~ mu, ...).
// With it, "FİLE", "fıle" and "ﬁle"-free variants match "file" as in Python.
func foldForMatch(s string) []rune {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, foldRune(r))
	}
	return out
}

func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}
	r = unicode.ToLower(r)
	switch r {
	case 0x131: // dotless i
		return 'i'
	case 0x17f: // long s
		return 's'
	case 0xb5: // micro sign
		return 0x3bc
	case 0x345, 0x1fbe: // ypogegrammeni, prosgegrammeni
		return 0x3b9
	case 0x3c2: // final sigma
		return 0x3c3
	case 0x3d0:
		return 0x3b2
	case 0x3d1:
		return 0x3b8
	case 0x3d5:
		return 0x3c6
	case 0x3d6:
		return 0x3c0
	case 0x3f0:
		return 0x3ba
	case 0x3f1:
		return 0x3c1
	case 0x3f5:
		return 0x3b5
	case 0x1e61, 0x1e9b:
		return 0x1e61
	case 0xfb05, 0xfb06:
		return 0xfb06
	}
	return r
}

// isPythonWordRune is \w of Python's re for str patterns: alphanumeric
// (letters and numbers of any script) or underscore. Unlike Go's regexp,
// whose \b only knows ASCII, "café" is one word here, so "naïve" does not
// contain the word "ve".
func isPythonWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// containsWholeWord reports whether word occurs in text with a \b boundary
// (a change between word and non-word runes) at both ends, i.e.
// re.search(r"\b(word)\b", text).
func containsWholeWord(text, word []rune) bool {
	if len(word) == 0 {
		return false
	}
	boundary := func(i int) bool {
		before := i > 0 && isPythonWordRune(text[i-1])
		after := i < len(text) && isPythonWordRune(text[i])
		return before != after
	}
	for i := 0; i+len(word) <= len(text); i++ {
		if text[i] != word[0] || !boundary(i) {
			continue
		}
		if slicesEqual(text[i:i+len(word)], word) && boundary(i+len(word)) {
			return true
		}
	}
	return false
}

func slicesEqual(a, b []rune) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
