package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

func translateConfig(in, out string) TranslateConfig {
	return TranslateConfig{
		InPath: in, OutPath: out, To: "pt", Model: "gpt-4o-mini", Concurrency: 8,
		Cost: func(u teacher.Usage) (float64, bool) { return float64(u.Total()) * 1e-6, true },
	}
}

// trExpectedTranslation is what a fault-free TranslateResponder gives for a
// source text: the masked text translated, the spans put back.
func trExpectedTranslation(t *testing.T, p *prompts.Protector, src string) string {
	t.Helper()
	masked, spans := p.Mask(src, 0)
	if !prompts.NeedsTranslation(masked) {
		return src
	}
	out, err := prompts.Unmask(openaitest.TranslateText(masked), spans)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func trReadExamples(t *testing.T, path string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// The check: the 2,000-example cleaned Alpaca sample through a
// server that breaks spans, cuts JSON, adds and drops fields, and fails
// requests: order and count kept, spans byte-identical, tokens equal to
// what the server billed.
func TestTranslateAlpacaSample(t *testing.T) {
	in := filepath.Join("..", "..", "shared", "reference", "alpaca_data_sample_2k.json")
	if _, err := os.Stat(in); err != nil {
		t.Skipf("reference data absent (%v): the 2k Alpaca sample check needs /work/shared", err)
	}
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.TranslateResponder(openaitest.TranslateFaults{
			BreakSpan: 0.3, InvalidJSON: 0.04, ExtraField: 0.04, MissingField: 0.03, Fence: 0.1}, 7),
		Faults: openaitest.Faults{ServerErr: 0.02, RateLimit: 0.02, Malformed: 0.02, Drop: 0.01},
		Seed:   3,
	})
	defer srv.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "alpaca.pt.json")
	cfg := translateConfig(in, out)
	rep, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := trReadExamples(t, in)
	got := trReadExamples(t, out)
	if len(got) != len(src) || rep.Written != len(src) || rep.Status != "complete" {
		t.Fatalf("%d examples written of %d, status %s", len(got), len(src), rep.Status)
	}
	p, _ := prompts.NewProtector(nil)
	failed := map[int]bool{}
	for _, f := range rep.Failures {
		failed[f.Index] = true
	}
	spans := 0
	for i := range src {
		for _, field := range prompts.TranslateFields {
			s, g := src[i][field], got[i][field]
			want := trExpectedTranslation(t, p, s)
			if failed[i] {
				want = s
			}
			if g != want {
				t.Fatalf("example %d %s:\n got %q\nwant %q", i, field, g, want)
			}
			_, sp := p.Mask(s, 0)
			for _, span := range sp {
				spans++
				if !strings.Contains(g, span.Text) {
					t.Fatalf("example %d %s: span %q not byte-identical in %q", i, field, span.Text, g)
				}
			}
		}
	}
	pt, ct := srv.Served()
	if rep.Usage.PromptTokens != int64(pt) || rep.Usage.CompletionTokens != int64(ct) {
		t.Errorf("report usage %+v, server served %d+%d", rep.Usage, pt, ct)
	}
	if rep.Fallbacks == 0 || rep.Retries == 0 || rep.Invalid[prompts.ReasonSpanBroken] == 0 {
		t.Errorf("the faults left no trace: %+v", rep)
	}
	calls, _ := srv.Calls()
	for _, c := range calls {
		rf, _ := c.Body["response_format"].(map[string]any)
		if rf["type"] != "json_object" {
			t.Fatalf("a request without a JSON response format: %v", c.Body["response_format"])
		}
	}
	t.Logf("%d examples, %d spans, %d requests (%d retries, %d fallbacks, %d failed), invalid %v, %d tokens",
		len(src), spans, rep.Requests, rep.Retries, rep.Fallbacks, rep.Failed, rep.Invalid, rep.TotalTokens)
	data, _ := os.ReadFile(filepath.Join(dir, TranslationReportFile))
	var onDisk TranslationReport
	if err := json.Unmarshal(data, &onDisk); err != nil || onDisk.Status != "complete" || onDisk.TotalTokens != rep.TotalTokens {
		t.Errorf("translation_report.json: %v %+v", err, onDisk.Status)
	}
}

func trWriteJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

var trZidRE = regexp.MustCompile(`zid(\d+)`)

