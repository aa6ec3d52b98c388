package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func runTokenizeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCmd(t, newTokenizeCmd(), args...)
}

// runCmd executes one subcommand in-process and returns what it printed
// (stdout and stderr together).
func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestTokenizeVocabVectors runs every llama.cpp tokenizer test vector in the
// reference data through the command, one invocation per vocabulary.
func TestTokenizeVocabVectors(t *testing.T) {
	requireSharedModels(t)
	dir := filepath.Join(completeShared, "vocab")
	for _, name := range []string{"llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "bert-bge"} {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join(dir, "ggml-vocab-"+name+".gguf")
			got, err := runTokenizeCmd(t, "--model", base, "--file", base+".inp", "--split", `\n__ggml_vocab_test__\n`)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(base + ".out")
			if err != nil {
				t.Fatal(err)
			}
			gotLines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			wantLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
			if len(gotLines) != len(wantLines) {
				t.Fatalf("%d output lines, want %d", len(gotLines), len(wantLines))
			}
			for i := range wantLines {
				// .out lines carry a leading space; ours do not.
				if strings.Join(strings.Fields(gotLines[i]), " ") != strings.Join(strings.Fields(wantLines[i]), " ") {
					t.Errorf("string %d: got %q, want %q", i, gotLines[i], wantLines[i])
				}
			}
		})
	}
}

// TestTokenizeBOSAndJSON checks --bos against the prompt ids llama.cpp fed the
// random reference models, and the --json shape.
func TestTokenizeBOSAndJSON(t *testing.T) {
	requireSharedModels(t)
	for _, name := range []string{"llama-spm-small-q4_k_m", "qwen2-small-q8_0"} {
		raw, err := os.ReadFile(filepath.Join(completeShared, "random", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Cases []struct {
				Prompt    string  `json:"prompt"`
				PromptIDs []int32 `json:"prompt_ids"`
			} `json:"cases"`
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			t.Fatal(err)
		}
		model := filepath.Join(completeShared, "random", name+".gguf")
		for _, c := range ref.Cases {
			out, err := runTokenizeCmd(t, "--model", model, "--text", c.Prompt, "--bos", "--json")
			if err != nil {
				t.Fatal(err)
			}
			var res tokenizeResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !equalIDs(res.IDs, c.PromptIDs) || res.Count != len(c.PromptIDs) || len(res.Pieces) != res.Count {
				t.Errorf("%s %q: got %+v, want ids %v", name, c.Prompt, res, c.PromptIDs)
			}
		}
	}

	model := filepath.Join(completeShared, "vocab", "ggml-vocab-qwen2.gguf")
	out, err := runTokenizeCmd(t, "-m", model, "--text", "<|im_start|>Hi there", "--parse-special", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res tokenizeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Count != 3 || res.IDs[0] != 151644 || strings.Join(res.Pieces, "|") != "<|im_start|>|Hi| there" {
		t.Errorf("parse-special: %+v", res)
	}
	// Without --parse-special the marker is ordinary text.
	out, err = runTokenizeCmd(t, "-m", model, "--text", "<|im_start|>")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "151644") || len(strings.Fields(out)) < 2 {
		t.Errorf("plain text marker tokenized as %q", out)
	}
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTokenizeBadInput(t *testing.T) {
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "x.gguf")
	if err := os.WriteFile(notGGUF, []byte("not a gguf file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"tokenize", "--text", "hi"},
		{"tokenize", "--model", notGGUF},
		{"tokenize", "--model", notGGUF, "--text", "a", "--file", notGGUF},
		{"tokenize", "--model", notGGUF, "--text", "hi"},
		{"tokenize", "--model", filepath.Join(dir, "missing.gguf"), "--text", "hi"},
	} {
		_, stderr, code := runCLI(t, nil, args...)
		if code != exitBadInput || !strings.Contains(stderr, "tokenize") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming tokenize", args, code, stderr, exitBadInput)
		}
	}
}

func TestUnescapeSeparator(t *testing.T) {
	if got := unescapeSeparator(`a\nb\tc\\n\x`); got != "a\nb\tc\\n\\x" {
		t.Errorf("got %q", got)
	}
}

func TestTokenizeSplitJSONLines(t *testing.T) {
	requireSharedModels(t)
	model := filepath.Join(completeShared, "vocab", "ggml-vocab-gpt-2.gguf")
	out, err := runTokenizeCmd(t, "-m", model, "--text", "Hello world|| Hello world||", "--split", "||", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON line per part, got %q", out)
	}
	for i, want := range [][]string{{"Hello", " world"}, {" Hello", " world"}} {
		var res tokenizeResult
		if err := json.Unmarshal([]byte(lines[i]), &res); err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Pieces, "|") != strings.Join(want, "|") || res.Count != 2 {
			t.Errorf("part %d: %+v", i, res)
		}
	}
}
