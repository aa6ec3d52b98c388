package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

// siJournalState is what a Self-Instruct journal holds at one moment.
type siJournalState struct {
	bootstraps int
	kept       []string
	classified map[string]bool
	instanced  map[string]bool // task -> asked output-first
}

func readSIState(t *testing.T, dir string) siJournalState {
	t.Helper()
	s := siJournalState{classified: map[string]bool{}, instanced: map[string]bool{}}
	data, err := os.ReadFile(filepath.Join(dir, pipeline.JournalFile))
	if os.IsNotExist(err) {
		return s
	}
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var k struct {
			Kind, Error string
		}
		if json.Unmarshal(line, &k) != nil || k.Error != "" {
			continue // a torn tail, or a failed request
		}
		switch k.Kind {
		case pipeline.KindSIBootstrap:
			var e pipeline.SIBootstrapEntry
			json.Unmarshal(line, &e)
			s.bootstraps++
			for _, c := range e.Candidates {
				if c.Status == pipeline.StatusKept {
					s.kept = append(s.kept, c.Instruction)
				}
			}
		case pipeline.KindSIClassify:
			var e pipeline.SIClassifyEntry
			json.Unmarshal(line, &e)
			if _, dup := s.classified[e.Instruction]; dup {
				t.Errorf("journal: %q classified twice", e.Instruction)
			}
			s.classified[e.Instruction] = e.IsClassification
		case pipeline.KindSIInstances:
			var e pipeline.SIInstancesEntry
			json.Unmarshal(line, &e)
			if _, dup := s.instanced[e.Instruction]; dup {
				t.Errorf("journal: %q instantiated twice", e.Instruction)
			}
			s.instanced[e.Instruction] = e.OutputFirst
		}
	}
	return s
}

