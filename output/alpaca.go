// Package output writes datasets in the formats fine-tuning tools read.
package output

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Example is one Alpaca-format training record. Field order is the JSON key
// order Alpaca's alpaca_data.json uses.
type Example struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// Similar is one entry of Alpaca's most_similar_instructions.
type Similar struct {
	Instruction string
	Score       float64
}

// Record is an Example with the optional similarity fields Alpaca's
// generator writes into regen.json.
type Record struct {
	Example
	// MostSimilar is ordered most similar first; nil omits both fields.
	MostSimilar   []Similar
	AvgSimilarity float64
}

// WriteAlpacaJSON writes records exactly as Python's
// json.dump(records, f, indent=4) does (Alpaca's jdump): 4-space indent,
// ASCII-only with \uXXXX escapes, keys in Alpaca's order.
func WriteAlpacaJSON(w io.Writer, records []Record) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	if len(records) == 0 {
		bw.WriteString("[]")
		return bw.Flush()
	}
	bw.WriteString("[\n")
	for i, r := range records {
		bw.WriteString("    {\n")
		writeField(bw, 8, "instruction", r.Instruction, true)
		writeField(bw, 8, "input", r.Input, true)
		writeField(bw, 8, "output", r.Output, r.MostSimilar != nil)
		if r.MostSimilar != nil {
			bw.WriteString(`        "most_similar_instructions": `)
			writeSimilar(bw, r.MostSimilar)
			bw.WriteString(",\n")
			bw.WriteString(`        "avg_similarity_score": `)
			bw.WriteString(PythonFloat(r.AvgSimilarity))
			bw.WriteString("\n")
		}
		bw.WriteString("    }")
		if i < len(records)-1 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
	}
	bw.WriteString("]")
	return bw.Flush()
}

func writeField(w *bufio.Writer, indent int, key, value string, more bool) {
	for range indent {
		w.WriteByte(' ')
	}
	writePythonString(w, key)
	w.WriteString(": ")
	writePythonString(w, value)
	if more {
		w.WriteString(",\n")
	} else {
		w.WriteString("\n")
	}
}

// writeSimilar writes a Python dict: duplicate keys collapse as they do
// when Alpaca builds the dict, the later score at the earlier position.
func writeSimilar(w *bufio.Writer, sims []Similar) {
	type entry struct {
		key   string
		score float64
	}
	var entries []entry
	pos := map[string]int{}
	for _, s := range sims {
		if i, ok := pos[s.Instruction]; ok {
			entries[i].score = s.Score
			continue
		}
		pos[s.Instruction] = len(entries)
		entries = append(entries, entry{s.Instruction, s.Score})
	}
	if len(entries) == 0 {
		w.WriteString("{}")
		return
	}
	w.WriteString("{\n")
	for i, e := range entries {
		w.WriteString("            ")
		writePythonString(w, e.key)
		w.WriteString(": ")
		w.WriteString(PythonFloat(e.score))
		if i < len(entries)-1 {
			w.WriteString(",")
		}
		w.WriteString("\n")
	}
	w.WriteString("        }")
}

// PythonFloat formats f as Python's repr(float) does.
func PythonFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	// repr uses positional notation for 1e-4 <= |f| < 1e16.
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if abs := math.Abs(f); abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s = strconv.FormatFloat(f, 'e', -1, 64)
	}
	mant, exp, isExp := strings.Cut(s, "e")
	if !isExp {
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	// Python writes exponents with at least two digits: 1e-05.
	sign := "+"
	if exp[0] == '-' || exp[0] == '+' {
		sign, exp = exp[:1], exp[1:]
	}
	if len(exp) < 2 {
		exp = "0" + exp
	}
	return mant + "e" + sign + exp
}

const hexDigits = "0123456789abcdef"

// writePythonString escapes like json.dumps with ensure_ascii=True.
// Invalid UTF-8 becomes U+FFFD, as Python would have refused to load it.
func writePythonString(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			w.WriteString(`\"`)
		case '\\':
			w.WriteString(`\\`)
		case '\n':
			w.WriteString(`\n`)
		case '\r':
			w.WriteString(`\r`)
		case '\t':
			w.WriteString(`\t`)
		case '\b':
			w.WriteString(`\b`)
		case '\f':
			w.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (r >= 0x7f && r < 0x10000):
				writeU(w, uint16(r))
			case r >= 0x10000:
				r -= 0x10000
				writeU(w, uint16(0xd800+(r>>10)))
				writeU(w, uint16(0xdc00+(r&0x3ff)))
			default:
				w.WriteByte(byte(r))
			}
		}
	}
	w.WriteByte('"')
}

func writeU(w *bufio.Writer, v uint16) {
	w.WriteString(`\u`)
	w.WriteByte(hexDigits[v>>12&0xf])
	w.WriteByte(hexDigits[v>>8&0xf])
	w.WriteByte(hexDigits[v>>4&0xf])
	w.WriteByte(hexDigits[v&0xf])
}

// WriteFileAtomic writes a file so that readers see either the old content
// or the new, never a mix: a temp file in the same directory, fsynced, then
// renamed over the target, then the directory fsynced.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this is a no-op
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir makes a rename or file creation in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// WriteAlpacaFile writes records to path atomically.
func WriteAlpacaFile(path string, records []Record) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteAlpacaJSON(w, records) })
}
