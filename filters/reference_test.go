package filters

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// sharedDir is the read-only reference data beside the repository clone.
var sharedDir = filepath.Join("..", "..", "shared")

func sharedFile(t testing.TB, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{sharedDir, "reference"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (needs ../shared beside the repository): %v", p, err)
	}
	return p
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func seedInstructions(t testing.TB) []string {
	t.Helper()
	type seed struct {
		Instruction string `json:"instruction"`
	}
	var out []string
	for _, s := range readJSONL[seed](t, sharedFile(t, "alpaca_seed_tasks.jsonl")) {
		out = append(out, s.Instruction)
	}
	if len(out) != 175 {
		t.Fatalf("want 175 seed tasks, got %d", len(out))
	}
	return out
}

// parseHexFloat reads Python's float.hex() output.
func parseHexFloat(t *testing.T, s string) float64 {
	t.Helper()
	if s == "0x0.0p+0" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("fmeasure_hex %q: %v", s, err)
	}
	return f
}

func TestRougeLMatchesRougeScorePairs(t *testing.T) {
	type pairRef struct {
		A, B         string
		TokensA      []string `json:"tokens_a"`
		TokensB      []string `json:"tokens_b"`
		LCS          int
		Precision    float64
		Recall       float64
		FmeasureHex  string `json:"fmeasure_hex"`
		FmeasureRepr string `json:"fmeasure_repr"`
	}
	refs := readJSONL[pairRef](t, sharedFile(t, "rouge", "pairs.rouge_score.jsonl"))
	if len(refs) != 17 {
		t.Fatalf("want 17 pairs, got %d", len(refs))
	}
	for i, r := range refs {
		ta, tb := Tokenize(r.A, TokenizerRougeScore), Tokenize(r.B, TokenizerRougeScore)
		if !slices.Equal(ta, r.TokensA) && !(len(ta) == 0 && len(r.TokensA) == 0) {
			t.Errorf("pair %d: tokens of %q = %q, rouge_score %q", i, r.A, ta, r.TokensA)
		}
		if !slices.Equal(tb, r.TokensB) && !(len(tb) == 0 && len(r.TokensB) == 0) {
			t.Errorf("pair %d: tokens of %q = %q, rouge_score %q", i, r.B, tb, r.TokensB)
		}
		want := parseHexFloat(t, r.FmeasureHex)
		got := RougeL(r.A, r.B)
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("pair %d: RougeL(%q, %q) = %v (%x), rouge_score %s (%s)", i, r.A, r.B, got, got, r.FmeasureRepr, r.FmeasureHex)
		}
		if strconv.FormatFloat(got, 'g', -1, 64) != pyRepr(r.FmeasureRepr) {
			t.Errorf("pair %d: repr %v vs %s", i, got, r.FmeasureRepr)
		}
	}
}

// pyRepr maps Python's float repr to Go's shortest formatting.
func pyRepr(s string) string {
	f, _ := strconv.ParseFloat(s, 64)
	return strconv.FormatFloat(f, 'g', -1, 64)
}

type filterRef struct {
	I           int     `json:"i"`
	Max         float64 `json:"max"`
	Argmax      int     `json:"argmax"`
	MostSimilar string  `json:"most_similar"`
	Kept        bool    `json:"kept"`
	PoolSize    int     `json:"pool_size"`
}

