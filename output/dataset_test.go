package output

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sharedReference(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "reference", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (needs ../shared beside the repository): %v", p, err)
	}
	return p
}

// TestDatasetRoundTripPythonBytes reads a file Python's json.dump(indent=4)
// wrote and writes it back byte for byte.
func TestDatasetRoundTripPythonBytes(t *testing.T) {
	path := sharedReference(t, "alpaca_data_sample_2k.json")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ReadDataset(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Shape != ShapeJSONRecords || len(d.Items) != 2000 {
		t.Fatalf("shape %v, %d items", d.Shape, len(d.Items))
	}
	var buf bytes.Buffer
	if err := WriteDataset(&buf, d.Shape, d.Items); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		i := 0
		for i < min(buf.Len(), len(orig)) && buf.Bytes()[i] == orig[i] {
			i++
		}
		t.Fatalf("differs from the Python-written file at byte %d: %q vs %q", i, buf.Bytes()[i:min(i+40, buf.Len())], orig[i:min(i+40, len(orig))])
	}
	if s, err := d.Text(0, "instruction"); err != nil || s == "" {
		t.Fatalf("Text: %q, %v", s, err)
	}
}

// TestDatasetReindentsOtherLayouts reads Code Alpaca's 6-space file and
// writes the same values in Python's 4-space layout.
func TestDatasetReindentsOtherLayouts(t *testing.T) {
	path := sharedReference(t, "code_alpaca_2k.json")
	d, err := ReadDataset(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteDataset(&buf, d.Shape, d.Items); err != nil {
		t.Fatal(err)
	}
	var a, b any
	orig, _ := os.ReadFile(path)
	json.Unmarshal(orig, &a)
	if err := json.Unmarshal(buf.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("values changed")
	}
	if !strings.HasPrefix(buf.String(), "[\n    {\n        \"instruction\": ") {
		t.Fatalf("not Python's layout: %q", buf.String()[:40])
	}
}

func TestDatasetShapesAndUnknownFields(t *testing.T) {
	jsonl := "{\"instruction\": \"a\", \"extra\": {\"k\": [1, 2.50, null]}, \"n\": 1e3}\n\n{\"instruction\":\"b\u00e9\"}\r\n"
	d, err := ParseDataset("in.jsonl", []byte(jsonl))
	if err != nil {
		t.Fatal(err)
	}
	if d.Shape != ShapeJSONL || len(d.Items) != 2 || d.Items[1].Line != 3 {
		t.Fatalf("%v %+v", d.Shape, d.Items)
	}
	var buf bytes.Buffer
	WriteDataset(&buf, ShapeJSONL, d.Items)
	if buf.String() != "{\"instruction\": \"a\", \"extra\": {\"k\": [1, 2.50, null]}, \"n\": 1e3}\n{\"instruction\":\"b\u00e9\"}\n" {
		t.Fatalf("JSONL not preserved: %q", buf.String())
	}
	buf.Reset()
	WriteDataset(&buf, ShapeJSONRecords, d.Items[:1])
	want := "[\n    {\n        \"instruction\": \"a\",\n        \"extra\": {\n            \"k\": [\n                1,\n                2.50,\n                null\n            ]\n        },\n        \"n\": 1e3\n    }\n]"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}

	strs, err := ParseDataset("s.json", []byte(`["one", "tw\u00f6", "{}"]`))
	if err != nil || strs.Shape != ShapeJSONStrings {
		t.Fatal(err, strs.Shape)
	}
	texts, _ := strs.Texts("ignored")
	if !reflect.DeepEqual(texts, []string{"one", "twö", "{}"}) {
		t.Fatal(texts)
	}
	buf.Reset()
	WriteDataset(&buf, strs.Shape, strs.Items[1:2])
	if buf.String() != "[\n    \"tw\\u00f6\"\n]" {
		t.Fatalf("%q", buf.String())
	}
	buf.Reset()
	WriteDataset(&buf, ShapeJSONRecords, nil)
	if buf.String() != "[]" {
		t.Fatalf("%q", buf.String())
	}
	empty, err := ParseDataset("e.json", []byte(" [ ] "))
	if err != nil || len(empty.Items) != 0 {
		t.Fatal(err)
	}
	nested, _ := ParseDataset("n.json", []byte(`[{"a": {}, "b": []}]`))
	buf.Reset()
	WriteDataset(&buf, nested.Shape, nested.Items)
	if buf.String() != "[\n    {\n        \"a\": {},\n        \"b\": []\n    }\n]" {
		t.Fatalf("%q", buf.String())
	}
}

func TestDatasetErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ name, data, want string }{
		{"a.json", "", "a.json: empty file"},
		{"a.json", "[\n{\"instruction\": \"x\"},\n42\n]", "a.json:3: item 1: want an object or a string, got number"},
		{"a.json", "[\n\"x\",\n{\"instruction\": \"x\"}\n]", "a.json:3: item 1: a object in a JSON list of strings"},
		{"a.json", "[\n{\"instruction\": \"x\"},\n{\"instruction\": }\n]", "a.json:3:"},
		{"a.json", "[\n{\"instruction\": \"x\"}\n", "a.json:3: unexpected end of file"},
		{"a.json", "[{\"a\": 1}] [", "a.json:1: unexpected data after the JSON list"},
		{"b.jsonl", "{\"a\": 1}\n{\"a\": \n", "b.jsonl:2:"},
		{"b.jsonl", "{\"a\": 1}\n\n[1]\n", "b.jsonl:3: want a JSON object per line, got list"},
		{"c.json", "[\"ok\", \xff]", "c.json:1: invalid UTF-8"},
	}
	for _, c := range cases {
		_, err := ParseDataset(c.name, []byte(c.data))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ParseDataset(%q) error %v, want prefix %q", c.data, err, c.want)
		}
	}
	d, err := ParseDataset("r.json", []byte("[\n{\"instruction\": \"x\"},\n{\"input\": \"y\"},\n{\"instruction\": 3}\n]"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Text(1, "instruction"); err == nil || err.Error() != `r.json:3: item 1: no field "instruction"` {
		t.Errorf("missing field: %v", err)
	}
	if _, err := d.Text(2, "instruction"); err == nil || err.Error() != `r.json:4: item 2: field "instruction" is a number, want a string` {
		t.Errorf("non-string field: %v", err)
	}
}

func FuzzParseDataset(f *testing.F) {
	for _, s := range []string{
		`[{"instruction": "a", "input": "", "output": "b"}]`,
		`["x", "y"]`,
		"{\"instruction\": \"a\"}\n{\"instruction\": \"b\", \"z\": [1, {\"q\": null}]}\n",
		`[]`, `[`, `{`, `[1]`, `[{"a": "\ud800"}]`, "\ufeff[\"bom\"]",
		`[{"a": 3, "b": [1, "]", {"c": "}"}], "k\u0065y": "v", "a": "again", "t": true, "n": null}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDataset("fuzz", data)
		if err != nil {
			return
		}
		if d.Shape != ShapeJSONL {
			// The byte-scanning fast path and the decoder agree item by item.
			slow := &Dataset{Path: "fuzz"}
			if err := slow.parseListDecoder(bytes.TrimPrefix(data, []byte("\ufeff"))); err != nil {
				t.Fatalf("decoder path rejects what the fast path accepted: %v", err)
			}
			if len(slow.Items) != len(d.Items) {
				t.Fatalf("fast path %d items, decoder %d", len(d.Items), len(slow.Items))
			}
			for i := range d.Items {
				a, b := d.Items[i], slow.Items[i]
				if !bytes.Equal(a.Raw, b.Raw) || a.Line != b.Line || a.Index != b.Index {
					t.Fatalf("item %d: fast %q line %d, decoder %q line %d", i, a.Raw, a.Line, b.Raw, b.Line)
				}
			}
		}
		var buf bytes.Buffer
		if err := WriteDataset(&buf, d.Shape, d.Items); err != nil {
			t.Fatalf("write: %v", err)
		}
		d2, err := ParseDataset("again", buf.Bytes())
		if err != nil {
			t.Fatalf("re-read of our own output: %v\n%s", err, buf.Bytes())
		}
		if len(d2.Items) != len(d.Items) {
			t.Fatalf("%d items became %d", len(d.Items), len(d2.Items))
		}
		for i, it := range d.Items {
			if d.Shape != ShapeJSONStrings {
				// The byte scanner behind Text must agree with a full decode.
				var fields map[string]json.RawMessage
				if err := json.Unmarshal(it.Raw, &fields); err != nil {
					t.Fatalf("item %d: %v", i, err)
				}
				keys := []string{"instruction", "zz"}
				for k := range fields {
					keys = append(keys, k)
				}
				for _, k := range keys {
					got, gotErr := d.Text(i, k)
					var want string
					raw, ok := fields[k]
					wantErr := !ok || json.Unmarshal(raw, &want) != nil
					if (gotErr != nil) != wantErr || got != want {
						t.Fatalf("item %d key %q: Text = %q, %v; decode = %q, ok %v", i, k, got, gotErr, want, !wantErr)
					}
				}
			}
			var a, b any
			json.Unmarshal(d.Items[i].Raw, &a)
			json.Unmarshal(d2.Items[i].Raw, &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("item %d changed: %s vs %s", i, d.Items[i].Raw, d2.Items[i].Raw)
			}
		}
	})
}
