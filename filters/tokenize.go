package filters

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokenizer selects how texts are split into the tokens ROUGE-L compares.
type Tokenizer int

const (
	// TokenizerRougeScore reproduces rouge_score's default tokenizer (no
	// stemmer): Python str.lower(), then the maximal runs of [a-z0-9]. Any
	// text in a script other than Latin therefore yields no tokens at all.
	TokenizerRougeScore Tokenizer = iota
	// TokenizerUnicode keeps letters and digits of every script (lowercased)
	// and makes each character of scripts written without spaces (Han, kana,
	// Thai, ...) a token of its own, so that non-English data can be
	// deduplicated.
	TokenizerUnicode
)

// ParseTokenizer maps a command-line name to a Tokenizer.
func ParseTokenizer(s string) (Tokenizer, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "rouge_score", "rouge-score", "default", "":
		return TokenizerRougeScore, nil
	case "unicode":
		return TokenizerUnicode, nil
	}
	return 0, fmt.Errorf("unknown tokenizer %q (want rouge_score or unicode)", s)
}

func (tk Tokenizer) String() string {
	switch tk {
	case TokenizerRougeScore:
		return "rouge_score"
	case TokenizerUnicode:
		return "unicode"
	}
	return fmt.Sprintf("Tokenizer(%d)", int(tk))
}

// Tokenize splits s into the tokens ROUGE-L compares.
func Tokenize(s string, tk Tokenizer) []string {
	var toks []string
	var buf []byte
	forEachToken(s, tk, &buf, func(tok []byte) { toks = append(toks, string(tok)) })
	return toks
}

// forEachToken calls emit with each token of s, built in *buf; emit must not
// keep the slice. Reusing one buffer keeps tokenization allocation-free when
// the caller only looks tokens up.
func forEachToken(s string, tk Tokenizer, buf *[]byte, emit func([]byte)) {
	if tk == TokenizerUnicode {
		unicodeTokens(s, buf, emit)
		return
	}
	rougeScoreTokens(s, buf, emit)
}

// rougeScoreTokens follows rouge_score.tokenize.tokenize: text.lower(), every
// run of [^a-z0-9] becomes a separator. Python's full lowercase mapping only
// produces ASCII letters or digits from ASCII itself and from two other code
// points (checked over all of Unicode with CPython 3.11):
//   - U+0130 'İ' lowers to "i" + U+0307, so it contributes an "i" that ends
//     the token (U+0307 is not in [a-z0-9]);
//   - U+212A KELVIN SIGN lowers to "k".
//
// Everything else outside ASCII is a separator.
func rougeScoreTokens(s string, buf *[]byte, emit func([]byte)) {
	b := (*buf)[:0]
	flush := func() {
		if len(b) > 0 {
			emit(b)
			b = b[:0]
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				b = append(b, c)
			case 'A' <= c && c <= 'Z':
				b = append(b, c+('a'-'A'))
			default:
				flush()
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch r {
		case '\u0130':
			b = append(b, 'i')
			flush()
		case '\u212A':
			b = append(b, 'k')
		default:
			flush()
		}
	}
	flush()
	*buf = b
}

// unsegmentedScript reports scripts written without spaces between words,
// where each character is the best available token.
func unsegmentedScript(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai,
		unicode.Lao, unicode.Khmer, unicode.Myanmar, unicode.Tibetan, unicode.Bopomofo, unicode.Yi)
}

func unicodeTokens(s string, buf *[]byte, emit func([]byte)) {
	b := (*buf)[:0]
	flush := func() {
		if len(b) > 0 {
			emit(b)
			b = b[:0]
		}
	}
	// inSingle is true while b holds one unsegmented-script character that
	// may still take combining marks (Thai vowel signs, dakuten, ...).
	inSingle := false
	for _, r := range s {
		switch {
		case unicode.IsMark(r):
			if len(b) > 0 {
				b = utf8.AppendRune(b, r)
			}
		case unicode.IsLetter(r) || unicode.IsNumber(r):
			if unsegmentedScript(r) {
				flush()
				inSingle = true
			} else if inSingle {
				flush()
				inSingle = false
			}
			b = utf8.AppendRune(b, unicode.ToLower(r))
		default:
			flush()
			inSingle = false
		}
	}
	flush()
	*buf = b
}
