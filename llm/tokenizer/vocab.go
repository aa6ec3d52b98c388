// Package tokenizer turns text into token ids and back exactly as llama.cpp
// does for the vocabularies stored in GGUF files: SentencePiece (BPE with
// scores and byte fallback, `tokenizer.ggml.model = llama`), byte-level BPE
// with the pre-tokenizers GPT-2, LLaMA 3 and Qwen2 use (`gpt2`), and BERT's
// WordPiece (`bert`).
//
// Exactness matters more than elegance here: the inference engine must feed a
// model the very ids llama.cpp would, or its output diverges from the
// reference. Where llama.cpp has a quirk (which special tokens are split out
// of raw text, when a space is prefixed, how ties are broken between equal
// merges), this package reproduces it and says so.
package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// TokenType is the per-token type stored in `tokenizer.ggml.token_type`.
type TokenType int32

// Token types as llama.cpp's GGUF writer numbers them.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// attr mirrors llama.cpp's llama_token_attr bit set. Token types map onto it
// one to one, but llama.cpp then adds bits by name (EOG-looking tokens become
// control tokens, Phi-3's special tokens strip whitespace to their right), so
// a type alone does not say how a token behaves.
type attr uint16

const (
	attrUnknown attr = 1 << iota
	attrUnused
	attrNormal
	attrControl
	attrUserDefined
	attrByte
	attrNormalized
	attrLStrip
	attrRStrip
	attrSingleWord
)

func attrFromType(t TokenType) attr {
	switch t {
	case TypeUnknown:
		return attrUnknown
	case TypeUnused:
		return attrUnused
	case TypeNormal:
		return attrNormal
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeByte:
		return attrByte
	default:
		return 0
	}
}

// Vocab is everything a GGUF file says about its tokenizer. Pointer fields are
// optional: nil means "not in the file", and the tokenizer type's default (as
// llama.cpp chooses it) applies.
type Vocab struct {
	Model string // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), "bert" (WordPiece)
	Pre   string // tokenizer.ggml.pre: the BPE pre-tokenizer ("gpt-2", "llama-bpe", "qwen2", ...)
	// Name is general.name and Arch general.architecture. llama.cpp keys a
	// few per-token rules on them (Phi-3's special tokens swallow the
	// whitespace that follows them).
	Name, Arch string

	Tokens []string
	Scores []float32   // SentencePiece merge priorities; may be nil
	Types  []TokenType // may be nil: every token is then normal
	Merges []string    // BPE merges, "left right", highest priority first

	BOS, EOS, EOT, EOM, UNK, SEP, PAD, Mask        *int32
	FIMPre, FIMSuf, FIMMid, FIMPad, FIMRep, FIMSep *int32

	AddBOS, AddEOS, AddSep, AddSpacePrefix *bool

	ChatTemplate string // tokenizer.chat_template (Jinja source)
}

type algorithm int

const (
	algoSPM algorithm = iota + 1
	algoBPE
	algoWPM
)

// Tokenizer encodes and decodes text for one vocabulary. It is safe for
// concurrent use: per-call scratch space comes from a pool.
type Tokenizer struct {
	algo   algorithm
	pre    preTokenizer
	tokens []string
	scores []float32
	attrs  []attr
	toID   map[string]int32
	ranks  map[string]int32 // BPE merge priority by "left right"

	bos, eos, eot, eom, unk, sep, pad, mask int32

	addBOS, addEOS, addSep bool
	addSpacePrefix         bool
	ignoreMerges           bool
	cleanSpaces            bool
	byteEncoded            bool // byte-level BPE: token text is bytes mapped to printable runes

	eog      map[int32]bool
	specials []int32 // control, user-defined and unknown tokens, longest text first
	pieces   []string
	byteTok  [256]int32
	maxLen   int

	chatTemplate string
}

// ErrUnsupported is wrapped by the errors New and FromGGUF return for a
// tokenizer model or pre-tokenizer this package does not implement.
var ErrUnsupported = errors.New("unsupported tokenizer")

