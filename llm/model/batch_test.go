package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// batchScenario drives a Batcher and, beside it, one plain Session per
// sequence through the same random steps: in each step a random subset of
// the sequences takes part, some with a prompt chunk, some with one token,
// each at its own position. Every item's logits must equal the plain
// session's bit for bit.
func batchScenario(t *testing.T, m *Model, maxItems, steps int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	const nCtx = 48
	b, err := m.NewBatcher(64)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	batched := make([]*Session, maxItems)
	plain := make([]*Session, maxItems)
	for i := range batched {
		if batched[i], err = m.NewSession(nCtx); err != nil {
			t.Fatal(err)
		}
		if plain[i], err = m.NewSession(nCtx); err != nil {
			t.Fatal(err)
		}
		defer plain[i].Close()
	}
	var items []BatchItem
	for step := range steps {
		items = items[:0]
		total := 0
		for _, i := range rng.Perm(maxItems)[:1+rng.IntN(maxItems)] {
			s := batched[i]
			if s.Pos() >= nCtx-1 {
				s.Reset()
				plain[i].Reset()
			}
			n := 1
			if s.Pos() == 0 || rng.IntN(4) == 0 {
				n = 1 + rng.IntN(min(9, nCtx-s.Pos()))
			}
			if total+n > b.MaxTokens() {
				break
			}
			total += n
			toks := make([]int32, n)
			for k := range toks {
				toks[k] = int32(rng.IntN(m.HP.Vocab))
			}
			items = append(items, BatchItem{Session: s, Tokens: toks})
		}
		got, err := b.Eval(items)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(items) {
			t.Fatalf("step %d: %d logit rows for %d items", step, len(got), len(items))
		}
		for k, it := range items {
			i := indexOf(batched, it.Session)
			want, err := plain[i].Eval(it.Tokens)
			if err != nil {
				t.Fatal(err)
			}
			if it.Session.Pos() != plain[i].Pos() {
				t.Fatalf("step %d: sequence %d at position %d, plain session at %d", step, i, it.Session.Pos(), plain[i].Pos())
			}
			for j := range want {
				if math.Float32bits(got[k][j]) != math.Float32bits(want[j]) {
					t.Fatalf("step %d, %d items: sequence %d (%d tokens, now at %d): logit %d = %v, alone %v",
						step, len(items), i, len(it.Tokens), it.Session.Pos(), j, got[k][j], want[j])
				}
			}
		}
	}
}

func indexOf(ss []*Session, s *Session) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// TestBatcherMatchesSessions runs the random scenario on every synthetic
// model the tests write themselves (F32, Q8_0, Q4_K, F16 weights; llama and
// qwen2; grouped and plain attention), with 1 to 16 sequences.
func TestBatcherMatchesSessions(t *testing.T) {
	for si, sp := range tinySpecs {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s_%s_seed%d/t%d", sp.arch, sp.wtype, sp.seed, threads), func(t *testing.T) {
				f, _ := buildTiny(t, sp)
				m, err := Load(f, Options{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				steps := 25
				if testing.Short() {
					steps = 10
				}
				for _, k := range []int{1, 4, 16} {
					batchScenario(t, m, k, steps, uint64(si*100+k))
				}
			})
		}
	}
}

// TestBatcherMatchesSessionsShared runs the scenario on the reference
// models: the real stories260K in Q8_0 and Q4_0, and the random-weight
// llama (Q4_K_M) and qwen2 (Q8_0).
func TestBatcherMatchesSessionsShared(t *testing.T) {
	dir := sharedModels(t)
	for i, file := range []string{"stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf", "random/llama-spm-small-q4_k_m.gguf", "random/qwen2-small-q8_0.gguf"} {
		t.Run(file, func(t *testing.T) {
			m := loadModel(t, filepath.Join(dir, file), 2)
			batchScenario(t, m, 16, 12, uint64(i))
			batchScenario(t, m, 3, 12, uint64(i+10))
		})
	}
}

