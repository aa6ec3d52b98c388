package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func execComplete(t *testing.T, args ...string) (completeResult, error) {
	t.Helper()
	cmd := newCompleteCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		return completeResult{}, err
	}
	var res completeResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	return res, nil
}

// TestCompleteMatchesLlamaCpp runs `complete --json` on every reference
// model and prompt and compares the prompt ids (BOS per the vocabulary) and
// the greedy ids with llama.cpp's.
func TestCompleteMatchesLlamaCpp(t *testing.T) {
	requireSharedModels(t)
	type refCase struct {
		Name         string  `json:"name"`
		Prompt       string  `json:"prompt"`
		PromptIDs    []int32 `json:"prompt_ids"`
		GeneratedIDs []int32 `json:"generated_ids"`
		Text         string  `json:"text"`
	}
	for _, name := range []string{"llama-spm-small-q4_k_m", "qwen2-small-q8_0"} {
		raw, err := os.ReadFile(filepath.Join(completeShared, "random", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Cases []refCase `json:"cases"`
		}
		if err := json.Unmarshal(raw, &rf); err != nil {
			t.Fatal(err)
		}
		for i, c := range rf.Cases {
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				args := []string{"--model", filepath.Join(completeShared, "random", name+".gguf"),
					"-n", fmt.Sprint(len(c.GeneratedIDs)), "--temperature", "0", "--threads", "2", "--json"}
				if i%2 == 1 {
					// Through a file too: the prompt must be used byte for byte.
					pf := filepath.Join(t.TempDir(), "prompt.txt")
					if err := os.WriteFile(pf, []byte(c.Prompt), 0o644); err != nil {
						t.Fatal(err)
					}
					args = append(args, "--prompt-file", pf)
				} else {
					args = append(args, "--prompt", c.Prompt)
				}
				res, err := execComplete(t, args...)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(res.PromptTokens) != fmt.Sprint(c.PromptIDs) {
					t.Errorf("prompt_tokens\n %v\nwant\n %v", res.PromptTokens, c.PromptIDs)
				}
				if fmt.Sprint(res.Tokens) != fmt.Sprint(c.GeneratedIDs) {
					t.Errorf("tokens\n %v\nwant\n %v", res.Tokens, c.GeneratedIDs)
				}
				if res.Text != c.Text {
					t.Errorf("text %q, want %q", res.Text, c.Text)
				}
				if res.Timings.PromptN != len(c.PromptIDs) || res.Timings.PromptPerSecond <= 0 || res.Timings.PredictedPerSecond <= 0 {
					t.Errorf("implausible timings %+v", res.Timings)
				}
			})
		}
	}

	raw, err := os.ReadFile(filepath.Join(completeShared, "expected", "llamacpp_stories260K.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sections := regexp.MustCompile(`(?m)^======== (\S+\.gguf) `).FindAllStringSubmatchIndex(string(raw), -1)
	if len(sections) != 3 {
		t.Fatalf("found %d model sections in the expected output, want 3", len(sections))
	}
	for i, sec := range sections {
		file := string(raw[sec[2]:sec[3]])
		end := len(raw)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		body := string(raw[sec[0]:end])
		wantPrompt := regexp.MustCompile(`(?m)^# prompt tokens \(\d+\): (\[.*\])$`).FindStringSubmatch(body)
		wantIDs := regexp.MustCompile(`(?m)^ids: (\[.*\])$`).FindStringSubmatch(body)
		wantText := regexp.MustCompile(`(?m)^text: (".*")$`).FindStringSubmatch(body)
		if wantPrompt == nil || wantIDs == nil || wantText == nil {
			t.Fatalf("%s: incomplete expected section", file)
		}
		t.Run(file, func(t *testing.T) {
			res, err := execComplete(t, "--model", filepath.Join(completeShared, file), "--prompt", "Once upon a time",
				"-n", "64", "--threads", "2", "--json")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(fmt.Sprint(res.PromptTokens), " ", ","); got != wantPrompt[1] {
				t.Errorf("prompt_tokens %s, want %s", got, wantPrompt[1])
			}
			if got := strings.ReplaceAll(fmt.Sprint(res.Tokens), " ", ","); got != wantIDs[1] {
				t.Errorf("tokens\n %s\nwant\n %s", got, wantIDs[1])
			}
			var text string
			if err := json.Unmarshal([]byte(wantText[1]), &text); err != nil {
				t.Fatal(err)
			}
			if "Once upon a time"+res.Text != text {
				t.Errorf("text %q, want %q", "Once upon a time"+res.Text, text)
			}
		})
	}
}

func TestCompleteStreamsText(t *testing.T) {
	requireSharedModels(t)
	cmd := newCompleteCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--model", filepath.Join(completeShared, "stories260K.gguf"), "--prompt", "Once upon a time", "-n", "11"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != ", there was a little girl named Lily.\n" {
		t.Errorf("stdout %q", got)
	}
	if !strings.Contains(errOut.String(), "tok/s") {
		t.Errorf("no timings on stderr: %q", errOut.String())
	}
}

func TestCompleteBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--prompt", "x"},
		{"--model", "m.gguf"},
		{"--model", "m.gguf", "--prompt", "x", "--prompt-file", "f"},
		{"--model", filepath.Join(t.TempDir(), "missing.gguf"), "--prompt", "x"},
	} {
		_, err := execComplete(t, args...)
		var ce *codedError
		if !errors.As(err, &ce) || ce.code != exitBadInput {
			t.Errorf("%v: err = %v, want a bad-input error", args, err)
		}
	}
}

// TestCompleteChat: --chat renders the model's own template (Qwen2's ChatML
// with its default system prompt) and parses the special tokens in it;
// a model without a template needs --template.
func TestCompleteChat(t *testing.T) {
	requireSharedModels(t)
	qwen := filepath.Join(completeShared, "random", "qwen2-small-q8_0.gguf")
	res, err := execComplete(t, "--model", qwen, "--prompt", "Hello", "--chat", "-n", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	const imStart, imEnd = 151644, 151645
	count := 0
	for _, id := range res.PromptTokens {
		if id == imStart {
			count++
		}
	}
	if res.PromptTokens[0] != imStart || count != 3 || res.PromptTokens[len(res.PromptTokens)-5] != imEnd || len(res.Tokens) == 0 {
		t.Errorf("chat prompt tokens %v (want system, user and assistant turns as special tokens)", res.PromptTokens)
	}
	named, err := execComplete(t, "--model", qwen, "--prompt", "Hello", "--chat", "--template", "chatml", "-n", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if len(named.PromptTokens) >= len(res.PromptTokens) {
		t.Errorf("plain chatml (no default system prompt) has %d tokens, Qwen2's template %d", len(named.PromptTokens), len(res.PromptTokens))
	}

	stories := filepath.Join(completeShared, "stories260K.gguf")
	if _, err := execComplete(t, "--model", stories, "--prompt", "Hi", "--chat", "-n", "2", "--json"); err == nil {
		t.Error("--chat on a model without a chat template succeeded")
	}
	// llama2's template writes "<s>" itself: the tokenizer must not add a
	// second BOS.
	res, err = execComplete(t, "--model", stories, "--prompt", "Hi", "--chat", "--template", "llama2", "-n", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.PromptTokens) < 2 || res.PromptTokens[0] != 1 || res.PromptTokens[1] == 1 {
		t.Errorf("llama2 chat prompt tokens %v: want exactly one leading BOS", res.PromptTokens)
	}
}

// TestCompleteSampling: a seeded sampled run is reproducible and is not the
// greedy one.
func TestCompleteSampling(t *testing.T) {
	requireSharedModels(t)
	m := filepath.Join(completeShared, "random", "llama-spm-small-q4_k_m.gguf")
	run := func(args ...string) []int32 {
		res, err := execComplete(t, append([]string{"--model", m, "--prompt", "The weather today", "-n", "16", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res.Tokens
	}
	greedy := run()
	a := run("--temperature", "1", "--seed", "42")
	b := run("--temperature", "1", "--seed", "42")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different tokens:\n %v\n %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(greedy) {
		t.Errorf("sampling at temperature 1 reproduced the greedy tokens %v", greedy)
	}
}
