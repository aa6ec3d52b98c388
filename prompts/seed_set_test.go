package prompts

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
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

// alpacaBlacklist is the word list Alpaca's generator rejects instructions
// for; a seed using one would teach the teacher to write rejected tasks.
var alpacaBlacklist = regexp.MustCompile(`(?i)\b(image|images|graph|graphs|picture|pictures|file|files|map|maps|draw|plot|go to|video|audio|music|flowchart|diagram)\b`)

func checkAlpacaHeuristics(instruction string) string {
	words := len(strings.Fields(instruction))
	switch {
	case words <= 3:
		return "has 3 words or fewer"
	case words > 150:
		return "has more than 150 words"
	case alpacaBlacklist.MatchString(instruction):
		return "uses blacklisted word " + strconv.Quote(alpacaBlacklist.FindString(instruction))
	case strings.HasPrefix(instruction, "Write a program"):
		return "starts with \"Write a program\""
	case instruction[0] >= 0x80:
		return "starts with a non-ASCII character"
	case unicode.IsPunct(rune(instruction[0])) || unicode.IsSymbol(rune(instruction[0])):
		return "starts with punctuation"
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
		if problem := checkAlpacaHeuristics(s.Instruction); problem != "" {
			t.Errorf("%s: instruction %s: %q", s.ID, problem, s.Instruction)
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
		tokens[i] = rougeTokens(s.Instruction)
	}
	for i := range seeds {
		for j := i + 1; j < len(seeds); j++ {
			if score := rougeLF(tokens[i], tokens[j]); score > 0.7 {
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
		ot := rougeTokens(o.Instruction)
		oo := rougeTokens(o.Instances[0].Output)
		for _, a := range theirs {
			if score := rougeLF(ot, rougeTokens(a.Instruction)); score > 0.5 {
				t.Errorf("%s instruction resembles Alpaca's %s (ROUGE-L %.3f)", o.ID, a.ID, score)
			}
			if len(oo) > 5 {
				if score := rougeLF(oo, rougeTokens(a.Instances[0].Output)); score > 0.5 {
					t.Errorf("%s output resembles Alpaca's %s (ROUGE-L %.3f)", o.ID, a.ID, score)
				}
			}
		}
	}
}

// rougeTokens tokenizes like Google's rouge_score without stemming: lower
// case, then runs of [a-z0-9]. Our seeds are English, so Go's ToLower agrees
// with Python's lower() on them.
func rougeTokens(s string) []string {
	return regexp.MustCompile(`[a-z0-9]+`).FindAllString(strings.ToLower(s), -1)
}

// rougeLF is rouge_score's ROUGE-L F-measure, computed the way it does it.
func rougeLF(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	lcs := float64(prev[len(b)])
	if lcs == 0 {
		return 0
	}
	precision := lcs / float64(len(b))
	recall := lcs / float64(len(a))
	return 2 * precision * recall / (precision + recall)
}
