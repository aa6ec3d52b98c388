package prompts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestRenderBootstrapPrompt(t *testing.T) {
	p := RenderBootstrapPrompt([]string{"Name a  color.\n", "Sort these words:", "Is 7 prime?"})
	if !strings.HasPrefix(p, siBootstrapHeader) {
		t.Fatal("the prompt does not start with the header")
	}
	want := "1. Name a color.\n2. Sort these words\n3. Is 7 prime?\n4."
	if !strings.HasSuffix(p, want) {
		t.Fatalf("prompt ends\n%q\nwant\n%q", p[len(siBootstrapHeader):], want)
	}
	for _, marker := range []string{"Is it classification?", "Class label:", "Example 1"} {
		if strings.Contains(p, marker) {
			t.Errorf("a bootstrap prompt contains %q, which marks another kind of prompt", marker)
		}
	}
}

func TestPromptKindsAreDistinguishable(t *testing.T) {
	// A server (ours, or the reference one) tells the kinds apart by these
	// markers; each prompt must carry its own and none of the others'.
	clf := RenderInstancePrompt("Is the animal a mammal or a bird?", true)
	gen := RenderInstancePrompt("Write a poem about rain.", false)
	cls := RenderClassifyPrompt("Write a poem about rain.")
	check := func(name, p string, has, hasNot []string) {
		for _, m := range has {
			if !strings.Contains(p, m) {
				t.Errorf("%s prompt lacks %q", name, m)
			}
		}
		for _, m := range hasNot {
			if strings.Contains(p, m) {
				t.Errorf("%s prompt contains %q", name, m)
			}
		}
	}
	check("output-first", clf, []string{"Class label:"}, []string{"Example 1", "Is it classification?"})
	check("input-first", gen, []string{"Example 1", "Output:"}, []string{"Class label:", "Is it classification?"})
	check("classify", cls, []string{"Is it classification?"}, []string{"Class label:", "Example 1"})
	if !strings.HasSuffix(clf, "Task: Is the animal a mammal or a bird?\n") || !strings.HasSuffix(gen, "Task: Write a poem about rain.\n") {
		t.Error("instance prompts must end with the task line")
	}
	if !strings.HasSuffix(cls, "Task: Write a poem about rain.\nIs it classification?") {
		t.Errorf("classify prompt ends %q", cls[len(cls)-60:])
	}
}

func TestClassifyTemplateMatchesSeedLabels(t *testing.T) {
	// The few-shot answers come from our seeds' is_classification labels;
	// an example that disagrees with its seed would teach the wrong thing.
	labels := map[string]bool{}
	for _, s := range DefaultSeedTasks() {
		labels[s.Instruction] = s.IsClassification
	}
	yes, no := 0, 0
	blocks := strings.Split(strings.TrimSpace(siClassifyTemplate), "\n\n")[1:]
	for _, b := range blocks {
		task, answer, ok := strings.Cut(b, "\nIs it classification? ")
		task = strings.TrimPrefix(task, "Task: ")
		if !ok {
			t.Fatalf("malformed example %q", b)
		}
		want, known := labels[task]
		if !known {
			t.Errorf("example %q is not one of our seeds", task)
		}
		if got := answer == "Yes"; got != want {
			t.Errorf("example %q answers %s, its seed says is_classification=%v", task, answer, want)
		}
		if answer == "Yes" {
			yes++
		} else {
			no++
		}
	}
	if yes < 10 || no < 10 || yes+no < 28 {
		t.Errorf("%d Yes and %d No examples; want about 30, both kinds", yes, no)
	}
}

