package prompts

import (
	_ "embed"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Self-Instruct (Wang et al., 2022) asks the teacher three kinds of
// question: continue a numbered list of tasks (bootstrapping), say whether a
// task is a classification task, and write instances for a task, label
// first for classification tasks and input first for the others. The prompts
// are our own wording and our own few-shot examples; their shape (a numbered
// list ending with the open number, "Task: ..." / "Is it classification?",
// "Class label:" and "Example 1" blocks) follows the original so that models
// and servers that know it answer in kind.

// Bootstrap prompt layout: 6 human seeds and 2 machine tasks, and new items
// up to 15 (the stop strings end the response where item 16 would start).
const (
	SelfInstructPromptTasks  = 8
	SelfInstructMachineTasks = 2
	SelfInstructLastItem     = 15
	// SelfInstructMaxInstances is how many instances a task keeps at most.
	SelfInstructMaxInstances = 5
)

//go:embed templates/selfinstruct_bootstrap.txt
var siBootstrapHeader string

//go:embed templates/selfinstruct_classify.txt
var siClassifyTemplate string

//go:embed templates/selfinstruct_instances_clf.txt
var siClfInstancesTemplate string

//go:embed templates/selfinstruct_instances_gen.txt
var siGenInstancesTemplate string

// RenderBootstrapPrompt lists tasks as "1. ...", "2. ...", each instruction
// on one line (whitespace collapsed, trailing colons removed, as the original
// encode_prompt does), and ends with the open number "{n+1}." the teacher
// continues from. The header tells a chat model to continue the list.
func RenderBootstrapPrompt(tasks []string) string {
	var b strings.Builder
	b.WriteString(siBootstrapHeader)
	for i, t := range tasks {
		b.WriteString(strconv.Itoa(i+1) + ". " + normalizePromptInstruction(t) + "\n")
	}
	b.WriteString(strconv.Itoa(len(tasks)+1) + ".")
	return b.String()
}

// BootstrapStop ends a response where item last+1 would begin. The original
// also stops on "\n\n" and on "16." anywhere; the first ends a chat model's
// double-spaced list after one item and the second cuts "in 2016.", so the
// parser handles blank lines instead.
func BootstrapStop(last int) []string {
	n := strconv.Itoa(last + 1)
	return []string{"\n" + n + ".", "\n" + n + " .", "\n" + n + ")"}
}

// RenderClassifyPrompt asks whether instruction is a classification task:
// our few-shot examples, then "Task: <instruction>" and "Is it
// classification?".
func RenderClassifyPrompt(instruction string) string {
	return siClassifyTemplate + "Task: " + normalizePromptInstruction(instruction) + "\nIs it classification?"
}

// ClassifyStop ends the answer before a completion model starts the next
// example.
func ClassifyStop() []string { return []string{"\nTask:", "\n\n"} }

// RenderInstancePrompt asks for instances of instruction: output first
// ("Class label:" then "Input:") for a classification task, input first
// ("Example 1", "Input:", "Output:") otherwise. Both end with
// "Task: <instruction>" and a newline, as the original templates do.
func RenderInstancePrompt(instruction string, classification bool) string {
	tmpl := siGenInstancesTemplate
	if classification {
		tmpl = siClfInstancesTemplate
	}
	return tmpl + "Task: " + strings.TrimSpace(instruction) + "\n"
}

// InstanceStop ends a response after max examples or where a completion
// model starts inventing the next task. "Task:" only counts at a line start,
// so a chat model that restates the task first is not cut to nothing.
func InstanceStop(max int) []string {
	return []string{"Example " + strconv.Itoa(max+1), "\nTask:"}
}

// BootstrapResult is what one bootstrapping response yielded.
type BootstrapResult struct {
	// Instructions are the new tasks, normalised, in the response's order.
	Instructions []string
	// Dropped counts items or parts lost for each reason.
	Dropped map[DropReason]int
}

// Bootstrap drop reasons besides the Alpaca parser's.
const (
	// DropCutByLength: the response hit the token limit; the original
	// drops all of it, since the list stopped at an unknown point.
	DropCutByLength DropReason = "cut_by_length"
	// DropChatter: text after the list, separated by a blank line, that is
	// no numbered item (a chat model's closing remark).
	DropChatter DropReason = "trailing_text"
)

// bootstrapItem matches a numbered line: "9. ...", "9 . ...", "9) ...",
// "**9.** ...". The number must be followed by space or the line's end, so
// "3.5 cups" does not start item 3.
var bootstrapItem = regexp.MustCompile(`^[ \t]*(?:[-*][ \t]+)?(?:\*\*)?(\d{1,4})[ \t]?[.)](?:\*\*)?(?:[ \t]+(.*)|$)`)

// ParseBootstrapResponse reads the tasks in a continuation of a bootstrap
// prompt that ended with "{next}.". Like the original it drops a response cut
// by the token limit and splits items at numbered lines; beyond it, it
// accepts a response that restates "{next}." (chat models do), drops a
// preamble before that restated item and closing chatter after a blank line,
// drops items numbered before next (the prompt's examples copied back) or
// after last, and keeps the case of the instruction past its first letter
// (the original's str.capitalize lowercases "Python" and "SQL").
func ParseBootstrapResponse(text string, next, last int, finishReason string) BootstrapResult {
	res := BootstrapResult{Dropped: map[DropReason]int{}}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if finishReason == "length" {
		res.Dropped[DropCutByLength]++
		return res
	}
	lines := strings.Split(text, "\n")
	// Where does the restated open item start, if anywhere?
	restated := -1
	for i, l := range lines {
		if m := bootstrapItem.FindStringSubmatch(l); m != nil {
			if n, _ := strconv.Atoi(m[1]); n == next {
				restated = i
			}
			break
		}
	}
	type rawItem struct {
		number int
		text   []string
	}
	var items []rawItem
	if restated < 0 {
		// The response continues the open item in its first line(s).
		items = append(items, rawItem{number: next})
	} else if strings.TrimSpace(strings.Join(lines[:restated], "\n")) != "" {
		res.Dropped[DropChatter]++
	}
	start := max(restated, 0)
	blank := false
	for _, l := range lines[start:] {
		if strings.TrimSpace(l) == "" {
			blank = true
			continue
		}
		if m := bootstrapItem.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			items = append(items, rawItem{number: n, text: []string{m[2]}})
			blank = false
			continue
		}
		if blank && len(items) > 0 && len(items[len(items)-1].text) > 0 {
			// A paragraph after the list is not part of its last item.
			res.Dropped[DropChatter]++
			break
		}
		blank = false
		cur := &items[len(items)-1]
		cur.text = append(cur.text, l)
	}
	for _, it := range items {
		inst := cleanBootstrapInstruction(strings.Join(it.text, " "))
		switch {
		case it.number < next || it.number > last:
			res.Dropped[DropOutOfRange]++
		case inst == "":
			res.Dropped[DropEmptyField]++
		case len(res.Instructions) >= last-next+1:
			res.Dropped[DropOutOfRange]++
		default:
			res.Instructions = append(res.Instructions, inst)
		}
	}
	return res
}

