package prompts

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

type parsedItem struct {
	Index                      int
	Instruction, Input, Output string
}

func items(res ParseResult) []parsedItem {
	var out []parsedItem
	for _, c := range res.Candidates {
		out = append(out, parsedItem{c.Index, c.Instruction, c.Input, c.Output})
	}
	return out
}

// item4 writes one item the way the prompt lays items out.
func fmtItem(n int, instruction, input, output string) string {
	s := strconv.Itoa(n)
	return s + ". Instruction: " + instruction + "\n" + s + ". Input:\n" + input + "\n" + s + ". Output:\n" + output + "\n"
}

// continuation turns items (starting at item n+1) into the text a completion
// model returns after "{n+1}. Instruction:".
func continuation(n int, itemTexts ...string) string {
	joined := strings.Join(itemTexts, "###\n")
	prefix := strconv.Itoa(n+1) + ". Instruction:"
	if !strings.HasPrefix(joined, prefix) {
		panic("first item must be numbered n+1")
	}
	return joined[len(prefix):]
}

func TestParseAlpacaResponseCases(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		n       int
		finish  string
		want    []parsedItem
		dropped map[DropReason]int
		issues  []string // per candidate, substring expected in Issue ("" = no issue)
	}{
		{
			name: "well formed, stopped",
			text: continuation(3,
				fmtItem(4, "List three primes.", "<noinput>", "2, 3, 5"),
				fmtItem(5, "Reverse the word.", "stressed", "desserts"),
			),
			n: 3, finish: "stop",
			want: []parsedItem{{4, "List three primes.", "", "2, 3, 5"}, {5, "Reverse the word.", "stressed", "desserts"}},
		},
		{
			name: "length drops the last item",
			text: continuation(3,
				fmtItem(4, "List three primes.", "<noinput>", "2, 3, 5"),
				"5. Instruction: Reverse the word.\n5. Input:\nstressed\n5. Output:\ndess",
			),
			n: 3, finish: "length",
			want:    []parsedItem{{4, "List three primes.", "", "2, 3, 5"}},
			dropped: map[DropReason]int{DropTruncated: 1},
		},
		{
			name: "length keeps a finished item run into the truncated one",
			text: continuation(3,
				fmtItem(4, "List three primes.", "<noinput>", "2, 3, 5"),
				fmtItem(5, "Reverse the word.", "stressed", "desserts")+"6. Instruction: Name a",
			),
			n: 3, finish: "length",
			want:    []parsedItem{{4, "List three primes.", "", "2, 3, 5"}, {5, "Reverse the word.", "stressed", "desserts"}},
			dropped: map[DropReason]int{DropTruncated: 1},
			issues:  []string{"", IssueNextSplitOff},
		},
		{
			name: "length with a trailing separator keeps the finished item",
			text: continuation(3, fmtItem(4, "List three primes.", "<noinput>", "2, 3, 5")) + "###\n",
			n:    3, finish: "length",
			want: []parsedItem{{4, "List three primes.", "", "2, 3, 5"}},
		},
		{
			name: "missing input part is malformed",
			text: " Name a fruit.\n4. Output:\nApple\n###\n" + fmtItem(5, "Name a car brand.", "<noinput>", "Volvo"),
			n:    3, finish: "stop",
			want:    []parsedItem{{5, "Name a car brand.", "", "Volvo"}},
			dropped: map[DropReason]int{DropMalformed: 1},
		},
		{
			name: "merged items split when both complete",
			text: continuation(3,
				fmtItem(4, "Name a fruit.", "<noinput>", "Apple")+"\n"+fmtItem(5, "Name a car brand.", "No input", "Volvo"),
				fmtItem(6, "Name a river.", "<noinput>", "Nile"),
			),
			n: 3, finish: "stop",
			want:   []parsedItem{{4, "Name a fruit.", "", "Apple"}, {5, "Name a car brand.", "", "Volvo"}, {6, "Name a river.", "", "Nile"}},
			issues: []string{IssueNextSplitOff, IssueSplitMerged, ""},
		},
		{
			name: "mistyped separator is removed when splitting",
			text: continuation(3, fmtItem(4, "Name a fruit.", "<noinput>", "Apple")+"##\n"+fmtItem(5, "Name a car brand.", "<noinput>", "Volvo")),
			n:    3, finish: "stop",
			want:   []parsedItem{{4, "Name a fruit.", "", "Apple"}, {5, "Name a car brand.", "", "Volvo"}},
			issues: []string{IssueSeparatorRemoved, IssueSplitMerged},
		},
		{
			name: "a number ending an output is the answer, not debris",
			text: continuation(3, fmtItem(4, "Multiply 6 by 7.", "<noinput>", "6 × 7 =\n42")+fmtItem(5, "Name a car brand.", "<noinput>", "Volvo")),
			n:    3, finish: "stop",
			want: []parsedItem{{4, "Multiply 6 by 7.", "", "6 × 7 =\n42"}, {5, "Name a car brand.", "", "Volvo"}},
		},
		{
			name: "incomplete swallowed item is cut off",
			text: continuation(3, fmtItem(4, "Name a fruit.", "<noinput>", "Apple")+"5. Instruction: Name a car brand.\n"),
			n:    3, finish: "stop",
			want:    []parsedItem{{4, "Name a fruit.", "", "Apple"}},
			dropped: map[DropReason]int{DropFragment: 1},
		},
		{
			name: "stray input marker after an output is cut off",
			text: continuation(3, fmtItem(4, "Name a fruit.", "<noinput>", "Apple")+"5. Input:\nsomething\n"),
			n:    3, finish: "stop",
			want:    []parsedItem{{4, "Name a fruit.", "", "Apple"}},
			dropped: map[DropReason]int{DropFragment: 1},
			issues:  []string{IssueFragmentRemoved},
		},
		{
			name: "numbering off after a lost separator is still read",
			text: continuation(3,
				fmtItem(4, "Name a fruit.", "<noinput>", "Apple")+fmtItem(5, "Name a car brand.", "<noinput>", "Volvo"),
				fmtItem(6, "Name a river.", "<noinput>", "Nile"),
			),
			n: 3, finish: "stop",
			want: []parsedItem{{4, "Name a fruit.", "", "Apple"}, {5, "Name a car brand.", "", "Volvo"}, {6, "Name a river.", "", "Nile"}},
		},
		{
			name: "copied prompt example and item past the list are out of range",
			text: continuation(3,
				fmtItem(4, "Name a fruit.", "<noinput>", "Apple"),
				fmtItem(2, "Copy of an example.", "<noinput>", "Example"),
				fmtItem(20, "The twentieth.", "<noinput>", "Twenty"),
			),
			n: 3, finish: "stop",
			want:    []parsedItem{{4, "Name a fruit.", "", "Apple"}},
			dropped: map[DropReason]int{DropOutOfRange: 2},
		},
		{
			name: "empty output dropped",
			text: continuation(3, fmtItem(4, "Name a fruit.", "<noinput>", " "), fmtItem(5, " ", "<noinput>", "x")),
			n:    3, finish: "stop",
			dropped: map[DropReason]int{DropEmptyField: 2},
		},
		{
			name: "numbers inside text are not markers",
			text: continuation(3, fmtItem(4, "When did it happen?", "A report from 2020.", "It happened in 2020. Step 2. Output: none of this is a marker\n# Output: 30")),
			n:    3, finish: "stop",
			want: []parsedItem{{4, "When did it happen?", "A report from 2020.", "It happened in 2020. Step 2. Output: none of this is a marker\n# Output: 30"}},
		},
		{
			name: "CRLF line endings",
			text: strings.ReplaceAll(continuation(3, fmtItem(4, "Name a fruit.", "<noinput>", "Apple\nor pear"), fmtItem(5, "Name a car brand.", "Sweden", "Volvo")), "\n", "\r\n"),
			n:    3, finish: "stop",
			want: []parsedItem{{4, "Name a fruit.", "", "Apple\r\nor pear"}, {5, "Name a car brand.", "Sweden", "Volvo"}},
		},
		{
			name: "chat model restates the open marker",
			text: fmtItem(4, "Name a fruit.", "<noinput>", "Apple") + "###\n" + fmtItem(5, "Name a car brand.", "<noinput>", "Volvo"),
			n:    3, finish: "stop",
			want: []parsedItem{{4, "Name a fruit.", "", "Apple"}, {5, "Name a car brand.", "", "Volvo"}},
		},
		{
			name: "chat model writes a preamble first",
			text: "Sure! Here are more tasks:\n\n" + fmtItem(4, "Name a fruit.", "<NoInput>", "Apple") + "###\n" + fmtItem(5, "Name a car brand.", "<noinput>", "Volvo"),
			n:    3, finish: "stop",
			want:   []parsedItem{{4, "Name a fruit.", "", "Apple"}, {5, "Name a car brand.", "", "Volvo"}},
			issues: []string{"", ""},
		},
		{
			name: "completion whose first item lost its parts",
			text: " Name a fruit.\n5. Instruction: Name a car brand.\n5. Input:\n<noinput>\n5. Output:\nVolvo",
			n:    3, finish: "stop",
			want:    []parsedItem{{5, "Name a car brand.", "", "Volvo"}},
			dropped: map[DropReason]int{DropFragment: 1},
		},
		{
			name: "chat model opens with the separator",
			text: "###\n" + fmtItem(4, "Name a fruit.", "<noinput>", "Apple"),
			n:    3, finish: "stop",
			want: []parsedItem{{4, "Name a fruit.", "", "Apple"}},
		},
		{
			name: "Alpaca spacing variants",
			text: " Name a fruit.\n4.  Input: <noinput>\n4.\nOutput: Apple",
			n:    3, finish: "stop",
			want: []parsedItem{{4, "Name a fruit.", "", "Apple"}},
		},
		{name: "empty response", text: "", n: 3, finish: "stop"},
		{name: "empty response cut by length", text: "", n: 3, finish: "length"},
		{name: "prose without items", text: " Sure! Here are twenty tasks.", n: 3, finish: "stop", dropped: map[DropReason]int{DropMalformed: 1}},
		{
			name: "negative example count is treated as zero",
			text: continuation(0, fmtItem(1, "Name a fruit.", "<noinput>", "Apple")),
			n:    -5, finish: "stop",
			want: []parsedItem{{1, "Name a fruit.", "", "Apple"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := ParseAlpacaResponse(tc.text, tc.n, tc.finish)
			if got := items(res); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("candidates\n got %+v\nwant %+v", got, tc.want)
			}
			wantDropped := tc.dropped
			if wantDropped == nil {
				wantDropped = map[DropReason]int{}
			}
			gotDropped := map[DropReason]int{}
			for k, v := range res.Dropped {
				if v != 0 {
					gotDropped[k] = v
				}
			}
			if !reflect.DeepEqual(gotDropped, wantDropped) {
				t.Errorf("dropped %v, want %v", gotDropped, wantDropped)
			}
			for i, issue := range tc.issues {
				if i >= len(res.Candidates) {
					break
				}
				got := res.Candidates[i].Issue
				if (issue == "" && got != "") || !strings.Contains(got, issue) {
					t.Errorf("candidate %d issue %q, want %q", i, got, issue)
				}
			}
		})
	}
}