func TestParseBootstrapResponse(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		finish  string
		want    []string
		dropped map[DropReason]int
	}{
		{
			name: "completion continues the open item",
			text: " Write a short story about a lighthouse keeper.\n10. Convert 5 miles to kilometres.\n11. Is a tomato a fruit or a vegetable?\n12 . Explain how a bicycle gear works.\n",
			want: []string{"Write a short story about a lighthouse keeper.", "Convert 5 miles to kilometres.", "Is a tomato a fruit or a vegetable?", "Explain how a bicycle gear works."},
		},
		{
			name:    "chat restates the number after a preamble and adds chatter",
			text:    "Sure! Here are more tasks:\n\n9. Suggest a name for a hiking club.\n\n10. **Classify** the sentence as a question or a statement.\n11. Task: Translate \"good morning\" into German.\n\nLet me know if you need more!",
			want:    []string{"Suggest a name for a hiking club.", "Classify the sentence as a question or a statement.", "Translate \"good morning\" into German."},
			dropped: map[DropReason]int{DropChatter: 2},
		},
		{
			name: "a long item wraps onto the next line",
			text: "Given a list of\n   numbers, return the largest.\n10) rank these three cities by population.",
			want: []string{"Given a list of numbers, return the largest.", "Rank these three cities by population."},
		},
		{
			name:    "cut by length drops everything",
			text:    " Plan a picnic.\n10. Name three rivers in Af",
			finish:  "length",
			dropped: map[DropReason]int{DropCutByLength: 1},
		},
		{
			name:    "copied examples and items past the end",
			text:    "9. Describe autumn in three words.\n3. Name a colour.\n15. List four uses of vinegar.\n16. Write a limerick.\n",
			want:    []string{"Describe autumn in three words.", "List four uses of vinegar."},
			dropped: map[DropReason]int{DropOutOfRange: 2},
		},
		{
			name:    "empty items",
			text:    "\n10.\n11. Count the vowels in the word.",
			want:    []string{"Count the vowels in the word."},
			dropped: map[DropReason]int{DropEmptyField: 2},
		},
		{
			name: "a number inside a sentence does not start an item",
			text: " Convert 3.5 cups into millilitres.\n10. What happened in 2016. Explain briefly.",
			want: []string{"Convert 3.5 cups into millilitres.", "What happened in 2016. Explain briefly."},
		},
		{
			name:    "empty response",
			text:    "",
			dropped: map[DropReason]int{DropEmptyField: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseBootstrapResponse(tc.text, 9, 15, tc.finish)
			if !reflect.DeepEqual(got.Instructions, tc.want) {
				t.Errorf("instructions\n%q\nwant\n%q", got.Instructions, tc.want)
			}
			if tc.dropped == nil {
				tc.dropped = map[DropReason]int{}
			}
			if !reflect.DeepEqual(got.Dropped, tc.dropped) {
				t.Errorf("dropped %v, want %v", got.Dropped, tc.dropped)
			}
		})
	}
}

func TestParseBootstrapCapsAtOpenItems(t *testing.T) {
	var b strings.Builder
	for i := 9; i <= 15; i++ {
		b.WriteString("9. Repeat the task number nine again please.\n")
	}
	b.WriteString("9. One too many repeated items here.\n")
	got := ParseBootstrapResponse(b.String(), 9, 15, "stop")
	if len(got.Instructions) != 7 || got.Dropped[DropOutOfRange] != 1 {
		t.Fatalf("%d instructions, dropped %v; want 7 and one out of range", len(got.Instructions), got.Dropped)
	}
}

func TestParseClassification(t *testing.T) {
	cases := []struct {
		text   string
		yes    bool
		parsed bool
	}{
		{" Yes", true, true},
		{"No", false, true},
		{"yes.", true, true},
		{"NO\n", false, true},
		{"**Yes**", true, true},
		{"Answer: No", false, true},
		{"Is it classification? Yes", true, true},
		{"Yes, because the labels are fixed.", true, true},
		{"No, it asks for free text.", false, true},
		{"It is a classification task.", true, true},
		{"It is not a classification task.", false, true},
		{"I think yes", true, true},
		{"True", true, true},
		{"Maybe", false, false},
		{"", false, false},
		{"Partly yes and partly no", false, false},
		{"Is it classification?", false, false},
	}
	for _, tc := range cases {
		yes, ok := ParseClassification(tc.text)
		if yes != tc.yes || ok != tc.parsed {
			t.Errorf("ParseClassification(%q) = %v, %v; want %v, %v", tc.text, yes, ok, tc.yes, tc.parsed)
		}
	}
}

