package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

// realExamples returns real Alpaca records to answer with when the shared
// reference data is present, and nil (synthetic tasks only) otherwise.
func realExamples(t *testing.T) []openaitest.Example {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "shared", "reference", "alpaca_data_raw_5000.json"))
	if err != nil {
		t.Logf("../shared absent, answering with synthetic tasks only: %v", err)
		return nil
	}
	var recs []output.Example
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	out := make([]openaitest.Example, len(recs))
	for i, r := range recs {
		out[i] = openaitest.Example{Instruction: r.Instruction, Input: r.Input, Output: r.Output}
	}
	return out
}

func newTeacher(t *testing.T, srv *openaitest.Server) *teacher.OpenAI {
	return newTeacherModel(t, srv, "gpt-4o-mini")
}

func newTeacherModel(t *testing.T, srv *openaitest.Server, model string) *teacher.OpenAI {
	t.Helper()
	oa, err := teacher.NewOpenAI(teacher.OpenAIConfig{
		BaseURL:       srv.BaseURL(),
		APIKey:        "test-key",
		Model:         model,
		Timeout:       5 * time.Second,
		MaxAttempts:   8,
		BaseBackoff:   time.Millisecond,
		MaxBackoff:    20 * time.Millisecond,
		MaxConcurrent: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	return oa
}

func baseConfig(t *testing.T, dir string, num int) AlpacaConfig {
	return AlpacaConfig{
		Num:         num,
		OutDir:      dir,
		Seeds:       prompts.DefaultSeedTasks(),
		SeedSource:  "embedded",
		SeedSHA256:  "test",
		Header:      prompts.DefaultAlpacaHeader(),
		API:         teacher.ModeChat,
		Model:       "gpt-4o-mini",
		Temperature: 1,
		TopP:        1,
		Threshold:   0.7,
		Heuristics:  filters.AlpacaHeuristics(),
		Seed:        42,
		SeedSet:     true,
		Concurrency: 4,
		Cost:        func(u teacher.Usage) (float64, bool) { return float64(u.Total()) * 1e-6, true },
	}
}

func readDataset(t *testing.T, dir string) []output.Example {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, DataFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []output.Example
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %v", DataFile, err)
	}
	return out
}

func readReport(t *testing.T, dir string) Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// checkDataset asserts what the issue promises of every dataset: the exact
// count, every example verbatim from a response, none failing Alpaca's
// filters, none above the threshold against the seeds or an earlier one.
func checkDataset(t *testing.T, srv *openaitest.Server, cfg AlpacaConfig, got []output.Example) {
	t.Helper()
	if len(got) != cfg.Num {
		t.Fatalf("dataset has %d examples, want exactly %d", len(got), cfg.Num)
	}
	_, replies := srv.Calls()
	var all strings.Builder
	for _, r := range replies {
		all.WriteString(r.Text)
		all.WriteString("\x00")
	}
	served := all.String()
	pool := make([]string, 0, len(cfg.Seeds)+len(got))
	for _, s := range cfg.Seeds {
		pool = append(pool, s.Instruction)
	}
	for i, ex := range got {
		for _, field := range []string{ex.Instruction, ex.Input, ex.Output} {
			if !strings.Contains(served, field) {
				t.Errorf("example %d: %q was not in any response", i, field)
			}
		}
		if reason, ok := cfg.Heuristics.Check(ex.Instruction); !ok {
			t.Errorf("example %d fails the heuristics (%s): %q", i, reason, ex.Instruction)
		}
		for j, p := range pool {
			if s := filters.RougeL(ex.Instruction, p); s > cfg.Threshold {
				t.Fatalf("example %d %q is %.4f ROUGE-L from pool item %d %q", i, ex.Instruction, s, j, p)
			}
		}
		pool = append(pool, ex.Instruction)
	}
}

func TestAlpacaRunWithFaults(t *testing.T) {
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.AlpacaResponder(realExamples(t), 1),
		Faults:  openaitest.Faults{RateLimit: 0.1, ServerErr: 0.1, Malformed: 0.1, Drop: 0.1, Slow: 0.1},
		Seed:    7,
	})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 150)
	rep, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatalf("run: %v (faults %v)", err, srv.FaultCounts())
	}
	checkDataset(t, srv, cfg, readDataset(t, dir))
	onDisk := readReport(t, dir)
	p, c := srv.Served()
	if onDisk.Usage.PromptTokens != int64(p) || onDisk.Usage.CompletionTokens != int64(c) {
		t.Errorf("run.json usage %+v, server served prompt=%d completion=%d", onDisk.Usage, p, c)
	}
	if onDisk.Status != "complete" || rep.Kept < 150 {
		t.Errorf("status %q kept %d", onDisk.Status, rep.Kept)
	}
	for _, reason := range []string{ReasonTooSimilar, "blacklist", "too_short"} {
		if onDisk.Rejected[reason] == 0 {
			t.Errorf("no rejection counted for %s: %v", reason, onDisk.Rejected)
		}
	}
	faults := srv.FaultCounts()
	if len(faults) < 4 {
		t.Errorf("too few kinds of faults injected to mean anything: %v", faults)
	}
	t.Logf("faults %v; rejected %v; usage %+v", faults, onDisk.Rejected, onDisk.Usage)
}

