package openaitest

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// Example is one task the Alpaca responder can write.
type Example struct {
	Instruction, Input, Output string
}

// AlpacaResponder answers Alpaca-recipe prompts the way a real model does,
// with the defects real responses have: near-duplicates of earlier tasks,
// blacklisted words, too-short instructions, two items merged by a missing
// "###", empty-input markers other than <noinput>, and responses cut by the
// token limit. Tasks come from pool in order, then synthetic ones.
func AlpacaResponder(pool []Example, seed uint64) Responder {
	rng := rand.New(rand.NewPCG(seed, 0xa1ca))
	next := 0
	var served []string
	take := func() Example {
		if next < len(pool) {
			next++
			return pool[next-1]
		}
		next++
		return SyntheticExample(rng, next)
	}
	return func(c Call) Reply {
		first := nextItemNumber(c.Prompt)
		n := 8 + rng.IntN(12)
		var b strings.Builder
		finish := "stop"
		for i := 0; first+i <= 19 && i < n; i++ {
			idx := first + i
			ex := take()
			switch x := rng.Float64(); {
			case x < 0.08 && len(served) > 0:
				ex.Instruction = nearDuplicate(rng, served[rng.IntN(len(served))])
			case x < 0.11:
				ex.Instruction = "Draw a picture of " + strings.ToLower(ex.Instruction[:1]) + ex.Instruction[1:]
			case x < 0.13:
				ex.Instruction = "Summarize it."
			case x < 0.15:
				ex.Input = "No Input"
			}
			served = append(served, ex.Instruction)
			if i > 0 {
				// A missing separator merges this item into the previous one.
				if rng.Float64() >= 0.04 {
					b.WriteString("\n###\n")
				} else {
					b.WriteString("\n")
				}
				fmt.Fprintf(&b, "%d. Instruction: ", idx)
			}
			input := ex.Input
			if input == "" {
				input = "<noinput>"
			}
			fmt.Fprintf(&b, "%s\n%d. Input:\n%s\n%d. Output:\n%s", ex.Instruction, idx, input, idx, ex.Output)
		}
		text := b.String()
		if rng.Float64() < 0.1 && len(text) > 40 {
			text = text[:len(text)-rng.IntN(len(text)/4)-1]
			finish = "length"
		}
		return Reply{Text: text, FinishReason: finish}
	}
}

var itemRE = regexp.MustCompile(`(\d+)\s?\.\s?Instruction:\s*$`)

// nextItemNumber reads the number the prompt ends with ("4. Instruction:").
func nextItemNumber(prompt string) int {
	m := itemRE.FindStringSubmatch(prompt)
	if m == nil {
		return 4
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func nearDuplicate(rng *rand.Rand, s string) string {
	words := strings.Fields(s)
	if len(words) < 6 {
		return s
	}
	i := 1 + rng.IntN(len(words)-1)
	return strings.Join(append(words[:i:i], words[i+1:]...), " ")
}

var (
	verbs    = []string{"Explain", "Describe", "Compare", "Summarize", "Suggest", "List", "Evaluate", "Outline", "Classify", "Rewrite", "Predict", "Estimate"}
	syllable = []string{"ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pi", "qua", "ne", "zor", "fi", "bra", "mun", "ti", "gel", "ox", "ra", "che"}
)

// SyntheticExample makes the i-th made-up task: pseudo-words keep the
// ROUGE-L between two synthetic tasks low, as between real distinct tasks.
func SyntheticExample(rng *rand.Rand, i int) Example {
	word := func() string {
		n := 2 + rng.IntN(2)
		var b strings.Builder
		for range n {
			b.WriteString(syllable[rng.IntN(len(syllable))])
		}
		return b.String()
	}
	words := []string{verbs[rng.IntN(len(verbs))]}
	for range 5 + rng.IntN(8) {
		words = append(words, word())
	}
	words = append(words, fmt.Sprintf("case%d", i))
	ex := Example{Instruction: strings.Join(words, " ") + "."}
	if rng.IntN(3) == 0 {
		ex.Input = word() + " " + word() + " " + word()
	}
	ex.Output = "The " + word() + " " + word() + " is " + word() + "."
	return ex
}