func TestIsNoInputMarker(t *testing.T) {
	for _, s := range []string{"<noinput>", "No Input", "No input.", "no input", "N/A", "n/a", "None", "NONE.", "Not applicable",
		"<No input>", `""`, "(none)", "< noinput >", "Noinput", "No input needed.", "[No input]", "**None**", " <NoInput> "} {
		if !IsNoInputMarker(s) {
			t.Errorf("%q not read as no input", s)
		}
	}
	for _, s := range []string{"No input is needed for the following function", "None of the above", "Nonesuch", "NA12878", "Input: 2", "N/A N/A", "0", "-"} {
		if IsNoInputMarker(s) {
			t.Errorf("%q wrongly read as no input", s)
		}
	}
}

// alpacaReference is Alpaca's post_process_gpt3_response, ported literally
// without its word-count and blacklist filters, to compare against.
func alpacaReference(text string, n int, finish string) []parsedItem {
	raw := strings.Split(strconv.Itoa(n+1)+". Instruction:"+text, "###")
	var out []parsedItem
	for idx, inst := range raw {
		if idx == len(raw)-1 && finish == "length" {
			continue
		}
		idx += n + 1
		re := regexp.MustCompile(strconv.Itoa(idx) + `\.\s+(Instruction|Input|Output):`)
		m := re.FindAllStringIndex(inst, -1)
		if len(m) != 3 {
			continue
		}
		input := strings.TrimSpace(inst[m[1][1]:m[2][0]])
		if strings.ToLower(input) == "<noinput>" {
			input = ""
		}
		out = append(out, parsedItem{idx, strings.TrimSpace(inst[m[0][1]:m[1][0]]), input, strings.TrimSpace(inst[m[2][1]:])})
	}
	return out
}

