package tokenizer

import (
	"errors"
	"fmt"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
)

// VocabFromGGUF reads the tokenizer metadata (`tokenizer.*`, general.name)
// of a GGUF file.
func VocabFromGGUF(f *gguf.File) (Vocab, error) {
	var v Vocab
	var ok bool
	if v.Model, ok = f.String("tokenizer.ggml.model"); !ok {
		return v, errors.New("tokenizer: GGUF has no string tokenizer.ggml.model")
	}
	v.Pre, _ = f.String("tokenizer.ggml.pre")
	v.Name, _ = f.String("general.name")
	v.Arch, _ = f.String("general.architecture")
	v.ChatTemplate, _ = f.String("tokenizer.chat_template")
	if v.Tokens, ok = f.Strings("tokenizer.ggml.tokens"); !ok {
		return v, errors.New("tokenizer: GGUF has no string array tokenizer.ggml.tokens")
	}
	if _, present := f.Lookup("tokenizer.ggml.scores"); present {
		if v.Scores, ok = f.Float32s("tokenizer.ggml.scores"); !ok {
			return v, errors.New("tokenizer: tokenizer.ggml.scores is not a float array")
		}
	}
	if _, present := f.Lookup("tokenizer.ggml.token_type"); present {
		types, ok := f.Int32s("tokenizer.ggml.token_type")
		if !ok {
			return v, errors.New("tokenizer: tokenizer.ggml.token_type is not an int32 array")
		}
		v.Types = make([]TokenType, len(types))
		for i, t := range types {
			v.Types[i] = TokenType(t)
		}
	}
	if _, present := f.Lookup("tokenizer.ggml.merges"); present {
		if v.Merges, ok = f.Strings("tokenizer.ggml.merges"); !ok {
			return v, errors.New("tokenizer: tokenizer.ggml.merges is not a string array")
		}
	}
	ids := []struct {
		key string
		dst **int32
	}{
		{"bos_token_id", &v.BOS}, {"eos_token_id", &v.EOS}, {"eot_token_id", &v.EOT},
		{"eom_token_id", &v.EOM}, {"unknown_token_id", &v.UNK}, {"seperator_token_id", &v.SEP},
		{"padding_token_id", &v.PAD}, {"mask_token_id", &v.Mask},
		{"fim_pre_token_id", &v.FIMPre}, {"fim_suf_token_id", &v.FIMSuf}, {"fim_mid_token_id", &v.FIMMid},
		{"fim_pad_token_id", &v.FIMPad}, {"fim_rep_token_id", &v.FIMRep}, {"fim_sep_token_id", &v.FIMSep},
		// names older converters wrote
		{"prefix_token_id", &v.FIMPre}, {"suffix_token_id", &v.FIMSuf}, {"middle_token_id", &v.FIMMid},
	}
	for _, s := range ids {
		key := "tokenizer.ggml." + s.key
		if _, present := f.Lookup(key); !present {
			continue
		}
		u, ok := f.Uint(key)
		if !ok {
			return v, fmt.Errorf("tokenizer: %s is not an unsigned integer", key)
		}
		// llama.cpp ignores an id outside the vocabulary and keeps the
		// default; New does the same.
		id := int32(-1)
		if u < uint64(len(v.Tokens)) {
			id = int32(u)
		}
		*s.dst = &id
	}
	flags := []struct {
		key string
		dst **bool
	}{
		{"add_bos_token", &v.AddBOS}, {"add_eos_token", &v.AddEOS}, {"add_sep_token", &v.AddSep},
		{"add_space_prefix", &v.AddSpacePrefix},
	}
	for _, s := range flags {
		key := "tokenizer.ggml." + s.key
		if _, present := f.Lookup(key); !present {
			continue
		}
		b, ok := f.Bool(key)
		if !ok {
			return v, fmt.Errorf("tokenizer: %s is not a bool", key)
		}
		*s.dst = &b
	}
	return v, nil
}

// FromGGUF builds the tokenizer described by a GGUF file's metadata. An
// unsupported tokenizer model or pre-tokenizer gives an error wrapping
// ErrUnsupported.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return New(v)
}

// Open reads the tokenizer of the GGUF file at path.
func Open(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	t, err := FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