// trSyntheticDataset writes n examples that each name their index (zidN) in
// every field, with the kinds of spans translate protects.
func trSyntheticDataset(t *testing.T, path string, n int) []map[string]any {
	var recs []map[string]any
	for i := range n {
		r := map[string]any{
			"instruction": fmt.Sprintf("Explain item zid%d and link https://example.com/zid%d?q=1.", i, i),
			"input":       "",
			"output":      fmt.Sprintf("Item zid%d weighs 5 kg. Use `go run zid%d.go`, write to a%d@example.org, dear {name}.", i, i, i),
		}
		switch i % 5 {
		case 1:
			r["input"] = fmt.Sprintf("Code for zid%d:\n```python\nprint('hello')\n```", i)
		case 2:
			r["output"] = "42 kg"
		case 3:
			r["category"] = "extra field kept"
		}
		recs = append(recs, r)
	}
	trWriteJSON(t, path, recs)
	return recs
}

func trCallIndex(t *testing.T, c openaitest.Call) int {
	m := trZidRE.FindStringSubmatch(c.Prompt)
	if m == nil {
		t.Fatalf("a request without an example id: %q", c.Prompt)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// A run stopped hard in the middle and resumed pays no second request for
// an example it had journaled, and ends with every example in place.
func TestTranslateResumePaysOnce(t *testing.T) {
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.TranslateResponder(openaitest.TranslateFaults{BreakSpan: 0.2, InvalidJSON: 0.05}, 1),
		Faults:  openaitest.Faults{Slow: 0.5, SlowDelay: 40 * time.Millisecond, ServerErr: 0.05},
		Seed:    9,
	})
	defer srv.Close()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	recs := trSyntheticDataset(t, in, 120)
	cfg := translateConfig(in, out)
	cfg.Concurrency = 4

	// First session: stop hard once 30 examples are journaled.
	hard, cancel := context.WithCancel(context.Background())
	cfg.Progress = trProgressFunc(func(s Snapshot) {
		if s.Kept >= 30 {
			cancel()
		}
	})
	rep, err := RunTranslate(hard, hard, newTeacher(t, srv), cfg)
	if err == nil || rep.Status != "interrupted" {
		t.Fatalf("first session: %v, status %s", err, rep.Status)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("an interrupted run wrote a partial dataset: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // the server records a call just after answering it
	done := trJournaledDone(t, cfg.OutPath+".work")
	before, _ := srv.Calls()
	t.Logf("first session: %d examples journaled, %d calls", len(done), len(before))

	cfg.Progress = nil
	rep, err = RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil || rep.Status != "complete" || !rep.Resumed {
		t.Fatalf("second session: %v %+v", err, rep)
	}
	after, _ := srv.Calls()
	for _, c := range after[len(before):] {
		if i := trCallIndex(t, c); done[i] {
			t.Fatalf("example %d was translated before the stop and was paid for again", i)
		}
	}
	got := trReadExamples(t, out)
	p, _ := prompts.NewProtector(nil)
	failed := map[int]bool{}
	for _, f := range rep.Failures {
		failed[f.Index] = true // given up (the faults are random): the source is kept
	}
	for i, r := range recs {
		for _, f := range prompts.TranslateFields {
			want := trExpectedTranslation(t, p, r[f].(string))
			if failed[i] {
				want = r[f].(string)
			}
			if got[i][f] != want {
				t.Fatalf("example %d %s = %q, want %q", i, f, got[i][f], want)
			}
		}
		if i%5 == 3 && got[i]["category"] != "extra field kept" {
			t.Fatalf("example %d lost its extra field: %v", i, got[i])
		}
	}
	pt, ct := srv.Served()
	if rep.Usage.Total() > int64(pt+ct) {
		t.Errorf("report counts %d tokens, the server served %d", rep.Usage.Total(), pt+ct)
	}
}

type trProgressFunc func(Snapshot)

func (f trProgressFunc) Update(s Snapshot) { f(s) }
func (f trProgressFunc) Done()             {}

func trJournaledDone(t *testing.T, workDir string) map[int]bool {
	data, err := os.ReadFile(filepath.Join(workDir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	done := map[int]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		var e translateEntry
		if json.Unmarshal([]byte(line), &e) == nil && (e.Translation != nil || e.Failed != "") {
			done[e.Idx] = true
		}
	}
	return done
}

// A teacher that always damages whole-example answers drives every example
// to the per-field fallback; one that damages everything gets examples
// given up, listed with their reason, and the run stopped as unproductive.
func TestTranslateFallbackAndFailures(t *testing.T) {
	base := openaitest.TranslateResponder(openaitest.TranslateFaults{}, 1)
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		r := base(c)
		if strings.Count(c.Prompt, "\":") > 1 { // several fields: add one
			r.Text = strings.TrimSuffix(r.Text, "}") + `, "notes": "x"}`
		}
		return r
	}})
	defer srv.Close()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	trSyntheticDataset(t, in, 10)
	cfg := translateConfig(in, filepath.Join(dir, "out.json"))
	cfg.KeepSource = true
	rep, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fallbacks == 0 || rep.Invalid[prompts.ReasonAddedField] == 0 || rep.Failed != 0 || rep.Translated+rep.Unchanged != 10 {
		t.Fatalf("fallbacks %d, invalid %v, failed %d, translated %d", rep.Fallbacks, rep.Invalid, rep.Failed, rep.Translated)
	}
	got := trReadExamples(t, cfg.OutPath)
	if got[0]["instruction_source"] == "" || got[0]["output_source"] == "" || got[0]["instruction"] == got[0]["instruction_source"] {
		t.Errorf("--keep-source record %v", got[0])
	}

	// Every answer damaged: examples are given up with reasons, then the run stops.
	bad := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		return openaitest.Reply{Text: `{"instruction": "⟦99⟧"}`}
	}})
	defer bad.Close()
	cfg.OutPath = filepath.Join(dir, "bad.json")
	cfg.WorkDir, cfg.ReportPath = "", ""
	cfg.MaxFailures = 3
	cfg.Concurrency = 1
	rep, err = RunTranslate(context.Background(), context.Background(), newTeacher(t, bad), cfg)
	if !errors.Is(err, ErrBarren) || rep.Status != "unproductive" {
		t.Fatalf("all answers damaged: %v, status %s", err, rep.Status)
	}
	if len(rep.Failures) != 3 || !strings.Contains(rep.Failures[0].Reason, "field instruction failed 5 times") {
		t.Fatalf("failures %+v", rep.Failures)
	}
}