func TestAlpacaCompletionsBatched(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 2), Seed: 3})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 60)
	cfg.API = teacher.ModeCompletion
	cfg.PerRequest = 5
	cfg.Model = "gpt-3.5-turbo-instruct"
	oa := newTeacherModel(t, srv, cfg.Model)
	if _, err := RunAlpaca(context.Background(), context.Background(), oa, cfg); err != nil {
		t.Fatal(err)
	}
	checkDataset(t, srv, cfg, readDataset(t, dir))
	calls, _ := srv.Calls()
	if len(calls) < 5 {
		t.Fatalf("only %d prompts served", len(calls))
	}
	for _, c := range calls {
		if p, ok := c.Body["prompt"].([]any); !ok || len(p) != 5 {
			t.Fatalf("completions request did not batch 5 prompts: %T %v", c.Body["prompt"], c.Body["prompt"])
		}
	}
}

func TestAlpacaResumeKeepsEverythingJournaled(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 3), Seed: 4})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 40)
	if _, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg); err != nil {
		t.Fatal(err)
	}
	first := readDataset(t, dir)
	// A kill in the middle of a journal write leaves a torn line.
	f, err := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"kind":"response","req":99999,"candidates":[{"instruction":"torn`)
	f.Close()

	cfg.Num = 90
	rep, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed {
		t.Error("second run did not report a resume")
	}
	second := readDataset(t, dir)
	checkDataset(t, srv, cfg, second)
	for i := range first {
		if second[i] != first[i] {
			t.Fatalf("example %d changed across the resume: %q -> %q", i, first[i].Instruction, second[i].Instruction)
		}
	}
	// Asking again for what is already there sends nothing.
	before := len(must(srv.Calls()))
	if _, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg); err != nil {
		t.Fatal(err)
	}
	if after := len(must(srv.Calls())); after != before {
		t.Errorf("a finished run sent %d more requests", after-before)
	}
}

func must[A, B any](a A, _ B) A { return a }

func TestAlpacaRefusesAnotherRunsDirectory(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 5)})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 10)
	if _, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Threshold = 0.5
	_, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if !errors.Is(err, ErrIncompatibleRun) || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("got %v, want an incompatible-run error naming the threshold", err)
	}
}

func TestAlpacaStopsWhenTeacherProducesNothingUsable(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		return openaitest.Reply{Text: " a little girl named Lily went to the park and saw a big red ball."}
	}})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 5)
	cfg.MaxBarren = 6
	rep, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if !errors.Is(err, ErrBarren) {
		t.Fatalf("got %v, want ErrBarren", err)
	}
	if rep.Status != "unproductive" || len(readDataset(t, dir)) != 0 {
		t.Fatalf("status %q", rep.Status)
	}
	if n := len(must(srv.Calls())); n > cfg.MaxBarren+2*cfg.Concurrency {
		t.Errorf("kept asking after the stop: %d requests", n)
	}
}

func TestAlpacaBudgetStopsCleanly(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 6)})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 1000)
	prices, err := teacher.DefaultPrices().WithOverride("gpt-4o-mini", teacher.Price{Input: 1000, Output: 1000})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cost = func(u teacher.Usage) (float64, bool) { return prices.Cost("gpt-4o-mini", u) }
	budget := teacher.WithBudget(newTeacher(t, srv), 40, prices, 0)
	rep, err := RunAlpaca(context.Background(), context.Background(), budget, cfg)
	if !errors.Is(err, teacher.ErrBudget) {
		t.Fatalf("got %v, want ErrBudget", err)
	}
	if rep.CostUSD > 40 {
		t.Fatalf("spent %.2f past the 40 limit", rep.CostUSD)
	}
	if rep.Status != "budget_reached" || rep.Kept == 0 || len(readDataset(t, dir)) != rep.Kept {
		t.Fatalf("status %q kept %d", rep.Status, rep.Kept)
	}
}

func TestAlpacaGracefulInterrupt(t *testing.T) {
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.AlpacaResponder(nil, 8),
		Faults:  openaitest.Faults{Slow: 1, SlowDelay: 100 * time.Millisecond},
	})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 5000)
	soft, cancel := context.WithCancel(context.Background())
	time.AfterFunc(350*time.Millisecond, cancel)
	rep, err := RunAlpaca(soft, context.Background(), newTeacher(t, srv), cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	p, c := srv.Served()
	if rep.Usage.PromptTokens != int64(p) || rep.Usage.CompletionTokens != int64(c) {
		t.Errorf("in-flight requests were not finished and journaled: report %+v, served %d/%d", rep.Usage, p, c)
	}
	if rep.Status != "interrupted" || len(readDataset(t, dir)) != rep.Kept {
		t.Errorf("status %q, kept %d", rep.Status, rep.Kept)
	}
}

func TestWithSimilarityFields(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 9)})
	defer srv.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir, 12)
	cfg.WithSimilarity = true
	if _, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), cfg); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, DataFile))
	var recs []map[string]any
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		ms, ok := r["most_similar_instructions"].(map[string]any)
		if !ok || len(ms) == 0 || len(ms) > 10 {
			t.Fatalf("record %d: most_similar_instructions %v", i, r["most_similar_instructions"])
		}
		if _, ok := r["avg_similarity_score"].(float64); !ok {
			t.Fatalf("record %d: no avg_similarity_score", i)
		}
		for inst, score := range ms {
			if want := filters.RougeL(r["instruction"].(string), inst); want != score.(float64) {
				t.Errorf("record %d: score %v for %q, RougeL says %v", i, score, inst, want)
			}
		}
	}
	_ = fmt.Sprint
}