func TestParseClassInstances(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		finish  string
		want    []Instance
		dropped map[DropReason]int
	}{
		{
			name: "completion style",
			text: "Class label: Positive\nInput: I loved every minute of it.\nClass label: Negative\nInput: The plot made no sense.\n",
			want: []Instance{{"I loved every minute of it.", "Positive"}, {"The plot made no sense.", "Negative"}},
		},
		{
			name: "chat style with markdown, restated task and a label without input",
			text: "Task: Is the number even or odd?\n**Class label:** Even\n**Input:** 42\n\nClass Label: Odd\n17\nclass label: Neither\n",
			want: []Instance{{"42", "Even"}, {"17", "Odd"}, {"", "Neither"}},
		},
		{
			name: "multi-line input",
			text: "Class label: Spam\nInput: Subject: You won!\nClick here to claim your prize.\nClass label: Not spam\nInput: Lunch at noon?",
			want: []Instance{{"Subject: You won!\nClick here to claim your prize.", "Spam"}, {"Lunch at noon?", "Not spam"}},
		},
		{
			name:    "cut by length drops the last block",
			text:    "Class label: Yes\nInput: Are you coming?\nClass label: No\nInput: The meeting is at",
			finish:  "length",
			want:    []Instance{{"Are you coming?", "Yes"}},
			dropped: map[DropReason]int{DropTruncated: 1},
		},
		{
			name:    "input first instead of label first",
			text:    "Input: The sky is green.\nOutput: False",
			dropped: map[DropReason]int{DropNoBlocks: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseClassInstances(tc.text, tc.finish)
			if !reflect.DeepEqual(got.Instances, tc.want) {
				t.Errorf("instances\n%q\nwant\n%q", got.Instances, tc.want)
			}
			if tc.dropped == nil {
				tc.dropped = map[DropReason]int{}
			}
			if !reflect.DeepEqual(got.Dropped, tc.dropped) {
				t.Errorf("dropped %v, want %v", got.Dropped, tc.dropped)
			}
		})
	}
}

func TestParseGenInstances(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		finish  string
		want    []Instance
		dropped map[DropReason]int
	}{
		{
			name: "completion style",
			text: "Example 1\nInput: 3, 9, 4\nOutput: 9\nExample 2\nInput: -1, -7\nOutput: -1\n",
			want: []Instance{{"3, 9, 4", "9"}, {"-1, -7", "-1"}},
		},
		{
			name: "no input",
			text: "Output:\n1. Read before bed.\n2. Keep the room cool.",
			want: []Instance{{"", "1. Read before bed.\n2. Keep the room cool."}},
		},
		{
			name: "chat markdown, restated task, numbered outputs",
			text: "Task: Reverse the word.\n\n### Example 1\n**Input:** apple\n**Output:** elppa\n\n**Example 2:**\nInput 2: kite\nOutput 2: etik",
			want: []Instance{{"apple", "elppa"}, {"kite", "etik"}},
		},
		{
			name: "several pairs in one example keep the first",
			text: "Example 1\nInput: cat\nOutput: animal\nInput: rose\nOutput: plant",
			want: []Instance{{"cat", "animal"}},
		},
		{
			name:    "an example cut before its output",
			text:    "Example 1\nInput: 2 + 2\nOutput: 4\nExample 2\nInput: 3 + 5\n",
			want:    []Instance{{"2 + 2", "4"}},
			dropped: map[DropReason]int{DropMissingOutput: 1},
		},
		{
			name:    "cut by length",
			text:    "Example 1\nInput: hello\nOutput: HELLO\nExample 2\nInput: good\nOutput: GO",
			finish:  "length",
			want:    []Instance{{"hello", "HELLO"}},
			dropped: map[DropReason]int{DropTruncated: 1},
		},
		{
			name: "examples without field labels are outputs",
			text: "Example 1\nA haiku about snow.\nExample 2\nAnother haiku.",
			want: []Instance{{"", "A haiku about snow."}, {"", "Another haiku."}},
		},
		{
			name:    "prose answer",
			text:    "I'm sorry, I cannot help with that.",
			dropped: map[DropReason]int{DropNoBlocks: 1},
		},
		{
			name: "the word example inside an output is not a marker",
			text: "Output: For example, a sentence.",
			want: []Instance{{"", "For example, a sentence."}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseGenInstances(tc.text, tc.finish)
			if !reflect.DeepEqual(got.Instances, tc.want) {
				t.Errorf("instances\n%q\nwant\n%q", got.Instances, tc.want)
			}
			if tc.dropped == nil {
				tc.dropped = map[DropReason]int{}
			}
			if !reflect.DeepEqual(got.Dropped, tc.dropped) {
				t.Errorf("dropped %v, want %v", got.Dropped, tc.dropped)
			}
		})
	}
}

