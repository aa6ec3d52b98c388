package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

type engineCase struct {
	Name         string  `json:"name"`
	Prompt       string  `json:"prompt"`
	PromptIDs    []int32 `json:"prompt_ids"`
	GeneratedIDs []int32 `json:"generated_ids"`
	Text         string  `json:"text"`
}

// TestRandomModelPrompts checks the prompt ids, BOS included, that llama.cpp
// fed the random-weight reference models, and the text it printed for the
// generated ids.
func TestRandomModelPrompts(t *testing.T) {
	dir := filepath.Join(sharedDir, "models", "random")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference data %s is absent (it lives beside the checkout as ../shared): %v", dir, err)
	}
	for _, tc := range []struct {
		model  string
		addBOS bool
	}{{"llama-spm-small-q4_k_m", true}, {"qwen2-small-q8_0", false}} {
		t.Run(tc.model, func(t *testing.T) {
			tok, err := Open(filepath.Join(dir, tc.model+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			if tok.AddBOS() != tc.addBOS {
				t.Errorf("AddBOS() = %v, want %v", tok.AddBOS(), tc.addBOS)
			}
			raw, err := os.ReadFile(filepath.Join(dir, tc.model+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Cases []engineCase `json:"cases"`
			}
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			if len(ref.Cases) == 0 {
				t.Fatal("no cases")
			}
			for _, c := range ref.Cases {
				if got := tok.Encode(c.Prompt, true, false); !sameIDs(got, c.PromptIDs) {
					t.Errorf("%s: Encode = %v\nwant %v", c.Name, got, c.PromptIDs)
				}
				d := tok.NewStreamDecoder()
				var text strings.Builder
				for _, id := range c.GeneratedIDs {
					text.WriteString(d.Add(id))
				}
				text.WriteString(d.Flush())
				if got := strings.ToValidUTF8(text.String(), "\uFFFD"); got != c.Text {
					t.Errorf("%s: streamed text = %q\nwant %q", c.Name, got, c.Text)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// byteTokens lists "<0x00>" ... "<0xFF>" as SentencePiece byte tokens.
func byteTokens() (toks []string, types []TokenType) {
	const hex = "0123456789ABCDEF"
	for b := 0; b < 256; b++ {
		toks = append(toks, "<0x"+string(hex[b>>4])+string(hex[b&15])+">")
		types = append(types, TypeByte)
	}
	return toks, types
}

func tinySPM(t testing.TB, scores map[string]float32) *Tokenizer {
	t.Helper()
	toks := []string{"<unk>", "<s>", "</s>"}
	types := []TokenType{TypeUnknown, TypeControl, TypeControl}
	bt, btypes := byteTokens()
	toks, types = append(toks, bt...), append(types, btypes...)
	var sc []float32
	for range toks {
		sc = append(sc, 0)
	}
	for _, piece := range []string{"▁", "a", "b", "c", "▁a", "ab", "bc", "<|user|>"} {
		toks = append(toks, piece)
		typ := TypeNormal
		if piece == "<|user|>" {
			typ = TypeUserDefined
		}
		types = append(types, typ)
		sc = append(sc, scores[piece])
	}
	tok, err := New(Vocab{Model: "llama", Tokens: toks, Types: types, Scores: sc})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pieces(tok *Tokenizer, ids []int32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, tok.Token(id))
	}
	return out
}

func TestSPMMergesByScore(t *testing.T) {
	// "▁ab" is not a token, so the result depends on which first merge
	// wins: "▁a" or "ab".
	left := tinySPM(t, map[string]float32{"▁a": -1, "ab": -2})
	if got := strings.Join(pieces(left, left.Encode("ab", false, false)), " "); got != "▁a b" {
		t.Errorf("▁a preferred: got %q", got)
	}
	right := tinySPM(t, map[string]float32{"▁a": -2, "ab": -1})
	if got := strings.Join(pieces(right, right.Encode("ab", false, false)), " "); got != "▁ ab" {
		t.Errorf("ab preferred: got %q", got)
	}
	// Equal scores: the leftmost pair merges first ("ab" before "bc").
	tie := tinySPM(t, map[string]float32{"▁a": -5, "ab": -1, "bc": -1})
	if got := strings.Join(pieces(tie, tie.Encode("abc", false, false)), " "); got != "▁ ab c" {
		t.Errorf("tie: got %q", got)
	}
}

func TestSPMByteFallbackAndSpecials(t *testing.T) {
	tok := tinySPM(t, nil)
	got := pieces(tok, tok.Encode("aé", true, false))
	want := []string{"<s>", "▁a", "<0xC3>", "<0xA9>"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
	if d := tok.Decode(tok.Encode("aé", false, false)); d != "aé" {
		t.Errorf("Decode = %q", d)
	}
	// llama.cpp strips the prefix space only from the very first piece; a
	// leading BOS renders as nothing but uses up that chance.
	if d := tok.Decode(tok.Encode("aé", true, false)); d != " aé" {
		t.Errorf("Decode with BOS = %q", d)
	}
	// A user-defined token is split out even without parseSpecial, and the
	// text after it gets the space prefix again.
	got = pieces(tok, tok.Encode("a<|user|>b", false, false))
	want = []string{"▁a", "<|user|>", "▁", "b"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("user-defined: got %q, want %q", got, want)
	}
	// Control tokens are text unless parseSpecial.
	if ids := tok.Encode("</s>", false, false); len(ids) < 2 {
		t.Errorf("</s> without parseSpecial = %q", pieces(tok, ids))
	}
	if ids := tok.Encode("</s>", false, true); len(ids) != 1 || ids[0] != 2 {
		t.Errorf("</s> with parseSpecial = %v", ids)
	}
	if !tok.IsEOG(2) || tok.IsEOG(1) {
		t.Error("EOS must be end-of-generation, BOS not")
	}
	if tok.Piece(tok.byteTok['\n']) != "\n" || tok.Piece(1) != "<s>" || tok.Decode([]int32{1, 2}) != "" {
		t.Error("byte pieces render as the byte, control pieces only through Piece")
	}
}

func TestUnsupportedTokenizers(t *testing.T) {
	for _, v := range []Vocab{
		{Model: "t5", Tokens: []string{"a"}},
		{Model: "gpt2", Pre: "deepseek-llm", Tokens: []string{"a"}, Merges: []string{"a a"}},
		{Model: "", Tokens: []string{"a"}},
	} {
		if _, err := New(v); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s/%q: err = %v, want ErrUnsupported", v.Model, v.Pre, err)
		}
	}
	if _, err := New(Vocab{Model: "llama"}); err == nil {
		t.Error("empty vocabulary accepted")
	}
}

// TestPreTokenizerWords checks word splits against the regexes the
// pre-tokenizers implement, on cases chosen for their corners.
func TestPreTokenizerWords(t *testing.T) {
	cases := []struct {
		style splitStyle
		text  string
		want  []string
	}{
		{splitGPT2, "Hello world", []string{"Hello", " world"}},
		{splitGPT2, "it's  12345 ok!!\n\n x", []string{"it", "'s", " ", " 12345", " ok", "!!", "\n\n", " x"}},
		{splitGPT2, "a   ", []string{"a", "   "}},
		{splitLlama3, "I'LL pay 1234567 now.\r\n\r\n  Bye", []string{"I", "'LL", " pay", " ", "123", "456", "7", " now", ".\r\n\r\n", " ", " Bye"}},
		{splitLlama3, "x \n\n y", []string{"x", " \n\n", " y"}},
		{splitLlama3, "(hello", []string{"(hello"}},
		{splitQwen2, "v2024", []string{"v", "2", "0", "2", "4"}},
		{splitDigitsThenGPT2, "ab12 c", []string{"ab", "1", "2", " c"}},
	}
	for _, c := range cases {
		cpts := []rune(c.text)
		lens := preTokenizer{style: c.style}.split(cpts, nil)
		var got []string
		pos := 0
		for _, n := range lens {
			got = append(got, string(cpts[pos:pos+n]))
			pos += n
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("style %d %q:\n got %q\nwant %q", c.style, c.text, got, c.want)
		}
	}
}

func TestStreamDecoderHoldsPartialCharacters(t *testing.T) {
	tok := tinySPM(t, nil)
	text := "a東京é"
	ids := tok.Encode(text, false, false)
	d := tok.NewStreamDecoder()
	var out strings.Builder
	for _, id := range ids {
		chunk := d.Add(id)
		if !utf8.ValidString(chunk) {
			t.Fatalf("chunk %q is not valid UTF-8", chunk)
		}
		out.WriteString(chunk)
	}
	if rest := d.Flush(); rest != "" {
		t.Errorf("Flush = %q after complete text", rest)
	}
	if out.String() != " "+text {
		t.Errorf("streamed %q, want %q", out.String(), " "+text)
	}
	// An unfinished character comes out on Flush, as is.
	d.Add(tok.byteTok[0xE6])
	if got := d.Flush(); got != "\xE6" {
		t.Errorf("Flush = %q", got)
	}
}

func TestEOGNameRules(t *testing.T) {
	toks := []string{"<unk>", "<s>", "</s>", "<|end|>", "<|return|>", "<|call|>", "<|im_end|>", "▁", "a"}
	types := []TokenType{TypeUnknown, TypeControl, TypeControl, TypeControl, TypeControl, TypeControl, TypeNormal, TypeNormal, TypeNormal}
	tok, err := New(Vocab{Model: "llama", Tokens: toks, Types: types})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int32]bool{1: false, 2: true, 3: false, 4: true, 5: true, 6: true, 8: false} {
		if tok.IsEOG(id) != want {
			t.Errorf("IsEOG(%s) = %v, want %v", toks[id], !want, want)
		}
	}
	// "<|im_end|>" was typed normal; llama.cpp makes end-of-turn tokens control.
	if !tok.IsControl(6) || tok.EOT() != 6 {
		t.Errorf("<|im_end|>: control %v, EOT %d", tok.IsControl(6), tok.EOT())
	}
	// In the harmony format "<|end|>" becomes user-defined: split out of
	// raw text and rendered by Decode.
	ids := tok.Encode("a<|end|>", false, false)
	if len(ids) == 0 || ids[len(ids)-1] != 3 || tok.Decode(ids) != "a<|end|>" {
		t.Errorf("harmony <|end|>: ids %v decode %q", ids, tok.Decode(ids))
	}
}

// TestStories260KReference checks the prompt ids, pieces and text llama.cpp
// printed for the stories260K reference run.
func TestStories260KReference(t *testing.T) {
	models := filepath.Join(sharedDir, "models")
	raw, err := os.ReadFile(filepath.Join(models, "expected", "llamacpp_stories260K.txt"))
	if err != nil {
		t.Skipf("reference data is absent (it lives beside the checkout as ../shared): %v", err)
	}
	// The first section is stories260K.gguf; its lines are "key: JSON".
	field := func(prefix string, v any) {
		t.Helper()
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				if err := json.Unmarshal([]byte(rest), v); err != nil {
					t.Fatalf("%s: %v", prefix, err)
				}
				return
			}
		}
		t.Fatalf("no line %q", prefix)
	}
	var promptIDs, genIDs []int32
	var promptPieces, genPieces []string
	var text string
	field("# prompt tokens (5): ", &promptIDs)
	field("# prompt pieces: ", &promptPieces)
	field("ids: ", &genIDs)
	field("pieces: ", &genPieces)
	field("text: ", &text)

	tok, err := Open(filepath.Join(models, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("Once upon a time", true, false); !sameIDs(got, promptIDs) {
		t.Errorf("prompt ids %v, want %v", got, promptIDs)
	}
	for i, id := range append(promptIDs, genIDs...) {
		want := append(promptPieces, genPieces...)[i]
		if got := tok.Piece(id); got != want {
			t.Errorf("Piece(%d) = %q, want %q", id, got, want)
		}
	}
	// The runner printed the prompt (detokenized without BOS) followed by
	// the generated pieces.
	d := tok.NewStreamDecoder()
	got := tok.Decode(promptIDs[1:])
	for _, id := range genIDs {
		got += d.Add(id)
	}
	got += d.Flush()
	if got != text {
		t.Errorf("text %q\nwant %q", got, text)
	}
}

func TestFirstOfNFD(t *testing.T) {
	for r, want := range map[rune]rune{'a': 'a', 'é': 'e', 'Ä': 'A', 'ṩ': 's', 'Ǖ': 'U', '한': 0x1112, '東': '東', 'ﬁ': 'ﬁ'} {
		if got := firstOfNFD(r); got != want {
			t.Errorf("firstOfNFD(%q) = %q, want %q", r, got, want)
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := tinySPM(t, map[string]float32{"▁a": -1, "ab": -2})
	want := tok.Encode("abc aé <|user|> ab", true, false)
	done := make(chan []int32)
	for range 8 {
		go func() {
			var got []int32
			for range 200 {
				got = tok.Encode("abc aé <|user|> ab", true, false)
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; !sameIDs(got, want) {
			t.Errorf("concurrent Encode = %v, want %v", got, want)
		}
	}
}

func TestSmallVocabWithoutDefaultSpecials(t *testing.T) {
	tok, err := New(Vocab{Model: "llama", Tokens: []string{"▁a"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != -1 || tok.EOS() != -1 || tok.AddBOS() {
		t.Errorf("BOS %d EOS %d AddBOS %v: defaults outside the vocabulary must be absent", tok.BOS(), tok.EOS(), tok.AddBOS())
	}
	// "▁a" then "▁" and "b", which are not tokens and have no byte tokens:
	// each of their four bytes becomes UNK (token 0 by default), where
	// llama.cpp would throw.
	if got := tok.Encode("a b", true, true); !sameIDs(got, []int32{0, 0, 0, 0, 0}) {
		t.Errorf("Encode = %v", got)
	}
}

// TestCleanSpaces checks llama.cpp's clean-up passes, worked through by hand
// on its C loops.
func TestCleanSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"Hello , world !":    "Hello, world!",
		" ?x":                "?x",
		"a ' b":              "a'b",
		"a ' ' b":            "a'' b",
		"it 's I 'm we 're":  "it's I'm we're",
		"don 't we 'll I 'd": "don 't we 'll I 'd",
		"they 've":           "they've",
		"end '":              "end '",
	} {
		if got := cleanSpaces(in); got != want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMergeLinesSplitAtFirstSpace pins llama.cpp's parsing of merge lines:
// "a b c" is the pair ("a", "b c"), and " x y" (a space on the left) is
// (" x", "y").
func TestMergeLinesSplitAtFirstSpace(t *testing.T) {
	tok := tinyBPE(t, "gpt-2")
	tok.ranks = map[string]int32{"a b c": 0, " x y": 1}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	for _, c := range []struct {
		left, right string
		ok          bool
	}{{"a", "b c", true}, {"a b", "c", false}, {" x", "y", true}, {"a", "b", false}} {
		if _, ok := tok.mergeRank(c.left, c.right, sc); ok != c.ok {
			t.Errorf("mergeRank(%q, %q) found = %v, want %v", c.left, c.right, ok, c.ok)
		}
	}
}

func TestDetokenizeFlags(t *testing.T) {
	tok := tinySPM(t, nil)
	ids := append(tok.Encode("ab", true, false), 2) // <s> ▁a b </s>
	for _, c := range []struct {
		removeSpecial, unparseSpecial bool
		want                          string
	}{
		{false, false, " ab"},       // BOS renders empty but uses up the space removal
		{true, false, " ab"},        // BOS dropped: llama.cpp then keeps the space
		{false, true, "<s> ab</s>"}, // control tokens as text
		{true, true, " ab</s>"},     // EOS is only dropped where the vocabulary adds it
	} {
		if got := tok.Detokenize(ids, c.removeSpecial, c.unparseSpecial); got != c.want {
			t.Errorf("Detokenize(remove=%v, unparse=%v) = %q, want %q", c.removeSpecial, c.unparseSpecial, got, c.want)
		}
	}
}
