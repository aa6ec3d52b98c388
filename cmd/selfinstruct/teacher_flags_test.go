package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/llm/hub"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// flagsCmd is a command carrying the teacher flags and generate's
// --max-tokens, parsed from args.
func flagsCmd(t *testing.T, args ...string) (*cobra.Command, *teacherFlags, *int) {
	t.Helper()
	var tf teacherFlags
	var maxTokens int
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 3072, "")
	tf.register(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	cmd.SetContext(context.Background())
	cmd.SetErr(io.Discard)
	return cmd, &tf, &maxTokens
}

func TestTeacherAuto(t *testing.T) {
	cases := []struct {
		key, baseURL string
		args         []string
		want         string
	}{
		{"", "", nil, "local"},
		{"sk-x", "", nil, "openai"},
		{"", "http://host/v1", nil, "openai"},
		{"", "", []string{"--base-url", "http://host/v1"}, "openai"},
		{"", "", []string{"--model", "gpt-4o"}, "openai"}, // then asks for the key
		{"sk-x", "", []string{"--model", "models/m.GGUF"}, "local"},
		{"sk-x", "", []string{"--model", "hf://o/r/m.gguf"}, "local"},
		{"", "", []string{"--teacher", "openai"}, "openai"},
		{"sk-x", "", []string{"--teacher", "local"}, "local"},
	}
	for _, c := range cases {
		cmd, tf, _ := flagsCmd(t, c.args...)
		baseURL := c.baseURL
		if tf.baseURL != "" {
			baseURL = tf.baseURL
		}
		got, err := tf.resolveKind(cmd, baseURL, c.key)
		if err != nil || got != c.want {
			t.Errorf("key %q base %q args %v: %q, %v; want %q", c.key, c.baseURL, c.args, got, err, c.want)
		}
	}
	cmd, tf, _ := flagsCmd(t, "--teacher", "ollama")
	if _, err := tf.resolveKind(cmd, "", ""); err == nil || !strings.Contains(err.Error(), "auto, openai or local") {
		t.Errorf("unknown backend: %v", err)
	}
}

