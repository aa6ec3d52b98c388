package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

func alpacaServer(t *testing.T, faults openaitest.Faults) *openaitest.Server {
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.AlpacaResponder(nil, 11),
		Faults:  faults,
		Seed:    12,
		APIKey:  "sk-test-secret",
	})
	t.Cleanup(srv.Close)
	return srv
}

func keptInJournal(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, pipeline.JournalFile))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kept []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var e pipeline.ResponseEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Kind != "response" {
			continue // a torn tail: the next run cuts it off
		}
		for _, c := range e.Candidates {
			if c.Status == pipeline.StatusKept {
				kept = append(kept, c.Instruction)
			}
		}
	}
	return kept
}

// The reliability check: a run killed with SIGKILL at random moments
// and restarted ends with exactly --num examples, holding every example that
// was journaled before each kill, with no duplicates.
func TestGenerateSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kill-and-resume runs the binary several times")
	}
	srv := alpacaServer(t, openaitest.Faults{Slow: 0.8, SlowDelay: 150 * time.Millisecond, ServerErr: 0.05, RateLimit: 0.05, Drop: 0.03})
	dir := filepath.Join(t.TempDir(), "run")
	env := []string{"OPENAI_API_KEY=sk-test-secret"}
	args := []string{"generate", "--num", "300", "--out", dir, "--base-url", srv.BaseURL(),
		"--model", "gpt-4o-mini", "--concurrency", "4", "--seed", "5", "--retry-backoff", "10ms"}
	rng := rand.New(rand.NewPCG(1, 2))
	var journaled []string
	for kill := 0; kill < 4; kill++ {
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		now := keptInJournal(t, dir)
		if len(now) < len(journaled) {
			t.Fatalf("kill %d: the journal lost examples: %d, had %d", kill, len(now), len(journaled))
		}
		for i := range journaled {
			if now[i] != journaled[i] {
				t.Fatalf("kill %d: journaled example %d changed", kill, i)
			}
		}
		journaled = now
		t.Logf("kill %d: %d examples journaled", kill, len(journaled))
	}
	stdout, stderr, code := runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("final run exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, pipeline.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []output.Example
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 {
		t.Fatalf("%d examples, want exactly 300", len(got))
	}
	seen := map[string]bool{}
	for i, ex := range got {
		if seen[ex.Instruction] {
			t.Fatalf("example %d is a duplicate: %q", i, ex.Instruction)
		}
		seen[ex.Instruction] = true
	}
	for i, inst := range journaled {
		if i < len(got) && got[i].Instruction != inst {
			t.Fatalf("example %d journaled before a kill is not in its place: %q vs %q", i, inst, got[i].Instruction)
		}
	}
	if strings.Contains(stderr+stdout, "sk-test-secret") {
		t.Fatal("the API key was printed")
	}
}

func TestGenerateBadInputs(t *testing.T) {
	srv := alpacaServer(t, openaitest.Faults{})
	tmp := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `{"id": "s1", "name": "a", "instruction": "Name three kinds of clouds you can see.", "instances": [{"input": "", "output": "Cumulus."}], "is_classification": false}`
	notDir := write("plainfile", "x")
	key := []string{"OPENAI_API_KEY=sk-test-secret"}
	cases := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantText []string
	}{
		{"broken seed line", key, []string{"--seed-tasks", write("broken.jsonl", good+"\n{\"id\": \"s2\", \"instruction\": \n")}, exitBadInput, []string{"broken.jsonl:2"}},
		{"missing instruction", key, []string{"--seed-tasks", write("missing.jsonl", `{"id": "s1", "name": "a", "instances": [{"input": "", "output": "x"}]}`+"\n")}, exitBadInput, []string{"missing.jsonl", "instruction"}},
		{"invalid utf-8", key, []string{"--seed-tasks", write("utf8.jsonl", strings.Replace(good, "clouds", "clo\xffuds", 1)+"\n")}, exitBadInput, []string{"utf8.jsonl", "UTF-8"}},
		{"empty seed file", key, []string{"--seed-tasks", write("empty.jsonl", "")}, exitBadInput, []string{"empty.jsonl"}},
		{"out not writable", key, []string{"--out", filepath.Join(notDir, "sub")}, exitBadInput, []string{"--out"}},
		{"wrong key", []string{"OPENAI_API_KEY=sk-wrong"}, nil, exitTeacherDown, []string{"key"}},
		{"unreachable", key, []string{"--base-url", "http://127.0.0.1:1/v1"}, exitTeacherDown, []string{"127.0.0.1:1"}},
		{"no key", []string{"OPENAI_API_KEY=", "OPENAI_BASE_URL="}, []string{"--base-url", ""}, exitBadInput, []string{"OPENAI_API_KEY"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"generate", "--num", "5", "--out", out, "--base-url", srv.BaseURL(), "--max-attempts", "2", "--retry-backoff", "1ms"}
			args = append(args, tc.args...)
			stdout, stderr, code := runCLI(t, tc.env, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not name %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr+stdout, "sk-test-secret") || strings.Contains(stderr+stdout, "sk-wrong") {
				t.Error("the API key was printed")
			}
		})
	}
}