// checkSIRun checks a finished run's outputs the way the issue will: num
// tasks in tasks.jsonl with their instances in alpaca_data.json, output-first
// prompts exactly for the tasks classified Yes, no task above 0.7 ROUGE-L
// against the seeds or an earlier task. It returns the tasks.
func checkSIRun(t *testing.T, dir string, num int, calls []openaitest.Call) []prompts.SeedTask {
	t.Helper()
	tasks, err := prompts.LoadSeedTasks(filepath.Join(dir, pipeline.TasksFile))
	if err != nil {
		t.Fatalf("tasks.jsonl does not read back as seed tasks: %v", err)
	}
	if len(tasks) != num {
		t.Fatalf("%d tasks, want exactly %d", len(tasks), num)
	}
	data, err := os.ReadFile(filepath.Join(dir, pipeline.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	var records []output.Example
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, tk := range tasks {
		if len(tk.Instances) == 0 || len(tk.Instances) > 5 {
			t.Errorf("task %q has %d instances", tk.Instruction, len(tk.Instances))
		}
		for _, in := range tk.Instances {
			if i >= len(records) || records[i] != (output.Example{Instruction: tk.Instruction, Input: in.Input, Output: in.Output}) {
				t.Fatalf("alpaca_data.json record %d does not match tasks.jsonl", i)
			}
			i++
		}
	}
	if i != len(records) {
		t.Fatalf("alpaca_data.json has %d records, tasks.jsonl %d instances", len(records), i)
	}
	st := readSIState(t, dir)
	outputFirst, inputFirst := map[string]int{}, map[string]int{}
	for _, c := range calls {
		switch kind, task, _ := openaitest.SelfInstructKind(c.Prompt); kind {
		case openaitest.KindOutputFirst:
			outputFirst[task]++
		case openaitest.KindInputFirst:
			inputFirst[task]++
		}
	}
	for _, tk := range tasks {
		if st.classified[tk.Instruction] != tk.IsClassification {
			t.Errorf("task %q: tasks.jsonl and the journal disagree on is_classification", tk.Instruction)
		}
	}
	for task, clf := range st.classified {
		if _, asked := st.instanced[task]; !asked {
			continue
		}
		if clf && (outputFirst[task] == 0 || inputFirst[task] > 0) || !clf && (inputFirst[task] == 0 || outputFirst[task] > 0) {
			t.Errorf("task %q classified %v: asked output-first %d, input-first %d times", task, clf, outputFirst[task], inputFirst[task])
		}
	}
	var pool []string
	for _, s := range prompts.DefaultSeedTasks() {
		pool = append(pool, s.Instruction)
	}
	for _, k := range st.kept {
		for _, p := range pool {
			if s := filters.RougeL(k, p); s > 0.7 {
				t.Fatalf("task %q is %.3f ROUGE-L from %q", k, s, p)
			}
		}
		pool = append(pool, k)
	}
	return tasks
}

// settle waits until the server has logged no new call for a while.
func settle(srv *openaitest.Server) {
	last, stable := -1, 0
	for stable < 3 {
		time.Sleep(50 * time.Millisecond)
		calls, _ := srv.Calls()
		if len(calls) == last {
			stable++
		} else {
			last, stable = len(calls), 0
		}
	}
}

// The check: SIGKILL during each stage, then the same command; the
// final output has an uninterrupted run's shape, and no task classified or
// instantiated before a kill is asked about again.
func TestGenerateSelfInstructSIGKILLInEachStage(t *testing.T) {
	if testing.Short() {
		t.Skip("kill-and-resume runs the binary several times")
	}
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.SelfInstructResponder(21),
		Faults:  openaitest.Faults{Slow: 0.5, SlowDelay: 60 * time.Millisecond, ServerErr: 0.03, RateLimit: 0.03},
		Seed:    22,
		APIKey:  "sk-test-secret",
	})
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "run")
	env := []string{"OPENAI_API_KEY=sk-test-secret"}
	args := []string{"generate", "--recipe", "self-instruct", "--num", "100", "--out", dir, "--base-url", srv.BaseURL(),
		"--model", "gpt-4o-mini", "--concurrency", "4", "--seed", "5", "--retry-backoff", "10ms", "--max-unproductive", "40"}

	// Kill points, one per stage: once the journal holds a first bootstrap
	// answer, then a few more classifications, then a few more instance
	// answers than the last run left.
	type killPoint struct {
		stage string
		ready func(before, now siJournalState) bool
	}
	points := []killPoint{
		{"bootstrap", func(_, now siJournalState) bool { return now.bootstraps >= 1 }},
		{"classify", func(b, now siJournalState) bool { return len(now.classified) >= len(b.classified)+3 }},
		{"instances", func(b, now siJournalState) bool { return len(now.instanced) >= len(b.instanced)+3 }},
	}
	type segment struct {
		callsBefore int
		state       siJournalState
	}
	var segments []segment
	for _, p := range points {
		before := readSIState(t, dir)
		calls, _ := srv.Calls()
		segments = append(segments, segment{len(calls), before})
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !p.ready(before, readSIState(t, dir)) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("stage %s never reached:\n%s", p.stage, stderr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		// The server finishes (and logs) requests the killed run left in
		// flight; wait for that, so their calls are not taken for the next
		// run's.
		settle(srv)
		now := readSIState(t, dir)
		for i, k := range before.kept {
			if now.kept[i] != k {
				t.Fatalf("kill in %s: kept task %d changed", p.stage, i)
			}
		}
		t.Logf("killed in %s: %d bootstrap answers, %d tasks kept, %d classified, %d instantiated",
			p.stage, now.bootstraps, len(now.kept), len(now.classified), len(now.instanced))
	}
	final := readSIState(t, dir)
	calls, _ := srv.Calls()
	segments = append(segments, segment{len(calls), final})
	stdout, stderr, code := runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("final run exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "100/100 tasks") {
		t.Errorf("summary: %s", stdout)
	}
	calls, _ = srv.Calls()
	// Nothing journaled before a run started is asked by it or any later run.
	for _, seg := range segments {
		for _, c := range calls[seg.callsBefore:] {
			kind, task, _ := openaitest.SelfInstructKind(c.Prompt)
			if _, done := seg.state.classified[task]; done && kind == openaitest.KindClassify {
				t.Errorf("task %q was classified again after a kill", task)
			}
			if _, done := seg.state.instanced[task]; done && (kind == openaitest.KindOutputFirst || kind == openaitest.KindInputFirst) {
				t.Errorf("task %q was asked for instances again after a kill", task)
			}
		}
	}
	killed := checkSIRun(t, dir, 100, calls)

	// An uninterrupted run of the same command has the same shape.
	srv2 := openaitest.New(openaitest.Options{Respond: openaitest.SelfInstructResponder(21), Seed: 22, APIKey: "sk-test-secret"})
	defer srv2.Close()
	dir2 := filepath.Join(t.TempDir(), "run")
	args2 := append([]string(nil), args...)
	for i := range args2 {
		switch args2[i] {
		case dir:
			args2[i] = dir2
		case srv.BaseURL():
			args2[i] = srv2.BaseURL()
		}
	}
	if stdout, stderr, code := runCLI(t, env, args2...); code != 0 {
		t.Fatalf("uninterrupted run exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	calls2, _ := srv2.Calls()
	clean := checkSIRun(t, dir2, 100, calls2)
	for _, name := range []string{pipeline.DataFile, pipeline.TasksFile, pipeline.ReportFile, pipeline.JournalFile} {
		for _, d := range []string{dir, dir2} {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	var rep1, rep2 pipeline.SelfInstructReport
	for d, rep := range map[string]*pipeline.SelfInstructReport{dir: &rep1, dir2: &rep2} {
		data, err := os.ReadFile(filepath.Join(d, pipeline.ReportFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, rep); err != nil {
			t.Fatal(err)
		}
	}
	if rep1.Status != "complete" || rep2.Status != "complete" || rep1.Written != 100 || rep2.Written != 100 || !rep1.Resumed || rep2.Resumed {
		t.Errorf("reports: killed %q/%d resumed=%v, clean %q/%d resumed=%v", rep1.Status, rep1.Written, rep1.Resumed, rep2.Status, rep2.Written, rep2.Resumed)
	}
	if len(killed) != len(clean) {
		t.Errorf("%d tasks after kills, %d uninterrupted", len(killed), len(clean))
	}
	if strings.Contains(stderr+stdout, "sk-test-secret") {
		t.Error("the API key was printed")
	}
	t.Logf("killed run: %d instances, %.0f%% classification; clean run: %d instances, %.0f%%",
		rep1.InstancesWritten, 100*rep1.ClassificationShare, rep2.InstancesWritten, 100*rep2.ClassificationShare)
}

func TestGenerateSelfInstructBadFlags(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.SelfInstructResponder(1), APIKey: "sk-test-secret"})
	defer srv.Close()
	key := []string{"OPENAI_API_KEY=sk-test-secret"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--recipe", "self-instruct", "--prompt-file", "x.txt"}, "--prompt-file"},
		{[]string{"--recipe", "self-instruct", "--max-instances", "0"}, "--max-instances"},
		{[]string{"--recipe", "self-instruct", "--machine-prompt-instructions", "8"}, "--machine-prompt-instructions"},
		{[]string{"--recipe", "self-instruct", "--num", "0"}, "--num"},
		{[]string{"--recipe", "bogus"}, "self-instruct"},
	}
	for _, tc := range cases {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"generate", "--out", out, "--base-url", srv.BaseURL()}, tc.args...)
		stdout, stderr, code := runCLI(t, key, args...)
		if code != exitBadInput || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d naming %s\nstdout: %s\nstderr: %s", tc.args, code, exitBadInput, tc.want, stdout, stderr)
		}
	}
	// Over an Alpaca run's directory, the recipe refuses to mix.
	out := filepath.Join(t.TempDir(), "out")
	alpaca := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 3), APIKey: "sk-test-secret"})
	defer alpaca.Close()
	if _, stderr, code := runCLI(t, key, "generate", "--num", "3", "--out", out, "--base-url", alpaca.BaseURL()); code != 0 {
		t.Fatalf("alpaca run: %d %s", code, stderr)
	}
	_, stderr, code := runCLI(t, key, "generate", "--recipe", "self-instruct", "--num", "3", "--out", out, "--base-url", srv.BaseURL())
	if code != exitBadInput || !strings.Contains(stderr, "recipe") {
		t.Errorf("self-instruct over an alpaca run: exit %d: %s", code, stderr)
	}
}
