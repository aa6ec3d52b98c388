package prompts

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The digests are of the prompts Alpaca's own encode_prompt (Python, at
// tatsu-lab/stanford_alpaca 761dc5b) builds from its prompt.txt and the given
// seeds of its seed_tasks.jsonl; hashes keep their text out of this repo.
func TestRenderAlpacaPromptMatchesAlpacaByteForByte(t *testing.T) {
	header, err := LoadPromptHeader(sharedReference(t, "alpaca_prompt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := LoadSeedTasks(sharedReference(t, "alpaca_seed_tasks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		picks  []int
		sha256 string
		// length in characters, as Python's len counts them
		length int
	}{
		{[]int{0, 1, 2}, "b94a7e3d04a55c5198f75bf582f95dbde48dfeccc0ee13ba092467063073ca64", 3021},
		// 88 is a two-line instruction ending in a colon, 4 ends in a colon,
		// 125 has a double space.
		{[]int{88, 4, 125}, "f20eadf0a5a736e48536262d8c7e77167dc6906b9fa18cc044187cbf05fbb192", 2532},
		{[]int{135, 137, 8, 69}, "32401379c62625329410d95985569c287dfd04d8bf2c75ceff58fdebf3a3f8fa", 3245},
		{[]int{174}, "4d4793d166c86ce286ea31b913734cb2ef597edac89fb66e38da8466039e6ebd", 1985},
	}
	for _, tc := range cases {
		var picked []SeedTask
		for _, i := range tc.picks {
			picked = append(picked, seeds[i])
		}
		prompt := RenderAlpacaPrompt(header, picked)
		sum := sha256.Sum256([]byte(prompt))
		if got := hex.EncodeToString(sum[:]); got != tc.sha256 || utf8.RuneCountInString(prompt) != tc.length {
			t.Errorf("seeds %v: sha256 %s, %d characters; want %s, %d", tc.picks, got, utf8.RuneCountInString(prompt), tc.sha256, tc.length)
		}
	}
}

func TestRenderAlpacaPromptNormalisesLikePython(t *testing.T) {
	seeds := []SeedTask{
		{Instruction: "  Sort\tthese\n\nnumbers  :: ", Instances: []Instance{{Input: "3, 1, 2", Output: "1, 2, 3"}}},
		// U+00A0 and U+2003 are whitespace to Python's \s as well.
		{Instruction: "Name a colour\u00a0\u2003of the sky:", Instances: []Instance{{Input: "", Output: "Blue"}}},
		// U+001C is whitespace to Python but not to Go; an input of one space
		// is not empty, so it is not replaced by <noinput>.
		{Instruction: "Reply\x1cnow :", Instances: []Instance{{Input: " ", Output: "ok\n"}}},
	}
	// Expected text printed by Alpaca's encode_prompt for the same seeds.
	want := "HEADER\n###\n1. Instruction: Sort these numbers \n1. Input:\n3, 1, 2\n1. Output:\n1, 2, 3\n" +
		"###\n2. Instruction: Name a colour of the sky\n2. Input:\n<noinput>\n2. Output:\nBlue\n" +
		"###\n3. Instruction: Reply now \n3. Input:\n \n3. Output:\nok\n\n###\n4. Instruction:"
	if got := RenderAlpacaPrompt("HEADER", seeds); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestRenderAlpacaPromptEdgeCases(t *testing.T) {
	if got, want := RenderAlpacaPrompt("H", nil), "H\n###\n1. Instruction:"; got != want {
		t.Errorf("no seeds: %q, want %q", got, want)
	}
	got := RenderAlpacaPrompt("H", []SeedTask{{Instruction: "Bare task"}})
	if want := "H\n###\n1. Instruction: Bare task\n1. Input:\n<noinput>\n1. Output:\n\n###\n2. Instruction:"; got != want {
		t.Errorf("seed without instances: %q, want %q", got, want)
	}
	// Invalid UTF-8 in a user's seed must pass through, not turn into U+FFFD.
	got = RenderAlpacaPrompt("H", []SeedTask{{Instruction: "caf\xe9  au lait", Instances: []Instance{{Output: "x"}}}})
	if !strings.Contains(got, "Instruction: caf\xe9 au lait\n") {
		t.Errorf("invalid UTF-8 altered: %q", got)
	}
}

// The prompt the renderer writes must read back through the parser: the
// examples are the same format the teacher is asked to continue.
func TestRenderedPromptParsesBack(t *testing.T) {
	seeds := DefaultSeedTasks()[:5]
	prompt := RenderAlpacaPrompt(DefaultAlpacaHeader(), seeds)
	body := prompt[len(DefaultAlpacaHeader())+1:]
	res := ParseAlpacaResponse(body, 0, "length")
	if len(res.Candidates) != len(seeds) {
		t.Fatalf("parsed %d of %d rendered seeds; dropped %v", len(res.Candidates), len(seeds), res.Dropped)
	}
	for i, c := range res.Candidates {
		inst := seeds[i].Instances[0]
		if c.Index != i+1 || c.Instruction != normalizePromptInstruction(seeds[i].Instruction) ||
			c.Input != strings.TrimSpace(inst.Input) || c.Output != strings.TrimSpace(inst.Output) {
			t.Errorf("item %d: parsed %+v from seed %+v", i+1, c, seeds[i])
		}
	}
	if res.Dropped[DropTruncated] != 1 || res.DroppedTotal() != 1 {
		t.Errorf("dropped %v, want only the open item 6 as truncated", res.Dropped)
	}
}

func TestDefaultAlpacaHeaderStructure(t *testing.T) {
	h := DefaultAlpacaHeader()
	if !strings.HasSuffix(h, "\n\nList of 20 tasks:") {
		t.Errorf("header must end with a blank line and \"List of 20 tasks:\" and no newline, ends %q", h[max(0, len(h)-40):])
	}
	if strings.Contains(h, "###") {
		t.Error("header contains ###, the item separator")
	}
	if !strings.Contains(h, NoInputMarker) {
		t.Error("header does not tell the teacher to write <noinput>")
	}
	// Alpaca's list of requirements numbers 1, 2, 3, 2, 3, ...; ours counts up.
	numbered := regexp.MustCompile(`(?m)^(\d+)\. `).FindAllStringSubmatch(h, -1)
	if len(numbered) < 5 {
		t.Fatalf("only %d numbered requirements", len(numbered))
	}
	for i, m := range numbered {
		if m[1] != strconv.Itoa(i+1) {
			t.Errorf("requirement %d is numbered %s", i+1, m[1])
		}
	}
	if header, err := LoadPromptHeader(sharedReferenceOrEmpty("alpaca_prompt.txt")); err == nil && header == h {
		t.Error("default header is Alpaca's text; it must be our own wording")
	}
}

func sharedReferenceOrEmpty(name string) string {
	return filepath.Join("..", "..", "shared", "reference", name)
}

func TestLoadPromptHeader(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	text := "Make 20 tasks.\n\nList of 20 tasks:\n"
	got, err := LoadPromptHeader(write("ok.txt", text))
	if err != nil || got != text {
		t.Errorf("LoadPromptHeader = %q, %v; want the file verbatim", got, err)
	}
	for name, content := range map[string]string{"empty.txt": "", "blank.txt": " \n\n", "latin1.txt": "caf\xe9\n"} {
		if _, err := LoadPromptHeader(write(name, content)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not reject it by name", name, err)
		}
	}
	if _, err := LoadPromptHeader(filepath.Join(dir, "missing.txt")); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing file: %v", err)
	}
}

// cutAtStop applies stop strings the way OpenAI does: the text ends just
// before the earliest occurrence of any of them.
func cutAtStop(text string, stops []string) string {
	end := len(text)
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && i < end {
			end = i
		}
	}
	return text[:end]
}