func checkAgainstReference(t *testing.T, name string, cands []string, refs []filterRef, seeds []string, threads int) {
	t.Helper()
	if len(refs) != len(cands) {
		t.Fatalf("%s: %d candidates, %d reference lines", name, len(cands), len(refs))
	}
	// Sequential Check/Keep, the way the generate pipeline uses it.
	seq := NewNovelty(IndexOptions{Threads: threads}, 0.7)
	for _, s := range seeds {
		seq.AddPool(s)
	}
	batch := NewNovelty(IndexOptions{Threads: threads}, 0.7)
	for _, s := range seeds {
		batch.AddPool(s)
	}
	decisions, err := batch.Filter(context.Background(), cands)
	if err != nil {
		t.Fatal(err)
	}
	errs := 0
	for i, c := range cands {
		r := refs[i]
		if seq.Index().Len() != r.PoolSize {
			t.Fatalf("%s %d: pool size %d, reference %d", name, i, seq.Index().Len(), r.PoolSize)
		}
		keep, mx, arg := seq.Check(c)
		if keep {
			seq.Keep(c)
		}
		d := decisions[i]
		if keep != r.Kept || math.Float64bits(mx) != math.Float64bits(r.Max) || arg != r.Argmax ||
			d.Keep != r.Kept || math.Float64bits(d.Max) != math.Float64bits(r.Max) || d.Argmax != r.Argmax {
			t.Errorf("%s %d %q: Check=(%v, %v, %d) Filter=(%v, %v, %d), rouge_score (%v, %v, %d)",
				name, i, c, keep, mx, arg, d.Keep, d.Max, d.Argmax, r.Kept, r.Max, r.Argmax)
			if errs++; errs > 10 {
				t.FailNow()
			}
		}
		if arg >= 0 && seq.Index().Text(arg) != r.MostSimilar {
			t.Errorf("%s %d: most similar %q, reference %q", name, i, seq.Index().Text(arg), r.MostSimilar)
		}
	}
	st := batch.Stats()
	t.Logf("%s threads=%d: kept %d rejected %d, pairs full %d pruned %d", name, threads, st.Kept, st.Rejected, st.PairsFull, st.PairsPruned)
}

func TestNoveltyMatchesRougeScoreStress(t *testing.T) {
	var cands []string
	readJSON(t, sharedFile(t, "rouge", "stress_candidates.json"), &cands)
	refs := readJSONL[filterRef](t, sharedFile(t, "rouge", "stress_candidates.rouge_score.jsonl"))
	var kept []string
	readJSON(t, sharedFile(t, "rouge", "stress_candidates.kept.json"), &kept)
	seeds := seedInstructions(t)
	for _, threads := range []int{1, 2, 4} {
		checkAgainstReference(t, "stress", cands, refs, seeds, threads)
	}
	n := NewNovelty(IndexOptions{}, 0.7)
	for _, s := range seeds {
		n.AddPool(s)
	}
	ds, _ := n.Filter(context.Background(), cands)
	var got []string
	for i, d := range ds {
		if d.Keep {
			got = append(got, cands[i])
		}
	}
	if !slices.Equal(got, kept) {
		t.Errorf("kept %d items, reference kept %d (or a different set)", len(got), len(kept))
	}
}

func TestNoveltyMatchesRougeScoreRaw5000(t *testing.T) {
	type rec struct {
		Instruction string `json:"instruction"`
	}
	var recs []rec
	readJSON(t, sharedFile(t, "alpaca_data_raw_5000.json"), &recs)
	refs := readJSONL[filterRef](t, sharedFile(t, "rouge", "alpaca_data_raw_5000.rouge_score.jsonl"))
	cands := make([]string, len(recs))
	for i, r := range recs {
		cands[i] = r.Instruction
	}
	checkAgainstReference(t, "raw5000", cands, refs, seedInstructions(t), 2)
}

func TestNoveltyFilterCancelled(t *testing.T) {
	n := NewNovelty(IndexOptions{Threads: 2}, 0.7)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ds, err := n.Filter(ctx, []string{"one two three", "four five six"})
	if err == nil || len(ds) != 0 || n.Index().Len() != 0 {
		t.Fatalf("cancelled Filter: %d decisions, err %v, pool %d", len(ds), err, n.Index().Len())
	}
	ds, err = n.Filter(context.Background(), []string{"one two three", "One, two, three!", "", "four five six"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Decision{{true, 0, -1}, {false, 1, 0}, {true, 0, 0}, {true, 0, 0}}
	if !slices.Equal(ds, want) {
		t.Fatalf("decisions %+v, want %+v", ds, want)
	}
	if st := n.Stats(); st.Checked != 4 || st.Kept != 3 || st.Rejected != 1 || st.Pool != 3 {
		t.Fatalf("stats %+v", st)
	}
}