func TestFilterInstances(t *testing.T) {
	in := []Instance{
		{"a", "a"},              // input equals output
		{"b", " "},              // empty output
		{"The answer is:", "x"}, // input ends with a colon
		{"c", "Result:"},        // output ends with a colon
		{"d", "D"},
		{"e", "E"},
		{"d", "D"}, // exact repeat
		{"", "free 1"},
		{"", "free 2"}, // no input: different outputs are fine
		{"f", "F"},
		{"g", "G"},
		{"h", "H"}, // sixth valid: over the limit
	}
	kept, dropped, conflict := FilterInstances(in, 5)
	if conflict {
		t.Fatal("no conflict expected")
	}
	want := []Instance{{"d", "D"}, {"e", "E"}, {"", "free 1"}, {"", "free 2"}, {"f", "F"}}
	if !reflect.DeepEqual(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	wantDrops := map[DropReason]int{DropSameAsInput: 1, DropEmptyOutput: 1, DropEndsWithColon: 2, DropDuplicate: 1, DropOverLimit: 2}
	if !reflect.DeepEqual(dropped, wantDrops) {
		t.Errorf("dropped %v, want %v", dropped, wantDrops)
	}
	kept, _, conflict = FilterInstances([]Instance{{"x", "1"}, {"y", "2"}, {"x", "3"}}, 5)
	if !conflict || kept != nil {
		t.Errorf("same input with different outputs: kept %q conflict %v; want the task dropped", kept, conflict)
	}
}

func checkInstances(t *testing.T, insts []Instance) {
	for _, in := range insts {
		if in.Input != strings.TrimSpace(in.Input) || in.Output != strings.TrimSpace(in.Output) {
			t.Fatalf("untrimmed instance %q", in)
		}
	}
}

func FuzzParseBootstrapResponse(f *testing.F) {
	f.Add(" Write a poem.\n10. Sort the list.\n\nThanks!", 9, false)
	f.Add("Sure:\n9. **Task:** x y z\n11) w", 9, false)
	f.Add("9.\n\n\n10", 3, true)
	f.Fuzz(func(t *testing.T, text string, next int, length bool) {
		next = next%20 + 1
		if next < 1 {
			next += 20
		}
		finish := "stop"
		if length {
			finish = "length"
		}
		res := ParseBootstrapResponse(text, next, 15, finish)
		if n := len(res.Instructions); n > max(15-next+1, 0) {
			t.Fatalf("%d instructions for items %d..15", n, next)
		}
		for _, inst := range res.Instructions {
			if inst == "" || strings.ContainsAny(inst, "\n\r") {
				t.Fatalf("bad instruction %q", inst)
			}
			if utf8.ValidString(text) && !utf8.ValidString(inst) {
				t.Fatalf("invalid UTF-8 out of valid input: %q", inst)
			}
		}
	})
}

func FuzzParseClassification(f *testing.F) {
	for _, s := range []string{"Yes", "no.", "It is not", "**YES**", "maybe", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		yes, ok := ParseClassification(text)
		if !ok && yes {
			t.Fatal("an unclear answer must not say yes")
		}
	})
}

func FuzzParseInstances(f *testing.F) {
	f.Add("Class label: A\nInput: x\nClass label: B", true)
	f.Add("Example 1\nInput: a\nOutput: b\nExample 2\nOutput:", false)
	f.Add("Task: t\n**Output:** y", false)
	f.Fuzz(func(t *testing.T, text string, clf bool) {
		for _, finish := range []string{"stop", "length"} {
			var res InstanceResult
			if clf {
				res = ParseClassInstances(text, finish)
			} else {
				res = ParseGenInstances(text, finish)
			}
			checkInstances(t, res.Instances)
			kept, _, conflict := FilterInstances(res.Instances, 5)
			if conflict && kept != nil {
				t.Fatal("a conflicting task kept instances")
			}
			if len(kept) > 5 {
				t.Fatalf("%d instances kept, max 5", len(kept))
			}
			seen := map[Instance]bool{}
			for _, in := range kept {
				if in.Output == "" || in.Input == in.Output || strings.HasSuffix(in.Output, ":") || strings.HasSuffix(in.Input, ":") || seen[in] {
					t.Fatalf("FilterInstances kept %q", in)
				}
				seen[in] = true
			}
		}
	})
}

// referenceFile reads a file of the shared reference data, or skips.
func referenceFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "shared", "reference", name))
	if err != nil {
		t.Skipf("reference data absent (%v): the round trip over real instances needs ../shared/reference/%s", err, name)
	}
	return data
}

// hasLineMarker reports whether s has a line that the instance parsers
// read as a marker; such text cannot round-trip through any line format.
var lineMarker = regexp.MustCompile(`(?im)^[ \t#*]*(class[ \t]*label|input|output|example[ \t]*\d+|task)[ \t\d]*[:.)]?`)

