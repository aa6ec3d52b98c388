package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

func siConfig(dir string, num int) SelfInstructConfig {
	cfg := DefaultSelfInstructConfig()
	cfg.Num = num
	cfg.OutDir = dir
	cfg.Seeds = prompts.DefaultSeedTasks()
	cfg.SeedSource = "embedded"
	cfg.SeedSHA256 = "test"
	cfg.Model = "gpt-4o-mini"
	cfg.Seed, cfg.SeedSet = 42, true
	cfg.Concurrency = 4
	cfg.MaxBarren = 30
	cfg.Cost = func(u teacher.Usage) (float64, bool) { return float64(u.Total()) * 1e-6, true }
	return cfg
}

func siServer(t *testing.T, faults openaitest.Faults, seed uint64) *openaitest.Server {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.SelfInstructResponder(seed), Faults: faults, Seed: seed})
	t.Cleanup(srv.Close)
	return srv
}

// siJournal reads the Self-Instruct journal lines of dir.
type siJournal struct {
	kept       []string        // tasks kept at stage 1, in order
	classified map[string]bool // task -> is_classification
	instanced  map[string]SIInstancesEntry
}

func readSIJournal(t *testing.T, dir string) siJournal {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	j := siJournal{classified: map[string]bool{}, instanced: map[string]SIInstancesEntry{}}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var k struct {
			Kind  string `json:"kind"`
			Error string `json:"error"`
		}
		if json.Unmarshal(line, &k) != nil || k.Error != "" {
			continue
		}
		switch k.Kind {
		case KindSIBootstrap:
			var e SIBootstrapEntry
			json.Unmarshal(line, &e)
			for _, c := range e.Candidates {
				if c.Status == StatusKept {
					j.kept = append(j.kept, c.Instruction)
				}
			}
		case KindSIClassify:
			var e SIClassifyEntry
			json.Unmarshal(line, &e)
			if _, dup := j.classified[e.Instruction]; dup {
				t.Errorf("task %q classified twice in the journal", e.Instruction)
			}
			j.classified[e.Instruction] = e.IsClassification
		case KindSIInstances:
			var e SIInstancesEntry
			json.Unmarshal(line, &e)
			if _, dup := j.instanced[e.Instruction]; dup {
				t.Errorf("task %q instantiated twice in the journal", e.Instruction)
			}
			j.instanced[e.Instruction] = e
		}
	}
	return j
}

// serverLog sorts the server's answered prompts by kind and task.
type serverLog struct {
	bootstrap   []openaitest.Call
	classify    map[string]int
	outputFirst map[string]int
	inputFirst  map[string]int
}

func readServerLog(calls []openaitest.Call) serverLog {
	l := serverLog{classify: map[string]int{}, outputFirst: map[string]int{}, inputFirst: map[string]int{}}
	for _, c := range calls {
		kind, task, _ := openaitest.SelfInstructKind(c.Prompt)
		switch kind {
		case openaitest.KindBootstrap:
			l.bootstrap = append(l.bootstrap, c)
		case openaitest.KindClassify:
			l.classify[task]++
		case openaitest.KindOutputFirst:
			l.outputFirst[task]++
		case openaitest.KindInputFirst:
			l.inputFirst[task]++
		}
	}
	return l
}

func readTasksFile(t *testing.T, dir string) []prompts.SeedTask {
	t.Helper()
	tasks, err := prompts.LoadSeedTasks(filepath.Join(dir, TasksFile))
	if err != nil {
		t.Fatalf("%s does not read back as a seed file: %v", TasksFile, err)
	}
	return tasks
}

