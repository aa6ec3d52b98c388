package tokenizer

// llama.cpp decodes UTF-8 with its own lenient rules, and the ids it produces
// for malformed input depend on them, so they are reproduced here rather than
// using unicode/utf8: a stray byte becomes U+FFFD and costs one byte;
// overlong forms and surrogates are accepted as the code point they spell.

const replacementChar = 0xFFFD

// utf8LenFromLead is the sequence length a lead byte announces (1 for
// continuation bytes, so that scanning always advances).
func utf8LenFromLead(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

func isCont(b byte) bool { return b&0xC0 == 0x80 }

// decodeCpt decodes the code point at s[i], returning it and its length.
func decodeCpt(s string, i int) (rune, int) {
	b0 := s[i]
	switch {
	case b0&0x80 == 0:
		return rune(b0), 1
	case b0&0x40 == 0:
		return replacementChar, 1
	case b0&0x20 == 0:
		if i+1 >= len(s) || !isCont(s[i+1]) {
			return replacementChar, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case b0&0x10 == 0:
		if i+2 >= len(s) || !isCont(s[i+1]) || !isCont(s[i+2]) {
			return replacementChar, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case b0&0x08 == 0:
		if i+3 >= len(s) || !isCont(s[i+1]) || !isCont(s[i+2]) || !isCont(s[i+3]) {
			return replacementChar, 1
		}
		r := rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
		if r > 0x10FFFF {
			// llama.cpp throws on these when re-encoding; take the
			// replacement character instead of failing.
			return replacementChar, 4
		}
		return r, 4
	}
	return replacementChar, 1
}

func decodeCpts(s string, dst []rune) []rune {
	for i := 0; i < len(s); {
		r, n := decodeCpt(s, i)
		dst = append(dst, r)
		i += n
	}
	return dst
}

// appendCpt encodes r as llama.cpp does (surrogates included).
func appendCpt(dst []byte, r rune) []byte {
	switch {
	case r < 0:
		return append(dst, "\uFFFD"...)
	case r <= 0x7F:
		return append(dst, byte(r))
	case r <= 0x7FF:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r&0x3F))
	case r <= 0xFFFF:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	case r <= 0x10FFFF:
		return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12&0x3F), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	}
	return append(dst, "\uFFFD"...)
}

// byteToRune is GPT-2's byte-to-unicode table: printable Latin-1 bytes stand
// for themselves, the rest are shifted to U+0100 and up, so that every byte
// has a visible, non-space rune (a space is "Ġ", a newline "Ċ").
var byteToRune, runeToByte = func() (enc [256]string, dec map[rune]byte) {
	dec = make(map[rune]byte, 256)
	printable := func(b int) bool {
		return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	shifted := 0
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !printable(b) {
			r = rune(256 + shifted)
			shifted++
		}
		enc[b] = string(r)
		dec[r] = byte(b)
	}
	return enc, dec
}()
