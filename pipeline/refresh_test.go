package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

func refreshConfig(t *testing.T, dir string, add int) RefreshConfig {
	ac := baseConfig(t, "", 0)
	ac.Seed, ac.SeedSet = 0, false // each refresh draws its own sampling seed
	return RefreshConfig{Dir: dir, Add: add, KeepVersions: 2, Alpaca: ac}
}

func readChangelog(t *testing.T, dir string) []ChangelogEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ChangelogFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []ChangelogEntry
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e ChangelogEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("changelog line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// The check: three refreshes in a row grow the dataset by exactly N
// each, and no instruction scores above 0.7 ROUGE-L against any seed or
// anything published before it.
func TestRefreshThreeTimes(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(realExamples(t), 3),
		Faults: openaitest.Faults{ServerErr: 0.05}, Seed: 4})
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "dataset")
	const add = 25
	var prev []output.Example
	for run := 1; run <= 3; run++ {
		res, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, add))
		if err != nil {
			t.Fatalf("refresh %d: %v", run, err)
		}
		var got []output.Example
		data, _ := os.ReadFile(filepath.Join(dir, DataFile))
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != run*add || res.Entry.After != run*add || res.Entry.Added != add {
			t.Fatalf("refresh %d: %d examples (entry %+v), want %d", run, len(got), res.Entry, run*add)
		}
		for i := range prev {
			if got[i] != prev[i] {
				t.Fatalf("refresh %d changed published example %d", run, i)
			}
		}
		prev = got
		if _, err := os.Stat(filepath.Join(dir, RefreshWorkDir)); !os.IsNotExist(err) {
			t.Errorf("refresh %d left its work directory: %v", run, err)
		}
	}
	// Every instruction against the seeds and everything before it.
	var pool []string
	for _, s := range baseConfig(t, "", 0).Seeds {
		pool = append(pool, s.Instruction)
	}
	for i, ex := range prev {
		for _, p := range pool {
			if s := filters.RougeL(ex.Instruction, p); s > 0.7 {
				t.Fatalf("example %d %q scores %.3f against earlier %q", i, ex.Instruction, s, p)
			}
		}
		pool = append(pool, ex.Instruction)
	}
	log := readChangelog(t, dir)
	if len(log) != 3 {
		t.Fatalf("%d changelog entries, want 3", len(log))
	}
	for i, e := range log {
		if e.Before != i*add || e.After != (i+1)*add || e.TotalTokens == 0 || e.Responses == 0 || e.SHA256 == "" {
			t.Errorf("changelog entry %d: %+v", i, e)
		}
		if (i == 0) != (e.Previous == "") {
			t.Errorf("changelog entry %d: previous %q", i, e.Previous)
		}
	}
	// Two earlier versions kept, the newest being the dataset the last
	// refresh replaced.
	snaps, _ := filepath.Glob(filepath.Join(dir, "alpaca_data.*Z*.json"))
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2 (--keep-versions 2)", len(snaps))
	}
	var last []output.Example
	data, _ := os.ReadFile(filepath.Join(dir, log[2].Previous))
	if err := json.Unmarshal(data, &last); err != nil || len(last) != 2*add {
		t.Fatalf("snapshot %s: %v, %d examples", log[2].Previous, err, len(last))
	}
}

func TestRefreshRefusals(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 3)})
	defer srv.Close()
	dir := t.TempDir()
	if _, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 0)); !errors.Is(err, ErrNothingToDo) {
		t.Errorf("--add 0: %v", err)
	}
	lock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 5))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Errorf("locked: %v", err)
	}
	lock.Unlock()
	os.WriteFile(filepath.Join(dir, DataFile), []byte("[\n  {\"instruction\": 3}\n]"), 0o644)
	_, err = RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 5))
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), DataFile+":2") {
		t.Errorf("a broken dataset: %v", err)
	}
	if calls, _ := srv.Calls(); len(calls) != 0 {
		t.Errorf("%d requests for refreshes that could not run", len(calls))
	}
}

// A refresh that published and died before its changelog line is finished
// by the next one, which logs it once and then does its own work; unpublished
// work for a dataset that has since changed is discarded.
func TestRefreshRecovers(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 5)})
	defer srv.Close()
	dir := t.TempDir()
	res, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 10))
	if err != nil {
		t.Fatal(err)
	}
	// Put back the state of a refresh killed right after its rename.
	os.Remove(filepath.Join(dir, ChangelogFile))
	rf := &refresher{cfg: refreshConfig(t, dir, 10), work: filepath.Join(dir, RefreshWorkDir)}
	os.MkdirAll(rf.work, 0o755)
	entry := res.Entry
	if err := rf.writeState(&refreshState{ID: entry.ID, BaseSHA256: "old", Publish: &entry}); err != nil {
		t.Fatal(err)
	}
	if _, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 10)); err != nil {
		t.Fatal(err)
	}
	log := readChangelog(t, dir)
	if len(log) != 2 || log[0].ID != entry.ID || log[1].Before != 10 || log[1].After != 20 {
		t.Fatalf("changelog %+v", log)
	}

	// Stale work: state for another base dataset.
	os.MkdirAll(rf.work, 0o755)
	rf.writeState(&refreshState{ID: "stale", BaseSHA256: "not-this-dataset"})
	os.WriteFile(filepath.Join(rf.work, JournalFile), []byte("{\"kind\":\"header\",\"recipe\":\"other\"}\n"), 0o644)
	if _, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 5)); err != nil {
		t.Fatalf("stale work was not discarded: %v", err)
	}
	if log := readChangelog(t, dir); len(log) != 3 || log[2].After != 25 {
		t.Fatalf("changelog %+v", log)
	}
}