func TestTranslateBadInputs(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.TranslateResponder(openaitest.TranslateFaults{}, 1)})
	defer srv.Close()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	for name, c := range map[string]struct{ content, want string }{
		"nooutput.json": {"[\n  {\"instruction\": \"a\", \"input\": \"\"},\n  {\"instruction\": \"b\"}\n]", "nooutput.json:2: item 0: no field \"output\""},
		"number.jsonl":  {"{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": 5, \"output\": \"b\"}\n", "number.jsonl:2: item 1: field \"instruction\" is a number"},
		"strings.json":  {`["a", "b"]`, "list of strings"},
		"dup.json":      {"[\n{\"instruction\": \"a\", \"output\": \"b\", \"output\": \"c\"}\n]", "dup.json:2: item 0: field \"output\" appears twice"},
		"broken.json":   {"[\n{\"instruction\": \"a\",\n", "broken.json:"},
	} {
		cfg := translateConfig(write(name, c.content), filepath.Join(dir, name+".out"))
		_, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	cfg := translateConfig(write("same.json", `[{"instruction": "a", "output": "b"}]`), filepath.Join(dir, "same.json"))
	if _, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg); err == nil {
		t.Error("--out equal to --in accepted")
	}
	// A resumed run must translate into the same language.
	cfg = translateConfig(filepath.Join(dir, "ok.json"), filepath.Join(dir, "ok.out.json"))
	write("ok.json", `[{"instruction": "Say hi.", "input": "", "output": "Hi."}]`)
	if _, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.To = "de"
	if _, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg); !errors.Is(err, ErrIncompatibleRun) {
		t.Errorf("resume into another language: %v", err)
	}
}

// JSONL in, JSONL out, with the lines in order; the dry run prices the
// work without a request.
func TestTranslateJSONLAndEstimate(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.TranslateResponder(openaitest.TranslateFaults{}, 1)})
	defer srv.Close()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "{\"id\": %d, \"instruction\": \"Name a colour zid%d.\", \"input\": \"\", \"output\": \"Blue <b>&</b>.\"}\n", i, i)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	cfg := translateConfig(in, "")
	est, err := EstimateTranslate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if est.Pending != 20 || est.Requests != 20 || est.Usage.PromptTokens == 0 || est.CostUSD <= 0 || est.MaxCost < est.CostUSD {
		t.Fatalf("estimate %+v", est)
	}
	if calls, _ := srv.Calls(); len(calls) != 0 {
		t.Fatalf("the dry run made %d requests", len(calls))
	}
	rep, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Output != filepath.Join(dir, "in.pt.jsonl") {
		t.Errorf("default output %s", rep.Output)
	}
	d, err := output.ReadDataset(rep.Output)
	if err != nil || d.Shape != output.ShapeJSONL || len(d.Items) != 20 {
		t.Fatalf("output %v %v", d, err)
	}
	for i := range d.Items {
		var r struct {
			ID          int    `json:"id"`
			Instruction string `json:"instruction"`
			Output      string `json:"output"`
		}
		json.Unmarshal(d.Items[i].Raw, &r)
		if r.ID != i || openaitest.UntranslateText(r.Instruction) != fmt.Sprintf("Name a colour zid%d.", i) || r.Output != openaitest.TranslateText("Blue <b>&</b>.") {
			t.Fatalf("line %d: %+v", i, r)
		}
	}
	est, err = EstimateTranslate(cfg)
	if err != nil || est.Pending != 0 || est.Done != 20 || est.Spent <= 0 {
		t.Fatalf("estimate after the run %+v %v", est, err)
	}
}

