package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// DatasetShape is the layout of a dataset file.
type DatasetShape int

const (
	// ShapeJSONRecords is a JSON list of objects (alpaca_data.json).
	ShapeJSONRecords DatasetShape = iota
	// ShapeJSONL is one JSON object per line.
	ShapeJSONL
	// ShapeJSONStrings is a JSON list of strings.
	ShapeJSONStrings
)

func (s DatasetShape) String() string {
	switch s {
	case ShapeJSONRecords:
		return "JSON list of records"
	case ShapeJSONL:
		return "JSONL records"
	case ShapeJSONStrings:
		return "JSON list of strings"
	}
	return fmt.Sprintf("DatasetShape(%d)", int(s))
}

// Dataset is a generic dataset file: each item keeps its raw JSON, so
// fields this program does not know survive a read and write unchanged.
type Dataset struct {
	Path  string
	Shape DatasetShape
	Items []DatasetItem
}

// DatasetItem is one record or string of a Dataset.
type DatasetItem struct {
	Raw  json.RawMessage // the item's JSON exactly as read
	Line int             // 1-based line where the item starts
	// Index is the 0-based position in the file's list, or among the
	// non-blank lines of a JSONL file.
	Index int
}

// ReadDataset reads a JSON list of records, a JSON list of strings, or a
// JSONL file of records; errors name the file and the item's line.
func ReadDataset(path string) (*Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseDataset(path, data)
}

// ParseDataset is ReadDataset on data read from name.
func ParseDataset(name string, data []byte) (*Dataset, error) {
	d := &Dataset{Path: name}
	// A UTF-8 byte order mark (Windows editors) is not JSON; it holds no
	// newline, so line numbers stay right without it.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: empty file, want a JSON list or JSONL records", name)
	}
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		return nil, fmt.Errorf("%s:%d: invalid UTF-8", name, lineAt(data, off))
	}
	if trimmed[0] == '[' {
		return d, d.parseList(data)
	}
	return d, d.parseJSONL(data)
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

// firstNonSpace returns the offset of the first non-whitespace byte at or
// after off.
func firstNonSpace(data []byte, off int) int {
	for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\r' || data[off] == '\n') {
		off++
	}
	return off
}

func syntaxError(name string, data []byte, base int, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s:%d: %w", name, lineAt(data, base+int(se.Offset)), err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s:%d: unexpected end of file", name, lineAt(data, len(data)))
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (d *Dataset) parseList(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the '['
		return syntaxError(d.Path, data, 0, err)
	}
	for i := 0; dec.More(); i++ {
		start := firstNonSpace(data, int(dec.InputOffset()))
		if start < len(data) && data[start] == ',' {
			start = firstNonSpace(data, start+1)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return syntaxError(d.Path, data, 0, err)
		}
		line := lineAt(data, start)
		var shape DatasetShape
		switch raw[0] {
		case '{':
			shape = ShapeJSONRecords
		case '"':
			shape = ShapeJSONStrings
		default:
			return fmt.Errorf("%s:%d: item %d: want an object or a string, got %s", d.Path, line, i, kindOf(raw))
		}
		if i == 0 {
			d.Shape = shape
		} else if shape != d.Shape {
			return fmt.Errorf("%s:%d: item %d: a %s in a %s", d.Path, line, i, kindOf(raw), d.Shape)
		}
		d.Items = append(d.Items, DatasetItem{Raw: raw, Line: line, Index: i})
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return syntaxError(d.Path, data, 0, err)
	}
	if extra := firstNonSpace(data, int(dec.InputOffset())); extra < len(data) {
		return fmt.Errorf("%s:%d: unexpected data after the JSON list", d.Path, lineAt(data, extra))
	}
	return nil
}

func (d *Dataset) parseJSONL(data []byte) error {
	d.Shape = ShapeJSONL
	line := 0
	for rest := data; len(rest) > 0; {
		line++
		text, after, _ := bytes.Cut(rest, []byte{'\n'})
		rest = after
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		if !json.Valid(text) {
			var v any
			err := json.Unmarshal(text, &v)
			return fmt.Errorf("%s:%d: %w", d.Path, line, err)
		}
		if text[0] != '{' {
			return fmt.Errorf("%s:%d: want a JSON object per line, got %s", d.Path, line, kindOf(text))
		}
		d.Items = append(d.Items, DatasetItem{Raw: json.RawMessage(bytes.Clone(text)), Line: line, Index: len(d.Items)})
	}
	if len(d.Items) == 0 {
		return fmt.Errorf("%s: no JSON records, want a JSON list or one JSON object per line", d.Path)
	}
	return nil
}

func kindOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "list"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// Text returns item i's text: the string itself in a list of strings, or
// the string value of field in a record. A missing or non-string field is
// an error naming the file, line and field.
func (d *Dataset) Text(i int, field string) (string, error) {
	it := d.Items[i]
	if d.Shape == ShapeJSONStrings {
		var s string
		if err := json.Unmarshal(it.Raw, &s); err != nil {
			return "", fmt.Errorf("%s:%d: item %d: %w", d.Path, it.Line, it.Index, err)
		}
		return s, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(it.Raw, &fields); err != nil {
		return "", fmt.Errorf("%s:%d: item %d: %w", d.Path, it.Line, it.Index, err)
	}
	v, ok := fields[field]
	if !ok {
		return "", fmt.Errorf("%s:%d: item %d: no field %q", d.Path, it.Line, it.Index, field)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%s:%d: item %d: field %q is a %s, want a string", d.Path, it.Line, it.Index, field, kindOf(v))
	}
	return s, nil
}

// Texts returns Text(i, field) for every item.
func (d *Dataset) Texts(field string) ([]string, error) {
	out := make([]string, len(d.Items))
	for i := range d.Items {
		s, err := d.Text(i, field)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// WriteDataset writes items in the given shape: JSON lists as Python's
// json.dump(items, f, indent=4) writes them (4-space indent, \uXXXX
// escapes, no trailing newline, object keys in their original order,
// numbers as they were written), JSONL as each item's original line.
func WriteDataset(w io.Writer, shape DatasetShape, items []DatasetItem) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	if shape == ShapeJSONL {
		for _, it := range items {
			bw.Write(it.Raw)
			bw.WriteByte('\n')
		}
		return bw.Flush()
	}
	if len(items) == 0 {
		bw.WriteString("[]")
		return bw.Flush()
	}
	bw.WriteString("[\n")
	for i, it := range items {
		bw.WriteString("    ")
		if err := writePythonValue(bw, json.NewDecoder(bytes.NewReader(it.Raw)), 1); err != nil {
			return fmt.Errorf("item %d: %w", it.Index, err)
		}
		if i < len(items)-1 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	bw.WriteString("]")
	return bw.Flush()
}

// WriteDatasetFile writes items to path atomically.
func WriteDatasetFile(path string, shape DatasetShape, items []DatasetItem) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteDataset(w, shape, items) })
}

// writePythonValue re-encodes the next JSON value of dec the way Python's
// json.dump(indent=4) lays it out, at the given nesting depth.
func writePythonValue(w *bufio.Writer, dec *json.Decoder, depth int) error {
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	return writePythonToken(w, dec, tok, depth)
}

func writeIndent(w *bufio.Writer, depth int) {
	for range depth {
		w.WriteString("    ")
	}
}

func writePythonToken(w *bufio.Writer, dec *json.Decoder, tok json.Token, depth int) error {
	switch v := tok.(type) {
	case json.Delim:
		closing := byte(']')
		if v == '{' {
			closing = '}'
		}
		n := 0
		for dec.More() {
			if n > 0 {
				w.WriteByte(',')
			} else {
				w.WriteByte(byte(v))
			}
			w.WriteByte('\n')
			writeIndent(w, depth+1)
			if v == '{' {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				ks, _ := key.(string)
				writePythonString(w, ks)
				w.WriteString(": ")
			}
			next, err := dec.Token()
			if err != nil {
				return err
			}
			if err := writePythonToken(w, dec, next, depth+1); err != nil {
				return err
			}
			n++
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return err
		}
		if n == 0 {
			w.WriteByte(byte(v))
		} else {
			w.WriteByte('\n')
			writeIndent(w, depth)
		}
		w.WriteByte(closing)
	case string:
		writePythonString(w, v)
	case json.Number:
		w.WriteString(string(v))
	case bool:
		if v {
			w.WriteString("true")
		} else {
			w.WriteString("false")
		}
	case nil:
		w.WriteString("null")
	default:
		return fmt.Errorf("unexpected JSON token %v", tok)
	}
	return nil
}