func TestRefreshPruneOrder(t *testing.T) {
	dir := t.TempDir()
	names := []string{"alpaca_data.20261126T031700Z.json", "alpaca_data.20261127T031700Z.json",
		"alpaca_data.20261127T031700Z-1.json", "alpaca_data.20261127T031700Z-2.json", "alpaca_data.json", "alpaca_data.backup.json"}
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n), []byte("[]"), 0o644)
	}
	rf := &refresher{cfg: RefreshConfig{Dir: dir, KeepVersions: 2}}
	if err := rf.prune(); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		_, err := os.Stat(filepath.Join(dir, n))
		if kept := err == nil; kept != (i >= 2) {
			t.Errorf("%s kept=%v", n, kept)
		}
	}
}

// A fixed --seed in a cron line must not make every refresh ask the same
// questions: against a teacher whose answer depends only on the prompt,
// the second refresh would otherwise get back the tasks it already has.
func TestRefreshFixedSeedAsksNewQuestions(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		h := fnv.New64a()
		h.Write([]byte(c.Prompt))
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))
		var b strings.Builder
		for i := 4; i <= 12; i++ {
			ex := openaitest.SyntheticExample(rng, int(h.Sum64()%100000)*100+i)
			if i > 4 {
				fmt.Fprintf(&b, "\n###\n%d. Instruction: ", i)
			}
			fmt.Fprintf(&b, "%s\n%d. Input:\n<noinput>\n%d. Output:\n%s", ex.Instruction, i, i, ex.Output)
		}
		return openaitest.Reply{Text: b.String()}
	}})
	defer srv.Close()
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		cfg := refreshConfig(t, dir, 20)
		cfg.Alpaca.Seed, cfg.Alpaca.SeedSet = 42, true
		cfg.Alpaca.MaxBarren = 3
		res, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), cfg)
		if err != nil {
			t.Fatalf("refresh %d with a fixed seed: %v", run, err)
		}
		if n := res.Entry.Rejected[ReasonTooSimilar]; n > 0 {
			t.Fatalf("refresh %d repeated %d questions of the one before", run, n)
		}
	}
}

// Refreshing the 2,000-example cleaned Alpaca sample: the existing records
// come through unchanged, and no new instruction is too similar to any of
// them.
func TestRefreshAlpacaSample(t *testing.T) {
	sample := filepath.Join("..", "..", "shared", "reference", "alpaca_data_sample_2k.json")
	raw, err := os.ReadFile(sample)
	if err != nil {
		t.Skipf("reference data absent (%v): the refresh-the-sample check needs /work/shared", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DataFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(realExamples(t), 21)})
	defer srv.Close()
	res, err := RunRefresh(context.Background(), context.Background(), newTeacher(t, srv), refreshConfig(t, dir, 30))
	if err != nil {
		t.Fatal(err)
	}
	var before, after []map[string]any
	json.Unmarshal(raw, &before)
	data, _ := os.ReadFile(filepath.Join(dir, DataFile))
	if err := json.Unmarshal(data, &after); err != nil {
		t.Fatal(err)
	}
	if len(after) != 2030 || res.Entry.Before != 2000 {
		t.Fatalf("%d examples, entry %+v", len(after), res.Entry)
	}
	for i := range before {
		if fmt.Sprint(before[i]) != fmt.Sprint(after[i]) {
			t.Fatalf("existing record %d changed", i)
		}
	}
	for _, n := range after[2000:] {
		inst := n["instruction"].(string)
		for _, o := range before {
			if s := filters.RougeL(inst, o["instruction"].(string)); s > 0.7 {
				t.Fatalf("new %q scores %.3f against existing %q", inst, s, o["instruction"])
			}
		}
	}
	// The sample is Python's json.dump(indent=4): the old records keep
	// their bytes, the new ones follow.
	if !strings.HasPrefix(string(data), strings.TrimSuffix(string(raw), "\n]")+",\n    {") {
		t.Error("the existing records were rewritten")
	}
	t.Logf("rejected %v", res.Entry.Rejected)
}
