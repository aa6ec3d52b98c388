package openaitest

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// Kinds of Self-Instruct prompt, as SelfInstructKind tells them apart.
const (
	KindBootstrap   = "bootstrap"
	KindClassify    = "classify"
	KindOutputFirst = "output_first" // "Class label:" instances
	KindInputFirst  = "input_first"  // "Example 1" instances
)

var (
	openItemRE = regexp.MustCompile(`\n(\d+)\.\s*$`)
	taskLineRE = regexp.MustCompile(`(?m)^Task: (.*)$`)
)

// SelfInstructKind says which of the three Self-Instruct questions a prompt
// asks, the way a server that knows the method would: a prompt ending with
// "Is it classification?" asks for the kind of its last task; one with
// "Class label:" asks for instances output-first and one with "Example 1"
// input-first, for its last "Task:"; a numbered list ending with an open
// number asks for more tasks (next is that number). task is "" for a
// bootstrap prompt, and kind is "" for anything else.
func SelfInstructKind(prompt string) (kind, task string, next int) {
	last := func() string {
		m := taskLineRE.FindAllStringSubmatch(prompt, -1)
		if m == nil {
			return ""
		}
		return strings.TrimSpace(m[len(m)-1][1])
	}
	switch {
	case strings.HasSuffix(strings.TrimSpace(prompt), "Is it classification?"):
		return KindClassify, last(), 0
	case strings.Contains(prompt, "Class label:"):
		return KindOutputFirst, last(), 0
	case strings.Contains(prompt, "Example 1"):
		return KindInputFirst, last(), 0
	}
	if m := openItemRE.FindStringSubmatch(prompt); m != nil {
		n, _ := strconv.Atoi(m[1])
		return KindBootstrap, "", n
	}
	return "", "", 0
}

// siTask is what the responder knows about a task it invented.
type siTask struct {
	clf    bool
	labels []string
	input  bool
}

