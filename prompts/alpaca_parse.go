package prompts

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Candidate is one task read from a teacher response, before any quality or
// novelty filter. Instruction, Input and Output are verbatim, trimmed
// substrings of the response (Input is "" for a no-input marker).
type Candidate struct {
	// Index is the item number the teacher wrote ("7. Instruction:").
	Index       int
	Instruction string
	Input       string
	Output      string
	// Issue describes a repair the parser made to keep this candidate, such
	// as splitting it out of an item that swallowed it; "" when the item was
	// well formed.
	Issue string
}

// DropReason says why part of a response did not become a Candidate.
type DropReason string

const (
	// DropTruncated: the last item of a response that hit the token limit
	// (finish reason "length"); it is likely cut short, as Alpaca assumes.
	DropTruncated DropReason = "truncated"
	// DropMalformed: a ###-separated item without "N. Instruction:",
	// "N. Input:" and "N. Output:" in that order with one number.
	DropMalformed DropReason = "malformed"
	// DropFragment: an incomplete item found inside another item whose ###
	// separator was missing; the complete item around it is kept.
	DropFragment DropReason = "swallowed_fragment"
	// DropOutOfRange: an item numbered inside the prompt's examples (the
	// teacher copying them) or at or past the list's end.
	DropOutOfRange DropReason = "out_of_range"
	// DropEmptyField: an item with an empty instruction or output.
	DropEmptyField DropReason = "empty_field"
)

// Issues recorded on candidates that needed a repair.
const (
	IssueSplitMerged      = "split from the item before it: the ### separator was missing"
	IssueNextSplitOff     = "the next item, run into this output without ###, was split off"
	IssueFragmentRemoved  = "an incomplete item that followed the output was cut off"
	IssueSeparatorRemoved = "a stray separator line at the end of the output was removed"
	issueInputMarker      = "input %q read as no input"
)

// ParseResult is what one response yielded.
type ParseResult struct {
	Candidates []Candidate
	// Dropped counts the items, or parts of items, lost for each reason.
	Dropped map[DropReason]int
}

// DroppedTotal is the number of items and fragments dropped for any reason.
func (r ParseResult) DroppedTotal() int {
	total := 0
	for _, n := range r.Dropped {
		total += n
	}
	return total
}

// itemMarker matches "7. Instruction:", "7. Input:" and "7. Output:". It is
// looser than Alpaca's per-item "{idx}\.\s+(Instruction|Input|Output):" only
// in the spacing it accepts and in reading the number rather than assuming
// it, which is what lets a swallowed item be recognised.
var itemMarker = regexp.MustCompile(`\b(\d+)[ \t]*\.\s*(Instruction|Input|Output):`)

type markerKind int

const (
	markInstruction markerKind = iota
	markInput
	markOutput
)

type marker struct {
	number     int
	kind       markerKind
	start, end int
}

// item is the run of markers from one "N. Instruction:" to the next (or, for
// the run before a chunk's first instruction marker, a leading fragment).
type item struct {
	markers []marker
	// end is where the item's text stops: the next item's first marker, or
	// the end of the chunk.
	end int
}

// complete reports whether the item opens with Instruction, Input and
// Output markers of one number.
func (it item) complete() bool {
	m := it.markers
	return len(m) >= 3 &&
		m[0].kind == markInstruction && m[1].kind == markInput && m[2].kind == markOutput &&
		m[0].number == m[1].number && m[1].number == m[2].number
}