// checkSelfInstructOutput asserts the promises about a finished
// run: exactly num tasks, each with 1..5 filtered instances, alpaca_data.json
// holding exactly those instances in order, every task's instances asked
// output-first iff it was classified as classification, and no task above
// the threshold against the seeds or an earlier kept task.
func checkSelfInstructOutput(t *testing.T, cfg SelfInstructConfig, dir string, j siJournal, log serverLog) []prompts.SeedTask {
	t.Helper()
	tasks := readTasksFile(t, dir)
	if len(tasks) != cfg.Num {
		t.Fatalf("%s has %d tasks, want exactly %d", TasksFile, len(tasks), cfg.Num)
	}
	var want []output.Example
	for _, tk := range tasks {
		if n := len(tk.Instances); n < 1 || n > cfg.MaxInstances {
			t.Errorf("task %q has %d instances", tk.Instruction, n)
		}
		clf, ok := j.classified[tk.Instruction]
		if !ok || clf != tk.IsClassification {
			t.Errorf("task %q: is_classification %v, journal %v (%v)", tk.Instruction, tk.IsClassification, clf, ok)
		}
		seen := map[prompts.Instance]bool{}
		for _, in := range tk.Instances {
			if in.Output == "" || in.Input == in.Output || strings.HasSuffix(in.Input, ":") || strings.HasSuffix(in.Output, ":") || seen[in] {
				t.Errorf("task %q kept an instance the filters drop: %q", tk.Instruction, in)
			}
			seen[in] = true
			want = append(want, output.Example{Instruction: tk.Instruction, Input: in.Input, Output: in.Output})
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, DataFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []output.Example
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d records, tasks.jsonl %d instances", DataFile, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d is %+v, tasks.jsonl says %+v", i, got[i], want[i])
		}
	}
	// Output-first exactly for the tasks classified Yes, over all tasks
	// that got that far, not only the ones written.
	for task, clf := range j.classified {
		of, inf := log.outputFirst[task], log.inputFirst[task]
		if _, asked := j.instanced[task]; !asked {
			continue
		}
		if clf && (of == 0 || inf != 0) || !clf && (inf == 0 || of != 0) {
			t.Errorf("task %q classified %v was asked output-first %d times, input-first %d times", task, clf, of, inf)
		}
	}
	for task := range log.outputFirst {
		if !j.classified[task] {
			t.Errorf("task %q asked output-first but not classified Yes", task)
		}
	}
	pool := make([]string, 0, len(cfg.Seeds)+len(j.kept))
	for _, s := range cfg.Seeds {
		pool = append(pool, s.Instruction)
	}
	for i, k := range j.kept {
		if reason, ok := cfg.Heuristics.Check(k); !ok {
			t.Errorf("kept task %q fails the heuristics (%s)", k, reason)
		}
		for _, p := range pool {
			if s := filters.RougeL(k, p); s > cfg.Threshold {
				t.Fatalf("kept task %d %q is %.3f ROUGE-L from %q", i, k, s, p)
			}
		}
		pool = append(pool, k)
	}
	return tasks
}

