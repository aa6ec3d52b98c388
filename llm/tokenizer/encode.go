package tokenizer

import (
	"strings"
	"sync"
	"unsafe"
)

// fragment is a piece of the input after special tokens were split out:
// either a special token (id >= 0) or raw text [start, end).
type fragment struct {
	id         int32
	start, end int
}

// scratch holds the buffers one Encode call needs, reused across calls so
// that tokenizing does not allocate per token.
type scratch struct {
	frags, frags2 []fragment
	cpts          []rune
	lens          []int
	buf           []byte
	key           []byte
	syms          []symbol
	spmQueue      queue[spmBigram]
	bpeQueue      queue[bpeBigram]
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{
		spmQueue: queue[spmBigram]{less: spmBefore},
		bpeQueue: queue[bpeBigram]{less: bpeBefore},
	}
}}

// Encode tokenizes text as llama.cpp's llama_tokenize does. addSpecial adds
// BOS/EOS where the vocabulary asks for them (AddBOS, AddEOS); parseSpecial
// lets special-token text such as "<|im_start|>" in the input become that
// token. User-defined tokens are split out even without parseSpecial, as in
// llama.cpp.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	return t.AppendEncode(make([]int32, 0, len(text)/3+2), text, addSpecial, parseSpecial)
}

// AppendEncode is Encode appending to dst, for callers that reuse a buffer.
func (t *Tokenizer) AppendEncode(dst []int32, text string, addSpecial, parseSpecial bool) []int32 {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	frags := t.partition(text, parseSpecial, sc)

	switch t.algo {
	case algoSPM:
		if addSpecial && t.addBOS && t.bos >= 0 {
			dst = append(dst, t.bos)
		}
		prevSpecial := true // the first fragment gets the space prefix
		for _, f := range frags {
			if f.id >= 0 {
				dst = append(dst, f.id)
				prevSpecial = true
				continue
			}
			// SentencePiece sees spaces as "▁"; the prefix space makes a
			// word at the start look like a word after a space.
			sc.buf = sc.buf[:0]
			if t.addSpacePrefix && prevSpecial {
				sc.buf = append(sc.buf, "\u2581"...)
			}
			for i := f.start; i < f.end; i++ {
				if text[i] == ' ' {
					sc.buf = append(sc.buf, "\u2581"...)
				} else {
					sc.buf = append(sc.buf, text[i])
				}
			}
			dst = t.encodeSPM(bytesAsString(sc.buf), dst, sc)
			prevSpecial = false
		}
		if addSpecial && t.addEOS && t.eos >= 0 {
			dst = append(dst, t.eos)
		}
	case algoBPE:
		if addSpecial && t.addBOS && t.bos >= 0 {
			dst = append(dst, t.bos)
		}
		for _, f := range frags {
			if f.id >= 0 {
				dst = append(dst, f.id)
				continue
			}
			dst = t.encodeBPE(text[f.start:f.end], dst, sc)
		}
		if addSpecial && t.addEOS && t.eos >= 0 {
			dst = append(dst, t.eos)
		}
	case algoWPM:
		if addSpecial && t.addBOS && t.bos >= 0 {
			dst = append(dst, t.bos)
		}
		for _, f := range frags {
			if f.id >= 0 {
				dst = append(dst, f.id)
				continue
			}
			dst = t.encodeWPM(text[f.start:f.end], dst, sc)
		}
		if addSpecial && t.addSep && t.sep >= 0 {
			dst = append(dst, t.sep)
		}
	}
	return dst
}

// bytesAsString views b as a string without copying. The caller must not
// change b while the string is in use; it is only used for map look-ups.
func bytesAsString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// isCSpace is C's isspace in the "C" locale, which llama.cpp uses to strip
// whitespace next to special tokens.
func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// partition splits special tokens out of text, longest token first, as
// llama.cpp's tokenizer_st_partition does. Without parseSpecial only
// user-defined tokens are split out; control and unknown tokens stay text.
func (t *Tokenizer) partition(text string, parseSpecial bool, sc *scratch) []fragment {
	frags := append(sc.frags[:0], fragment{id: -1, start: 0, end: len(text)})
	if text == "" {
		sc.frags = frags
		return frags[:0]
	}
	next := sc.frags2[:0]
	for _, id := range t.specials {
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		tokText := t.tokens[id]
		if !strings.Contains(text, tokText) {
			continue
		}
		next = next[:0]
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			start, end := f.start, f.end
			for start < end {
				i := strings.Index(text[start:end], tokText)
				if i < 0 {
					break
				}
				m := start + i
				left := m
				if a&attrLStrip != 0 {
					for left > start && isCSpace(text[left-1]) {
						left--
					}
				}
				if left > start {
					next = append(next, fragment{id: -1, start: start, end: left})
				}
				next = append(next, fragment{id: id})
				start = m + len(tokText)
				if a&attrRStrip != 0 {
					for start < end && isCSpace(text[start]) {
						start++
					}
				}
			}
			if start < end {
				next = append(next, fragment{id: -1, start: start, end: end})
			}
		}
		frags, next = next, frags
	}
	sc.frags, sc.frags2 = frags, next
	return frags
}

// symbol is a run of bytes [start, start+n) of the word being merged, in a
// doubly linked list of the runs still standing. n == 0 marks a run that was
// merged into its left neighbour.
type symbol struct {
	prev, next int32
	start, n   int32
}

// splitSymbols cuts word into UTF-8 characters the way llama.cpp does: by the
// length its lead byte announces, so malformed input still makes progress.
func splitSymbols(word string, syms []symbol) []symbol {
	syms = syms[:0]
	for off := 0; off < len(word); {
		n := min(utf8LenFromLead(word[off]), len(word)-off)
		i := int32(len(syms))
		next := i + 1
		if off+n == len(word) {
			next = -1
		}
		syms = append(syms, symbol{prev: i - 1, next: next, start: int32(off), n: int32(n)})
		off += n
	}
	return syms
}

