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

// ParseDataset is ReadDataset on data read from name. The items' Raw
// slices may share data's memory.
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

// parseList splits a JSON list into its items. A valid file is checked once
// with json.Valid and split by scanning bytes, three times faster than
// decoding item by item; an invalid one goes through the decoder, which
// knows where the error is.
func (d *Dataset) parseList(data []byte) error {
	if !json.Valid(data) {
		return d.parseListDecoder(data)
	}
	lineOff, line := 0, 1
	i := skipSpace(data, skipSpace(data, 0)+1) // past the '['
	for n := 0; data[i] != ']'; n++ {
		end, err := skipValue(data, i)
		if err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
		line += bytes.Count(data[lineOff:i], []byte{'\n'})
		lineOff = i
		if err := d.appendListItem(data[i:end:end], line, n); err != nil {
			return err
		}
		i = skipSpace(data, end)
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return nil
}

// appendListItem checks that a list item has the list's shape.
func (d *Dataset) appendListItem(raw json.RawMessage, line, i int) error {
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
	return nil
}

func (d *Dataset) parseListDecoder(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	// Lines are counted incrementally: counting from the start for every
	// item would be quadratic in the file size.
	lineOff, line := 0, 1
	lineOf := func(off int) int {
		line += bytes.Count(data[lineOff:off], []byte{'\n'})
		lineOff = off
		return line
	}
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
		if err := d.appendListItem(raw, lineOf(start), i); err != nil {
			return err
		}
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
	v, ok, err := topLevelField(it.Raw, field)
	if err != nil {
		return "", fmt.Errorf("%s:%d: item %d: %w", d.Path, it.Line, it.Index, err)
	}
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
		if err := writePythonValue(bw, it.Raw, 1); err != nil {
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

// writePythonValue re-encodes one validated JSON value the way Python's
// json.dump(indent=4) lays it out, at the given nesting depth. It works on
// the bytes: strings of plain printable ASCII are copied as they are (Python
// would write them identically), the others are decoded and re-escaped.
func writePythonValue(w *bufio.Writer, raw []byte, depth int) error {
	i := skipSpace(raw, 0)
	end, err := writePythonAt(w, raw, i, depth)
	if err != nil {
		return err
	}
	if skipSpace(raw, end) != len(raw) {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func writeIndent(w *bufio.Writer, depth int) {
	for range depth {
		w.WriteString("    ")
	}
}

// writePythonAt writes the value at raw[i:] and returns where it ends.
func writePythonAt(w *bufio.Writer, raw []byte, i, depth int) (int, error) {
	if i >= len(raw) {
		return 0, errors.New("unexpected end of JSON")
	}
	switch c := raw[i]; c {
	case '{', '[':
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		i = skipSpace(raw, i+1)
		if i < len(raw) && raw[i] == closing {
			w.WriteByte(c)
			w.WriteByte(closing)
			return i + 1, nil
		}
		w.WriteByte(c)
		for n := 0; ; n++ {
			if n > 0 {
				w.WriteByte(',')
			}
			w.WriteByte('\n')
			writeIndent(w, depth+1)
			var err error
			if c == '{' {
				if i, err = writePythonAt(w, raw, i, depth+1); err != nil { // the key
					return 0, err
				}
				i = skipSpace(raw, i)
				if i >= len(raw) || raw[i] != ':' {
					return 0, errors.New("malformed JSON object")
				}
				w.WriteString(": ")
				i = skipSpace(raw, i+1)
			}
			if i, err = writePythonAt(w, raw, i, depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(raw, i)
			if i < len(raw) && raw[i] == ',' {
				i = skipSpace(raw, i+1)
				continue
			}
			if i < len(raw) && raw[i] == closing {
				w.WriteByte('\n')
				writeIndent(w, depth)
				w.WriteByte(closing)
				return i + 1, nil
			}
			return 0, errors.New("malformed JSON")
		}
	case '"':
		end, err := skipString(raw, i)
		if err != nil {
			return 0, err
		}
		if plainASCII(raw[i+1 : end-1]) {
			w.Write(raw[i:end])
			return end, nil
		}
		var s string
		if err := json.Unmarshal(raw[i:end], &s); err != nil {
			return 0, err
		}
		writePythonString(w, s)
		return end, nil
	}
	end, err := skipValue(raw, i)
	if err != nil {
		return 0, err
	}
	w.Write(raw[i:end]) // numbers, true, false, null as written
	return end, nil
}

// plainASCII reports string content that Python's json.dumps writes back
// unchanged: printable ASCII without escapes.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}

// topLevelField returns the raw value of key in a JSON object, the last one
// if the key repeats (as encoding/json and Python's json both do). It scans
// the bytes instead of decoding the whole record, which for large files
// was the slowest part of a dedupe run.
func topLevelField(obj []byte, key string) (json.RawMessage, bool, error) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false, fmt.Errorf("want a JSON object, got %s", kindOf(obj))
	}
	var found json.RawMessage
	ok := false
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil, false, nil
	}
	for i < len(obj) {
		kEnd, err := skipValue(obj, i)
		if err != nil || obj[i] != '"' {
			return nil, false, errors.New("malformed JSON object")
		}
		rawKey := obj[i:kEnd]
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false, errors.New("malformed JSON object")
		}
		vStart := skipSpace(obj, i+1)
		vEnd, err := skipValue(obj, vStart)
		if err != nil {
			return nil, false, err
		}
		if keyEquals(rawKey, key) {
			found, ok = json.RawMessage(obj[vStart:vEnd]), true
		}
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
			continue
		}
		if i < len(obj) && obj[i] == '}' {
			return found, ok, nil
		}
		return nil, false, errors.New("malformed JSON object")
	}
	return nil, false, errors.New("malformed JSON object")
}

func keyEquals(rawKey []byte, key string) bool {
	if bytes.IndexByte(rawKey, '\\') < 0 {
		return string(rawKey[1:len(rawKey)-1]) == key
	}
	var k string
	return json.Unmarshal(rawKey, &k) == nil && k == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i], which the
// decoder has already validated.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("unexpected end of JSON")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				j, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errors.New("unexpected end of JSON")
	}
	for i < len(b) && bytes.IndexByte([]byte(" \t\r\n,:}]"), b[i]) < 0 {
		i++
	}
	return i, nil
}

func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errors.New("unterminated string")
}
