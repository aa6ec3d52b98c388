package tokenizer

import (
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// encodeWPM is BERT's WordPiece as llama.cpp runs it on converted
// vocabularies, where a word-initial piece carries "▁" instead of the
// continuation pieces carrying "##": lower-case and strip accents, cut at
// whitespace and around punctuation and CJK ideographs, then take the longest
// vocabulary match left to right. A word with any unmatched part becomes UNK.
func (t *Tokenizer) encodeWPM(text string, out []int32, sc *scratch) []int32 {
	word := sc.buf[:0]
	defer func() { sc.buf = word }()
	flush := func() {
		if len(word) == 0 {
			return
		}
		out = t.wordPiece(word, out)
		word = word[:0]
	}
	word = append(word, "\u2581"...)
	const prefixLen = len("\u2581")
	hasWord := func() bool { return len(word) > prefixLen }
	for i := 0; i < len(text); {
		r, n := decodeCpt(text, i)
		i += n
		r = firstOfNFD(r)
		if isSpace(r) {
			if hasWord() {
				flush()
				word = append(word, "\u2581"...)
			}
			continue
		}
		if r == 0 || r == replacementChar || isOtherCategory(r) {
			continue
		}
		lower := unicode.ToLower(r)
		if unicode.IsPunct(r) || (r < 0x7F && unicode.IsSymbol(r)) || isCJKIdeograph(r) {
			if hasWord() {
				flush()
				word = append(word, "\u2581"...)
			}
			word = appendCpt(word, lower)
			flush()
			word = append(word, "\u2581"...)
			continue
		}
		word = appendCpt(word, lower)
	}
	if hasWord() {
		flush()
	}
	return out
}

func (t *Tokenizer) wordPiece(word []byte, out []int32) []int32 {
	before := len(out)
	s := bytesAsString(word)
	for i := 0; i < len(s); {
		matched := false
		for j := min(len(s), i+t.maxLen+1); j > i; j-- {
			if id, ok := t.toID[s[i:j]]; ok {
				out = append(out, id)
				i = j
				matched = true
				break
			}
		}
		if !matched {
			out = out[:before]
			break
		}
	}
	if len(out) == before && t.unk >= 0 {
		out = append(out, t.unk)
	}
	return out
}

// firstOfNFD maps a code point to the first code point of its canonical
// decomposition, which is how llama.cpp "normalises" for WordPiece: "é"
// becomes "e" and the accent is gone.
func firstOfNFD(r rune) rune {
	if r < 0xC0 {
		return r
	}
	// Hangul syllables decompose algorithmically, so the tables hold
	// nothing for them; the first jamo is the leading consonant.
	const hangulBase, hangulCount, jamoLBase, perLeading = 0xAC00, 11172, 0x1100, 588
	if r >= hangulBase && r < hangulBase+hangulCount {
		return jamoLBase + (r-hangulBase)/perLeading
	}
	var enc [4]byte
	d := norm.NFD.Properties(appendCpt(enc[:0], r)).Decomposition()
	if len(d) == 0 {
		return r
	}
	first, _ := decodeCpt(bytesAsString(d), 0)
	return first
}

// isOtherCategory is Unicode's C category minus unassigned code points:
// control, format, private-use and surrogate characters, which WordPiece drops.
func isOtherCategory(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

// isCJKIdeograph is BERT's notion of a Chinese character, including the
// range boundary Hugging Face's Rust code uses.
func isCJKIdeograph(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}