// ParseAlpacaResponse reads the numbered tasks in a teacher's continuation of
// an Alpaca prompt that showed numPromptInstructions examples. It follows
// Alpaca's post_process_gpt3_response: the response continues after
// "{n+1}. Instruction:", items are separated by ###, an item needs its
// Instruction, Input and Output parts, the last item is dropped when
// finishReason is "length", and "<noinput>" means an empty input. Beyond
// Alpaca, it splits items run together without ###, cuts an incomplete
// swallowed item off the output it ended up in, reads other spellings of "no
// input" ("No input.", "N/A", "None", ...) as empty, and drops items with an
// empty output and items numbered outside n+1..19. Word-count and blacklist
// heuristics are left to package filters.
func ParseAlpacaResponse(text string, numPromptInstructions int, finishReason string) ParseResult {
	res := ParseResult{Dropped: map[DropReason]int{}}
	first := max(numPromptInstructions, 0) + 1
	prefix := strconv.Itoa(first) + ". Instruction:"
	// A chat model often restates the open item's marker, sometimes after a
	// line of preamble; prepending ours too would leave an empty item in
	// front of it.
	if restatesOpenItem(text, first) {
		prefix = ""
	}
	chunks := strings.Split(prefix+text, "###")
	for ci, chunk := range chunks {
		// The first chunk is only our prefix when the response opens with ###.
		if ci == 0 && strings.TrimSpace(chunk[len(prefix):]) == "" {
			continue
		}
		if strings.TrimSpace(chunk) == "" {
			continue
		}
		truncated := ci == len(chunks)-1 && finishReason == "length"
		parseChunk(chunk, first, truncated, &res)
	}
	return res
}

// restatesOpenItem reports whether the first item marker at a line start,
// before any ###, is "{first}. Instruction:": the response writes the open
// item's marker itself rather than continuing after it.
func restatesOpenItem(text string, first int) bool {
	head := text
	if i := strings.Index(text, "###"); i >= 0 {
		head = text[:i]
	}
	for _, f := range itemMarker.FindAllStringSubmatchIndex(head, -1) {
		if !atLineStart(head, f[0]) {
			continue
		}
		return head[f[4]:f[5]] == "Instruction" && head[f[2]:f[3]] == strconv.Itoa(first)
	}
	return false
}

func parseChunk(chunk string, first int, truncated bool, res *ParseResult) {
	items := splitItems(chunk)
	if truncated {
		// The token limit cut the last item; whatever came before it in the
		// same chunk was finished by the time the next marker was written.
		res.Dropped[DropTruncated]++
		if len(items) == 0 {
			return
		}
		items = items[:len(items)-1]
		if len(items) == 0 {
			return
		}
	}
	if len(items) == 0 {
		res.Dropped[DropMalformed]++
		return
	}
	anyComplete := false
	for _, it := range items {
		if it.complete() {
			anyComplete = true
			break
		}
	}
	if !anyComplete {
		res.Dropped[DropMalformed]++
		return
	}
	for i, it := range items {
		if !it.complete() {
			res.Dropped[DropFragment]++
			continue
		}
		var issues []string
		if i > 0 {
			issues = append(issues, IssueSplitMerged)
		}
		// it.end falls short of the chunk's end when another item, kept or
		// truncated, followed in the same chunk.
		if it.end < len(chunk) {
			issues = append(issues, IssueNextSplitOff)
		}
		outputEnd := it.end
		if len(it.markers) > 3 {
			outputEnd = it.markers[3].start
			res.Dropped[DropFragment]++
			issues = append(issues, IssueFragmentRemoved)
		}
		m := it.markers
		output := chunk[m[2].end:outputEnd]
		if outputEnd < len(chunk) {
			var cut bool
			output, cut = trimSeparatorLines(output)
			if cut {
				issues = append(issues, IssueSeparatorRemoved)
			}
		}
		c := Candidate{
			Index:       m[0].number,
			Instruction: pyStrip(chunk[m[0].end:m[1].start]),
			Input:       pyStrip(chunk[m[1].end:m[2].start]),
			Output:      pyStrip(output),
		}
		if c.Index < first || c.Index >= AlpacaTasksPerPrompt {
			res.Dropped[DropOutOfRange]++
			continue
		}
		if c.Instruction == "" || c.Output == "" {
			res.Dropped[DropEmptyField]++
			continue
		}
		if c.Input != "" && IsNoInputMarker(c.Input) {
			if !strings.EqualFold(c.Input, NoInputMarker) {
				issues = append(issues, fmt.Sprintf(issueInputMarker, c.Input))
			}
			c.Input = ""
		}
		c.Issue = strings.Join(issues, "; ")
		res.Candidates = append(res.Candidates, c)
	}
}

