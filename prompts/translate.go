package prompts

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// TranslateFields are the fields of an Alpaca example that translate
// sends, in the order they are sent.
var TranslateFields = []string{"instruction", "input", "output"}

//go:embed templates/translate_system.txt
var translateSystemText string

var translateSystemTemplate = template.Must(template.New("translate_system").Parse(translateSystemText))

// Placeholder brackets: characters that almost never occur in instruction
// data and that tokenizers keep whole, so a model copies ⟦3⟧ verbatim far
// more reliably than it copies a URL or a block of code.
const (
	phOpen  = "⟦"
	phClose = "⟧"
)

// Span is one piece of text that must come back byte-identical, and the
// placeholder it travels as.
type Span struct {
	ID   int
	Kind string // "code_block", "inline_code", "url", "email", "placeholder", "number_unit", "keep", "bracket"
	Text string
}

// Placeholder is how span id is written in the text sent to the teacher.
func Placeholder(id int) string { return phOpen + strconv.Itoa(id) + phClose }

type protectPattern struct {
	kind string
	re   *regexp.Regexp
}

// Protector finds the spans of a text that translation must not touch.
type Protector struct {
	patterns []protectPattern
}

// Built-in patterns, highest priority first: a match is taken only where no
// earlier pattern matched, so a URL inside a code block stays part of the
// block and a number inside a URL stays part of the URL.
var builtinPatterns = []protectPattern{
	// Brackets already in the data would be mistaken for our placeholders.
	{"bracket", regexp.MustCompile(`⟦[^⟦⟧]*⟧|[⟦⟧]`)},
	// Fenced code; an unterminated fence runs to the end of the text.
	{"code_block", regexp.MustCompile("(?s)```.*?(?:```|\\z)|~~~.*?(?:~~~|\\z)")},
	{"inline_code", regexp.MustCompile("``[^\n]+?``|`[^`\n]+`")},
	{"url", regexp.MustCompile(`(?i)\b(?:https?://|ftp://|www\.)[^\s<>"'` + "`" + `]*[^\s<>"'` + "`" + `.,;:!?)\]}]`)},
	{"email", regexp.MustCompile(`\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b`)},
	{"placeholder", regexp.MustCompile(`\{\{[^{}\n]*\}\}|\{[A-Za-z0-9_.\-]*\}`)},
	// Numbers with units or currency signs: "5 kg", "3.5GHz", "20%", "$25",
	// "-4 °C". Single-letter units must be written against the number
	// ("5m", "10x") so that "5 a" or "page 5 m..." are left alone.
	{"number_unit", regexp.MustCompile(
		`[$€£¥₹]\s?\d+(?:[.,]\d+)*(?:\s?(?:k|K|M|m|bn|B)\b)?` +
			`|\b\d+(?:[.,]\d+)*(?:` +
			`\s?(?:%|‰|°\s?[CFK]?)` +
			`|\s?(?:km/h|m/s|kWh|kHz|MHz|GHz|THz|Hz|mAh|kB|KB|MB|GB|TB|PB|Kb|Mb|Gb|kbps|Mbps|Gbps|km|cm|mm|µm|μm|nm|mi|ft|yd|kg|mg|µg|lbs|lb|oz|ml|mL|cl|dl|gal|ms|µs|ns|sec|min|hrs|hr|kcal|cal|kJ|kW|MW|GW|mA|mV|kV|Pa|kPa|hPa|MPa|atm|psi|mol|ppm|px|pt|dpi|fps|rpm|USD|EUR|GBP|JPY|CNY)\b` +
			`|(?:g|m|s|h|K|k|M|B|L|x|W|V|J)\b)`)},
}

// NewProtector returns a Protector with the built-in patterns and the
// user's --keep regular expressions, which take priority over all but the
// bracket and code patterns.
func NewProtector(keep []string) (*Protector, error) {
	p := &Protector{}
	p.patterns = append(p.patterns, builtinPatterns[:3]...)
	for _, k := range keep {
		re, err := regexp.Compile(k)
		if err != nil {
			return nil, fmt.Errorf("--keep %q: %w", k, err)
		}
		p.patterns = append(p.patterns, protectPattern{"keep", re})
	}
	p.patterns = append(p.patterns, builtinPatterns[3:]...)
	return p, nil
}

