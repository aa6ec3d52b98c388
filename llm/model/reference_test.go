package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
)

// sharedDir is the reference-data checkout beside the repository
// (../shared from the repository root).
var sharedDir = filepath.Join("..", "..", "..", "shared")

func sharedModels(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(sharedDir, "models")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference data not available (%s missing): skipping llama.cpp comparison", dir)
	}
	return dir
}

// refCase is one prompt of a models/random/*.json file.
type refCase struct {
	Name         string  `json:"name"`
	Prompt       string  `json:"prompt"`
	PromptIDs    []int32 `json:"prompt_ids"`
	GeneratedIDs []int32 `json:"generated_ids"`
	Top5         []struct {
		ID      int32   `json:"id"`
		Logprob float64 `json:"logprob"`
	} `json:"top5"`
	GenLogprobs []float64 `json:"gen_logprobs"`
	Margins     []float64 `json:"margins"`
}

type refFile struct {
	Model struct {
		File string `json:"file"`
	} `json:"model"`
	Cases []refCase `json:"cases"`
}

// loadRefFile reads one of the reference JSON files of llama.cpp's outputs.
func loadRefFile(t *testing.T, path string) refFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf refFile
	if err := json.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

func loadModel(t *testing.T, path string, threads int) *Model {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := Load(f, Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logSoftmax returns log p for every logit, in float64.
func logSoftmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	out := make([]float64, len(logits))
	for i, v := range logits {
		out[i] = float64(v) - lse
	}
	return out
}

// greedyTrace generates n tokens greedily and records, at each step, the
// log-probability of the chosen token and the top-1/top-2 margin.
func greedyTrace(t *testing.T, m *Model, prompt []int32, n int) (ids []int32, lps, margins []float64, first []float64) {
	t.Helper()
	s, err := m.NewSession(len(prompt) + n)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	logits, err := s.Eval(prompt)
	if err != nil {
		t.Fatal(err)
	}
	first = logSoftmax(logits)
	for i := 0; i < n; i++ {
		id := int32(argmaxFirst(logits))
		lp := logSoftmax(logits)
		second := math.Inf(-1)
		for j, v := range logits {
			if int32(j) != id && float64(v) > second {
				second = float64(v)
			}
		}
		ids = append(ids, id)
		lps = append(lps, lp[id])
		margins = append(margins, float64(logits[id])-second)
		if i == n-1 {
			break
		}
		if logits, err = s.Eval([]int32{id}); err != nil {
			t.Fatal(err)
		}
	}
	return ids, lps, margins, first
}

// TestRandomModelsMatchLlamaCpp: the random-weight llama (Q4_K_M) and qwen2
// (Q8_0) models must give llama.cpp's 48 greedy ids for every prompt. On a
// mismatch the log-probabilities around the first differing position are
// reported against the JSON's, to tell numerics (a difference of the order
// of the margin) from a bug (a large one).
func TestRandomModelsMatchLlamaCpp(t *testing.T) {
	dir := sharedModels(t)
	for _, name := range []string{"llama-spm-small-q4_k_m", "qwen2-small-q8_0"} {
		t.Run(name, func(t *testing.T) {
			rf := loadRefFile(t, filepath.Join(dir, "random", name+".json"))
			m := loadModel(t, filepath.Join(dir, "random", rf.Model.File), 2)
			for _, c := range rf.Cases {
				t.Run(c.Name, func(t *testing.T) {
					ids, lps, margins, first := greedyTrace(t, m, c.PromptIDs, len(c.GeneratedIDs))
					for _, e := range c.Top5 {
						if d := math.Abs(first[e.ID] - e.Logprob); d > 0.02 {
							t.Errorf("top5 id %d: logprob %.6f, llama.cpp %.6f", e.ID, first[e.ID], e.Logprob)
						}
					}
					for i := range c.GeneratedIDs {
						if ids[i] != c.GeneratedIDs[i] {
							t.Errorf("first divergence at generated token %d: got %d, want %d\n"+
								"  our logprob of our token %.6f (llama.cpp's chosen token had %.6f), our margin %.6f, llama.cpp margin %.6f",
								i, ids[i], c.GeneratedIDs[i], lps[i], c.GenLogprobs[i], margins[i], c.Margins[i])
							t.Logf("got  %v\nwant %v", ids, c.GeneratedIDs)
							return
						}
						if d := math.Abs(lps[i] - c.GenLogprobs[i]); d > 0.02 {
							t.Errorf("token %d: logprob %.6f, llama.cpp %.6f", i, lps[i], c.GenLogprobs[i])
						}
					}
				})
			}
		})
	}
}

// TestStoriesMatchLlamaCpp: the real tiny LLaMA in F32, Q8_0 and Q4_0 must
// give llama.cpp's 64 greedy ids for "Once upon a time" (with BOS).
func TestStoriesMatchLlamaCpp(t *testing.T) {
	dir := sharedModels(t)
	exp := parseStoriesExpected(t, filepath.Join(dir, "expected", "llamacpp_stories260K.txt"))
	for _, file := range []string{"stories260K.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"} {
		t.Run(file, func(t *testing.T) {
			e, ok := exp[file]
			if !ok {
				t.Fatalf("no expected output for %s", file)
			}
			m := loadModel(t, filepath.Join(dir, file), 2)
			ids, _, _, first := greedyTrace(t, m, e.prompt, len(e.ids))
			for id, lp := range e.top5 {
				if d := math.Abs(first[id] - lp); d > 0.02 {
					t.Errorf("top5 id %d: logprob %.6f, llama.cpp %.6f", id, first[id], lp)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(e.ids) {
				t.Errorf("generated\n %v\nwant\n %v", ids, e.ids)
			}
		})
	}
}

type storiesExpected struct {
	prompt []int32
	ids    []int32
	top5   map[int32]float64
}

// parseStoriesExpected reads llamacpp_stories260K.txt: per "======== FILE"
// section, the prompt tokens, the top-5 log-probs and the generated ids.
func parseStoriesExpected(t *testing.T, path string) map[string]storiesExpected {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ints := func(s string) []int32 {
		var out []int32
		for _, f := range strings.Split(strings.Trim(s, "[] "), ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("%s: bad id list %q", path, s)
			}
			out = append(out, int32(v))
		}
		return out
	}
	head := regexp.MustCompile(`^======== (\S+\.gguf) `)
	promptRe := regexp.MustCompile(`^# prompt tokens \(\d+\): (\[.*\])`)
	topRe := regexp.MustCompile(`^#\s+id=\s*(\d+) p=\S+ logp=(\S+)`)
	res := map[string]storiesExpected{}
	cur := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if m := head.FindStringSubmatch(line); m != nil {
			cur = m[1]
			res[cur] = storiesExpected{top5: map[int32]float64{}}
			continue
		}
		if cur == "" {
			continue
		}
		e := res[cur]
		switch {
		case promptRe.MatchString(line):
			e.prompt = ints(promptRe.FindStringSubmatch(line)[1])
		case topRe.MatchString(line):
			m := topRe.FindStringSubmatch(line)
			id, _ := strconv.Atoi(m[1])
			lp, _ := strconv.ParseFloat(m[2], 64)
			e.top5[int32(id)] = lp
		case strings.HasPrefix(line, "ids: "):
			e.ids = ints(strings.TrimPrefix(line, "ids: "))
		}
		res[cur] = e
	}
	for name, e := range res {
		if len(e.prompt) == 0 || len(e.ids) == 0 || len(e.top5) != 5 {
			t.Fatalf("%s: incomplete section for %s", path, name)
		}
	}
	return res
}

// BenchmarkReferenceModels measures one generated token (a single-token
// Eval) and a 64-token prompt on the reference models.
func BenchmarkReferenceModels(b *testing.B) {
	dir := filepath.Join(sharedDir, "models")
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("reference data not available (%s missing)", dir)
	}
	for _, file := range []string{"random/llama-spm-small-q4_k_m.gguf", "random/qwen2-small-q8_0.gguf", "stories260K-Q8_0.gguf"} {
		f, err := gguf.Open(filepath.Join(dir, file))
		if err != nil {
			b.Fatal(err)
		}
		m, err := Load(f, Options{})
		if err != nil {
			b.Fatal(err)
		}
		prompt := make([]int32, 64)
		for i := range prompt {
			prompt[i] = int32(i*37) % int32(m.HP.Vocab)
		}
		b.Run(filepath.Base(file)+"/tg", func(b *testing.B) {
			s, err := m.NewSession(256)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for i := 0; b.Loop(); i++ {
				if s.Pos() == s.ContextSize() {
					s.Reset()
				}
				if _, err := s.Eval(prompt[i%64 : i%64+1]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(filepath.Base(file)+"/pp64", func(b *testing.B) {
			s, err := m.NewSession(64)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				s.Reset()
				if _, err := s.Eval(prompt); err != nil {
					b.Fatal(err)
				}
			}
		})
		f.Close()
	}
}