type spmBigram struct {
	left, right int32
	score       float32
	size        int32
}

// spmBefore orders SentencePiece merges: the best-scoring token first, and
// of equal scores the leftmost.
func spmBefore(a, b spmBigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// encodeSPM merges the characters of an escaped fragment greedily by token
// score, then emits each remaining piece as its token or, if the vocabulary
// lacks it, as byte tokens.
func (t *Tokenizer) encodeSPM(text string, out []int32, sc *scratch) []int32 {
	syms := splitSymbols(text, sc.syms)
	q := &sc.spmQueue
	q.reset()
	tryAdd := func(left, right int32) {
		if left < 0 || right < 0 {
			return
		}
		start := syms[left].start
		size := syms[left].n + syms[right].n
		id, ok := t.toID[text[start:start+size]]
		if !ok {
			return
		}
		var score float32
		if t.scores != nil {
			score = t.scores[id]
		}
		q.push(spmBigram{left: left, right: right, score: score, size: size})
	}
	for i := int32(1); i < int32(len(syms)); i++ {
		tryAdd(i-1, i)
	}
	for q.len() > 0 {
		b := q.pop()
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue // one side was merged elsewhere since this pair was queued
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}
	for i := int32(0); len(syms) > 0 && i != -1; i = syms[i].next {
		s := syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := t.toID[piece]; ok {
			out = append(out, id)
			continue
		}
		for j := 0; j < len(piece); j++ {
			if id := t.byteTok[piece[j]]; id >= 0 {
				out = append(out, id)
			} else if t.unk >= 0 {
				out = append(out, t.unk)
			}
		}
	}
	sc.syms = syms
	return out
}

type bpeBigram struct {
	left, right int32
	rank        int32
	size        int32
}

// bpeBefore orders BPE merges: the earliest-learned merge first, and of the
// same merge the leftmost occurrence.
func bpeBefore(a, b bpeBigram) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

// encodeBPE pre-tokenizes text into words, maps each word's bytes to the
// printable runes byte-level BPE vocabularies are written in, and merges.
func (t *Tokenizer) encodeBPE(text string, out []int32, sc *scratch) []int32 {
	sc.cpts = decodeCpts(text, sc.cpts[:0])
	sc.lens = t.pre.split(sc.cpts, sc.lens[:0])
	pos := 0
	for _, n := range sc.lens {
		sc.buf = sc.buf[:0]
		var enc [4]byte
		for _, r := range sc.cpts[pos : pos+n] {
			for _, b := range appendCpt(enc[:0], r) {
				sc.buf = append(sc.buf, byteToRune[b]...)
			}
		}
		pos += n
		out = t.mergeBPE(bytesAsString(sc.buf), out, sc)
	}
	return out
}

func (t *Tokenizer) mergeBPE(word string, out []int32, sc *scratch) []int32 {
	if t.ignoreMerges {
		if id, ok := t.toID[word]; ok {
			return append(out, id)
		}
	}
	syms := splitSymbols(word, sc.syms)
	q := &sc.bpeQueue
	q.reset()
	tryAdd := func(left, right int32) {
		if left < 0 || right < 0 {
			return
		}
		l, r := syms[left], syms[right]
		rank, ok := t.mergeRank(word[l.start:l.start+l.n], word[r.start:r.start+r.n], sc)
		if !ok {
			return
		}
		q.push(bpeBigram{left: left, right: right, rank: rank, size: l.n + r.n})
	}
	for i := int32(1); i < int32(len(syms)); i++ {
		tryAdd(i-1, i)
	}
	for q.len() > 0 {
		b := q.pop()
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}
	for i := int32(0); len(syms) > 0 && i != -1; i = syms[i].next {
		s := syms[i]
		piece := word[s.start : s.start+s.n]
		if id, ok := t.toID[piece]; ok {
			out = append(out, id)
			continue
		}
		// llama.cpp's last resort: any single byte that is itself a token.
		for j := 0; j < len(piece); j++ {
			if id, ok := t.toID[piece[j:j+1]]; ok {
				out = append(out, id)
			}
		}
	}
	sc.syms = syms
	return out
}

// mergeRank is the priority of merging left and right, if the vocabulary
// has that merge.
func (t *Tokenizer) mergeRank(left, right string, sc *scratch) (int32, bool) {
	if strings.IndexByte(left[1:], ' ') >= 0 {
		return 0, false // no merge line splits into this left side
	}
	sc.key = append(append(append(sc.key[:0], left...), ' '), right...)
	rank, ok := t.ranks[string(sc.key)]
	return rank, ok
}

// queue is a binary heap; container/heap would box every element.
type queue[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (q *queue[T]) reset()   { q.items = q.items[:0] }
func (q *queue[T]) len() int { return len(q.items) }

func (q *queue[T]) push(x T) {
	q.items = append(q.items, x)
	i := len(q.items) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !q.less(q.items[i], q.items[parent]) {
			break
		}
		q.items[i], q.items[parent] = q.items[parent], q.items[i]
		i = parent
	}
}

func (q *queue[T]) pop() T {
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items = q.items[:last]
	for i := 0; ; {
		l, r, best := 2*i+1, 2*i+2, i
		if l < last && q.less(q.items[l], q.items[best]) {
			best = l
		}
		if r < last && q.less(q.items[r], q.items[best]) {
			best = r
		}
		if best == i {
			break
		}
		q.items[i], q.items[best] = q.items[best], q.items[i]
		i = best
	}
	return top
}
