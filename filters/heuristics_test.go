package filters

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

var heuristicCases = []struct {
	in   string
	want Reason // "" = passes
}{
	{"", ReasonTooShort},
	{"   ", ReasonTooShort},
	{"Give three tips", ReasonTooShort},
	{"Give three tips now", ""},
	{"Give\u00a0three\u2003tips\u3000now", ""},
	{"Give\x1cthree\x1dtips\x1enow", ""},                          // Python splits on U+001C..U+001F
	{"Give\u200bthree\u200btips\u200bnow please", ReasonTooShort}, // U+200B is not whitespace
	{strings.Repeat("word ", 150), ""},
	{strings.Repeat("word ", 151), ReasonTooLong},
	{"Describe the image below in detail.", ReasonBlacklist},
	{"Describe the IMAGES below in detail.", ReasonBlacklist},
	{"Describe the imagery below in detail.", ""},
	{"Open the profile settings page please.", ""},
	{"Go to the store and buy milk.", ReasonBlacklist},
	{"Go  to the store and buy milk.", ""},
	{"Rename my_file to something.", ""},    // _ is a word character
	{"Rename file_ to something else.", ""}, // ditto
	{"Open the file-based tool quickly.", ReasonBlacklist},
	{"Open the FİLE quickly right now.", ReasonBlacklist}, // İ lowers to i under re.IGNORECASE
	{"Open the fıle quickly right now.", ReasonBlacklist}, // dotless i is equivalent to i
	{"Open the ﬁle quickly right now.", ""},               // the fi ligature is one code point
	{"Write a music review of this album.", ReasonBlacklist},
	{"Draw a flowchart of the process.", ReasonBlacklist},
	{"Write a programme to sort numbers.", ReasonWriteAProgram},
	{"write a program to sort numbers.", ""},
	{"Write a Python program to sort numbers.", ""},
	{"\"Quote\" the following sentence properly.", ReasonStartsWithPunctuation},
	{"(a) List four prime numbers please.", ReasonStartsWithPunctuation},
	{"¿Cómo estás? Translate this to English.", ReasonStartsNonASCII},
	{"Éclair recipes: list three variations.", ReasonStartsNonASCII},
	{" Leading space counts as ascii here.", ""},
	{"Create a mapping of states to capitals.", ""},
	{"Plot twist: write a story ending.", ReasonBlacklist},
	{"The naïve résumé café has four words.", ""},
	{"Find the café\u0301 image again now.", ReasonBlacklist},
}

func TestHeuristicsTable(t *testing.T) {
	o := AlpacaHeuristics()
	for _, c := range heuristicCases {
		got, ok := o.Check(c.in)
		if ok != (c.want == "") || got != c.want {
			t.Errorf("Check(%q) = (%q, %v), want %q", c.in, got, ok, c.want)
		}
	}
	si := SelfInstructHeuristics()
	if r, ok := si.Check("Write a music review of this album."); !ok {
		t.Errorf("Self-Instruct's blacklist has no 'music', got %q", r)
	}
	if r, _ := si.Check("Describe the image below in detail."); r != ReasonBlacklist {
		t.Errorf("Self-Instruct's blacklist has 'image', got %q", r)
	}
}

// pythonHeuristics is Alpaca's post_process_gpt3_response filter chain,
// run by CPython as the oracle for the Go port.
const pythonHeuristics = `
import json, re, string, sys
bl = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
      "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]
def find(w, s):
    return re.compile(r"\b({0})\b".format(w), flags=re.IGNORECASE).search(s)
def reason(inst):
    if len(inst.split()) <= 3: return "too_short"
    if len(inst.split()) > 150: return "too_long"
    if any(find(w, inst) for w in bl): return "blacklist"
    if inst.startswith("Write a program"): return "write_a_program"
    if inst[0] in string.punctuation: return "starts_with_punctuation"
    if not inst[0].isascii(): return "starts_non_ascii"
    return ""
print(json.dumps([reason(s) for s in json.load(sys.stdin)]))
`

