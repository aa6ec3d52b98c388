package prompts

import (
	"regexp"
	"strings"
)

// InstanceResult is what one instance-generation response yielded.
type InstanceResult struct {
	Instances []Instance
	// Dropped counts blocks lost while parsing, by reason.
	Dropped map[DropReason]int
}

// Instance parse and filter drop reasons.
const (
	// DropNoBlocks: the response has none of the blocks the prompt asked
	// for ("Class label:", or "Example N" / "Output:").
	DropNoBlocks DropReason = "no_instances_parsed"
	// DropMissingOutput: an example with an "Input:" but no "Output:".
	DropMissingOutput DropReason = "missing_output"
	// DropSameAsInput, DropEmptyOutput, DropEndsWithColon: the original's
	// filter_invalid_instances; a trailing colon means generation stopped
	// where the answer should have started.
	DropSameAsInput   DropReason = "input_equals_output"
	DropEmptyOutput   DropReason = "empty_output"
	DropEndsWithColon DropReason = "ends_with_colon"
	// DropDuplicate: an exact repeat of an earlier instance of the task.
	DropDuplicate DropReason = "duplicate_instance"
	// DropOverLimit: instances past the per-task maximum.
	DropOverLimit DropReason = "over_limit"
)

// Markers are matched at line starts, case-insensitively, with the
// markdown decorations chat models add ("**Input:**", "### Example 2").
var (
	restatedTask  = regexp.MustCompile(`^\s*(?:\*\*)?(?i:task)\s*:[^\n]*\n?`)
	classLabelRE  = regexp.MustCompile(`(?im)^[ \t#*]*class[ \t]*label[ \t]*\d*[ \t]*(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*`)
	exampleRE     = regexp.MustCompile(`(?im)^[ \t#*]*example[ \t]*\d+[ \t]*[.:)]?(?:\*\*)?[ \t]*`)
	inputMarkRE   = regexp.MustCompile(`(?im)^[ \t#*]*input[ \t]*\d*[ \t]*(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*`)
	outputMarkRE  = regexp.MustCompile(`(?im)^[ \t#*]*output[ \t]*\d*[ \t]*(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*`)
	leadingInput  = regexp.MustCompile(`^(?i:input)\s*\d*\s*:\s*`)
	markdownLabel = strings.NewReplacer("**", "")
)

// ParseClassInstances reads an output-first response: "Class label: L"
// followed by the input for L, once per label. Like the original, the label
// is the rest of its line, the input is everything up to the next label (an
// "Input:" prefix removed), a label with nothing after it is an instance
// without input, and the last block of a response cut by the token limit is
// dropped. A chat model's restated "Task:" line and markdown are ignored.
func ParseClassInstances(text, finishReason string) InstanceResult {
	res := InstanceResult{Dropped: map[DropReason]int{}}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = restatedTask.ReplaceAllString(text, "")
	locs := classLabelRE.FindAllStringIndex(text, -1)
	if len(locs) == 0 {
		res.Dropped[DropNoBlocks]++
		return res
	}
	for i, loc := range locs {
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		block := strings.TrimSpace(text[loc[1]:end])
		label, input, _ := strings.Cut(block, "\n")
		label = strings.TrimSpace(markdownLabel.Replace(label))
		input = strings.TrimSpace(leadingInput.ReplaceAllString(strings.TrimSpace(markdownInput(input)), ""))
		res.Instances = append(res.Instances, Instance{Input: input, Output: label})
	}
	if finishReason == "length" {
		res.Instances = res.Instances[:len(res.Instances)-1]
		res.Dropped[DropTruncated]++
	}
	return res
}

// markdownInput removes bold markers around a leading "Input:" label.
func markdownInput(s string) string {
	if loc := inputMarkRE.FindStringIndex(s); loc != nil && loc[0] == 0 {
		return s[loc[1]:]
	}
	return s
}