// batchedGreedy decodes every prompt greedily through one Batcher, the
// sequences starting one step apart so that prefill and decoding share
// steps and the sequences sit at different positions.
func batchedGreedy(t *testing.T, m *Model, prompts [][]int32, n []int) [][]int32 {
	t.Helper()
	b, err := m.NewBatcher(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sessions := make([]*Session, len(prompts))
	next := make([][]int32, len(prompts)) // what each sequence evaluates next
	out := make([][]int32, len(prompts))
	for i, p := range prompts {
		if sessions[i], err = m.NewSession(len(p) + n[i]); err != nil {
			t.Fatal(err)
		}
		next[i] = p
	}
	for step := 0; ; step++ {
		var items []BatchItem
		var who []int
		for i := range prompts {
			if i <= step && len(out[i]) < n[i] {
				items = append(items, BatchItem{Session: sessions[i], Tokens: next[i]})
				who = append(who, i)
			}
		}
		if len(items) == 0 {
			return out
		}
		logits, err := b.Eval(items)
		if err != nil {
			t.Fatal(err)
		}
		for k, i := range who {
			id := int32(argmaxFirst(logits[k]))
			out[i] = append(out[i], id)
			next[i] = []int32{id}
		}
	}
}

// TestBatcherMatchesLlamaCpp: llama.cpp's greedy tokens, with all reference
// prompts of a model decoded together through one Batcher.
func TestBatcherMatchesLlamaCpp(t *testing.T) {
	dir := sharedModels(t)
	exp := parseStoriesExpected(t, filepath.Join(dir, "expected", "llamacpp_stories260K.txt"))
	for _, file := range []string{"stories260K.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"} {
		t.Run(file, func(t *testing.T) {
			e := exp[file]
			m := loadModel(t, filepath.Join(dir, file), 2)
			// Three copies of the prompt, started at different steps.
			prompts := [][]int32{e.prompt, e.prompt, e.prompt}
			n := []int{len(e.ids), len(e.ids), len(e.ids)}
			for i, ids := range batchedGreedy(t, m, prompts, n) {
				if fmt.Sprint(ids) != fmt.Sprint(e.ids) {
					t.Errorf("sequence %d:\n %v\nwant\n %v", i, ids, e.ids)
				}
			}
		})
	}
	for _, name := range []string{"llama-spm-small-q4_k_m", "qwen2-small-q8_0"} {
		t.Run(name, func(t *testing.T) {
			rf := loadRefFile(t, filepath.Join(dir, "random", name+".json"))
			m := loadModel(t, filepath.Join(dir, "random", rf.Model.File), 2)
			var prompts [][]int32
			var n []int
			for _, c := range rf.Cases {
				prompts = append(prompts, c.PromptIDs)
				n = append(n, len(c.GeneratedIDs))
			}
			for i, ids := range batchedGreedy(t, m, prompts, n) {
				if fmt.Sprint(ids) != fmt.Sprint(rf.Cases[i].GeneratedIDs) {
					t.Errorf("%s:\n %v\nwant\n %v", rf.Cases[i].Name, ids, rf.Cases[i].GeneratedIDs)
				}
			}
		})
	}
}

func TestBatcherErrors(t *testing.T) {
	f, _ := buildTiny(t, tinySpecs[0])
	m, err := Load(f, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Load(f, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.NewBatcher(8)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s1, _ := m.NewSession(6)
	s2, _ := m.NewSession(6)
	s3, _ := other.NewSession(6)
	if _, err := s1.Eval([]int32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		items []BatchItem
		want  string
	}{
		{"no items", nil, "without items"},
		{"nil session", []BatchItem{{Tokens: []int32{1}}}, "item 0 has no session"},
		{"twice", []BatchItem{{s1, []int32{1}}, {s2, []int32{1}}, {s1, []int32{2}}}, "items 0 and 2 are the same session"},
		{"other model", []BatchItem{{s2, []int32{1}}, {s3, []int32{1}}}, "item 1: session of another model"},
		{"no tokens", []BatchItem{{s2, nil}}, "at least one token"},
		{"bad token", []BatchItem{{s2, []int32{1, int32(m.HP.Vocab)}}}, "out of range"},
		{"context", []BatchItem{{s2, []int32{1}}, {s1, []int32{1, 2, 3, 4}}}, "context is full"},
		{"total", []BatchItem{{s2, []int32{1, 2, 3, 4, 5, 6}}, {s1, []int32{1, 2, 3}}}, "batch of 9 tokens exceeds the batcher's 8"},
	}
	for _, c := range cases {
		_, err := b.Eval(c.items)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if s1.Pos() != 3 || s2.Pos() != 0 {
			t.Errorf("%s: a failed Eval moved the sessions to %d and %d", c.name, s1.Pos(), s2.Pos())
		}
	}
	_, err = b.Eval([]BatchItem{{s2, []int32{1}}, {s1, []int32{1, 2, 3, 4}}})
	if !errors.Is(err, ErrContextFull) {
		t.Errorf("full session: %v, want ErrContextFull", err)
	}
	if _, err := m.NewBatcher(-1); err == nil {
		t.Error("negative batch size accepted")
	}
}

// TestBatcherDoesNotAllocate: after the first step with the largest item
// count, steps allocate nothing.
func TestBatcherDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items on purpose)")
	}
	f, _ := buildTiny(t, tinySpecs[4])
	m, err := Load(f, Options{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.NewBatcher(16)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	items := make([]BatchItem, 5)
	for i := range items {
		s, err := m.NewSession(64)
		if err != nil {
			t.Fatal(err)
		}
		items[i] = BatchItem{Session: s, Tokens: []int32{int32(i)}}
	}
	if _, err := b.Eval(items); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := b.Eval(items[:1+items[0].Session.Pos()%5]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Batcher.Eval allocates %v times per step", allocs)
	}
}
