package prompts

import (
	"strconv"
	"strings"
	"testing"

	"github.com/selfinstruct/selfinstruct/filters"
)

// seedCategoryMinimums is the mix our own seed set promises: every kind of
// request a real user base sends, with classification well represented
// because Self-Instruct treats it specially.
var seedCategoryMinimums = map[string]int{
	"brainstorming":    8,
	"open_qa":          10,
	"closed_qa":        8,
	"rewriting":        8,
	"summarization":    6,
	"extraction":       6,
	"classification":   25,
	"reasoning":        8,
	"math":             8,
	"code":             10,
	"planning":         6,
	"creative_writing": 8,
	"advice":           6,
	"translation":      4,
	"editing":          4,
	"data_formatting":  4,
	"explanation":      8,
}

func seedCategory(name string) string {
	for category := range seedCategoryMinimums {
		if strings.HasPrefix(name, category+"_") {
			return category
		}
	}
	return ""
}

func TestDefaultSeedTasksComposition(t *testing.T) {
	seeds := DefaultSeedTasks()
	if len(seeds) != 175 {
		t.Fatalf("%d seed tasks, want 175", len(seeds))
	}
	names := map[string]bool{}
	perCategory := map[string]int{}
	classification, withInput := 0, 0
	for i, s := range seeds {
		if s.ID != "seed_task_"+strconv.Itoa(i) {
			t.Errorf("task %d has id %q, want ids numbered in order", i, s.ID)
		}
		if names[s.Name] {
			t.Errorf("%s: duplicate name %q", s.ID, s.Name)
		}
		names[s.Name] = true
		category := seedCategory(s.Name)
		if category == "" {
			t.Errorf("%s: name %q has no known category prefix", s.ID, s.Name)
		}
		perCategory[category]++
		if len(s.Instances) != 1 {
			t.Errorf("%s: %d instances, want 1", s.ID, len(s.Instances))
			continue
		}
		inst := s.Instances[0]
		if strings.TrimSpace(s.Instruction) != s.Instruction || strings.TrimSpace(inst.Output) != inst.Output || strings.TrimSpace(inst.Input) != inst.Input {
			t.Errorf("%s: leading or trailing whitespace in a field", s.ID)
		}
		if s.Instruction == "" || inst.Output == "" {
			t.Errorf("%s: empty instruction or output", s.ID)
		}
		if inst.Input != "" {
			withInput++
			if IsNoInputMarker(inst.Input) {
				t.Errorf("%s: input %q is a no-input marker; leave it empty", s.ID, inst.Input)
			}
		}
		if words := len(strings.Fields(inst.Output)); words > 100 {
			t.Errorf("%s: output has %d words; the prompt asks for fewer than 100", s.ID, words)
		}
		// A seed failing Alpaca's filters would teach the teacher to write
		// tasks the pipeline then rejects.
		if reason, ok := filters.AlpacaHeuristics().Check(s.Instruction); !ok {
			t.Errorf("%s: instruction fails Alpaca's heuristics (%s): %q", s.ID, reason, s.Instruction)
		}
		// The seeds are pasted into the prompt between ### separators and
		// numbered markers, so they must not contain either.
		for _, field := range []string{s.Instruction, inst.Input, inst.Output} {
			if strings.Contains(field, "###") || itemMarker.MatchString(field) {
				t.Errorf("%s: a field contains ### or an item marker: %q", s.ID, field)
			}
		}
		if s.IsClassification != (category == "classification") {
			t.Errorf("%s: is_classification=%v but category %q", s.ID, s.IsClassification, category)
		}
		if s.IsClassification {
			classification++
			// The label set is spelled out in the instruction, so the answer
			// must be one of the words it offers.
			if !strings.Contains(strings.ToLower(s.Instruction), strings.ToLower(inst.Output)) {
				t.Errorf("%s: label %q is not among those the instruction states: %q", s.ID, inst.Output, s.Instruction)
			}
			if len(strings.Fields(inst.Output)) > 3 {
				t.Errorf("%s: classification output %q is not a bare label", s.ID, inst.Output)
			}
		}
	}
	for category, minimum := range seedCategoryMinimums {
		if perCategory[category] < minimum {
			t.Errorf("category %s has %d tasks, want at least %d", category, perCategory[category], minimum)
		}
	}
	if classification < 25 {
		t.Errorf("%d classification tasks, want at least 25", classification)
	}
	if withInput < 55 || withInput > 65 {
		t.Errorf("%d tasks with an input, want 55..65 (about a third)", withInput)
	}
}

func TestDefaultSeedTasksAreMutuallyNovel(t *testing.T) {
	seeds := DefaultSeedTasks()
	tokens := make([][]string, len(seeds))
	for i, s := range seeds {
		tokens[i] = filters.Tokenize(s.Instruction, filters.TokenizerRougeScore)
	}
	for i := range seeds {
		for j := i + 1; j < len(seeds); j++ {
			if score := filters.RougeLTokenized(tokens[i], tokens[j]); score > 0.7 {
				t.Errorf("%s and %s are too similar (ROUGE-L %.3f):\n  %s\n  %s", seeds[i].ID, seeds[j].ID, score, seeds[i].Instruction, seeds[j].Instruction)
			}
		}
	}
}

// Our seeds are written from scratch: none may be a near copy of a seed in
// Alpaca's set.
func TestDefaultSeedTasksAreNotAlpacas(t *testing.T) {
	theirs, err := LoadSeedTasks(sharedReference(t, "alpaca_seed_tasks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ours := DefaultSeedTasks()
	for _, o := range ours {
		ot := filters.Tokenize(o.Instruction, filters.TokenizerRougeScore)
		oo := filters.Tokenize(o.Instances[0].Output, filters.TokenizerRougeScore)
		for _, a := range theirs {
			if score := filters.RougeLTokenized(ot, filters.Tokenize(a.Instruction, filters.TokenizerRougeScore)); score > 0.5 {
				t.Errorf("%s instruction resembles Alpaca's %s (ROUGE-L %.3f)", o.ID, a.ID, score)
			}
			if len(oo) > 5 {
				if score := filters.RougeLTokenized(oo, filters.Tokenize(a.Instances[0].Output, filters.TokenizerRougeScore)); score > 0.5 {
					t.Errorf("%s output resembles Alpaca's %s (ROUGE-L %.3f)", o.ID, a.ID, score)
				}
			}
		}
	}
}