// SelfInstructResponder answers the three kinds of Self-Instruct prompt like
// a real model, defects included: lists that restate the open number, open
// with a preamble or end with chatter, near-duplicate and blacklisted tasks,
// responses cut by the token limit; "Yes."/"**No**"/"Answer: Yes" and now
// and then an unclear "Maybe"; instances with markdown, a restated task
// line, duplicates, an input equal to its output, an output ending with a
// colon, conflicting outputs for one input, or no blocks at all. About a
// third of the tasks it invents are classification tasks, and it answers
// the classification question truthfully for them (bar the unclear
// answers). Tasks it did not invent (seeds) are judged by their wording.
func SelfInstructResponder(seed uint64) Responder {
	rng := rand.New(rand.NewPCG(seed, 0x5e1f1257))
	known := map[string]*siTask{}
	var served []string
	serial, bootstraps, items := 0, 0, 0
	word := func() string {
		var b strings.Builder
		for range 2 + rng.IntN(2) {
			b.WriteString(syllable[rng.IntN(len(syllable))])
		}
		return b.String()
	}
	words := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = word()
		}
		return strings.Join(w, " ")
	}
	newTask := func() string {
		serial++
		t := &siTask{input: rng.IntN(3) > 0}
		var inst string
		if rng.IntN(3) == 0 {
			t.clf, t.input = true, true
			for range 2 + rng.IntN(3) {
				t.labels = append(t.labels, word())
			}
			inst = fmt.Sprintf("Classify the %s as %s (item %d).", words(4+rng.IntN(4)), strings.Join(t.labels, " or "), serial)
		} else {
			inst = fmt.Sprintf("%s %s (item %d).", verbs[rng.IntN(len(verbs))], words(5+rng.IntN(7)), serial)
		}
		known[inst] = t
		return inst
	}
	taskOf := func(inst string) *siTask {
		if t, ok := known[inst]; ok {
			return t
		}
		// A seed or a task from elsewhere: judge by its wording.
		l := strings.ToLower(inst)
		t := &siTask{input: true}
		if strings.HasPrefix(l, "classify") || strings.Contains(l, " or ") && (strings.HasPrefix(l, "is ") || strings.HasPrefix(l, "does ") || strings.HasPrefix(l, "which ") || strings.HasPrefix(l, "decide")) {
			t.clf, t.labels = true, []string{"First", "Second"}
		}
		known[inst] = t
		return t
	}

	bootstrap := func(next int) Reply {
		var b strings.Builder
		restate := rng.Float64() < 0.4
		if restate && rng.Float64() < 0.3 {
			b.WriteString("Here are some more tasks:\n\n")
		}
		n := 1 + rng.IntN(7)
		for i := 0; i < n && next+i <= 15; i++ {
			var inst string
			// Each defect comes on a schedule, so that every run meets
			// all of them, and at random besides.
			items++
			switch x := rng.Float64(); {
			case (items%7 == 3 || x < 0.04) && len(served) > 0:
				inst = nearDuplicate(rng, served[rng.IntN(len(served))])
			case items%11 == 5 || x < 0.06:
				inst = "Draw a map of " + words(4) + "."
			case items%13 == 6 || x < 0.07:
				inst = "Summarize it."
			default:
				inst = newTask()
			}
			served = append(served, inst)
			switch {
			case i == 0 && !restate:
				b.WriteString(" " + inst)
			default:
				if i > 0 {
					b.WriteString("\n")
					if restate && rng.Float64() < 0.3 {
						b.WriteString("\n")
					}
				}
				fmt.Fprintf(&b, "%d. %s", next+i, inst)
			}
		}
		if rng.Float64() < 0.1 {
			b.WriteString("\n\nI hope these tasks are useful!")
		}
		text, finish := b.String(), "stop"
		// Every ninth list, and some others, hits the token limit.
		if bootstraps++; bootstraps%9 == 4 || rng.Float64() < 0.04 {
			text, finish = text[:len(text)*2/3], "length"
		}
		return Reply{Text: text, FinishReason: finish}
	}

	classify := func(inst string) Reply {
		t := taskOf(inst)
		if rng.Float64() < 0.03 {
			return Reply{Text: "Maybe"}
		}
		ans := "No"
		if t.clf {
			ans = "Yes"
		}
		forms := []string{"%s", " %s", "%s.", "**%s**", "Answer: %s", "%s, judging by the task."}
		return Reply{Text: fmt.Sprintf(forms[rng.IntN(len(forms))], ans)}
	}

	outputFirst := func(inst string) Reply {
		t := taskOf(inst)
		if rng.Float64() < 0.03 {
			return Reply{Text: "Sure, here are some examples of this task for you."}
		}
		labels := t.labels
		if len(labels) == 0 {
			labels = []string{"Yes", "No"}
		}
		var b strings.Builder
		md := rng.Float64() < 0.15
		if rng.Float64() < 0.15 {
			b.WriteString("Task: " + inst + "\n")
		}
		for _, l := range labels {
			if md {
				fmt.Fprintf(&b, "**Class label:** %s\n**Input:** %s\n", l, words(5))
			} else {
				fmt.Fprintf(&b, "Class label: %s\nInput: %s\n", l, words(5))
			}
		}
		text, finish := b.String(), "stop"
		if rng.Float64() < 0.05 {
			text, finish = text[:len(text)-len(text)/5], "length"
		}
		return Reply{Text: text, FinishReason: finish}
	}

	inputFirst := func(inst string) Reply {
		t := taskOf(inst)
		if rng.Float64() < 0.03 {
			return Reply{Text: "I'm not able to come up with examples for this one."}
		}
		var b strings.Builder
		if rng.Float64() < 0.1 {
			b.WriteString("Task: " + inst + "\n\n")
		}
		if !t.input && rng.Float64() < 0.5 {
			fmt.Fprintf(&b, "Output: The %s is %s.", word(), words(3))
			return Reply{Text: b.String()}
		}
		n := 1 + rng.IntN(5)
		type pair struct{ in, out string }
		var pairs []pair
		for range n {
			p := pair{words(4), "The " + words(4) + "."}
			switch x := rng.Float64(); {
			case x < 0.05 && len(pairs) > 0:
				p = pairs[len(pairs)-1] // a duplicate
			case x < 0.08:
				p.out = p.in // input equals output
			case x < 0.11:
				p.out = "The answer is:" // stopped before the answer
			case x < 0.13 && len(pairs) > 0:
				p.in = pairs[0].in // same input, another output: an ambiguous task
			}
			if !t.input {
				p.in = ""
			}
			pairs = append(pairs, p)
		}
		md := rng.Float64() < 0.15
		for i, p := range pairs {
			if md {
				fmt.Fprintf(&b, "### Example %d\n", i+1)
			} else {
				fmt.Fprintf(&b, "Example %d\n", i+1)
			}
			if p.in != "" {
				fmt.Fprintf(&b, "Input: %s\n", p.in)
			}
			fmt.Fprintf(&b, "Output: %s\n", p.out)
		}
		text, finish := b.String(), "stop"
		if rng.Float64() < 0.05 {
			text, finish = text[:len(text)-len(text)/5], "length"
		}
		return Reply{Text: text, FinishReason: finish}
	}

	return func(c Call) Reply {
		kind, task, next := SelfInstructKind(c.Prompt)
		switch kind {
		case KindBootstrap:
			return bootstrap(next)
		case KindClassify:
			return classify(task)
		case KindOutputFirst:
			return outputFirst(task)
		case KindInputFirst:
			return inputFirst(task)
		}
		return Reply{Text: "I am not sure what you are asking."}
	}
}
