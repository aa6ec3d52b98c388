package prompts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func spanTexts(spans []Span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Kind + ":" + s.Text
	}
	return out
}

func TestProtectorFindsSpans(t *testing.T) {
	p, err := NewProtector([]string{`ACME-\d+`})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   string
		want []string
	}{
		{"Visit https://example.com/a?b=1. Then mail bob.smith@example.org!",
			[]string{"url:https://example.com/a?b=1", "email:bob.smith@example.org"}},
		{"Run `ls -l` then:\n```python\nprint('http://x.y 5 kg')\n```\nDone.",
			[]string{"inline_code:`ls -l`", "code_block:```python\nprint('http://x.y 5 kg')\n```"}},
		{"It weighs 5 kg and costs $25, 20% off, at -4 °C and 3.5GHz.",
			[]string{"number_unit:5 kg", "number_unit:$25", "number_unit:20%", "number_unit:4 °C", "number_unit:3.5GHz"}},
		{"Dear {name}, your order {{order_id}} ships {}.",
			[]string{"placeholder:{name}", "placeholder:{{order_id}}", "placeholder:{}"}},
		{"Ticket ACME-123 is open; page 5 a list of 3 items.", []string{"keep:ACME-123"}},
		{"A literal ⟦0⟧ and a lone ⟧ bracket.", []string{"bracket:⟦0⟧", "bracket:⟧"}},
		{"Unterminated ```go\nfmt.Println(1)", []string{"code_block:```go\nfmt.Println(1)"}},
		{"Plain text with 3 numbers like 1990 and 42.", nil},
	}
	for _, tc := range cases {
		masked, spans := p.Mask(tc.in, 0)
		got := spanTexts(spans)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Mask(%q) spans = %q, want %q", tc.in, got, tc.want)
		}
		back, err := Unmask(masked, spans)
		if err != nil || back != tc.in {
			t.Errorf("Unmask(Mask(%q)) = %q, %v", tc.in, back, err)
		}
		if strings.Count(masked, "⟦") != len(spans) {
			t.Errorf("Mask(%q) = %q: brackets besides the placeholders", tc.in, masked)
		}
	}
	if _, err := NewProtector([]string{"(unclosed"}); err == nil || !strings.Contains(err.Error(), "--keep") {
		t.Errorf("a bad --keep regex: %v", err)
	}
}

func TestUnmaskRejectsBrokenSpans(t *testing.T) {
	p, _ := NewProtector(nil)
	masked, spans := p.Mask("Open https://a.example/x and https://b.example/y now.", 3)
	if masked != "Open ⟦3⟧ and ⟦4⟧ now." {
		t.Fatalf("masked %q", masked)
	}
	if out, err := Unmask("Abra ⟦4⟧ e ⟦3⟧ agora.", spans); err != nil || out != "Abra https://b.example/y e https://a.example/x agora." {
		t.Errorf("reordered placeholders: %q %v", out, err)
	}
	for _, bad := range []string{
		"Abra ⟦3⟧ agora.",           // missing
		"Abra ⟦3⟧ ⟦3⟧ e ⟦4⟧ agora.", // repeated
		"Abra ⟦3⟧ e ⟦5⟧ ⟦4⟧.",       // unknown
		"Abra ⟦3⟧ e ⟦ 4⟧ agora.",    // damaged
		"Abra ⟦3⟧ e [4] agora.",     // replaced
		"Abra ⟦3⟧ e ⟦4⟧ agora ⟦.",   // stray bracket
	} {
		_, err := Unmask(bad, spans)
		if ReasonOf(err) != ReasonSpanBroken {
			t.Errorf("Unmask(%q) = %v, want %s", bad, err, ReasonSpanBroken)
		}
	}
}

func TestParseTranslateResponse(t *testing.T) {
	keys := []string{"instruction", "output"}
	good := map[string]string{"instruction": "Diga olá.", "output": "Olá <b>&</b>"}
	for _, text := range []string{
		`{"instruction": "Diga olá.", "output": "Olá <b>&</b>"}`,
		"```json\n{\"output\": \"Olá <b>&</b>\", \"instruction\": \"Diga olá.\"}\n```",
		"  {\"instruction\":\"Diga ol\\u00e1.\",\"output\":\"Olá <b>&</b>\"}\n",
	} {
		got, err := ParseTranslateResponse(text, keys)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		for k, v := range good {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q", text, k, got[k], v)
			}
		}
	}
	for text, reason := range map[string]string{
		`{"instruction": "a", "output": "b", "note": "c"}`:   ReasonAddedField,
		`{"instruction": "a"}`:                               ReasonMissingField,
		`{"instruction": "a", "output": 3}`:                  ReasonNotString,
		`{"instruction": "a", "output": "b", "output": "c"}`: ReasonDuplicateField,
		`{"instruction": "a", "output": "b"`:                 ReasonInvalidJSON,
		`{"instruction": "a", "output": "b"} trailing`:       ReasonInvalidJSON,
		`Here is the translation: {"instruction": "a"}`:      ReasonInvalidJSON,
		`["a", "b"]`: ReasonNotObject,
		`{"instruction": "a", "output": "b", "input": "x"}`: ReasonAddedField,
		``: ReasonInvalidJSON,
	} {
		_, err := ParseTranslateResponse(text, keys)
		if ReasonOf(err) != reason {
			t.Errorf("%q: %v, want %s", text, err, reason)
		}
	}
}