// Real instances, written out the way the prompts ask for them, parse back
// exactly: Alpaca's cleaned records as input-first examples, three to a
// response, and Self-Instruct's classification seeds as label-first
// blocks.
func TestInstanceParsersRoundTripRealData(t *testing.T) {
	var recs []struct{ Instruction, Input, Output string }
	if err := json.Unmarshal(referenceFile(t, "alpaca_data_sample_2k.json"), &recs); err != nil {
		t.Fatal(err)
	}
	checked, skipped := 0, 0
	for i := 0; i+3 <= len(recs); i += 3 {
		var b strings.Builder
		var want []Instance
		ok := true
		for k, r := range recs[i : i+3] {
			in, out := strings.TrimSpace(r.Input), strings.TrimSpace(r.Output)
			if lineMarker.MatchString(in) || lineMarker.MatchString(out) || out == "" {
				ok = false
			}
			fmt.Fprintf(&b, "Example %d\n", k+1)
			if in != "" {
				fmt.Fprintf(&b, "Input: %s\n", in)
			}
			fmt.Fprintf(&b, "Output: %s\n", out)
			want = append(want, Instance{Input: in, Output: out})
		}
		if !ok {
			skipped++
			continue
		}
		checked++
		got := ParseGenInstances(b.String(), "stop")
		if !reflect.DeepEqual(got.Instances, want) {
			t.Fatalf("records %d..%d:\n%s\nparsed as %q", i, i+2, b.String(), got.Instances)
		}
	}
	if checked < 500 {
		t.Fatalf("only %d responses checked (%d skipped)", checked, skipped)
	}

	seeds, err := ParseSeedTasks(bytes.NewReader(referenceFile(t, "alpaca_seed_tasks.jsonl")), "alpaca_seed_tasks.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	clf := 0
	for _, s := range seeds {
		if !s.IsClassification {
			continue
		}
		in, out := strings.TrimSpace(s.Instances[0].Input), strings.TrimSpace(s.Instances[0].Output)
		if strings.Contains(out, "\n") || lineMarker.MatchString(in) {
			continue
		}
		clf++
		text := fmt.Sprintf("Class label: %s\nInput: %s\nClass label: Other\n", out, in)
		got := ParseClassInstances(text, "stop")
		want := []Instance{{Input: in, Output: out}, {Output: "Other"}}
		if !reflect.DeepEqual(got.Instances, want) {
			t.Errorf("seed %s:\n%s\nparsed as %q", s.ID, text, got.Instances)
		}
	}
	if clf < 15 {
		t.Fatalf("only %d classification seeds checked", clf)
	}
	t.Logf("%d input-first responses (%d skipped for marker-like lines), %d label-first", checked, skipped, clf)
}

// Real instructions written as the continuation of a bootstrap list, with
// and without the restated open number, parse back (whitespace collapsed).
func TestBootstrapParserRoundTripRealData(t *testing.T) {
	var recs []struct{ Instruction string }
	if err := json.Unmarshal(referenceFile(t, "alpaca_data_raw_5000.json"), &recs); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i := 0; i+7 <= len(recs) && checked < 500; i += 7 {
		var b strings.Builder
		var want []string
		ok := true
		for k, r := range recs[i : i+7] {
			inst := strings.Join(strings.Fields(r.Instruction), " ")
			if inst == "" || bootstrapItem.MatchString(inst) || strings.Contains(inst, "**") || taskLabel.MatchString(inst) ||
				!unicode.IsUpper([]rune(inst)[0]) {
				ok = false
			}
			switch {
			case k == 0 && checked%2 == 0:
				b.WriteString(" " + inst)
			default:
				if k > 0 {
					b.WriteString("\n")
				}
				fmt.Fprintf(&b, "%d. %s", 9+k, inst)
			}
			want = append(want, inst)
		}
		if !ok {
			continue
		}
		checked++
		got := ParseBootstrapResponse(b.String(), 9, 15, "stop")
		if !reflect.DeepEqual(got.Instructions, want) || len(got.Dropped) != 0 {
			t.Fatalf("records %d..%d:\n%s\nparsed as %q, dropped %v", i, i+6, b.String(), got.Instructions, got.Dropped)
		}
	}
	if checked < 300 {
		t.Fatalf("only %d responses checked", checked)
	}
}
