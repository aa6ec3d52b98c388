package tokenizer

import (
	"fmt"
	"unicode"
)

// splitStyle names the word-splitting rule a BPE vocabulary was trained with.
// llama.cpp implements the common ones by hand instead of with a regex engine;
// these follow the same hand-written state machines so that every corner
// (a lone trailing space, "\r\n" runs, digits in groups of three) matches.
type splitStyle int

const (
	// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	splitGPT2 splitStyle = iota + 1
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	splitLlama3
	// The same as LLaMA 3 but \p{N} one digit at a time.
	splitQwen2
	// \p{N} split out one by one, then the GPT-2 rule (StarCoder, Refact, Command-R).
	splitDigitsThenGPT2
	// llama.cpp's fallback for BPE vocabularies without a known
	// pre-tokenizer, four rules applied in turn:
	// [\p{P}\$\+<=>\^~\|]+, the GPT-2 rule, \p{N}+, [0-9][0-9][0-9].
	splitDefault
	// Falcon: [\p{P}\$\+<=>\^~\|`]+, the GPT-2 rule, [0-9][0-9][0-9].
	splitFalcon
)

type preTokenizer struct {
	style        splitStyle
	ignoreMerges bool // a word that is a whole token is taken as is (LLaMA 3)
	addBOS       bool // default for tokenizer.ggml.add_bos_token
	keepSpaces   bool // no clean_up_tokenization_spaces when decoding
	noBOS        bool // the vocabulary has no BOS token at all
}

// lookupPre maps tokenizer.ggml.pre to a pre-tokenizer, with the flags
// llama.cpp attaches to each name.
func lookupPre(name string) (preTokenizer, error) {
	switch name {
	case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
		"jina-v2-code", "roberta-bpe", "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais":
		return preTokenizer{style: splitGPT2}, nil
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano":
		return preTokenizer{style: splitLlama3, ignoreMerges: true, addBOS: true}, nil
	case "dbrx", "smaug-bpe":
		return preTokenizer{style: splitLlama3}, nil
	case "chatglm-bpe", "glm4":
		return preTokenizer{style: splitLlama3, noBOS: true}, nil
	case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2":
		return preTokenizer{style: splitQwen2, keepSpaces: true}, nil
	case "stablelm2", "megrez":
		return preTokenizer{style: splitQwen2}, nil
	case "starcoder", "refact", "codeshell", "exaone", "minerva-7b":
		return preTokenizer{style: splitDigitsThenGPT2}, nil
	case "command-r", "smollm":
		return preTokenizer{style: splitDigitsThenGPT2, keepSpaces: true}, nil
	case "falcon":
		return preTokenizer{style: splitFalcon}, nil
	case "default", "":
		// llama.cpp warns that generation quality suffers when a BPE
		// vocabulary names no pre-tokenizer, and uses this one.
		return preTokenizer{style: splitDefault}, nil
	default:
		return preTokenizer{}, fmt.Errorf("tokenizer: %w: BPE pre-tokenizer %q (supported: gpt-2, llama-bpe/llama3, qwen2, starcoder-style, falcon, default and their aliases)", ErrUnsupported, name)
	}
}

// charClass is the part of a code point's Unicode category the split rules
// look at. classNone stands for "past the end of the fragment", which the
// rules treat differently from any real character.
type charClass uint8

const (
	classNone charClass = iota
	classLetter
	classNumber
	classSpace
	classOther
)

func classOf(r rune) charClass {
	if r < 0x80 {
		return asciiClass[r]
	}
	switch {
	case isSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	}
	return classOther
}

var asciiClass = func() (c [0x80]charClass) {
	for r := range c {
		switch {
		case isSpace(rune(r)):
			c[r] = classSpace
		case unicode.IsLetter(rune(r)):
			c[r] = classLetter
		case unicode.IsNumber(rune(r)):
			c[r] = classNumber
		default:
			c[r] = classOther
		}
	}
	return c
}()

