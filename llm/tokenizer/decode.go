package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// renderPiece is llama.cpp's token_to_piece with special=true: the text a
// token stands for.
func (t *Tokenizer) renderPiece(id int32) string {
	text := t.tokens[id]
	a := t.attrs[id]
	if a&(attrUnknown|attrControl|attrUserDefined) != 0 {
		return text
	}
	switch t.algo {
	case algoSPM, algoWPM:
		if a&attrNormal != 0 {
			return strings.ReplaceAll(text, "\u2581", " ")
		}
		if a&attrByte != 0 {
			if b, ok := parseByteToken(text); ok {
				return string([]byte{b})
			}
		}
	case algoBPE:
		if a&attrNormal != 0 {
			return decodeByteLevel(text)
		}
	}
	return "" // unused and undefined tokens render as nothing
}

// parseByteToken reads "<0xXX>".
func parseByteToken(text string) (byte, bool) {
	if len(text) != 6 || text[:3] != "<0x" || text[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexVal(text[3])
	lo, ok2 := hexVal(text[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// decodeByteLevel maps byte-level BPE text back to the bytes it encodes. A
// rune outside the byte table is kept visible the way llama.cpp marks it.
func decodeByteLevel(text string) string {
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text); {
		r, n := decodeCpt(text, i)
		if b, ok := runeToByte[r]; ok {
			out = append(out, b)
		} else {
			out = append(out, "[UNK_BYTE_0x"...)
			for _, c := range []byte(text[i : i+n]) {
				const hex = "0123456789abcdef"
				out = append(out, hex[c>>4], hex[c&15])
			}
			out = append(out, text...)
			out = append(out, ']')
		}
		i += n
	}
	return string(out)
}

// Piece is the text of one token, special tokens included ("<|im_end|>",
// "<s>"): SentencePiece's "▁" as a space, "<0x0A>" as the byte it names,
// byte-level BPE runes as their bytes. A piece can be part of a UTF-8
// character; use a StreamDecoder to print pieces as they come.
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// textPiece is the piece as it appears in decoded text: control and unknown
// tokens contribute nothing, as with llama.cpp's detokenize without
// unparse_special.
func (t *Tokenizer) textPiece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) || t.attrs[id]&(attrUnknown|attrControl) != 0 {
		return ""
	}
	return t.pieces[id]
}

// Decode turns ids back into text as llama.cpp's llama_detokenize does with
// remove_special and unparse_special off: control tokens vanish, the space
// SentencePiece prefixed to the first word is removed, and for vocabularies
// that ask for it spaces before punctuation are cleaned up. Ids outside the
// vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int32) string {
	return t.Detokenize(ids, false, false)
}

// Detokenize is llama_detokenize. removeSpecial drops a leading BOS and a
// trailing EOS where the vocabulary adds them (and then keeps the first
// word's space, as llama.cpp does); unparseSpecial renders control tokens
// as their text instead of leaving them out.
func (t *Tokenizer) Detokenize(ids []int32, removeSpecial, unparseSpecial bool) string {
	removeSpace := t.addSpacePrefix
	if removeSpecial && t.addBOS && len(ids) > 0 && ids[0] == t.bos {
		removeSpace = false
		ids = ids[1:]
	}
	if removeSpecial && t.addEOS && len(ids) > 0 && ids[len(ids)-1] == t.eos {
		ids = ids[:len(ids)-1]
	}
	var b strings.Builder
	for _, id := range ids {
		p := t.textPiece(id)
		if unparseSpecial {
			p = t.Piece(id)
		}
		if removeSpace && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
		removeSpace = false
		b.WriteString(p)
	}
	if !t.cleanSpaces {
		return b.String()
	}
	return cleanSpaces(b.String())
}

// cleanSpaces is Hugging Face's clean_up_tokenization_spaces as llama.cpp
// implements it: " ?", " !", " .", " ," lose the space, " ' " loses both
// spaces, and " 's", " 'm", " 're", " 've" lose the space.
func cleanSpaces(s string) string {
	text := []byte(s)
	if len(text) == 0 {
		return s
	}
	n := 1
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			n--
		}
		text[n] = x
		n++
	}
	total := n
	n = 1
	for i := 1; i < total; i++ {
		x := text[i]
		if x == '\'' && i+1 < total && text[i-1] == ' ' && text[i+1] == ' ' {
			// Drop the space before and skip the one after, blanking it as
			// llama.cpp does, so a quote right after it has no space before.
			n--
			i++
			text[i] = 0
		}
		text[n] = x
		n++
	}
	total = n
	n = 1
	for i := 1; i < total; i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < total {
			x1 := text[i+1]
			switch {
			case x1 == 's' || x1 == 'm':
				n--
			case x1 == 't' || x1 == 'd':
			case i+2 < total:
				x2 := text[i+2]
				if (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e') {
					n--
				}
			}
		}
		text[n] = x
		n++
	}
	return string(text[:n])
}

// StreamDecoder turns ids into text one at a time, holding back the bytes of
// a UTF-8 character until the token that completes it arrives. It renders
// what Decode would, except that it never strips the leading space (a stream
// usually continues a prompt) and does not clean up spaces.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder starts an empty stream.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{t: t, pending: make([]byte, 0, 8)}
}

// Add takes the next id and returns the text that became complete with it,
// possibly "".
func (d *StreamDecoder) Add(id int32) string {
	d.pending = append(d.pending, d.t.textPiece(id)...)
	n := completePrefix(d.pending)
	if n == 0 {
		return ""
	}
	out := string(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Flush returns whatever is held back (an incomplete character, as is) and
// resets the stream.
func (d *StreamDecoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completePrefix is the length of the longest prefix of b that does not end
// inside a UTF-8 character that later bytes could still complete. Bytes that
// can never become valid are let through rather than held forever.
func completePrefix(b []byte) int {
	// Only the last three bytes can belong to an unfinished character.
	for back := 1; back <= 3 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 {
			need := utf8LenFromLead(c)
			if c >= 0xF8 || need <= back {
				return len(b) // complete, or not a lead byte of anything
			}
			if !utf8.FullRune(b[len(b)-back:]) {
				return len(b) - back
			}
			return len(b)
		}
	}
	return len(b)
}