// A model that knows the Alpaca shape answers "input": "" for an example
// whose empty input was not sent; that is no reason to retry. And a second
// run on the same output waits for no one: it fails at once as locked.
func TestTranslateEmptyEchoAndLock(t *testing.T) {
	base := openaitest.TranslateResponder(openaitest.TranslateFaults{}, 1)
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		r := base(c)
		if !strings.Contains(c.Prompt, `"input"`) {
			r.Text = strings.TrimSuffix(r.Text, "}") + `, "input": ""}`
		}
		return r
	}})
	defer srv.Close()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	trSyntheticDataset(t, in, 10)
	cfg := translateConfig(in, filepath.Join(dir, "out.json"))
	rep, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Retries != 0 || rep.Fallbacks != 0 || len(rep.Invalid) != 0 {
		t.Fatalf("an echoed empty input was rejected: %+v", rep)
	}
	lock, err := LockDir(cfg.OutPath + ".work")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	if _, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("a locked work directory: %v", err)
	}
}

// A teacher that never returns the ⟦n⟧ placeholders intact, but copies code
// and URLs faithfully when it sees them, gets each such field once more
// without placeholders, with every span checked in its answer.
func TestTranslateRawLastResort(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		var obj map[string]string
		json.Unmarshal([]byte(c.Prompt), &obj)
		for k, v := range obj {
			if strings.Contains(v, "⟦") {
				v = strings.NewReplacer("⟦", "[", "⟧", "]").Replace(v)
			}
			obj[k] = "[pt] " + v
		}
		b, _ := json.Marshal(obj)
		return openaitest.Reply{Text: string(b)}
	}})
	defer srv.Close()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	recs := trSyntheticDataset(t, in, 5)
	cfg := translateConfig(in, filepath.Join(dir, "out.json"))
	rep, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.Translated != 5 {
		t.Fatalf("report %+v", rep)
	}
	got := trReadExamples(t, cfg.OutPath)
	for i, r := range recs {
		for _, f := range prompts.TranslateFields {
			src := r[f].(string)
			if src != "" && got[i][f] != "[pt] "+src && got[i][f] != src {
				t.Errorf("example %d %s = %q", i, f, got[i][f])
			}
		}
	}
	data, _ := os.ReadFile(filepath.Join(cfg.OutPath+".work", JournalFile))
	if !strings.Contains(string(data), `"raw":true`) {
		t.Error("no request was sent without placeholders")
	}
}

// A run resumed with fewer --field-attempts than the one that started gives
// up, without a request, on an example that has used them up, and says so
// in the journal; a resumed run with --retry-failed tries it again.
func TestTranslateResumeWithFewerAttempts(t *testing.T) {
	var calls atomic.Int32
	hard, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := openaitest.New(openaitest.Options{Respond: func(c openaitest.Call) openaitest.Reply {
		if calls.Add(1) == 5 {
			// The fifth request is abandoned: the run stops while the
			// server is still writing it.
			cancel()
			time.Sleep(200 * time.Millisecond)
		}
		return openaitest.Reply{Text: "Sorry, no JSON today."}
	}})
	defer srv.Close()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	trSyntheticDataset(t, in, 1)
	cfg := translateConfig(in, filepath.Join(dir, "out.json"))
	cfg.Concurrency = 1
	if _, err := RunTranslate(hard, hard, newTeacher(t, srv), cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("first session: %v", err)
	}
	cfg.FieldAttempts = 1
	rep, err := RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil || rep.Failed != 1 || calls.Load() != 5 {
		t.Fatalf("resumed with --field-attempts 1: %v, %d failed, %d calls", err, rep.Failed, calls.Load())
	}
	if rep.Requests != 4 || rep.Invalid[prompts.ReasonInvalidJSON] != 4 {
		t.Errorf("report %+v", rep)
	}
	cfg.RetryFailed, cfg.FieldAttempts = true, 3
	rep, err = RunTranslate(context.Background(), context.Background(), newTeacher(t, srv), cfg)
	if err != nil || rep.Failed != 1 || calls.Load() <= 5 {
		t.Fatalf("--retry-failed: %v, %d failed, %d calls", err, rep.Failed, calls.Load())
	}
}