func TestParseTranslateResponseEmptyEcho(t *testing.T) {
	got, err := ParseTranslateResponse(`{"instruction": "a", "input": "", "output": "b"}`, []string{"instruction", "output"}, "input")
	if err != nil || len(got) != 2 {
		t.Fatalf("an empty input echoed back: %v %v", got, err)
	}
	_, err = ParseTranslateResponse(`{"instruction": "a", "input": "x", "output": "b"}`, []string{"instruction", "output"}, "input")
	if ReasonOf(err) != ReasonAddedField {
		t.Fatalf("a non-empty unsent field: %v", err)
	}
}

func TestRenderTranslate(t *testing.T) {
	g := Glossary{{Source: "prompt", Target: "prompt"}}
	sys, user, err := RenderTranslate(TranslatePrompt{From: "English", To: "Portuguese",
		Keys: []string{"instruction", "output"}, Values: []string{"Say <hi> & ⟦0⟧", "Hi"}, Glossary: g, Retry: "span_broken: x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"into Portuguese", "⟦0⟧", "prompt => prompt", "rejected: span_broken: x"} {
		if !strings.Contains(sys, w) {
			t.Errorf("system message lacks %q:\n%s", w, sys)
		}
	}
	var obj map[string]string
	if err := json.Unmarshal([]byte(user), &obj); err != nil || obj["instruction"] != "Say <hi> & ⟦0⟧" || len(obj) != 2 {
		t.Errorf("user message %q: %v %v", user, obj, err)
	}
	if !strings.Contains(user, "<hi> &") {
		t.Errorf("user message HTML-escaped: %q", user)
	}
	if _, _, err := RenderTranslate(TranslatePrompt{}); err == nil {
		t.Error("no keys: no error")
	}
}

func TestGlossary(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	g, err := LoadGlossary(write("g.tsv", "# terms\nmachine learning\taprendizado de máquina\n\nlearning\taprendizagem\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 2 || g[0].Source != "machine learning" {
		t.Fatalf("glossary %v", g)
	}
	rel := g.Relevant("What is Machine Learning?")
	if len(rel) != 2 {
		t.Errorf("relevant %v", rel)
	}
	if rel := g.Relevant("Relearning things"); len(rel) != 0 {
		t.Errorf("a term inside a word counted: %v", rel)
	}
	if miss := rel.Missing("O que é aprendizado de máquina?"); len(miss) != 1 || miss[0] != "learning" {
		t.Errorf("missing %v", miss)
	}
	if g, err := LoadGlossary(write("g.json", `{"dataset": "conjunto de dados", "fine-tune": "ajuste fino"}`)); err != nil || len(g) != 2 {
		t.Errorf("json glossary %v %v", g, err)
	}
	for name, content := range map[string]string{
		"nosep.tsv": "a\tb\nno separator here\n",
		"dup.tsv":   "Term\tx\nterm\ty\n",
		"num.json":  "{\n\"a\": \"b\",\n\"c\": 3\n}",
		"empty.tsv": "# nothing\n",
	} {
		_, err := LoadGlossary(write(name, content))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err = LoadGlossary(write("line.json", "{\n\"a\": \"b\",\n\"c\": 3\n}"))
	if err == nil || !strings.Contains(err.Error(), "line.json:3") {
		t.Errorf("json error line: %v", err)
	}
}

func TestLanguageName(t *testing.T) {
	for code, want := range map[string]string{"pt": "Portuguese", "PT-br": "Brazilian Portuguese", "zh_TW": "Chinese (Traditional)",
		"de-AT": "German (de-AT)", "Klingon": "Klingon"} {
		if got := LanguageName(code); got != want {
			t.Errorf("LanguageName(%q) = %q, want %q", code, got, want)
		}
	}
}

// FuzzMaskUnmask: masking then unmasking any text gives it back, and the
// masked text holds no bracket except the placeholders.
func FuzzMaskUnmask(f *testing.F) {
	for _, s := range []string{"see https://x.io/a.", "```\ncode\n```", "5 kg of {x}", "⟦1⟧⟧⟦", "a@b.co `c`"} {
		f.Add(s)
	}
	p, _ := NewProtector([]string{`X\d+`})
	f.Fuzz(func(t *testing.T, s string) {
		masked, spans := p.Mask(s, 7)
		back, err := Unmask(masked, spans)
		if err != nil || back != s {
			t.Fatalf("Unmask(Mask(%q)) = %q, %v", s, back, err)
		}
		if strings.Count(masked, "⟦") != len(spans) || strings.Count(masked, "⟧") != len(spans) {
			t.Fatalf("Mask(%q) = %q with %d spans", s, masked, len(spans))
		}
	})
}

// FuzzParseTranslateResponse: no input panics, and an accepted answer has
// exactly the keys asked for.
func FuzzParseTranslateResponse(f *testing.F) {
	for _, s := range []string{`{"instruction":"a","input":"b"}`, "```json\n{}\n```", `{"a":1}`, `[`, `{"instruction":"a","instruction":"b"}`} {
		f.Add(s)
	}
	keys := []string{"instruction", "input"}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTranslateResponse(s, keys)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("%q: error without a reason: %v", s, err)
			}
			return
		}
		if len(got) != len(keys) {
			t.Fatalf("%q: accepted %v", s, got)
		}
	})
}

func FuzzUnmask(f *testing.F) {
	f.Add("⟦0⟧ x ⟦1⟧")
	f.Add("⟦1⟧⟦0⟧⟦")
	spans := []Span{{ID: 0, Kind: "url", Text: "http://a"}, {ID: 1, Kind: "keep", Text: "K"}}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Unmask(s, spans)
		if err != nil {
			return
		}
		if strings.Count(out, "http://a") < 1 || strings.Contains(out, "⟦") {
			t.Fatalf("Unmask(%q) = %q accepted", s, out)
		}
	})
}
