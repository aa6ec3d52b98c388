package openaitest

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
)

// TranslateFaults are per-response probabilities of the defects a real
// model's translations have.
type TranslateFaults struct {
	BreakSpan    float64 // a ⟦n⟧ placeholder dropped, repeated or altered
	InvalidJSON  float64 // the object cut off in the middle
	ExtraField   float64 // a field added that was not asked for
	MissingField float64 // a field left out
	Fence        float64 // the object wrapped in a ```json fence (valid)
}

var asciiWordRE = regexp.MustCompile(`[A-Za-z]+`)

// TranslateText is the responder's deterministic "translation": every run of
// ASCII letters is ROT13-ed and marked with a trailing "ã". It touches
// letters only, so digits, punctuation and ⟦n⟧ placeholders pass through,
// while code or a URL sent unprotected comes back visibly changed.
// UntranslateText inverts it exactly.
func TranslateText(s string) string {
	return asciiWordRE.ReplaceAllStringFunc(s, func(w string) string { return rot13(w) + "ã" })
}

var translatedWordRE = regexp.MustCompile(`[A-Za-z]+ã`)

// UntranslateText inverts TranslateText.
func UntranslateText(s string) string {
	return translatedWordRE.ReplaceAllStringFunc(s, func(w string) string { return rot13(strings.TrimSuffix(w, "ã")) })
}

func rot13(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

var anyPlaceholderRE = regexp.MustCompile(`⟦\d+⟧`)

// TranslateResponder answers translation requests: the user message is a
// JSON object whose string values it translates with TranslateText, keys
// and order kept, injecting faults at the given rates. A user message that
// is not a JSON object gets a polite refusal in prose, as a chat model gives.
func TranslateResponder(f TranslateFaults, seed uint64) Responder {
	rng := rand.New(rand.NewPCG(seed, 0x7a45))
	return func(c Call) Reply {
		keys, values, ok := parseObject(c.Prompt)
		if !ok {
			return Reply{Text: "I'm sorry, I can only translate a JSON object."}
		}
		for i := range values {
			values[i] = TranslateText(values[i])
		}
		if rng.Float64() < f.BreakSpan {
			for i, v := range values {
				loc := anyPlaceholderRE.FindStringIndex(v)
				if loc == nil {
					continue
				}
				ph := v[loc[0]:loc[1]]
				switch rng.IntN(3) {
				case 0:
					values[i] = v[:loc[0]] + v[loc[1]:]
				case 1:
					values[i] = v + " " + ph
				default:
					values[i] = v[:loc[0]] + "[" + strings.Trim(ph, "⟦⟧") + "]" + v[loc[1]:]
				}
				break
			}
		}
		if rng.Float64() < f.MissingField && len(keys) > 0 {
			keys, values = keys[:len(keys)-1], values[:len(values)-1]
		}
		if rng.Float64() < f.ExtraField {
			keys, values = append(keys, "note"), append(values, "Genafyngrq ol gur zbqry.")
		}
		text := writeObject(keys, values)
		if rng.Float64() < f.InvalidJSON {
			text = text[:len(text)/2]
		}
		if rng.Float64() < f.Fence {
			text = "```json\n" + text + "\n```"
		}
		return Reply{Text: text}
	}
}

// parseObject reads a flat JSON object of strings, keeping key order.
func parseObject(s string) (keys, values []string, ok bool) {
	dec := json.NewDecoder(strings.NewReader(strings.TrimSpace(s)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		k, _ := t.(string)
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		keys, values = append(keys, k), append(values, v)
	}
	return keys, values, true
}

func writeObject(keys, values []string) string {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(k)
		b.Truncate(b.Len() - 1)
		b.WriteString(": ")
		enc.Encode(values[i])
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.String()
}