func TestAlpacaStop(t *testing.T) {
	stops := AlpacaStop()
	if len(stops) > 4 {
		t.Fatalf("%d stop strings; the OpenAI API takes at most 4", len(stops))
	}
	var b strings.Builder
	b.WriteString(" Name a year.\n4. Input:\n<noinput>\n4. Output:\nThe Olympics were held in Tokyo in 2020.\n")
	b.WriteString("###\n5. Instruction: Price a ticket.\n5. Input:\nAdult, off-peak\n5. Output:\nIt costs $20.\n20. is not an item here, and\n20 people agree.\n")
	for i := 6; i <= 21; i++ {
		n := strconv.Itoa(i)
		b.WriteString("###\n" + n + ". Instruction: Task number " + n + " please.\n" + n + ". Input:\n<noinput>\n" + n + ". Output:\nDone " + n + ".\n")
	}
	full := b.String()
	cut := cutAtStop(full, stops)
	if want := full[:strings.Index(full, "###\n20.")]; cut != want {
		t.Fatalf("cut at byte %d, want just before item 20 at %d", len(cut), len(want))
	}
	// Alpaca's own stop strings cut the first item short.
	if alpaca := cutAtStop(full, []string{"\n20", "20.", "20."}); strings.Contains(alpaca, "2020.") {
		t.Fatal("test text no longer shows Alpaca's stop bug")
	}
	res := ParseAlpacaResponse(cut, 3, "stop")
	if len(res.Candidates) != 16 || res.Candidates[0].Output != "The Olympics were held in Tokyo in 2020." || res.Candidates[15].Index != 19 {
		t.Fatalf("parsed %d candidates (dropped %v): first %+v", len(res.Candidates), res.Dropped, res.Candidates[0])
	}
	if !strings.Contains(res.Candidates[1].Output, "20 people agree.") {
		t.Errorf("item 5 output cut: %q", res.Candidates[1].Output)
	}

	// Without the ### separator the item still stops at the line start.
	noSep := "x\n4. Input:\n<noinput>\n4. Output:\ny\n20. Instruction: z"
	if got := cutAtStop(noSep, stops); got != "x\n4. Input:\n<noinput>\n4. Output:\ny" {
		t.Errorf("no-separator item 20 not stopped: %q", got)
	}
}