// isSpace is Unicode's White_Space property, the set llama.cpp's \s means.
func isSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// splitter cuts a run of code points into words, appending word lengths (in
// code points) to lens.
type splitter struct {
	cpts []rune
	end  int // one past the fragment being split
	prev int // end of the last word emitted
	lens []int
}

func (s *splitter) at(pos int) rune {
	if pos < s.end {
		return s.cpts[pos]
	}
	return -1
}

func (s *splitter) class(pos int) charClass {
	if pos < s.end {
		return classOf(s.cpts[pos])
	}
	return classNone
}

func (s *splitter) emit(end int) int {
	n := end - s.prev
	if n > 0 {
		s.lens = append(s.lens, n)
	}
	s.prev = end
	return n
}

// contraction returns the length of an English contraction ('s, 't, 're, 've,
// 'm, 'll, 'd) starting at pos, or 0.
func (s *splitter) contraction(pos int, foldCase bool) int {
	if s.at(pos) != '\'' || pos+1 >= s.end {
		return 0
	}
	next := s.at(pos + 1)
	if foldCase {
		next = unicode.ToLower(next)
	}
	if next == 's' || next == 't' || next == 'm' || next == 'd' {
		return 2
	}
	if pos+2 < s.end {
		nn := s.at(pos + 2)
		if foldCase {
			nn = unicode.ToLower(nn)
		}
		if (next == 'r' && nn == 'e') || (next == 'v' && nn == 'e') || (next == 'l' && nn == 'l') {
			return 3
		}
	}
	return 0
}

func (s *splitter) gpt2(start, end int) {
	s.end, s.prev = end, start
	for pos := start; pos < end; {
		if n := s.contraction(pos, false); n > 0 {
			pos += s.emit(pos + n)
			continue
		}
		cpt := s.at(pos)
		cls := s.class(pos)
		cls2 := cls
		if cpt == ' ' {
			cls2 = s.class(pos + 1)
		}
		if cls2 == classLetter || cls2 == classNumber {
			if cpt == ' ' {
				pos++
			}
			for s.class(pos) == cls2 {
				pos++
			}
			s.emit(pos)
			continue
		}
		if cls2 == classOther {
			if cpt == ' ' {
				pos++
			}
			for s.class(pos) == classOther {
				pos++
			}
			s.emit(pos)
			continue
		}
		pos = s.whitespace(pos, false)
	}
}

func (s *splitter) llama3(start, end, maxDigits int) {
	s.end, s.prev = end, start
	for pos := start; pos < end; {
		if n := s.contraction(pos, true); n > 0 {
			pos += s.emit(pos + n)
			continue
		}
		cpt := s.at(pos)
		cls := s.class(pos)
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if !(cpt == '\r' || cpt == '\n' || cls == classNumber) {
			if cls == classLetter || s.class(pos+1) == classLetter {
				pos++
				for s.class(pos) == classLetter {
					pos++
				}
				s.emit(pos)
				continue
			}
		}
		// \p{N}{1,maxDigits}
		if cls == classNumber {
			first := pos
			for s.class(pos) == classNumber {
				pos++
				if pos-first >= maxDigits {
					s.emit(pos)
					first = pos
				}
			}
			s.emit(pos)
			continue
		}
		// ' '?[^\s\p{L}\p{N}]+[\r\n]*
		cls2 := cls
		if cpt == ' ' {
			cls2 = s.class(pos + 1)
		}
		// llama.cpp tests the first character's own class here, not cls2,
		// so a lone trailing space takes this branch; the word is the same.
		if (cls2 == classOther || cls2 == classNone) && cls != classNone {
			if cpt == ' ' {
				pos++
			}
			for s.class(pos) == classOther {
				pos++
			}
			for c := s.at(pos); c == '\r' || c == '\n'; c = s.at(pos) {
				pos++
			}
			s.emit(pos)
			continue
		}
		pos = s.whitespace(pos, true)
	}
}

