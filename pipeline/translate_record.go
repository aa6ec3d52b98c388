package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// objField is one key of a JSON object, with its value's raw JSON.
type objField struct {
	Key   string
	Value json.RawMessage
}

// parseObjectFields reads a JSON object keeping its keys in order, so a
// translated record keeps the layout (and any extra fields) of its source.
func parseObjectFields(raw []byte) ([]objField, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []objField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, objField{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("text after the object")
	}
	return out, nil
}

// encodeObjectFields writes fields as a compact JSON object, strings in
// UTF-8 without HTML escaping (the Python-layout writer re-escapes them).
func encodeObjectFields(fields []objField) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(f.Key))
		b.WriteByte(':')
		b.Write(f.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func jsonString(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return bytes.TrimRight(b.Bytes(), "\n")
}