type alpacaRecord struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

func loadRawAlpaca(t *testing.T) []alpacaRecord {
	t.Helper()
	data, err := os.ReadFile(sharedReference(t, "alpaca_data_raw_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	var records []alpacaRecord
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatal(err)
	}
	return records
}

// responseFrom lays records out as a teacher's response after n examples.
func responseFrom(n int, records []alpacaRecord) string {
	var parts []string
	for i, r := range records {
		input := r.Input
		if input == "" {
			input = NoInputMarker
		}
		parts = append(parts, fmtItem(n+1+i, r.Instruction, input, r.Output))
	}
	return continuation(n, parts...)
}

var anyMarker = regexp.MustCompile(`\d+\s*\.\s*(Instruction|Input|Output):|###`)

// On responses rebuilt from real Alpaca records, the parser agrees with
// Alpaca wherever Alpaca is right, and differs only where a record carries
// one of the defects Alpaca let through.
func TestParseAlpacaResponseOnRealRecords(t *testing.T) {
	records := loadRawAlpaca(t)
	const n = 3
	perResponse := AlpacaTasksPerPrompt - 1 - n
	compared, defective := 0, 0
	for start := 0; start+perResponse <= len(records); start += perResponse {
		batch := records[start : start+perResponse]
		for _, finish := range []string{"stop", "length"} {
			text := responseFrom(n, batch)
			got := ParseAlpacaResponse(text, n, finish)
			ref := alpacaReference(text, n, finish)
			for _, c := range got.Candidates {
				if !strings.Contains(text, c.Instruction) || !strings.Contains(text, c.Input) || !strings.Contains(text, c.Output) {
					t.Fatalf("candidate %+v not verbatim from the response", c)
				}
			}
			refByIndex := map[int]parsedItem{}
			for _, r := range ref {
				refByIndex[r.Index] = r
			}
			// An item split off a defective record may share its number
			// with the next record's item; only the latter is compared.
			gotByIndex := map[int][]parsedItem{}
			for _, c := range got.Candidates {
				if !strings.Contains(c.Issue, IssueSplitMerged) {
					gotByIndex[c.Index] = append(gotByIndex[c.Index], parsedItem{c.Index, c.Instruction, c.Input, c.Output})
				}
			}
			for i, rec := range batch {
				idx := n + 1 + i
				if finish == "length" && i == len(batch)-1 {
					if len(gotByIndex[idx]) != 0 || got.Dropped[DropTruncated] != 1 {
						t.Errorf("records %d..: truncated last item kept", start)
					}
					continue
				}
				clean := !anyMarker.MatchString(rec.Instruction+rec.Input+rec.Output) &&
					strings.TrimSpace(rec.Instruction) != "" && strings.TrimSpace(rec.Output) != ""
				if !clean {
					defective++
					continue
				}
				want := refByIndex[idx]
				if IsNoInputMarker(want.Input) {
					want.Input = ""
				}
				if g := gotByIndex[idx]; len(g) != 1 || g[0] != want {
					t.Errorf("record %d: parsed %+v, Alpaca (markers normalised) %+v", start+i, g, want)
				}
				compared++
			}
		}
	}
	if compared < 9000 || defective == 0 {
		t.Fatalf("compared %d clean items, %d defective: the fixture is not exercising the parser", compared, defective)
	}
}

// The raw Alpaca data holds records whose output swallowed the next task;
// Alpaca kept them whole. Rebuilt as responses, each must split in two.
func TestParseAlpacaResponseSplitsRealMergedRecords(t *testing.T) {
	records := loadRawAlpaca(t)
	merged := regexp.MustCompile(`\n(\d+)\. Instruction:`)
	found := 0
	for i, rec := range records {
		m := merged.FindStringSubmatchIndex(rec.Output)
		if m == nil {
			continue
		}
		found++
		text := responseFrom(3, []alpacaRecord{rec})
		res := ParseAlpacaResponse(text, 3, "stop")
		if len(res.Candidates) == 0 || res.Candidates[0].Index != 4 {
			t.Errorf("record %d: no candidate 4: %+v dropped %v", i, res.Candidates, res.Dropped)
			continue
		}
		first := res.Candidates[0]
		if strings.Contains(first.Output, "Instruction:") || first.Output == "" || first.Issue == "" {
			t.Errorf("record %d: merged output not cut: %+v", i, first)
		}
		if !strings.HasPrefix(strings.TrimSpace(rec.Output), first.Output) {
			t.Errorf("record %d: kept output %q is not the start of the original", i, first.Output)
		}
		if len(res.Candidates) == 2 {
			second := res.Candidates[1]
			num, _ := strconv.Atoi(rec.Output[m[2]:m[3]])
			if second.Index != num || !strings.Contains(second.Issue, IssueSplitMerged) {
				t.Errorf("record %d: split-off item %+v", i, second)
			}
		} else if res.DroppedTotal() == 0 {
			t.Errorf("record %d: swallowed item neither split nor counted as dropped", i)
		}
	}
	if found < 2 {
		t.Fatalf("only %d merged records in the raw data; expected the known defects", found)
	}
}

func FuzzParseAlpacaResponse(f *testing.F) {
	f.Add(continuation(3, fmtItem(4, "List three primes.", "<noinput>", "2, 3, 5"), fmtItem(5, "Reverse the word.", "stressed", "desserts")), 3, false)
	f.Add(continuation(3, fmtItem(4, "Name a fruit.", "N/A", "Apple")+fmtItem(5, "Name a car.", "", "Volvo")+"6. Instruction: x"), 3, true)
	f.Add(" a\r\n4. Input:\r\n\r\n4. Output:\r\nb\r\n###\r\n5. Instruction:", 3, true)
	f.Add("###\n4. Instruction: a 4. Input: b 4. Output: c 4. Input: d", 3, false)
	f.Add("1. Instruction: 1. Instruction: x\n1. Input:\n\n1. Output:\ny", 0, false)
	f.Add("99999999999999999999999. Instruction: a 9. Input: b", 8, false)
	f.Add("", -1, true)
	f.Fuzz(func(t *testing.T, text string, n int, length bool) {
		finish := "stop"
		if length {
			finish = "length"
		}
		res := ParseAlpacaResponse(text, n, finish)
		for _, c := range res.Candidates {
			if c.Instruction == "" || c.Output == "" {
				t.Fatalf("empty field in %+v", c)
			}
			if !strings.Contains(text, c.Instruction) || !strings.Contains(text, c.Input) || !strings.Contains(text, c.Output) {
				t.Fatalf("candidate %+v not taken verbatim from %q", c, text)
			}
			if c.Index <= max(n, 0) || c.Index >= AlpacaTasksPerPrompt {
				t.Fatalf("candidate numbered %d outside %d..%d", c.Index, max(n, 0)+1, AlpacaTasksPerPrompt-1)
			}
		}
		for reason, count := range res.Dropped {
			if count < 0 {
				t.Fatalf("negative count for %s", reason)
			}
		}
	})
}
