package output

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sharedPath(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (../shared is absent): %v", rel, err)
	}
	return p
}

// The cleaned Alpaca sample was written by Python's json.dump(indent=4);
// re-encoding its records must reproduce the file byte for byte.
func TestWriteAlpacaJSONMatchesPythonDump(t *testing.T) {
	path := sharedPath(t, "reference/alpaca_data_sample_2k.json")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var examples []Example
	if err := json.Unmarshal(want, &examples); err != nil {
		t.Fatal(err)
	}
	records := make([]Record, len(examples))
	for i, e := range examples {
		records[i] = Record{Example: e}
	}
	var got bytes.Buffer
	if err := WriteAlpacaJSON(&got, records); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		g, w := got.Bytes(), want
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		lo := max(0, i-80)
		t.Fatalf("differs at byte %d:\n got: %q\nwant: %q", i, g[lo:min(len(g), i+80)], w[lo:min(len(w), i+80)])
	}
}

func TestWriteAlpacaJSONEscapes(t *testing.T) {
	var buf bytes.Buffer
	rec := Record{Example: Example{Instruction: "Traduza: coração — 東京 😀 <b>&</b>", Input: "a\"b\\c\x01\t", Output: ""}}
	if err := WriteAlpacaJSON(&buf, []Record{rec}); err != nil {
		t.Fatal(err)
	}
	want := "[\n    {\n        \"instruction\": \"Traduza: cora\\u00e7\\u00e3o \\u2014 \\u6771\\u4eac \\ud83d\\ude00 <b>&</b>\",\n" +
		"        \"input\": \"a\\\"b\\\\c\\u0001\\t\",\n        \"output\": \"\"\n    }\n]"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	var back []Example
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back[0] != rec.Example {
		t.Fatalf("does not round-trip: %v %+v", err, back)
	}
}

func TestWriteAlpacaJSONSimilarity(t *testing.T) {
	var buf bytes.Buffer
	rec := Record{
		Example:       Example{Instruction: "x", Input: "", Output: "y"},
		MostSimilar:   []Similar{{"a", 0.7000000000000001}, {"b", 0}, {"a", 0.5}},
		AvgSimilarity: 1e-05,
	}
	if err := WriteAlpacaJSON(&buf, []Record{rec}); err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"a": 0.5,`, `"b": 0.0`, `"avg_similarity_score": 1e-05`, `"output": "y",`} {
		if !strings.Contains(buf.String(), frag) {
			t.Errorf("missing %q in\n%s", frag, buf.String())
		}
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatal("invalid JSON")
	}
}

func TestPythonFloat(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 1: "1.0", 0.7: "0.7", 0.7000000000000001: "0.7000000000000001",
		1e-05: "1e-05", 0.0001: "0.0001", 1e16: "1e+16", 123456789012345.0: "123456789012345.0",
		2.5e-300: "2.5e-300",
	} {
		if got := PythonFloat(f); got != want {
			t.Errorf("PythonFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestWriteFileAtomicKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alpaca_data.json")
	if err := WriteAlpacaFile(path, []Record{{Example: Example{"a", "", "b"}}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := WriteFileAtomic(path, func(w io.Writer) error {
		w.Write([]byte("[partial"))
		return os.ErrClosed
	})
	if err == nil {
		t.Fatal("a failing writer reported success")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("a failed write changed the published file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}