// splitItems finds the item markers in a chunk and groups them into items,
// each starting at an Instruction marker. A marker with the current item's
// number counts wherever it is, as in Alpaca; one with another number only at
// the start of a line, where a swallowed item's marker would be, so that
// "Step 2. Output:" inside an output stays text.
func splitItems(chunk string) []item {
	found := itemMarker.FindAllStringSubmatchIndex(chunk, -1)
	var items []item
	current := -1
	for _, f := range found {
		number, err := strconv.Atoi(chunk[f[2]:f[3]])
		if err != nil {
			// Too many digits for an int: no teacher numbers items like that.
			number = -1
		}
		mk := marker{number: number, start: f[0], end: f[1]}
		if number != current && !atLineStart(chunk, mk.start) {
			continue
		}
		switch chunk[f[4]:f[5]] {
		case "Instruction":
			mk.kind = markInstruction
		case "Input":
			mk.kind = markInput
		default:
			mk.kind = markOutput
		}
		if mk.kind == markInstruction {
			current = number
		}
		if mk.kind == markInstruction || len(items) == 0 {
			if len(items) > 0 {
				items[len(items)-1].end = mk.start
			}
			items = append(items, item{})
		}
		items[len(items)-1].markers = append(items[len(items)-1].markers, mk)
	}
	if len(items) > 0 {
		items[len(items)-1].end = len(chunk)
	}
	return items
}

// atLineStart reports whether only spaces or tabs precede offset on its line.
func atLineStart(s string, offset int) bool {
	line := s[:offset]
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	return strings.Trim(line, " \t") == ""
}

// trimSeparatorLines removes trailing lines made only of '#': the debris of
// a mistyped separator ("##") left at the end of an output when the next item
// was run into it. Other debris stays, since a last line of digits or symbols
// may be the answer itself.
func trimSeparatorLines(s string) (string, bool) {
	cut := false
	for {
		t := strings.TrimRight(s, " \t\r\n")
		i := strings.LastIndexByte(t, '\n')
		last := t[i+1:]
		if last == "" || !onlyOf(last, "#") {
			return s, cut
		}
		s = t[:i+1]
		cut = true
		if i < 0 {
			return s, cut
		}
	}
}

func onlyOf(s, set string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// noInputSpellings are the ways teachers write "this task has no input"
// besides <noinput>, lower-cased with surrounding brackets, quotes and a final
// period removed.
var noInputSpellings = map[string]bool{
	"noinput": true, "no input": true, "no-input": true, "no_input": true,
	"no input required": true, "no input needed": true, "no input necessary": true,
	"no input provided": true, "no input given": true, "input not required": true,
	"n/a": true, "na": true, "none": true, "nil": true, "null": true, "empty": true,
	"not applicable": true, "nothing": true, "": true,
}

// IsNoInputMarker reports whether an input value, as a whole, only says that
// there is no input: "<noinput>", "No Input", "No input.", "N/A", "None",
// "Not applicable", "<No input>", `""`, "(none)", "< noinput >" and the like,
// in any case.
func IsNoInputMarker(input string) bool {
	s := strings.ToLower(strings.TrimSpace(input))
	for {
		before := s
		s = strings.TrimSuffix(s, ".")
		for _, pair := range []string{"<>", "()", "[]", "{}", `""`, "''", "``", "**"} {
			if len(s) >= 2 && s[0] == pair[0] && s[len(s)-1] == pair[1] {
				s = s[1 : len(s)-1]
			}
		}
		s = strings.TrimSpace(s)
		if s == before {
			break
		}
	}
	return noInputSpellings[s]
}