// New builds a tokenizer from a vocabulary, applying llama.cpp's defaults and
// its name-based special-token rules.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer: vocabulary has no tokens")
	}
	if n > 1<<31-1 {
		return nil, fmt.Errorf("tokenizer: %d tokens do not fit int32 ids", n)
	}
	if v.Scores != nil && len(v.Scores) < n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) < n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	t := &Tokenizer{
		bos: -1, eos: -1, eot: -1, eom: -1, unk: -1, sep: -1, pad: -1, mask: -1,
		chatTemplate: v.ChatTemplate,
	}
	fimPre, fimSuf, fimMid, fimPad, fimRep, fimSep := int32(-1), int32(-1), int32(-1), int32(-1), int32(-1), int32(-1)

	switch v.Model {
	case "llama":
		t.algo = algoSPM
		t.bos, t.eos, t.unk = 1, 2, 0
		t.addSpacePrefix, t.addBOS = true, true
	case "gpt2":
		t.algo = algoBPE
		t.byteEncoded = true
		t.bos, t.eos = 11, 11
		t.cleanSpaces = true
		pre, err := lookupPre(v.Pre)
		if err != nil {
			return nil, err
		}
		t.pre = pre
		t.ignoreMerges = pre.ignoreMerges
		t.addBOS = pre.addBOS
		if pre.keepSpaces {
			t.cleanSpaces = false
		}
		if pre.noBOS {
			t.bos = -1
		}
		if len(v.Merges) == 0 {
			return nil, errors.New("tokenizer: byte-level BPE vocabulary has no merges")
		}
	case "bert":
		t.algo = algoWPM
		t.bos, t.unk, t.sep, t.pad, t.mask = 101, 100, 102, 0, 103
		t.cleanSpaces = true
		t.addBOS, t.addSep = true, true
	case "":
		return nil, fmt.Errorf("tokenizer: %w: no tokenizer model named", ErrUnsupported)
	default:
		return nil, fmt.Errorf("tokenizer: %w: model %q (supported: llama, gpt2, bert)", ErrUnsupported, v.Model)
	}
	if v.AddSpacePrefix != nil {
		t.addSpacePrefix = *v.AddSpacePrefix
	}

	t.tokens = make([]string, n)
	t.attrs = make([]attr, n)
	t.toID = make(map[string]int32, n)
	if v.Scores != nil {
		t.scores = v.Scores[:n]
	}
	for i, text := range v.Tokens {
		if text == "" {
			// llama.cpp renames empty tokens so that they can never match.
			text = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		t.tokens[i] = text
		t.toID[text] = int32(i) // a later duplicate wins, as in llama.cpp
		t.maxLen = max(t.maxLen, len(text))
		t.attrs[i] = attrNormal
		if v.Types != nil {
			t.attrs[i] = attrFromType(v.Types[i])
		}
	}

	if t.algo == algoBPE {
		// Keyed by the merge text itself, "left right": llama.cpp splits it
		// at the first space after the first byte, and mergeRank only looks
		// up pairs that split back the same way. A merge without a space
		// can never match.
		t.ranks = make(map[string]int32, len(v.Merges))
		// Backwards, so that of duplicate merges the first one's rank
		// stays, as with llama.cpp's emplace.
		for i := len(v.Merges) - 1; i >= 0; i-- {
			m := v.Merges[i]
			if len(m) < 2 || strings.IndexByte(m[1:], ' ') < 0 {
				continue
			}
			t.ranks[m] = int32(i)
		}
	}

	setID := func(dst *int32, src *int32) {
		if src != nil && *src >= 0 && int(*src) < n {
			*dst = *src
		}
	}
	setID(&t.bos, v.BOS)
	setID(&t.eos, v.EOS)
	setID(&t.eot, v.EOT)
	setID(&t.eom, v.EOM)
	setID(&t.unk, v.UNK)
	setID(&t.sep, v.SEP)
	setID(&t.pad, v.PAD)
	setID(&t.mask, v.Mask)
	setID(&fimPre, v.FIMPre)
	setID(&fimSuf, v.FIMSuf)
	setID(&fimMid, v.FIMMid)
	setID(&fimPad, v.FIMPad)
	setID(&fimRep, v.FIMRep)
	setID(&fimSep, v.FIMSep)
	if v.AddBOS != nil {
		t.addBOS = *v.AddBOS
	}
	if v.AddEOS != nil {
		t.addEOS = *v.AddEOS
	}
	if v.AddSep != nil {
		t.addSep = *v.AddSep
	}
	// A model type's default id (GPT-2's 11, BERT's 101 ...) may not exist
	// in a small vocabulary; such a token is then absent.
	for _, id := range []*int32{&t.bos, &t.eos, &t.unk, &t.sep, &t.pad, &t.mask} {
		if *id >= int32(n) {
			*id = -1
		}
	}

	// llama.cpp finds end-of-turn and fill-in-the-middle tokens by their text
	// when the file does not name them, and forces them to be control tokens.
	markControl := func(id int32) { t.attrs[id] |= attrControl }
	findByName := func(dst *int32, names ...string) {
		if *dst >= 0 {
			return
		}
		for _, name := range names {
			if id, ok := t.toID[name]; ok {
				*dst = id
				markControl(id)
				return
			}
		}
	}
	findByName(&t.eot, "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>")
	findByName(&t.eom, "<|eom_id|>")
	findByName(&fimPre, "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|code_prefix|>", "<|prefix|>")
	findByName(&fimSuf, "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "<|code_suffix|>", "<|suffix|>")
	findByName(&fimMid, "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "<|code_middle|>", "<|middle|>")
	findByName(&fimPad, "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]")
	findByName(&fimRep, "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>")
	findByName(&fimSep, "<|file_sep|>")

	t.eog = make(map[int32]bool)
	for _, id := range []int32{fimPad, fimRep, fimSep} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	for _, name := range []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
		"<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
		"[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>"} {
		if id, ok := t.toID[name]; ok {
			t.eog[id] = true
			markControl(id)
		}
	}
	// gpt-oss's channel markers must always render, so llama.cpp makes them
	// user-defined whatever the file says.
	for _, name := range []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"} {
		if id, ok := t.toID[name]; ok {
			t.attrs[id] = attrUserDefined
		}
	}
	for _, id := range []int32{t.eos, t.eot, t.eom} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	// In the harmony (gpt-oss) and solar-open formats "<|end|>" closes a
	// message, not the generation.
	hasEOG := func(name string) (int32, bool) {
		id, ok := t.toID[name]
		return id, ok && t.eog[id]
	}
	_, hasReturn := hasEOG("<|return|>")
	_, hasCall := hasEOG("<|call|>")
	_, hasCalls := hasEOG("<|calls|>")
	_, hasFlush := hasEOG("<|flush|>")
	if endID, hasEnd := hasEOG("<|end|>"); hasEnd && ((hasReturn && (hasCall || hasCalls)) || ((hasCall || hasCalls) && hasFlush)) {
		delete(t.eog, endID)
		t.attrs[endID] = attrUserDefined
	}
	// Gemma 4 uses "</s>" as ordinary text.
	if _, hasToolResponse := hasEOG("<|tool_response>"); hasToolResponse {
		if sID, ok := hasEOG("</s>"); ok {
			delete(t.eog, sID)
			t.attrs[sID] = attrNormal
		}
	}

	for id := range t.attrs {
		if t.attrs[id]&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.specials = append(t.specials, int32(id))
		}
	}
	// Longer special tokens are split out first, so that "<|im_end|>" is not
	// cut by a shorter token that happens to be its prefix.
	sort.SliceStable(t.specials, func(i, j int) bool {
		return len(t.tokens[t.specials[i]]) > len(t.tokens[t.specials[j]])
	})

	// Per-token whitespace rules llama.cpp keys on model names.
	lowerName := strings.ToLower(v.Name)
	containsAny := func(s string, subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(s, sub) {
				return true
			}
		}
		return false
	}
	if containsAny(v.Pre, "jina-v2-de", "jina-v2-es", "jina-v2-code") || containsAny(v.Arch, "nomic-bert-moe", "jina-bert-v3") {
		if id, ok := t.toID["<mask>"]; ok {
			t.attrs[id] |= attrLStrip
		}
	} else if containsAny(lowerName, "phi-3", "phi3") {
		for _, id := range t.specials {
			t.attrs[id] |= attrRStrip
		}
		if id, ok := t.toID["</s>"]; ok {
			t.attrs[id] |= attrRStrip
		}
		for _, name := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			if id, ok := t.toID[name]; ok {
				t.attrs[id] &^= attrRStrip
			}
		}
	} else if containsAny(lowerName, "modern-bert") {
		if id, ok := t.toID["[MASK]"]; ok {
			t.attrs[id] |= attrLStrip
		}
	}

	for b := range t.byteTok {
		t.byteTok[b] = t.lookupByteToken(byte(b))
	}
	t.pieces = make([]string, n)
	for id := range t.pieces {
		t.pieces[id] = t.renderPiece(int32(id))
	}
	return t, nil
}

