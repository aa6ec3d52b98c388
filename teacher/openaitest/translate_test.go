package openaitest

import (
	"strings"
	"testing"
)

func TestTranslateResponder(t *testing.T) {
	r := TranslateResponder(TranslateFaults{}, 1)
	got := r(Call{Prompt: "{\n  \"instruction\": \"Open ⟦0⟧ now\",\n  \"output\": \"São <b>5</b>\"\n}"}).Text
	want := `{"instruction": "Bcraã ⟦0⟧ abjã", "output": "Fããbã <oã>5</oã>"}`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if reply := r(Call{Prompt: "translate this"}).Text; strings.HasPrefix(reply, "{") {
		t.Errorf("prose prompt answered with JSON: %s", reply)
	}
}

func FuzzTranslateText(f *testing.F) {
	for _, s := range []string{"Hello, world", "São Paulo ãã", "aã", "⟦1⟧ x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if back := UntranslateText(TranslateText(s)); back != s {
			t.Fatalf("Untranslate(Translate(%q)) = %q", s, back)
		}
	})
}