// TestLocalTeacherFlags builds the local teacher from flags and checks it
// against `complete`, the command that shares its engine: a raw prompt on
// stories260K and a chat through the ChatML template on the random qwen2.
func TestLocalTeacherFlags(t *testing.T) {
	requireSharedModels(t)
	stories := filepath.Join(completeShared, "stories260K.gguf")
	cmd, tf, maxTokens := flagsCmd(t, "--teacher", "local", "--model", stories, "--threads", "2", "--parallel", "2")
	tch, cost, err := tf.build(cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tch.(io.Closer).Close()
	if tch.Model() != stories || tf.concurrency != 2 || *maxTokens != defaultLocalMaxTokens {
		t.Errorf("model %q, concurrency %d, max-tokens %d; want the path, --parallel, %d", tch.Model(), tf.concurrency, *maxTokens, defaultLocalMaxTokens)
	}
	if usd, ok := cost(teacher.Usage{PromptTokens: 1000, CompletionTokens: 1000}); usd != 0 || !ok {
		t.Errorf("cost %v %v, want a known 0", usd, ok)
	}
	resp, err := tch.Complete(context.Background(), teacher.Request{Mode: teacher.ModeCompletion, Prompts: []string{"Once upon a time"}, MaxTokens: 40})
	if err != nil {
		t.Fatal(err)
	}
	want, err := execComplete(t, "--model", stories, "--prompt", "Once upon a time", "-n", "40", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Text != want.Text || resp.Usage.PromptTokens != int64(len(want.PromptTokens)) || resp.Usage.CompletionTokens != int64(len(want.Tokens)) {
		t.Errorf("teacher %q %+v\ncomplete %q (%d+%d tokens)", resp.Choices[0].Text, resp.Usage, want.Text, len(want.PromptTokens), len(want.Tokens))
	}

	qwen := filepath.Join(completeShared, "random", "qwen2-small-q8_0.gguf")
	cmd, tf, maxTokens = flagsCmd(t, "--teacher", "local", "--model", qwen, "--chat-template", "chatml", "--ctx-size", "512", "--max-tokens", "100", "--concurrency", "3")
	tch, _, err = tf.build(cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tch.(io.Closer).Close()
	if tf.concurrency != 3 || *maxTokens != 100 || tf.parallel != 3 {
		t.Errorf("explicit --concurrency %d / --max-tokens %d were overridden, or --parallel %d does not follow --concurrency", tf.concurrency, *maxTokens, tf.parallel)
	}
	msg := "Write three tasks about the sea."
	resp, err = tch.Complete(context.Background(), teacher.Request{Mode: teacher.ModeChat, Messages: []teacher.Message{{Role: "user", Content: msg}}, MaxTokens: 24})
	if err != nil {
		t.Fatal(err)
	}
	want, err = execComplete(t, "--model", qwen, "--prompt", msg, "--chat", "--template", "chatml", "-n", "24", "--json")
	if err != nil {
		t.Fatal(err)
	}
	// complete's JSON shows invalid UTF-8 as U+FFFD.
	if jsonText(resp.Choices[0].Text) != want.Text || resp.Usage.PromptTokens != int64(len(want.PromptTokens)) {
		t.Errorf("chat through the teacher %q (%d prompt tokens)\ncomplete --chat %q (%d)", resp.Choices[0].Text, resp.Usage.PromptTokens, want.Text, len(want.PromptTokens))
	}

	// Neither --parallel nor --concurrency: the engine batches the default
	// number of sequences and the pipeline keeps that many requests in flight.
	cmd, tf, _ = flagsCmd(t, "--teacher", "local", "--model", stories)
	tch, _, err = tf.build(cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	tch.(io.Closer).Close()
	if tf.parallel != defaultLocalParallel || tf.concurrency != defaultLocalParallel {
		t.Errorf("defaults: --parallel %d, --concurrency %d, want %d for both", tf.parallel, tf.concurrency, defaultLocalParallel)
	}

	for _, args := range [][]string{
		{"--teacher", "local", "--model", filepath.Join(t.TempDir(), "none.gguf")},
		{"--teacher", "local", "--model", stories, "--parallel", "-1"},
		{"--teacher", "local", "--model", stories, "--chat-template", "nope"},
		{"--teacher", "local", "--model", "hf://only/two"},
	} {
		cmd, tf, _ := flagsCmd(t, args...)
		_, _, err := tf.build(cmd, 0)
		var ce *codedError
		if err == nil || !errors.As(err, &ce) || ce.code != exitBadInput {
			t.Errorf("%v: %v, want a bad-input error", args, err)
		}
	}
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

// TestGenerateLocalStories is the check: the whole pipeline on the
// real engine with a model that writes stories, not tasks, ends with the
// "nothing usable" stop (exit 7) after real, free, truncated responses.
//
// It costs ten Alpaca prompts of ~1.5K tokens plus 512 generated tokens
// each on the CPU engine (about 45 s of CPU time on the development
// machine, 90% of it in the engine's attention), so -short skips it.
func TestGenerateLocalStories(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: ten full local generations on the CPU engine")
	}
	requireSharedModels(t)
	out := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	// One sequence at a time, so that exactly --max-unproductive responses
	// are paid for (with 8 in flight, those already running when the stop
	// comes finish and are journaled too).
	stdout, stderr, code := runCLI(t, []string{"OPENAI_API_KEY="}, "generate", "--teacher", "local",
		"--model", filepath.Join(completeShared, "stories260K.gguf"), "--num", "5", "--out", out, "--parallel", "1")
	t.Logf("wall time %v", time.Since(start))
	if code != exitUnproductive {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUnproductive, stdout, stderr)
	}
	if !strings.Contains(stdout, "0/5 examples") || !strings.Contains(stdout, "$0.0000") || strings.Contains(stdout, "price unknown") {
		t.Errorf("summary %q", stdout)
	}
	if !strings.Contains(stderr, "no chat template") {
		t.Errorf("the raw-prompt fallback was not logged:\n%s", stderr)
	}
	responses := journalResponses(t, out)
	if len(responses) != 10 {
		t.Fatalf("%d responses journaled, want --max-unproductive's 10", len(responses))
	}
	for i, r := range responses {
		// The Alpaca prompt in stories260K's 512-token vocabulary, and a
		// story cut at the local --max-tokens default.
		if r.Usage.PromptTokens < 500 || r.Usage.CompletionTokens != defaultLocalMaxTokens || len(r.Finish) != 1 || r.Finish[0] != teacher.FinishLength {
			t.Errorf("response %d: usage %+v finish %v", i, r.Usage, r.Finish)
		}
	}
}

// TestGenerateAutoOffline: with no key and no reachable hub, the keyless
// default fails at once and says what to set.
func TestGenerateAutoOffline(t *testing.T) {
	env := []string{"OPENAI_API_KEY=", "OPENAI_BASE_URL=", "HF_ENDPOINT=http://127.0.0.1:1", hub.EnvCache + "=" + t.TempDir()}
	start := time.Now()
	_, stderr, code := runCLI(t, env, "generate", "--num", "2", "--out", filepath.Join(t.TempDir(), "out"))
	if code != exitTeacherDown {
		t.Fatalf("exit %d, want %d\n%s", code, exitTeacherDown, stderr)
	}
	for _, w := range []string{"OPENAI_API_KEY", "--model PATH.gguf", defaultLocalModel, "127.0.0.1:1"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("message does not name %q:\n%s", w, stderr)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to give up on an unreachable hub", d)
	}
}

// TestGenerateAutoCachedDefault: once the default model is in the cache,
// `generate` alone runs keyless and offline. stories260K stands in for it
// under the default model's cache path.
func TestGenerateAutoCachedDefault(t *testing.T) {
	requireSharedModels(t)
	cache := t.TempDir()
	ref, err := hub.ParseRef(defaultLocalModel)
	if err != nil {
		t.Fatal(err)
	}
	p := hub.CachePath(cache, ref)
	os.MkdirAll(filepath.Dir(p), 0o755)
	abs, _ := filepath.Abs(filepath.Join(completeShared, "stories260K.gguf"))
	if err := os.Symlink(abs, p); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=", "OPENAI_BASE_URL=", "HF_ENDPOINT=http://127.0.0.1:1", hub.EnvCache + "=" + cache}
	stdout, stderr, code := runCLI(t, env, "generate", "--num", "2", "--out", out, "--max-unproductive", "1", "--max-tokens", "8")
	if code != exitUnproductive {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUnproductive, stdout, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep pipeline.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Model != defaultLocalModel {
		t.Errorf("run.json model %q, want %q", rep.Model, defaultLocalModel)
	}
}

func journalResponses(t *testing.T, dir string) []pipeline.ResponseEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []pipeline.ResponseEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var e pipeline.ResponseEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == "response" {
			out = append(out, e)
		}
	}
	return out
}