// Mask replaces every protected span of text with a placeholder numbered
// from firstID on, in order of appearance, and returns the spans.
func (p *Protector) Mask(text string, firstID int) (string, []Span) {
	type match struct {
		start, end int
		kind       string
	}
	var taken []match
	overlaps := func(s, e int) bool {
		for _, m := range taken {
			if s < m.end && m.start < e {
				return true
			}
		}
		return false
	}
	for _, pat := range p.patterns {
		for _, loc := range pat.re.FindAllStringIndex(text, -1) {
			if loc[1] > loc[0] && !overlaps(loc[0], loc[1]) {
				taken = append(taken, match{loc[0], loc[1], pat.kind})
			}
		}
	}
	if len(taken) == 0 {
		return text, nil
	}
	sort.Slice(taken, func(i, j int) bool { return taken[i].start < taken[j].start })
	var b strings.Builder
	spans := make([]Span, len(taken))
	prev := 0
	for i, m := range taken {
		b.WriteString(text[prev:m.start])
		spans[i] = Span{ID: firstID + i, Kind: m.kind, Text: text[m.start:m.end]}
		b.WriteString(Placeholder(firstID + i))
		prev = m.end
	}
	b.WriteString(text[prev:])
	return b.String(), spans
}

// Validation failure reasons, the keys of translation_report.json's counts.
const (
	ReasonInvalidJSON      = "invalid_json"
	ReasonNotObject        = "not_an_object"
	ReasonAddedField       = "added_field"
	ReasonMissingField     = "missing_field"
	ReasonDuplicateField   = "duplicate_field"
	ReasonNotString        = "not_a_string"
	ReasonEmptyTranslation = "empty_translation"
	ReasonSpanBroken       = "span_broken"
	ReasonTruncated        = "truncated"
)

// TranslateError is a translation the teacher returned that cannot be used.
type TranslateError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *TranslateError) Error() string { return e.Reason + ": " + e.Detail }

func invalid(reason, format string, args ...any) error {
	return &TranslateError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of a *TranslateError, or "" for other errors.
func ReasonOf(err error) string {
	var te *TranslateError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

var placeholderRE = regexp.MustCompile(`⟦(\d{1,9})⟧`)

// Unmask puts the spans back into a translated text. Every span must come
// back exactly once, and no other placeholder or bracket may appear;
// otherwise the translation is rejected, since a lost or duplicated span
// means code or a URL was changed or dropped.
func Unmask(translated string, spans []Span) (string, error) {
	byID := make(map[int]string, len(spans))
	for _, s := range spans {
		byID[s.ID] = s.Text
	}
	seen := make(map[int]bool, len(spans))
	var b strings.Builder
	prev := 0
	for _, loc := range placeholderRE.FindAllStringSubmatchIndex(translated, -1) {
		id, err := strconv.Atoi(translated[loc[2]:loc[3]])
		if err != nil {
			return "", invalid(ReasonSpanBroken, "placeholder %q is not a number", translated[loc[0]:loc[1]])
		}
		text, ok := byID[id]
		if !ok {
			return "", invalid(ReasonSpanBroken, "unexpected placeholder %s", Placeholder(id))
		}
		if seen[id] {
			return "", invalid(ReasonSpanBroken, "placeholder %s appears twice", Placeholder(id))
		}
		seen[id] = true
		between := translated[prev:loc[0]]
		if strings.Contains(between, phOpen) || strings.Contains(between, phClose) {
			return "", invalid(ReasonSpanBroken, "a damaged placeholder near %q", clip(between, 40))
		}
		b.WriteString(between)
		b.WriteString(text)
		prev = loc[1]
	}
	rest := translated[prev:]
	if strings.Contains(rest, phOpen) || strings.Contains(rest, phClose) {
		return "", invalid(ReasonSpanBroken, "a damaged placeholder near %q", clip(rest, 40))
	}
	b.WriteString(rest)
	for _, s := range spans {
		if !seen[s.ID] {
			return "", invalid(ReasonSpanBroken, "placeholder %s (%s %q) is missing", Placeholder(s.ID), s.Kind, clip(s.Text, 40))
		}
	}
	return b.String(), nil
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// NeedsTranslation reports whether a masked text has anything to translate:
// a text that is only placeholders, digits and punctuation is kept as is
// and costs no request.
func NeedsTranslation(masked string) bool {
	for _, r := range placeholderRE.ReplaceAllString(masked, "") {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}

// GlossaryEntry is one fixed term translation.
type GlossaryEntry struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// Glossary is a list of fixed term translations, longest source first so
// that "machine learning" is found before "learning".
type Glossary []GlossaryEntry

// LoadGlossary reads --glossary: a JSON object {"source term": "target
// term"} or a text file of "source<TAB>target" lines (blank lines and lines
// starting with # are skipped). Errors name the file and line.
func LoadGlossary(path string) (Glossary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--glossary: %w", err)
	}
	return ParseGlossary(path, data)
}

// ParseGlossary is LoadGlossary on data read from name.
func ParseGlossary(name string, data []byte) (Glossary, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%s:%d: invalid UTF-8", name, lineAt(data, firstInvalidUTF8(data)))
	}
	var g Glossary
	seen := map[string]int{}
	add := func(line int, src, dst string) error {
		src, dst = strings.TrimSpace(src), strings.TrimSpace(dst)
		if src == "" || dst == "" {
			return fmt.Errorf("%s:%d: a glossary entry needs a source term and a target term", name, line)
		}
		key := strings.ToLower(src)
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("%s:%d: term %q is already defined on line %d", name, line, src, prev)
		}
		seen[key] = line
		g = append(g, GlossaryEntry{Source: src, Target: dst})
		return nil
	}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff")))
	if len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(data))
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for dec.More() {
			off := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, lineAt(data, int(off)), err)
			}
			key, _ := tok.(string)
			line := lineAt(data, int(dec.InputOffset()))
			var val any
			if err := dec.Decode(&val); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, line, err)
			}
			s, ok := val.(string)
			if !ok {
				return nil, fmt.Errorf("%s:%d: the translation of %q must be a string", name, line, key)
			}
			if err := add(line, key, s); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lineAt(data, int(dec.InputOffset())), err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("%s:%d: text after the glossary object", name, lineAt(data, int(dec.InputOffset())))
		}
	} else {
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			src, dst, ok := strings.Cut(line, "\t")
			if !ok {
				return nil, fmt.Errorf("%s:%d: want \"source<TAB>target\" (or a JSON object file), got %q", name, i+1, clip(line, 60))
			}
			if err := add(i+1, src, dst); err != nil {
				return nil, err
			}
		}
	}
	if len(g) == 0 {
		return nil, fmt.Errorf("%s: the glossary is empty", name)
	}
	sort.SliceStable(g, func(i, j int) bool { return len(g[i].Source) > len(g[j].Source) })
	return g, nil
}

