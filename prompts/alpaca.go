package prompts

import (
	_ "embed"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AlpacaTasksPerPrompt is how many tasks the Alpaca prompt asks for ("List of
// 20 tasks:"). The stop strings end generation where that item would start,
// so a response yields at most items numPromptInstructions+1 .. 19.
const AlpacaTasksPerPrompt = 20

// DefaultSeedsPerPrompt is how many seed tasks Alpaca shows the teacher as
// examples in each prompt.
const DefaultSeedsPerPrompt = 3

// NoInputMarker is what the prompt writes, and the teacher is asked to write,
// when a task has no input.
const NoInputMarker = "<noinput>"

//go:embed templates/alpaca_header.txt
var alpacaHeaderTemplate string

// DefaultAlpacaHeader is our own wording of the Alpaca generation prompt's
// header: the requirements for 20 diverse tasks, ending with "List of 20
// tasks:". Like Alpaca's prompt.txt it has no trailing newline, so
// RenderAlpacaPrompt lays out both the same way.
func DefaultAlpacaHeader() string {
	return strings.TrimRight(alpacaHeaderTemplate, "\r\n")
}

// LoadPromptHeader reads a prompt header for --prompt-file. The text is kept
// byte for byte, so Alpaca's own prompt.txt renders exactly as Alpaca did.
func LoadPromptHeader(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read prompt header: %w", err)
	}
	if !utf8.Valid(data) {
		off := firstInvalidUTF8(data)
		return "", fmt.Errorf("%s:%d: invalid UTF-8 at byte offset %d; the prompt header must be UTF-8", path, lineAt(data, off), off)
	}
	if strings.TrimSpace(string(data)) == "" {
		return "", fmt.Errorf("%s: the prompt header is empty", path)
	}
	return string(data), nil
}

// RenderAlpacaPrompt builds one generation prompt the way Alpaca's
// encode_prompt does: the header, a newline, then each seed as a ###-separated
// numbered item (instruction whitespace collapsed, trailing colons removed,
// <noinput> for an empty input), then "###" and the open "{n+1}.
// Instruction:" the teacher continues from. A seed without instances is shown
// with an empty input and output.
func RenderAlpacaPrompt(header string, seeds []SeedTask) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n")
	for i, seed := range seeds {
		var example Instance
		if len(seed.Instances) > 0 {
			example = seed.Instances[0]
		}
		input := example.Input
		if input == "" {
			input = NoInputMarker
		}
		num := strconv.Itoa(i + 1)
		b.WriteString("###\n")
		b.WriteString(num + ". Instruction: " + normalizePromptInstruction(seed.Instruction) + "\n")
		b.WriteString(num + ". Input:\n" + input + "\n")
		b.WriteString(num + ". Output:\n" + example.Output + "\n")
	}
	b.WriteString("###\n")
	b.WriteString(strconv.Itoa(len(seeds)+1) + ". Instruction:")
	return b.String()
}

// AlpacaStop returns the stop strings that end a response where item 20
// would begin. Alpaca stops on "20." anywhere, which also cuts an item in
// the middle of "in 2020." or "$20."; these only match the start of item 20,
// with or without the ### separator before it.
func AlpacaStop() []string {
	n := strconv.Itoa(AlpacaTasksPerPrompt)
	return []string{
		"###\n" + n + ".",
		"\n" + n + ". Instruction",
		"\n" + n + ".Instruction",
	}
}

// normalizePromptInstruction mirrors Python's
// re.sub(r"\s+", " ", s).strip().rstrip(":") on a str.
func normalizePromptInstruction(s string) string {
	var b strings.Builder
	inSpace := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if isPySpace(r) {
			if !inSpace {
				b.WriteByte(' ')
			}
			inSpace = true
		} else {
			inSpace = false
			// Copy the bytes rather than r, so invalid UTF-8 passes through unchanged.
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return strings.TrimRight(pyStrip(b.String()), ":")
}

// isPySpace reports whether Python's str.isspace (and the re module's \s on
// str) treats r as whitespace: Unicode White_Space plus the four ASCII
// information separators U+001C..U+001F, which Go does not count.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's str.strip() with no arguments.
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}