var taskLabel = regexp.MustCompile(`^(?i:task|instruction)\s*\d*\s*:\s*`)

// cleanBootstrapInstruction collapses whitespace, removes markdown bold and a
// "Task:" label a chat model may add, and capitalises the first letter.
func cleanBootstrapInstruction(s string) string {
	s = strings.Join(strings.FieldsFunc(s, isPySpace), " ")
	s = strings.ReplaceAll(s, "**", "")
	s = taskLabel.ReplaceAllString(strings.TrimSpace(s), "")
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// ParseClassification reads the answer to "Is it classification?". It
// accepts what models write in practice: "Yes", " no.", "**Yes**", "Answer:
// No", "Yes, because ...", "It is a classification task". ok is false when
// the answer says neither or both; the original then counted the task as not
// classification, and so does the caller, but it can report how often.
func ParseClassification(text string) (isClassification, ok bool) {
	s := strings.ToLower(text)
	words := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' })
	// Skip a restated question or an "answer:" label.
	all := words
	for len(words) > 0 && skipClassifyWord[words[0]] {
		words = words[1:]
	}
	if len(words) == 0 {
		return false, false
	}
	switch words[0] {
	case "yes", "true", "y":
		return true, true
	case "no", "false", "n", "not":
		return false, true
	}
	yes, no := sayYesNo(all)
	if yes != no {
		return yes, true
	}
	return false, false
}

var skipClassifyWord = map[string]bool{"answer": true, "is": true, "it": true, "a": true, "classification": true}

// sayYesNo looks for a yes or a no anywhere in an answer.
func sayYesNo(words []string) (yes, no bool) {
	for _, w := range words {
		switch w {
		case "yes":
			yes = true
		case "no", "not", "isn't", "isnt":
			no = true
		}
	}
	if !yes && !no {
		// "It is a classification task."
		for _, w := range words {
			if w == "classification" {
				return true, false
			}
		}
	}
	return yes, no
}