func readSIReport(t *testing.T, dir string) SelfInstructReport {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep SelfInstructReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestSelfInstructRunWithFaults(t *testing.T) {
	srv := siServer(t, openaitest.Faults{RateLimit: 0.05, ServerErr: 0.05, Malformed: 0.04, Drop: 0.04, Slow: 0.05}, 1)
	dir := t.TempDir()
	cfg := siConfig(dir, 100)
	rep, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatalf("run: %v (faults %v)", err, srv.FaultCounts())
	}
	calls, _ := srv.Calls()
	log := readServerLog(calls)
	j := readSIJournal(t, dir)
	tasks := checkSelfInstructOutput(t, cfg, dir, j, log)

	// Each task was asked each question once: faults are retried by the
	// teacher, and the server logs only answers it wrote in full.
	for task, n := range log.classify {
		if n != 1 {
			t.Errorf("task %q classified %d times", task, n)
		}
	}
	for task := range j.instanced {
		if n := log.outputFirst[task] + log.inputFirst[task]; n != 1 {
			t.Errorf("task %q asked for instances %d times", task, n)
		}
	}
	// The paper's sampling settings, and temperature 0 really sent.
	for _, c := range calls {
		kind, _, next := openaitest.SelfInstructKind(c.Prompt)
		temp, hasTemp := c.Body["temperature"].(float64)
		switch kind {
		case openaitest.KindBootstrap:
			if temp != 0.7 || c.Body["top_p"] != 0.5 || c.Body["presence_penalty"] != 2.0 {
				t.Fatalf("bootstrap sampling %v %v %v", c.Body["temperature"], c.Body["top_p"], c.Body["presence_penalty"])
			}
			if next != 9 {
				t.Fatalf("bootstrap prompt ends at item %d, want 9", next)
			}
			stops, _ := c.Body["stop"].([]any)
			if len(stops) == 0 || stops[0] != "\n16." {
				t.Fatalf("bootstrap stop %v", c.Body["stop"])
			}
		case openaitest.KindClassify, openaitest.KindOutputFirst, openaitest.KindInputFirst:
			if !hasTemp || temp != 0 {
				t.Fatalf("%s prompt sent temperature %v", kind, c.Body["temperature"])
			}
		default:
			t.Fatalf("a prompt of no known kind: %q", c.Prompt)
		}
	}
	// Once two tasks exist, every bootstrap prompt shows 6 seeds and 2 of them.
	seeds := map[string]bool{}
	for _, s := range cfg.Seeds {
		seeds[s.Instruction] = true
	}
	mixed := 0
	for _, c := range log.bootstrap {
		items := strings.Split(c.Prompt, "\n")
		nSeed, nItems := 0, 0
		for _, l := range items {
			if n, text, ok := strings.Cut(l, ". "); ok && len(n) <= 2 && n >= "1" && n <= "9" {
				nItems++
				if seeds[text] {
					nSeed++
				}
			}
		}
		if nItems != 8 || (nSeed != 8 && nSeed != 6) {
			t.Fatalf("bootstrap prompt with %d items, %d seeds:\n%s", nItems, nSeed, c.Prompt)
		}
		if nSeed == 6 {
			mixed++
		}
	}
	if mixed == 0 {
		t.Error("no bootstrap prompt showed generated tasks")
	}

	onDisk := readSIReport(t, dir)
	p, c := srv.Served()
	if onDisk.Usage.PromptTokens != int64(p) || onDisk.Usage.CompletionTokens != int64(c) {
		t.Errorf("run.json usage %+v, server served prompt=%d completion=%d", onDisk.Usage, p, c)
	}
	st := onDisk.Stages
	clf := 0
	for _, tk := range tasks {
		if tk.IsClassification {
			clf++
		}
	}
	if onDisk.Status != "complete" || onDisk.Written != 100 || onDisk.ClassificationTasks != clf || rep.Kept != 100 {
		t.Errorf("status %q written %d clf %d (want %d) kept %d", onDisk.Status, onDisk.Written, onDisk.ClassificationTasks, clf, rep.Kept)
	}
	if clf == 0 || clf == len(tasks) {
		t.Errorf("%d of %d tasks are classification tasks; the responder makes about a third", clf, len(tasks))
	}
	of := 0
	for task := range j.instanced {
		if j.classified[task] {
			of++
		}
	}
	if st.Instances.OutputFirst != of || st.Instances.OutputFirst+st.Instances.InputFirst != len(j.instanced) ||
		st.Classify.Classification+st.Classify.NotClassification != len(j.classified) || st.Instances.TasksKept != 100 {
		t.Errorf("stage counts disagree with the journal: %+v", st)
	}
	for _, reason := range []string{ReasonTooSimilar, "blacklist", "too_short"} {
		if st.Bootstrap.Rejected[reason] == 0 {
			t.Errorf("no bootstrap rejection counted for %s: %v", reason, st.Bootstrap.Rejected)
		}
	}
	if st.Bootstrap.CutByLength == 0 || st.Bootstrap.Rejected[string(prompts.DropCutByLength)] == 0 {
		t.Errorf("no bootstrap response cut by length was dropped: %+v", st.Bootstrap)
	}
	if len(st.Instances.Dropped) < 3 || st.Instances.InputFirst == 0 || st.Instances.OutputFirst == 0 {
		t.Errorf("instance stage: %+v", st.Instances)
	}
	if len(srv.FaultCounts()) < 4 {
		t.Errorf("too few kinds of faults injected: %v", srv.FaultCounts())
	}
	t.Logf("stages %+v; clf share %.2f; faults %v", st, onDisk.ClassificationShare, srv.FaultCounts())
}

// stageTrigger is a real teacher with a tripwire: it cancels ctx once the
// n-th answer of one kind of prompt has come back.
type stageTrigger struct {
	teacher.Teacher
	kind   string
	n      int
	cancel context.CancelFunc

	mu   sync.Mutex
	seen int
}

func (s *stageTrigger) Complete(ctx context.Context, req teacher.Request) (teacher.Response, error) {
	resp, err := s.Teacher.Complete(ctx, req)
	kind, _, _ := openaitest.SelfInstructKind(req.Messages[0].Content)
	if kind == openaitest.KindOutputFirst {
		kind = openaitest.KindInputFirst // both are stage 3
	}
	if err == nil && kind == s.kind {
		s.mu.Lock()
		s.seen++
		if s.seen == s.n {
			s.cancel()
		}
		s.mu.Unlock()
	}
	return resp, err
}