// Relevant returns the entries whose source term occurs (case-insensitively,
// as a whole word) in any of texts: only those are worth the prompt tokens.
func (g Glossary) Relevant(texts ...string) Glossary {
	var out Glossary
	for _, e := range g {
		for _, t := range texts {
			if containsWord(t, e.Source) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// Missing returns the source terms of entries whose target term does not
// occur in any of the translated texts.
func (g Glossary) Missing(translated ...string) []string {
	var out []string
	for _, e := range g {
		found := false
		for _, t := range translated {
			if strings.Contains(strings.ToLower(t), strings.ToLower(e.Target)) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, e.Source)
		}
	}
	return out
}

func containsWord(text, term string) bool {
	lt, lw := strings.ToLower(text), strings.ToLower(term)
	for i := 0; ; {
		j := strings.Index(lt[i:], lw)
		if j < 0 {
			return false
		}
		s, e := i+j, i+j+len(lw)
		before, _ := utf8.DecodeLastRuneInString(lt[:s])
		after, _ := utf8.DecodeRuneInString(lt[e:])
		if (s == 0 || !isWordRune(before)) && (e == len(lt) || !isWordRune(after)) {
			return true
		}
		i = s + 1
	}
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

var languageNames = map[string]string{
	"ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech", "da": "Danish",
	"de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian",
	"fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
	"id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian",
	"ms": "Malay", "nl": "Dutch", "no": "Norwegian", "nb": "Norwegian Bokmål", "pl": "Polish",
	"pt": "Portuguese", "pt-br": "Brazilian Portuguese", "pt-pt": "European Portuguese", "ro": "Romanian",
	"ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili",
	"ta": "Tamil", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese",
	"zh": "Chinese (Simplified)", "zh-cn": "Chinese (Simplified)", "zh-tw": "Chinese (Traditional)",
}

// LanguageName turns a language code ("pt", "pt-BR", "zh_TW") into the name
// the prompt uses; anything else ("Brazilian Portuguese") is taken as a name.
func LanguageName(code string) string {
	c := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "_", "-"))
	if n, ok := languageNames[c]; ok {
		return n
	}
	if base, _, ok := strings.Cut(c, "-"); ok {
		if n, ok := languageNames[base]; ok {
			return n + " (" + strings.TrimSpace(code) + ")"
		}
	}
	return strings.TrimSpace(code)
}

// TranslatePrompt is one translation request.
type TranslatePrompt struct {
	From, To string   // language names
	Keys     []string // the fields sent, in order
	Values   []string // their masked texts
	Glossary Glossary
	// Retry, when set, tells the teacher why its previous answer was
	// rejected: a retry that differs from the first try is more likely to
	// come back right from a model sampling at temperature 0.
	Retry string
}

// RenderTranslate returns the system message (the rules) and the user
// message (the JSON object to translate).
func RenderTranslate(p TranslatePrompt) (system, user string, err error) {
	if len(p.Keys) != len(p.Values) || len(p.Keys) == 0 {
		return "", "", fmt.Errorf("translate prompt: %d keys and %d values", len(p.Keys), len(p.Values))
	}
	var sb strings.Builder
	if err := translateSystemTemplate.Execute(&sb, p); err != nil {
		return "", "", fmt.Errorf("translate prompt: %w", err)
	}
	var ub bytes.Buffer
	ub.WriteString("{\n")
	for i, k := range p.Keys {
		ub.WriteString("  ")
		writeJSONString(&ub, k)
		ub.WriteString(": ")
		writeJSONString(&ub, p.Values[i])
		if i < len(p.Keys)-1 {
			ub.WriteByte(',')
		}
		ub.WriteByte('\n')
	}
	ub.WriteString("}")
	return strings.TrimRight(sb.String(), "\n"), ub.String(), nil
}

// writeJSONString writes s as a JSON string without HTML escaping, so "<b>"
// and "&" reach the model as the data has them.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}

// ParseTranslateResponse reads the teacher's structured answer: one JSON
// object (optionally inside a ```json fence, which chat models add) whose
// keys are exactly keys, each a string. A key of emptyOK (fields that were
// empty and so not sent) is tolerated with an empty value, since models that
// know the Alpaca shape echo "input": "" back; it is not returned. Anything
// else is a *TranslateError.
func ParseTranslateResponse(text string, keys []string, emptyOK ...string) (map[string]string, error) {
	s := strings.TrimSpace(text)
	if strings.HasPrefix(s, "```") {
		nl := strings.IndexByte(s, '\n')
		if nl >= 0 && strings.HasSuffix(s, "```") && len(s) >= nl+1+3 {
			s = strings.TrimSpace(s[nl+1 : len(s)-3])
		}
	}
	if s == "" {
		return nil, invalid(ReasonInvalidJSON, "empty response")
	}
	if s[0] != '{' {
		if s[0] == '[' || s[0] == '"' || (s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == 't' || s[0] == 'f' || s[0] == 'n' {
			if json.Valid([]byte(s)) {
				return nil, invalid(ReasonNotObject, "the response is JSON but not an object")
			}
		}
		return nil, invalid(ReasonInvalidJSON, "the response is not a JSON object: %q", clip(s, 60))
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	dec := json.NewDecoder(strings.NewReader(s))
	if _, err := dec.Token(); err != nil {
		return nil, invalid(ReasonInvalidJSON, "%v", err)
	}
	out := make(map[string]string, len(keys))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid(ReasonInvalidJSON, "%v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, invalid(ReasonInvalidJSON, "object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid(ReasonInvalidJSON, "value of %q: %v", key, err)
		}
		if !want[key] {
			var v string
			if slices.Contains(emptyOK, key) && json.Unmarshal(raw, &v) == nil && strings.TrimSpace(v) == "" {
				continue
			}
			return nil, invalid(ReasonAddedField, "field %q was not asked for", clip(key, 40))
		}
		if _, dup := out[key]; dup {
			return nil, invalid(ReasonDuplicateField, "field %q appears twice", key)
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, invalid(ReasonNotString, "field %q is not a string", key)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid(ReasonInvalidJSON, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid(ReasonInvalidJSON, "text after the JSON object")
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, invalid(ReasonMissingField, "field %q is missing", k)
		}
	}
	return out, nil
}
