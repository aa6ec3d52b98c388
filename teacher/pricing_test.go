package teacher

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookupMatchesLongestPrefixAtANameBoundary(t *testing.T) {
	p := DefaultPrices()
	cases := []struct {
		model string
		want  Price
		found bool
	}{
		{"gpt-4o-mini", Price{0.15, 0.60}, true},
		{"gpt-4o-mini-2024-07-18", Price{0.15, 0.60}, true},
		{"gpt-4o-2024-08-06", Price{2.50, 10.00}, true},
		{"gpt-4o-2024-05-13", Price{5.00, 15.00}, true},
		{"GPT-4o", Price{2.50, 10.00}, true},
		{"gpt-4.1-nano-2025-04-14", Price{0.10, 0.40}, true},
		{"gpt-4.1-2025-04-14", Price{2.00, 8.00}, true},
		{"gpt-4-0613", Price{30, 60}, true},
		{"gpt-3.5-turbo-instruct-0914", Price{1.50, 2.00}, true},
		{"gpt-3.5-turbo-0125", Price{0.50, 1.50}, true},
		{"text-davinci-003", Price{20, 20}, true},
		// gpt-4's price must not leak onto a different model that merely
		// shares its first characters.
		{"gpt-4.5-preview", Price{}, false},
		{"gpt-4ox", Price{}, false},
		{"llama-3-8b", Price{}, false},
	}
	for _, tc := range cases {
		got, found := p.Lookup(tc.model)
		if found != tc.found || got != tc.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tc.model, got, found, tc.want, tc.found)
		}
	}
}

func TestCost(t *testing.T) {
	p := DefaultPrices()
	cost, ok := p.Cost("gpt-4o-mini-2024-07-18", Usage{PromptTokens: 2_000_000, CompletionTokens: 500_000})
	if !ok || math.Abs(cost-(0.30+0.30)) > 1e-12 {
		t.Errorf("Cost = %v, %v; want 0.60", cost, ok)
	}
	if _, ok := p.Cost("my-local-model", Usage{PromptTokens: 1}); ok {
		t.Error("an unpriced model reported a cost")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPricesOverlaysTheDefaults(t *testing.T) {
	path := writeFile(t, `{"gpt-4o-mini": {"input": 0.075, "output": 0.3}, "My-Local": {"input": 0, "output": 0}}`)
	p, err := LoadPrices(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Lookup("gpt-4o-mini-2024-07-18"); got != (Price{0.075, 0.3}) {
		t.Errorf("overridden price = %+v", got)
	}
	if got, ok := p.Lookup("my-local"); !ok || got != (Price{}) {
		t.Errorf("added free model = %+v, %v", got, ok)
	}
	if got, _ := p.Lookup("gpt-4.1"); got != (Price{2, 8}) {
		t.Errorf("default kept = %+v", got)
	}
}

func TestLoadPricesRejectsBadFiles(t *testing.T) {
	cases := map[string]string{
		"not json":       `{"gpt-4o": `,
		"missing output": `{"gpt-4o": {"input": 1}}`,
		"typo":           `{"gpt-4o": {"input": 1, "ouptut": 2}}`,
		"negative":       `{"gpt-4o": {"input": -1, "output": 2}}`,
		"empty name":     `{" ": {"input": 1, "output": 2}}`,
		"wrong shape":    `[1, 2]`,
	}
	for name, content := range cases {
		if _, err := LoadPrices(writeFile(t, content)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := LoadPrices(filepath.Join(t.TempDir(), "absent.json")); err == nil || !strings.Contains(err.Error(), "reading price file") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestWithOverride(t *testing.T) {
	base := DefaultPrices()
	p, err := base.WithOverride("gpt-4o", Price{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Lookup("gpt-4o-2024-08-06"); got != (Price{1, 2}) {
		t.Errorf("override = %+v", got)
	}
	if got, _ := base.Lookup("gpt-4o"); got != (Price{2.5, 10}) {
		t.Errorf("WithOverride changed the original table: %+v", got)
	}
	if _, err := base.WithOverride("gpt-4o", Price{-1, 0}); err == nil {
		t.Error("negative override: want an error")
	}
	if _, err := base.WithOverride("", Price{1, 1}); err == nil {
		t.Error("empty model: want an error")
	}
}

func TestEstimateTokens(t *testing.T) {
	cases := map[string]int{"": 0, "a": 1, "abcd": 1, "abcde": 2, "12345678": 2, "héllo": 2}
	for s, want := range cases {
		if got := EstimateTokens(s); got != want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", s, got, want)
		}
	}
}