// A run stopped in each stage, softly (finishing what is in flight) and
// hard (abandoning it), resumes without asking again for anything it has
// an answer to, and ends as an uninterrupted run does.
func TestSelfInstructResumeInEachStage(t *testing.T) {
	for _, hard := range []bool{false, true} {
		for _, stage := range []string{openaitest.KindBootstrap, openaitest.KindClassify, openaitest.KindInputFirst} {
			name := stage
			if hard {
				name += "_hard"
			}
			t.Run(name, func(t *testing.T) {
				srv := siServer(t, openaitest.Faults{}, 3)
				dir := t.TempDir()
				cfg := siConfig(dir, 25)
				soft, cancelSoft := context.WithCancel(context.Background())
				hardCtx, cancelHard := context.WithCancel(context.Background())
				defer cancelSoft()
				defer cancelHard()
				cancel := cancelSoft
				if hard {
					cancel = func() { cancelSoft(); cancelHard() }
				}
				trig := &stageTrigger{Teacher: newTeacher(t, srv), kind: stage, n: 4, cancel: cancel}
				_, err := RunSelfInstruct(soft, hardCtx, trig, cfg)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("interrupted run: %v", err)
				}
				if rep := readSIReport(t, dir); rep.Status != "interrupted" {
					t.Fatalf("status %q", rep.Status)
				}
				before := readSIJournal(t, dir)
				callsBefore, _ := srv.Calls()

				rep, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg)
				if err != nil {
					t.Fatalf("resumed run: %v", err)
				}
				if !rep.Resumed || rep.Status != "complete" {
					t.Fatalf("resumed %v status %q", rep.Resumed, rep.Status)
				}
				after := readSIJournal(t, dir)
				for i, k := range before.kept {
					if after.kept[i] != k {
						t.Fatalf("kept task %d changed on resume: %q -> %q", i, k, after.kept[i])
					}
				}
				calls, _ := srv.Calls()
				later := readServerLog(calls[len(callsBefore):])
				for task := range before.classified {
					if later.classify[task] > 0 {
						t.Errorf("task %q classified before the stop was asked again", task)
					}
				}
				for task := range before.instanced {
					if later.outputFirst[task]+later.inputFirst[task] > 0 {
						t.Errorf("task %q instantiated before the stop was asked again", task)
					}
				}
				all := readServerLog(calls)
				if !hard {
					// A soft stop journals what was in flight: nothing at
					// all is asked twice.
					for task, n := range all.classify {
						if n != 1 {
							t.Errorf("task %q classified %d times", task, n)
						}
					}
				}
				checkSelfInstructOutput(t, cfg, dir, after, all)
				t.Logf("before the stop: %d kept, %d classified, %d instantiated", len(before.kept), len(before.classified), len(before.instanced))
			})
		}
	}
}

func TestSelfInstructRefusesOtherRuns(t *testing.T) {
	srv := siServer(t, openaitest.Faults{}, 5)
	dir := t.TempDir()
	acfg := baseConfig(t, dir, 5)
	if _, err := RunAlpaca(context.Background(), context.Background(), newTeacher(t, srv), acfg); err != nil {
		// The Alpaca responder is not running here; an Alpaca run against
		// the Self-Instruct server still writes its header first.
		t.Logf("alpaca run: %v", err)
	}
	cfg := siConfig(dir, 5)
	_, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if !errors.Is(err, ErrIncompatibleRun) || !strings.Contains(err.Error(), "recipe") {
		t.Fatalf("a Self-Instruct run over an Alpaca journal: %v", err)
	}

	dir2 := t.TempDir()
	cfg2 := siConfig(dir2, 3)
	if _, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg2); err != nil {
		t.Fatal(err)
	}
	cfg2.MaxInstances = 3
	if _, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg2); !errors.Is(err, ErrIncompatibleRun) {
		t.Fatalf("resume with other instance settings: %v", err)
	}
	// A damaged task reference names the line and the field.
	path := filepath.Join(dir2, JournalFile)
	data, _ := os.ReadFile(path)
	bad := strings.Replace(string(data), `"kind":"si_classify","task":0`, `"kind":"si_classify","task":999`, 1)
	os.WriteFile(path, []byte(bad), 0o644)
	cfg2.MaxInstances = 5
	_, err = RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg2)
	if err == nil || !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), `"task"`) {
		t.Fatalf("damaged journal: %v", err)
	}
}

// A run's tasks.jsonl seeds the next run.
func TestSelfInstructOutputSeedsNextRun(t *testing.T) {
	srv := siServer(t, openaitest.Faults{}, 9)
	dir := t.TempDir()
	cfg := siConfig(dir, 12)
	if _, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg); err != nil {
		t.Fatal(err)
	}
	seeds := readTasksFile(t, dir)
	dir2 := t.TempDir()
	cfg2 := siConfig(dir2, 5)
	cfg2.Seeds = seeds
	if _, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg2); err != nil {
		t.Fatal(err)
	}
	if got := readTasksFile(t, dir2); len(got) != 5 {
		t.Fatalf("%d tasks", len(got))
	}
}