// lookupByteToken finds the token that stands for one raw byte: "<0xXX>" in
// SentencePiece vocabularies (falling back to the byte itself), the mapped
// rune in byte-level BPE ones. -1 when the vocabulary has neither.
func (t *Tokenizer) lookupByteToken(b byte) int32 {
	if t.byteEncoded {
		if id, ok := t.toID[byteToRune[b]]; ok {
			return id
		}
		return -1
	}
	const hex = "0123456789ABCDEF"
	name := string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})
	if id, ok := t.toID[name]; ok {
		return id
	}
	if id, ok := t.toID[string([]byte{b})]; ok {
		return id
	}
	return -1
}

// BOS is the beginning-of-sequence token id, -1 if the vocabulary has none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token id, -1 if the vocabulary has none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT is the end-of-turn token id (e.g. "<|eot_id|>", "<|im_end|>"), -1 if none.
func (t *Tokenizer) EOT() int32 { return t.eot }

// UNK is the unknown token id, -1 if none.
func (t *Tokenizer) UNK() int32 { return t.unk }

// IsEOG reports whether generation should stop at id: EOS, end-of-turn,
// end-of-message and the other tokens llama.cpp treats as end of generation.
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.addBOS && t.bos >= 0 }

// AddEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddEOS() bool { return t.addEOS && t.eos >= 0 }

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// ChatTemplate is the Jinja chat template stored with the vocabulary, if any.
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// Token is the raw text of a token as stored in the vocabulary ("▁the",
// "Ġthe", "<0x0A>"), "" for an id outside it.
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenID looks a token up by its raw vocabulary text.
func (t *Tokenizer) TokenID(text string) (int32, bool) {
	id, ok := t.toID[text]
	return id, ok
}

// IsControl reports whether id is a control token (BOS, EOS, "<|im_start|>"
// ...), which Decode leaves out of the text.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&attrControl != 0
}
