package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sharedRouge(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "reference", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (needs ../shared beside the repository): %v", p, err)
	}
	return p
}

func readStrings(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// TestDedupeStressMatchesRougeScore runs the real binary on the stress
// candidates with Alpaca's seeds: it must keep exactly what rouge_score's
// loop kept.
func TestDedupeStressMatchesRougeScore(t *testing.T) {
	in := sharedRouge(t, filepath.Join("rouge", "stress_candidates.json"))
	seeds := sharedRouge(t, "alpaca_seed_tasks.jsonl")
	want := readStrings(t, sharedRouge(t, filepath.Join("rouge", "stress_candidates.kept.json")))
	for _, threads := range []string{"1", "2"} {
		out := filepath.Join(t.TempDir(), "kept.json")
		stdout, stderr, code := runCLI(t, nil, "dedupe", in, "-o", out, "--seed-tasks", seeds, "--threads", threads)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "kept 2026, rejected 992 of 3018") {
			t.Errorf("summary: %q", stdout)
		}
		got := readStrings(t, out)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("threads %s: kept %d items, rouge_score kept %d (or others)", threads, len(got), len(want))
		}
		data, _ := os.ReadFile(out)
		if !strings.HasPrefix(string(data), "[\n    \"Are the two sentences") || strings.HasSuffix(string(data), "\n") {
			t.Errorf("not json.dump(indent=4) layout: %q", string(data)[:40])
		}
	}
}

func TestDedupeRecordsKeepFieldsAndShape(t *testing.T) {
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "in.jsonl")
	lines := []string{
		`{"instruction": "Give three tips for staying healthy.", "input": "", "output": "a", "id": 7, "meta": {"src": "x"}}`,
		`{"instruction": "give THREE tips, for staying healthy!!", "input": "", "output": "b"}`,
		`{"instruction": "Translate the sentence into French.", "input": "Hello", "output": "Bonjour", "tags": ["t"]}`,
		`{"instruction": "Write a haiku about autumn leaves.", "input": "", "output": "Give three tips for staying healthy."}`,
	}
	os.WriteFile(jsonl, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "new", "dir", "out.jsonl") // parents are created
	if _, stderr, code := runCLI(t, nil, "dedupe", jsonl, "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	data, _ := os.ReadFile(out)
	if want := lines[0] + "\n" + lines[2] + "\n" + lines[3] + "\n"; string(data) != want {
		t.Fatalf("JSONL output:\n%s\nwant:\n%s", data, want)
	}
	// --field output: item 3's output repeats item 0's instruction, but
	// only outputs are compared.
	if _, stderr, code := runCLI(t, nil, "dedupe", jsonl, "-o", out, "--field", "output"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	data, _ = os.ReadFile(out)
	if got := strings.Count(string(data), "\n"); got != 4 {
		t.Fatalf("--field output kept %d lines, want 4:\n%s", got, data)
	}

	list := filepath.Join(dir, "in.json")
	os.WriteFile(list, []byte("["+strings.Join(lines, ",\n")+"]"), 0o644)
	outList := filepath.Join(dir, "out.json")
	if _, stderr, code := runCLI(t, nil, "dedupe", list, "-o", outList); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var recs []map[string]any
	data, _ = os.ReadFile(outList)
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0]["meta"].(map[string]any)["src"] != "x" || recs[1]["tags"] == nil {
		t.Fatalf("records not preserved: %s", data)
	}
	if !strings.HasPrefix(string(data), "[\n    {\n        \"instruction\": \"Give three tips for staying healthy.\",\n") {
		t.Fatalf("layout: %q", data[:60])
	}
}

func TestDedupeCharacterMetrics(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	os.WriteFile(in, []byte(`["Summarize this article.", "Summarise this article.", "List five fruits.", "Summarize this article!"]`), 0o644)
	out := filepath.Join(dir, "out.json")
	for _, m := range []string{"levenshtein", "jaro-winkler", "jaccard", "sorensen-dice"} {
		if _, stderr, code := runCLI(t, nil, "dedupe", in, "-o", out, "--metric", m, "--threshold", "0.8"); code != 0 {
			t.Fatalf("%s: exit %d: %s", m, code, stderr)
		}
		if got := readStrings(t, out); !reflect.DeepEqual(got, []string{"Summarize this article.", "List five fruits."}) {
			t.Errorf("%s kept %q", m, got)
		}
	}
}

func TestDedupeUnicodeTokenizer(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	os.WriteFile(in, []byte(`["请写一首关于秋天的诗", "请写一首关于秋天的诗歌", "解释量子计算的基本原理"]`), 0o644)
	out := filepath.Join(dir, "out.json")
	// rouge_score's tokenizer sees no tokens in Chinese: every score is 0
	// and everything is kept.
	runCLI(t, nil, "dedupe", in, "-o", out)
	if got := readStrings(t, out); len(got) != 3 {
		t.Fatalf("rouge_score tokenizer kept %q", got)
	}
	if _, stderr, code := runCLI(t, nil, "dedupe", in, "-o", out, "--tokenizer", "unicode"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := readStrings(t, out); !reflect.DeepEqual(got, []string{"请写一首关于秋天的诗", "解释量子计算的基本原理"}) {
		t.Fatalf("unicode tokenizer kept %q", got)
	}
}

func TestDedupeBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`[{"instruction": "a b c d"}]`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("[\n{\"instruction\": \"a\"},\n{\"input\": \"b\"}\n]"), 0o644)
	seeds := filepath.Join(dir, "seeds.jsonl")
	os.WriteFile(seeds, []byte("{\"instruction\": \"x\"}\n{\"name\": \"y\"}\n"), 0o644)
	out := filepath.Join(dir, "out.json")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"dedupe", good}, "-o OUT.json is required"},
		{[]string{"dedupe", bad, "-o", out}, `bad.json:3: item 1: no field "instruction"`},
		{[]string{"dedupe", good, "-o", out, "--seed-tasks", seeds}, "seeds.jsonl:2: no \"instruction\" string field"},
		{[]string{"dedupe", good, "-o", out, "--metric", "cosine"}, `unknown metric "cosine"`},
		{[]string{"dedupe", good, "-o", out, "--tokenizer", "bpe"}, `unknown tokenizer "bpe"`},
		{[]string{"dedupe", filepath.Join(dir, "missing.json"), "-o", out}, "missing.json"},
	}
	for _, c := range cases {
		_, stderr, code := runCLI(t, nil, c.args...)
		if code != exitBadInput || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, exitBadInput, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output file was written despite bad input")
	}
}