// TestHeuristicsAgainstPython compares with CPython on the table and on
// random strings mixing the blacklist, Unicode letters, marks, spaces and
// punctuation. It skips where python3 is not installed.
func TestHeuristicsAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; the table test covers the same rules")
	}
	var inputs []string
	for _, c := range heuristicCases {
		inputs = append(inputs, c.in)
	}
	pieces := []string{"image", "Images", "FİLE", "fıle", "ſ", "go to", "go\tto", "Go To", "draw", "drawing",
		"_", "-", " ", "\u00a0", "\x1c", "\u200b", "é", "e\u0301", "ß", "İ", "ı", "K", "日本", "١٢", "Ⅻ",
		"Write a program", "write", "a", "the", "map", "maps", "mapping", "!", "\"", "(", ".", "?", "¿", "x", "music", "k"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			if rng.IntN(2) == 0 {
				b.WriteByte(' ')
			}
		}
		inputs = append(inputs, b.String())
	}
	in, _ := json.Marshal(inputs)
	cmd := exec.Command(py, "-c", pythonHeuristics)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	o := AlpacaHeuristics()
	bad := 0
	for i, s := range inputs {
		got, _ := o.Check(s)
		if string(got) != want[i] {
			t.Errorf("Check(%q) = %q, Python %q", s, got, want[i])
			if bad++; bad > 20 {
				t.FailNow()
			}
		}
	}
}

func FuzzHeuristics(f *testing.F) {
	for _, c := range heuristicCases {
		f.Add(c.in)
	}
	o := AlpacaHeuristics()
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := o.Check(s)
		if ok != (r == "") {
			t.Fatalf("Check(%q) = (%q, %v)", s, r, ok)
		}
		if ok && PythonWordCount(s) <= 3 {
			t.Fatalf("Check(%q) passed with %d words", s, PythonWordCount(s))
		}
	})
}

// pythonCharClasses prints, over every code point CPython's Unicode tables
// assign, those that are \w, those that are \s (the same set as
// str.isspace() and str.split()), and for each ASCII letter those that
// re.IGNORECASE matches to it.
const pythonCharClasses = `
import json, re, unicodedata
cps = [c for c in range(0x110000) if not 0xd800 <= c < 0xe000 and unicodedata.category(chr(c)) != "Cn"]
text = "".join(map(chr, cps))
found = lambda pattern, flags=0: [ord(m) for m in re.findall(pattern, text, flags)]
letters = {l: found(l, re.IGNORECASE) for l in "abcdefghijklmnopqrstuvwxyz"}
print(json.dumps({"assigned": cps, "word": found(r"\w"), "space": found(r"\s"), "letters": letters}))
`

// TestCharClassesAgainstPython checks the word-character, whitespace and
// case-folding rules behind the heuristics against CPython on every code
// point both Unicode versions assign; it skips without python3.
func TestCharClassesAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	out, err := exec.Command(py, "-c", pythonCharClasses).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var classes struct {
		Assigned, Word, Space []rune
		Letters               map[string][]rune
	}
	if err := json.Unmarshal(out, &classes); err != nil {
		t.Fatal(err)
	}
	set := func(rs []rune) map[rune]bool {
		m := make(map[rune]bool, len(rs))
		for _, r := range rs {
			m[r] = true
		}
		return m
	}
	word, space := set(classes.Word), set(classes.Space)
	for _, r := range classes.Assigned {
		if isPythonWordRune(r) != word[r] {
			t.Errorf("%U: word rune %v, Python \\w %v", r, isPythonWordRune(r), word[r])
		}
		if pythonIsSpace(r) != space[r] {
			t.Errorf("%U: space %v, Python isspace %v", r, pythonIsSpace(r), space[r])
		}
	}
	// Each code point matches at most one ASCII letter.
	pyLetter := map[rune]rune{}
	for letter, matching := range classes.Letters {
		for _, r := range matching {
			pyLetter[r] = rune(letter[0])
		}
	}
	for _, r := range classes.Assigned {
		var got rune
		if f := foldRune(r); 'a' <= f && f <= 'z' {
			got = f
		}
		if got != pyLetter[r] {
			t.Errorf("%U: folds to letter %q, Python re.IGNORECASE matches it to %q", r, got, pyLetter[r])
		}
	}
}