// With a completions model the same prompts travel as raw text, one per
// request, and the model continues them.
func TestSelfInstructCompletionsMode(t *testing.T) {
	srv := siServer(t, openaitest.Faults{}, 13)
	dir := t.TempDir()
	cfg := siConfig(dir, 15)
	cfg.API = teacher.ModeCompletion
	cfg.Model = "gpt-3.5-turbo-instruct"
	if _, err := RunSelfInstruct(context.Background(), context.Background(), newTeacherModel(t, srv, cfg.Model), cfg); err != nil {
		t.Fatal(err)
	}
	calls, _ := srv.Calls()
	for _, c := range calls {
		if c.Endpoint != "completions" {
			t.Fatalf("a %s request in completions mode", c.Endpoint)
		}
		if p, ok := c.Body["prompt"].([]any); ok && len(p) != 1 {
			t.Fatalf("%d prompts in one request", len(p))
		}
	}
	checkSelfInstructOutput(t, cfg, dir, readSIJournal(t, dir), readServerLog(calls))
}

// --max-cost stops the run cleanly with everything paid for kept, and a
// resumed run with more budget finishes it without asking again.
func TestSelfInstructBudgetStopsAndResumes(t *testing.T) {
	srv := siServer(t, openaitest.Faults{}, 17)
	dir := t.TempDir()
	cfg := siConfig(dir, 30)
	prices, err := teacher.DefaultPrices().WithOverride("gpt-4o-mini", teacher.Price{Input: 1000, Output: 1000})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cost = func(u teacher.Usage) (float64, bool) { return prices.Cost("gpt-4o-mini", u) }
	rep, err := RunSelfInstruct(context.Background(), context.Background(), teacher.WithBudget(newTeacher(t, srv), 20, prices, 0), cfg)
	if !errors.Is(err, teacher.ErrBudget) {
		t.Fatalf("got %v, want ErrBudget", err)
	}
	if rep.CostUSD > 20 || rep.Status != "budget_reached" || rep.Written == 0 || rep.Written >= 30 {
		t.Fatalf("spent %.2f, status %q, %d tasks written", rep.CostUSD, rep.Status, rep.Written)
	}
	if got := readTasksFile(t, dir); len(got) != rep.Written {
		t.Fatalf("%d tasks on disk, report says %d", len(got), rep.Written)
	}
	before := readSIJournal(t, dir)
	n, _ := srv.Calls()
	spent, err := SpentSoFar(dir)
	if err != nil || spent != rep.CostUSD {
		t.Fatalf("SpentSoFar %v %v, report %v", spent, err, rep.CostUSD)
	}
	if _, err := RunSelfInstruct(context.Background(), context.Background(), teacher.WithBudget(newTeacher(t, srv), 1000, prices, spent), cfg); err != nil {
		t.Fatal(err)
	}
	calls, _ := srv.Calls()
	later := readServerLog(calls[len(n):])
	for task := range before.classified {
		if later.classify[task] > 0 {
			t.Errorf("%q classified again after the budget stop", task)
		}
	}
	checkSelfInstructOutput(t, cfg, dir, readSIJournal(t, dir), readServerLog(calls))
}

// A teacher that never writes usable instances stops the run as
// unproductive instead of bootstrapping forever.
func TestSelfInstructBarrenInstances(t *testing.T) {
	inner := openaitest.SelfInstructResponder(19)
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		switch kind, _, _ := openaitest.SelfInstructKind(c.Prompt); kind {
		case openaitest.KindOutputFirst, openaitest.KindInputFirst:
			return openaitest.Reply{Text: "I would be happy to help with that task!"}
		}
		return inner(c)
	}})
	defer srv.Close()
	dir := t.TempDir()
	cfg := siConfig(dir, 20)
	cfg.MaxBarren = 6
	rep, err := RunSelfInstruct(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if !errors.Is(err, ErrBarren) || rep.Status != "unproductive" {
		t.Fatalf("got %v, status %q", err, rep.Status)
	}
	if rep.Stages.Instances.TasksDropped[ReasonNoInstances] < 6 || rep.Stages.Instances.Dropped[string(prompts.DropNoBlocks)] < 6 {
		t.Fatalf("instance stage %+v", rep.Stages.Instances)
	}
}