// whitespace handles \s*[\r\n]+ (when newlines is set), \s+(?!\S) and \s+,
// and a character that matches nothing, returning the new position.
func (s *splitter) whitespace(pos int, newlines bool) int {
	n := 0
	lastNewline := 0
	for s.class(pos+n) == classSpace {
		if c := s.at(pos + n); newlines && (c == '\r' || c == '\n') {
			lastNewline = pos + n + 1
		}
		n++
	}
	switch {
	case lastNewline > 0:
		pos = lastNewline
	case n > 1 && pos+n < s.end:
		// leave the last space to prefix the next word
		pos += n - 1
	case n > 0:
		pos += n
	default:
		pos++
	}
	s.emit(pos)
	return pos
}

// split appends to lens the word lengths (in code points) of cpts.
func (p preTokenizer) split(cpts []rune, lens []int) []int {
	s := splitter{cpts: cpts, lens: lens}
	switch p.style {
	case splitGPT2:
		s.gpt2(0, len(cpts))
	case splitLlama3:
		s.llama3(0, len(cpts), 3)
	case splitQwen2:
		s.llama3(0, len(cpts), 1)
	case splitDefault, splitFalcon:
		s.chain(p.style)
	case splitDigitsThenGPT2:
		// Every number character is a word of its own; the text between
		// numbers is split by the GPT-2 rule.
		runStart := 0
		for i := 0; i <= len(cpts); i++ {
			if i < len(cpts) && classOf(cpts[i]) != classNumber {
				continue
			}
			if i > runStart {
				s.gpt2(runStart, i)
			}
			if i < len(cpts) {
				s.lens = append(s.lens, 1)
			}
			runStart = i + 1
		}
	}
	return s.lens
}

// chain applies llama.cpp's rule sequences: every rule re-splits each word
// the previous one produced, keeping unmatched stretches as words.
func (s *splitter) chain(style splitStyle) {
	isSymbol := func(r rune) bool {
		switch r {
		case '$', '+', '<', '=', '>', '^', '~', '|':
			return true
		case '`':
			return style == splitFalcon
		}
		return r != -1 && unicode.IsPunct(r)
	}
	whole := len(s.cpts)
	// [\p{P}...]+: runs of punctuation-like characters and the gaps between.
	s.lens = s.runs(s.lens, 0, whole, isSymbol)
	s.lens = s.refine(func(start, end int) { s.gpt2(start, end) })
	if style == splitDefault {
		s.lens = s.refine(func(start, end int) {
			s.lens = s.runs(s.lens, start, end, func(r rune) bool { return classOf(r) == classNumber })
		})
	}
	s.lens = s.refine(func(start, end int) { s.asciiDigitTriples(start, end) })
}

// refine re-splits every word in s.lens with split, which appends the new
// word lengths for [start, end) to s.lens.
func (s *splitter) refine(split func(start, end int)) []int {
	words := append([]int(nil), s.lens...)
	s.lens = s.lens[:0]
	pos := 0
	for _, n := range words {
		split(pos, pos+n)
		pos += n
	}
	return s.lens
}

// runs appends the lengths of the maximal stretches of [start, end) where
// match holds and of those where it does not.
func (s *splitter) runs(lens []int, start, end int, match func(rune) bool) []int {
	for pos := start; pos < end; {
		first := pos
		m := match(s.cpts[pos])
		for pos < end && match(s.cpts[pos]) == m {
			pos++
		}
		lens = append(lens, pos-first)
	}
	return lens
}

// asciiDigitTriples is the regex [0-9][0-9][0-9] searched left to right:
// each match is a word, and so is each stretch between matches.
func (s *splitter) asciiDigitTriples(start, end int) {
	isDigit := func(pos int) bool { return pos < end && s.cpts[pos] >= '0' && s.cpts[pos] <= '9' }
	gap := start
	for pos := start; pos < end; {
		if isDigit(pos) && isDigit(pos+1) && isDigit(pos+2) {
			if pos > gap {
				s.lens = append(s.lens, pos-gap)
			}
			s.lens = append(s.lens, 3)
			pos += 3
			gap = pos
			continue
		}
		pos++
	}
	if end > gap {
		s.lens = append(s.lens, end-gap)
	}
}