// ParseGenInstances reads an input-first response: "Example N" blocks, each
// with "Input:" and "Output:", or a single "Output:" for a task without
// input. As in the original, an example without an "Output:" marker is all
// output, a second "Input:" inside an output ends it, and the last example of
// a response cut by the token limit is dropped. Unlike it, an example that
// has an "Input:" but no "Output:" is dropped rather than read as an output
// that begins with "Input:".
func ParseGenInstances(text, finishReason string) InstanceResult {
	res := InstanceResult{Dropped: map[DropReason]int{}}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = restatedTask.ReplaceAllString(text, "")
	var blocks []string
	if locs := exampleRE.FindAllStringIndex(text, -1); len(locs) > 0 {
		if pre := strings.TrimSpace(text[:locs[0][0]]); pre != "" && outputMarkRE.MatchString(pre) {
			// Output before "Example 1": the model answered once, then
			// went on numbering; keep both.
			blocks = append(blocks, pre)
		}
		for i, loc := range locs {
			end := len(text)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			if b := strings.TrimSpace(text[loc[1]:end]); b != "" {
				blocks = append(blocks, b)
			}
		}
	} else if outputMarkRE.MatchString(text) {
		blocks = []string{text}
	}
	if len(blocks) == 0 {
		res.Dropped[DropNoBlocks]++
		return res
	}
	var parsed []Instance
	var ok []bool
	for _, b := range blocks {
		in, out, good := splitInputOutput(b)
		parsed = append(parsed, Instance{Input: in, Output: out})
		ok = append(ok, good)
	}
	if finishReason == "length" {
		parsed, ok = parsed[:len(parsed)-1], ok[:len(ok)-1]
		res.Dropped[DropTruncated]++
	}
	for i, inst := range parsed {
		if !ok[i] {
			res.Dropped[DropMissingOutput]++
			continue
		}
		res.Instances = append(res.Instances, inst)
	}
	return res
}

// splitInputOutput is the original's parse_input_output with line-start
// markers.
func splitInputOutput(block string) (input, output string, ok bool) {
	loc := outputMarkRE.FindStringIndex(block)
	if loc == nil {
		if inputMarkRE.MatchString(block) {
			return "", "", false
		}
		return "", strings.TrimSpace(block), true
	}
	input = strings.TrimSpace(block[:loc[0]])
	output = block[loc[1]:]
	if next := inputMarkRE.FindStringIndex(output); next != nil {
		output = output[:next[0]]
	}
	if l := inputMarkRE.FindStringIndex(input); l != nil && l[0] == 0 {
		input = input[l[1]:]
	}
	return strings.TrimSpace(input), strings.TrimSpace(output), true
}

// FilterInstances applies the original's filters to one task's instances,
// in its order: drop an instance whose input equals its output, whose output
// is empty, or whose input or output ends with ":"; then, if two instances
// with the same non-empty input have different outputs, the task is
// ambiguous and conflict is true with nothing kept; then exact repeats go
// (keeping the first, in order: the original's set() loses the order), and
// at most max instances remain (the first ones; the original samples).
func FilterInstances(instances []Instance, max int) (kept []Instance, dropped map[DropReason]int, conflict bool) {
	dropped = map[DropReason]int{}
	var valid []Instance
	for _, in := range instances {
		input, output := strings.TrimSpace(in.Input), strings.TrimSpace(in.Output)
		switch {
		case input == output:
			dropped[DropSameAsInput]++
		case output == "":
			dropped[DropEmptyOutput]++
		case strings.HasSuffix(input, ":") || strings.HasSuffix(output, ":"):
			dropped[DropEndsWithColon]++
		default:
			valid = append(valid, Instance{Input: input, Output: output})
		}
	}
	outputOf := map[string]string{}
	for _, in := range valid {
		if in.Input == "" {
			// Tasks without input have many right answers.
			continue
		}
		if prev, seen := outputOf[in.Input]; seen && prev != in.Output {
			return nil, dropped, true
		}
		outputOf[in.Input] = in.Output
	}
	seen := map[Instance]bool{}
	for _, in := range valid {
		switch {
		case seen[in]:
			dropped[DropDuplicate]++
		case max > 0 && len(kept) >= max:
			dropped[DropOverLimit]++
		default:
			seen[in] = true
			kept = append(kept, in)
		}
	}
	return kept, dropped, false
}
