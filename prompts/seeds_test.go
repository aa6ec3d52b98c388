package prompts

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// sharedReference is the read-only reference data beside the checkout.
func sharedReference(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join("..", "..", "shared", "reference", name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("reference data %s not available (expected ../shared beside the checkout): %v", path, err)
	}
	return path
}

func TestLoadSeedTasksAlpacaReference(t *testing.T) {
	path := sharedReference(t, "alpaca_seed_tasks.jsonl")
	tasks, err := LoadSeedTasks(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 175 {
		t.Fatalf("got %d tasks, want 175", len(tasks))
	}
	classification, withInput := 0, 0
	for i, task := range tasks {
		if task.ID != "seed_task_"+strconv.Itoa(i) {
			t.Errorf("task %d: id %q", i, task.ID)
		}
		if task.Name == "" || task.Instruction == "" || len(task.Instances) != 1 || task.Instances[0].Output == "" {
			t.Errorf("task %d incompletely loaded: %+v", i, task)
		}
		if task.IsClassification {
			classification++
		}
		if task.Instances[0].Input != "" {
			withInput++
		}
	}
	if classification != 26 {
		t.Errorf("%d classification tasks, want 26", classification)
	}
	if withInput != 125 {
		t.Errorf("%d tasks with input, want 125 (the reference README says 50 have none)", withInput)
	}
	if tasks[1].Name != "antonym_relation" || tasks[1].Instances[0].Input != "Night : Day :: Right : Left" {
		t.Errorf("task 1 = %+v", tasks[1])
	}
}

func TestLoadSeedTasksAlpacaJSONList(t *testing.T) {
	path := sharedReference(t, "alpaca_data_sample_2k.json")
	tasks, err := LoadSeedTasks(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2000 {
		t.Fatalf("got %d tasks, want 2000", len(tasks))
	}
	withInput := 0
	for i, task := range tasks {
		if len(task.Instances) != 1 {
			t.Fatalf("record %d: %d instances", i, len(task.Instances))
		}
		if task.Instances[0].Input != "" {
			withInput++
		}
	}
	if withInput != 753 {
		t.Errorf("%d records with input, want 753", withInput)
	}
	if tasks[0].ID != "seed_task_0" || tasks[1999].ID != "seed_task_1999" {
		t.Errorf("ids for records without one: %q .. %q", tasks[0].ID, tasks[1999].ID)
	}
}

func TestParseSeedTasksFormats(t *testing.T) {
	jsonl := "\xef\xbb\xbf" + `{"id": "a", "name": "n", "instruction": "Do the thing", "instances": [{"input": "x", "output": "y"}, {"output": "z"}], "is_classification": true}` + "\r\n\n" +
		`{"instruction": "Alpaca-shaped line", "input": "", "output": "ok"}`
	tasks, err := ParseSeedTasks(strings.NewReader(jsonl), "mixed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("got %d tasks", len(tasks))
	}
	first := tasks[0]
	if first.ID != "a" || first.Name != "n" || !first.IsClassification || len(first.Instances) != 2 ||
		first.Instances[0] != (Instance{"x", "y"}) || first.Instances[1] != (Instance{"", "z"}) {
		t.Errorf("first task = %+v", first)
	}
	if tasks[1].ID != "seed_task_1" || tasks[1].Instances[0] != (Instance{"", "ok"}) {
		t.Errorf("second task = %+v", tasks[1])
	}

	list := "  \n[\n  {\"instruction\": \"One\", \"input\": \"in\", \"output\": \"out\"},\n  {\"id\": \"x\", \"instruction\": \"Two\", \"instances\": [{\"input\": \"\", \"output\": \"o\"}]}\n]\n"
	tasks, err = ParseSeedTasks(strings.NewReader(list), "list.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 || tasks[0].Instances[0] != (Instance{"in", "out"}) || tasks[1].ID != "x" {
		t.Errorf("list tasks = %+v", tasks)
	}
}

func TestParseSeedTasksErrors(t *testing.T) {
	good := `{"id": "seed_task_0", "instruction": "Fine", "instances": [{"input": "", "output": "ok"}]}`
	cases := []struct {
		name, data string
		// every fragment must appear in the error text
		want []string
	}{
		{"empty file", "", []string{"bad.jsonl", "empty"}},
		{"blank file", " \n\t\n", []string{"bad.jsonl", "empty"}},
		{"broken json line", good + "\n{\"id\": \"b\", \"instruction\": \"x\",\n", []string{"bad.jsonl:2", "JSON"}},
		{"trailing garbage on line", good + " x\n", []string{"bad.jsonl:1", "invalid JSON"}},
		{"missing instruction", good + "\n" + `{"id": "b", "instances": [{"output": "o"}]}`, []string{"bad.jsonl:2", `"instruction"`, "missing"}},
		{"null instruction", `{"instruction": null, "instances": [{"output": "o"}]}`, []string{"bad.jsonl:1", `"instruction"`, "missing"}},
		{"empty instruction", `{"instruction": "  ", "instances": [{"output": "o"}]}`, []string{"bad.jsonl:1", `"instruction"`, "empty"}},
		{"instruction not a string", `{"instruction": 7, "instances": [{"output": "o"}]}`, []string{"bad.jsonl:1", `"instruction"`, "number"}},
		{"no instances key", `{"instruction": "Do it"}`, []string{"bad.jsonl:1", `"instances"`, "missing"}},
		{"empty instances", `{"instruction": "Do it", "instances": []}`, []string{"bad.jsonl:1", `"instances"`, "empty"}},
		{"instance without output", `{"instruction": "Do it", "instances": [{"input": "a"}]}`, []string{"bad.jsonl:1", `instances[0].output`, "missing"}},
		{"second instance empty output", `{"instruction": "Do it", "instances": [{"output": "a"}, {"output": " "}]}`, []string{"bad.jsonl:1", `instances[1].output`, "empty"}},
		{"output wrong type", `{"instruction": "Do it", "instances": [{"output": ["a"]}]}`, []string{"bad.jsonl:1", "output", "array"}},
		{"line not an object", good + "\n[1, 2]\n", []string{"bad.jsonl:2"}},
		{"line is a string", good + "\n\"text\"\n", []string{"bad.jsonl:2", "object"}},
		{"duplicate id", good + "\n\n" + good, []string{"bad.jsonl:3", `"id"`, "duplicate", "seed_task_0", "line 1"}},
		{"invalid utf8", good + "\n" + `{"instruction": "caf` + "\xe9" + `", "instances": [{"output": "o"}]}`, []string{"bad.jsonl:2", "UTF-8"}},
		{"list empty", "[]", []string{"bad.jsonl", "no seed tasks"}},
		{"list missing output", "[\n{\"instruction\": \"a\", \"output\": \"b\"},\n{\"instruction\": \"c\", \"input\": \"d\"}\n]", []string{"bad.jsonl:3", "record 1", `"instances"`}},
		{"list empty output", "[{\"instruction\": \"a\", \"output\": \"\"}]", []string{"bad.jsonl:1", "record 0", `"output"`, "empty"}},
		{"list missing instruction", "[{\"instruction\": \"a\", \"output\": \"b\"}, {\"input\": \"x\", \"output\": \"y\"}]", []string{"record 1", `"instruction"`, "missing"}},
		{"list syntax error", "[\n{\"instruction\": \"a\", \"output\": \"b\"},\n{\"instruction\" \"c\"}\n]", []string{"bad.jsonl:3", "record 1", "invalid JSON"}},
		{"list truncated", "[{\"instruction\": \"a\", \"output\": \"b\"},", []string{"bad.jsonl"}},
		{"list trailing data", "[{\"instruction\": \"a\", \"output\": \"b\"}]\n\nmore", []string{"bad.jsonl:3", "after the closing ]"}},
		{"list element not object", "[{\"instruction\": \"a\", \"output\": \"b\"}, 5]", []string{"record 1", "object"}},
		{"list duplicate id", "[{\"id\": \"k\", \"instruction\": \"a\", \"output\": \"b\"}, {\"id\": \"k\", \"instruction\": \"c\", \"output\": \"d\"}]", []string{"record 1", "duplicate", `"k"`, "record 0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tasks, err := ParseSeedTasks(strings.NewReader(tc.data), "bad.jsonl")
			if err == nil {
				t.Fatalf("no error; got %d tasks", len(tasks))
			}
			for _, frag := range tc.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not mention %q", err, frag)
				}
			}
		})
	}
}

func TestLoadSeedTasksMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.jsonl")
	if _, err := LoadSeedTasks(path); err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Fatalf("error %v does not name the file", err)
	}
}

func TestDefaultSeedTasksIsACopy(t *testing.T) {
	a := DefaultSeedTasks()
	a[0].Instruction = "changed"
	a[0].Instances[0].Output = "changed"
	b := DefaultSeedTasks()
	if b[0].Instruction == "changed" || b[0].Instances[0].Output == "changed" {
		t.Fatal("DefaultSeedTasks shares memory between calls")
	}
}

func FuzzParseSeedTasks(f *testing.F) {
	f.Add([]byte(`{"id": "seed_task_0", "name": "x", "instruction": "Do it", "instances": [{"input": "", "output": "ok"}], "is_classification": false}`))
	f.Add([]byte("[{\"instruction\": \"a\", \"input\": \"\", \"output\": \"b\"}]"))
	f.Add([]byte("{\"instruction\": \"a\"}\n{\"instruction\": \"a\", \"output\": \"b\"}"))
	f.Add([]byte("[\n1,\n{}]"))
	f.Add([]byte("\xef\xbb\xbf[]"))
	f.Add([]byte("\xff{}"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		tasks, err := ParseSeedTasks(bytes.NewReader(data), "fuzz.jsonl")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.jsonl") {
				t.Fatalf("error %q does not name the source", err)
			}
			return
		}
		if len(tasks) == 0 {
			t.Fatal("no error and no tasks")
		}
		ids := map[string]bool{}
		for _, task := range tasks {
			if ids[task.ID] {
				t.Fatalf("duplicate id %q accepted", task.ID)
			}
			ids[task.ID] = true
			if strings.TrimSpace(task.Instruction) == "" || !utf8.ValidString(task.Instruction) {
				t.Fatalf("bad instruction accepted: %q", task.Instruction)
			}
			if len(task.Instances) == 0 {
				t.Fatal("task without instances accepted")
			}
			for _, inst := range task.Instances {
				if strings.TrimSpace(inst.Output) == "" {
					t.Fatal("empty output accepted")
				}
			}
		}
	})
}
