package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

func translateServer(t *testing.T, faults openaitest.Faults) *openaitest.Server {
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.TranslateResponder(openaitest.TranslateFaults{BreakSpan: 0.2, InvalidJSON: 0.05, ExtraField: 0.05}, 4),
		Faults:  faults,
		Seed:    5,
		APIKey:  "sk-test-secret",
	})
	t.Cleanup(srv.Close)
	return srv
}

// writeTranslateInput writes n examples naming their index (zidN) in every
// field, with spans to protect.
func writeTranslateInput(t *testing.T, path string, n int) []map[string]string {
	var recs []map[string]string
	for i := range n {
		recs = append(recs, map[string]string{
			"instruction": fmt.Sprintf("Describe item zid%d, see https://example.com/zid%d.", i, i),
			"input":       map[bool]string{true: "", false: fmt.Sprintf("Item zid%d costs $25 and weighs 3 kg.", i)}[i%2 == 0],
			"output":      fmt.Sprintf("Item zid%d: run `make zid%d` and mail ops%d@example.org.", i, i, i),
		})
	}
	data, _ := json.MarshalIndent(recs, "", "    ")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return recs
}

var trZidRE = regexp.MustCompile(`zid(\d+)`)

func doneInTranslateJournal(t *testing.T, workDir string) map[int]bool {
	data, err := os.ReadFile(filepath.Join(workDir, pipeline.JournalFile))
	if os.IsNotExist(err) {
		return map[int]bool{}
	}
	if err != nil {
		t.Fatal(err)
	}
	done := map[int]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		var e struct {
			Idx         int               `json:"idx"`
			Translation map[string]string `json:"translation"`
			Failed      string            `json:"failed"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && (e.Translation != nil || e.Failed != "") {
			done[e.Idx] = true
		}
	}
	return done
}

// The check: translate killed with SIGKILL at random moments and
// resumed loses nothing and never pays again for an example it had
// translated; the output keeps the input's order and every protected span.
func TestTranslateSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kill-and-resume runs the binary several times")
	}
	srv := translateServer(t, openaitest.Faults{Slow: 0.7, SlowDelay: 60 * time.Millisecond, ServerErr: 0.05, RateLimit: 0.05, Drop: 0.02})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "alpaca_data.json"), filepath.Join(dir, "alpaca_data.pt.json")
	recs := writeTranslateInput(t, in, 300)
	env := []string{"OPENAI_API_KEY=sk-test-secret"}
	args := []string{"translate", "--in", in, "--to", "pt", "--base-url", srv.BaseURL(), "--model", "gpt-4o-mini",
		"--concurrency", "6", "--retry-backoff", "5ms", "--keep-source"}
	rng := rand.New(rand.NewPCG(3, 4))
	for kill := 0; kill < 4; kill++ {
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		// The server records a call after writing its answer, and it goes on
		// serving the killed process's requests: let those settle before
		// the calls so far are counted.
		time.Sleep(200 * time.Millisecond)
		done := doneInTranslateJournal(t, out+".work")
		calls, _ := srv.Calls()
		t.Logf("kill %d: %d examples journaled, %d calls so far", kill, len(done), len(calls))
		t.Cleanup(func() {
			// After this kill, no call may be for an example already journaled.
			after, _ := srv.Calls()
			for _, c := range after[len(calls):] {
				m := trZidRE.FindStringSubmatch(c.Prompt)
				if m == nil {
					t.Errorf("a request without an example id: %q", c.Prompt)
					continue
				}
				if i, _ := strconv.Atoi(m[1]); done[i] {
					t.Errorf("example %d, journaled before kill %d, was paid for again", i, kill)
				}
			}
		})
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("kill %d: a partial output was published", kill)
		}
	}
	stdout, stderr, code := runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("final run exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d examples, want %d", len(got), len(recs))
	}
	p, _ := prompts.NewProtector(nil)
	for i, r := range recs {
		for _, f := range prompts.TranslateFields {
			if got[i][f+"_source"] != r[f] {
				t.Fatalf("example %d is out of order: %s_source %q, want %q", i, f, got[i][f+"_source"], r[f])
			}
			_, spans := p.Mask(r[f], 0)
			for _, s := range spans {
				if !strings.Contains(got[i][f], s.Text) {
					t.Fatalf("example %d %s: span %q changed: %q", i, f, s.Text, got[i][f])
				}
			}
			if got[i]["translation_error"] != "" {
				continue // given up, and listed in the report
			}
			if r[f] != "" && openaitest.UntranslateText(got[i][f]) == got[i][f] {
				t.Fatalf("example %d %s not translated: %q", i, f, got[i][f])
			}
		}
	}
	var rep pipeline.TranslationReport
	raw, _ := os.ReadFile(filepath.Join(dir, pipeline.TranslationReportFile))
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Status != "complete" || !rep.Resumed || rep.Written != len(recs) {
		t.Fatalf("report %v %+v", err, rep)
	}
	for _, f := range rep.Failures {
		if got[f.Index]["translation_error"] != f.Reason || f.Reason == "" {
			t.Errorf("failure %+v not marked in the output: %v", f, got[f.Index])
		}
	}
	t.Logf("%d requests, %d retries, %d fallbacks, %d failed", rep.Requests, rep.Retries, rep.Fallbacks, rep.Failed)
	if strings.Contains(stdout+stderr, "sk-test-secret") {
		t.Fatal("the API key was printed")
	}
}

func TestTranslateCLI(t *testing.T) {
	srv := translateServer(t, openaitest.Faults{})
	dir := t.TempDir()
	in := filepath.Join(dir, "data.json")
	writeTranslateInput(t, in, 12)
	key := []string{"OPENAI_API_KEY=sk-test-secret"}
	base := []string{"translate", "--base-url", srv.BaseURL(), "--retry-backoff", "1ms"}

	// --dry-run prices the work without a key and without a request.
	stdout, stderr, code := runCLI(t, []string{"OPENAI_API_KEY=", "OPENAI_BASE_URL="}, "translate", "--in", in, "--to", "de", "--dry-run", "--model", "gpt-4o-mini")
	if code != 0 || !strings.Contains(stdout, "12 to translate") || !strings.Contains(stdout, "expected cost with gpt-4o-mini: $") {
		t.Fatalf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	if calls, _ := srv.Calls(); len(calls) != 0 {
		t.Fatal("the dry run made requests")
	}

	glossary := filepath.Join(dir, "g.tsv")
	os.WriteFile(glossary, []byte("item\tartigo\n"), 0o644)
	stdout, stderr, code = runCLI(t, key, append(base, "--in", in, "--to", "de", "--glossary", glossary, "--keep", `zid\d+`)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	var got []map[string]string
	data, _ := os.ReadFile(filepath.Join(dir, "data.de.json"))
	if err := json.Unmarshal(data, &got); err != nil || len(got) != 12 {
		t.Fatalf("output: %v (%d)", err, len(got))
	}
	if !strings.Contains(got[3]["instruction"], "zid3") {
		t.Errorf("--keep zid\\d+ was translated: %q", got[3]["instruction"])
	}
	calls, _ := srv.Calls()
	if sys := calls[0].Body["messages"].([]any)[0].(map[string]any)["content"].(string); !strings.Contains(sys, "Item => artigo") && !strings.Contains(sys, "item => artigo") {
		t.Errorf("the glossary is not in the prompt:\n%s", sys)
	}

	// Running it again has nothing left to pay for.
	before := len(calls)
	stdout, stderr, code = runCLI(t, key, append(base, "--in", in, "--to", "de", "--glossary", glossary, "--keep", `zid\d+`)...)
	if calls, _ := srv.Calls(); code != 0 || len(calls) != before {
		t.Fatalf("rerun: exit %d, %d new calls\n%s%s", code, len(calls)-before, stdout, stderr)
	}

	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --to", []string{"--in", in}, exitBadInput, "--to"},
		{"missing field", []string{"--in", write("bad.json", "[\n{\"instruction\": \"a\", \"input\": \"\"}\n]"), "--to", "pt"}, exitBadInput, "bad.json:2"},
		{"bad keep", []string{"--in", in, "--to", "fr", "--keep", "("}, exitBadInput, "--keep"},
		{"bad glossary", []string{"--in", in, "--to", "fr", "--glossary", write("g.json", "{\"a\": 1}")}, exitBadInput, "g.json:1"},
		{"other language into the same out", []string{"--in", in, "--to", "fr", "--out", filepath.Join(dir, "data.de.json")}, exitBadInput, "--to de"},
		{"teacher down", []string{"--in", in, "--to", "es", "--base-url", "http://127.0.0.1:1/v1", "--max-attempts", "1"}, exitTeacherDown, "127.0.0.1:1"},
		{"budget", []string{"--in", in, "--to", "it", "--max-cost", "0.0000001"}, exitBudget, "--max-cost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, key, append(base, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d (want %d), stderr lacks %q:\n%s%s", code, tc.code, tc.want, stdout, stderr)
			}
		})
	}
}

// Ctrl-C stops translate cleanly: the requests in flight are finished and
// journaled, the report says interrupted, the exit code says so, and the
// same command finishes the job.
func TestTranslateSIGINT(t *testing.T) {
	srv := translateServer(t, openaitest.Faults{Slow: 1, SlowDelay: 50 * time.Millisecond})
	dir := t.TempDir()
	in := filepath.Join(dir, "d.json")
	writeTranslateInput(t, in, 100)
	env := []string{"OPENAI_API_KEY=sk-test-secret"}
	args := []string{"translate", "--in", in, "--to", "ja", "--base-url", srv.BaseURL(), "--concurrency", "4"}
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var outb strings.Builder
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitInterrupted, outb.String())
	}
	var rep pipeline.TranslationReport
	raw, _ := os.ReadFile(filepath.Join(dir, pipeline.TranslationReportFile))
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Status != "interrupted" || rep.Remaining == 0 {
		t.Fatalf("report after Ctrl-C: %v %+v", err, rep)
	}
	before := rep.TotalTokens
	stdout, stderr, code := runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", code, stdout, stderr)
	}
	raw, _ = os.ReadFile(filepath.Join(dir, pipeline.TranslationReportFile))
	json.Unmarshal(raw, &rep)
	pt, ct := srv.Served()
	if rep.Status != "complete" || rep.TotalTokens <= before || rep.TotalTokens != int64(pt+ct) {
		t.Fatalf("after resume: status %s, %d tokens, server served %d", rep.Status, rep.TotalTokens, pt+ct)
	}
}
