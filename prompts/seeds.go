package prompts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	selfinstruct "github.com/selfinstruct/selfinstruct"
)

// SeedTask is one human-written task in Self-Instruct's seed format. Alpaca
// only ever uses the first instance of a task.
type SeedTask struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Instruction      string     `json:"instruction"`
	Instances        []Instance `json:"instances"`
	IsClassification bool       `json:"is_classification"`
}

// Instance is one worked example of a task.
type Instance struct {
	Input  string `json:"input"`
	Output string `json:"output"`
}

// rawSeed accepts both a Self-Instruct seed line and an Alpaca record, with
// pointers so that a missing field can be told apart from an empty one.
type rawSeed struct {
	ID               *string        `json:"id"`
	Name             *string        `json:"name"`
	Instruction      *string        `json:"instruction"`
	Instances        *[]rawInstance `json:"instances"`
	IsClassification *bool          `json:"is_classification"`
	Input            *string        `json:"input"`
	Output           *string        `json:"output"`
}

type rawInstance struct {
	Input  *string `json:"input"`
	Output *string `json:"output"`
}

// LoadSeedTasks reads seed tasks from a Self-Instruct JSONL file or an Alpaca
// JSON list (see ParseSeedTasks).
func LoadSeedTasks(path string) ([]SeedTask, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open seed tasks: %w", err)
	}
	defer f.Close()
	return ParseSeedTasks(f, path)
}

// ParseSeedTasks reads seed tasks in either of the two formats in the wild:
// Self-Instruct's JSONL (one task per line, with instances) or an Alpaca JSON
// list of {instruction, input, output} records, each of which becomes a task
// with one instance. The format is chosen by the first non-space byte: '['
// means a JSON list. Every error names source, the line (JSONL) or record
// index (JSON list) and the field at fault.
func ParseSeedTasks(r io.Reader, source string) ([]SeedTask, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read seed tasks %s: %w", source, err)
	}
	// A byte-order mark is invisible in editors and would otherwise surface
	// as a baffling JSON syntax error on line 1.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		off := firstInvalidUTF8(data)
		return nil, fmt.Errorf("%s:%d: invalid UTF-8 at byte offset %d; seed files must be UTF-8", source, lineAt(data, off), off)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: the file is empty; expected seed tasks as JSONL or a JSON list", source)
	}
	var tasks []SeedTask
	if trimmed[0] == '[' {
		tasks, err = parseAlpacaList(data, source)
	} else {
		tasks, err = parseSeedJSONL(data, source)
	}
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("%s: no seed tasks in the file", source)
	}
	return tasks, nil
}

func parseSeedJSONL(data []byte, source string) ([]SeedTask, error) {
	var tasks []SeedTask
	firstLineOfID := map[string]int{}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var raw rawSeed
		if err := json.Unmarshal(line, &raw); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, lineNo, describeJSONError(err))
		}
		task, err := raw.toTask(len(tasks))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, lineNo, err)
		}
		if first, dup := firstLineOfID[task.ID]; dup {
			return nil, fmt.Errorf("%s:%d: field \"id\": duplicate id %q (first used on line %d)", source, lineNo, task.ID, first)
		}
		firstLineOfID[task.ID] = lineNo
		tasks = append(tasks, task)
	}
	return tasks, nil
}

func parseAlpacaList(data []byte, source string) ([]SeedTask, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, describeJSONError(err))
	}
	var tasks []SeedTask
	firstIndexOfID := map[string]int{}
	for dec.More() {
		index := len(tasks)
		start := skipSeparators(data, int(dec.InputOffset()))
		var raw rawSeed
		if err := dec.Decode(&raw); err != nil {
			var syntaxErr *json.SyntaxError
			if errors.As(err, &syntaxErr) {
				return nil, fmt.Errorf("%s:%d: record %d: %w", source, lineAt(data, int(syntaxErr.Offset)), index, describeJSONError(err))
			}
			return nil, fmt.Errorf("%s:%d: record %d: %w", source, lineAt(data, start), index, describeJSONError(err))
		}
		task, err := raw.toTask(index)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: record %d: %w", source, lineAt(data, start), index, err)
		}
		if first, dup := firstIndexOfID[task.ID]; dup {
			return nil, fmt.Errorf("%s:%d: record %d: field \"id\": duplicate id %q (first used by record %d)", source, lineAt(data, start), index, task.ID, first)
		}
		firstIndexOfID[task.ID] = index
		tasks = append(tasks, task)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s:%d: after record %d: %w", source, lineAt(data, int(dec.InputOffset())), len(tasks)-1, describeJSONError(err))
	}
	if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
		off := len(data) - len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"))
		return nil, fmt.Errorf("%s:%d: unexpected data after the closing ] of the JSON list", source, lineAt(data, off))
	}
	return tasks, nil
}

// toTask validates a decoded record; index numbers the tasks read so far and
// names tasks that carry no id of their own.
func (raw rawSeed) toTask(index int) (SeedTask, error) {
	if raw.Instruction == nil {
		return SeedTask{}, errors.New(`field "instruction": missing`)
	}
	if strings.TrimSpace(*raw.Instruction) == "" {
		return SeedTask{}, errors.New(`field "instruction": empty`)
	}
	task := SeedTask{Instruction: *raw.Instruction}
	if raw.ID != nil && *raw.ID != "" {
		task.ID = *raw.ID
	} else {
		task.ID = fmt.Sprintf("seed_task_%d", index)
	}
	if raw.Name != nil {
		task.Name = *raw.Name
	}
	if raw.IsClassification != nil {
		task.IsClassification = *raw.IsClassification
	}
	switch {
	case raw.Instances != nil:
		if len(*raw.Instances) == 0 {
			return SeedTask{}, errors.New(`field "instances": empty list; a seed task needs at least one instance`)
		}
		for i, inst := range *raw.Instances {
			if inst.Output == nil {
				return SeedTask{}, fmt.Errorf(`field "instances[%d].output": missing`, i)
			}
			if strings.TrimSpace(*inst.Output) == "" {
				return SeedTask{}, fmt.Errorf(`field "instances[%d].output": empty`, i)
			}
			var input string
			if inst.Input != nil {
				input = *inst.Input
			}
			task.Instances = append(task.Instances, Instance{Input: input, Output: *inst.Output})
		}
	case raw.Output != nil:
		if strings.TrimSpace(*raw.Output) == "" {
			return SeedTask{}, errors.New(`field "output": empty`)
		}
		var input string
		if raw.Input != nil {
			input = *raw.Input
		}
		task.Instances = []Instance{{Input: input, Output: *raw.Output}}
	default:
		return SeedTask{}, errors.New(`field "instances": missing (an Alpaca record needs "output" instead)`)
	}
	return task, nil
}

// describeJSONError keeps encoding/json's text but names the field of a type
// error the way the seed format spells it.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return fmt.Errorf("expected a JSON object for the task, found a JSON %s", typeErr.Value)
		}
		return fmt.Errorf("field %q: expected %s, found a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated JSON: %w", err)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func skipSeparators(data []byte, off int) int {
	for off < len(data) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
		off++
	}
	return off
}

// lineAt is the 1-based line number of byte offset off.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return bytes.Count(data[:off], []byte("\n")) + 1
}

func firstInvalidUTF8(data []byte) int {
	for off := 0; off < len(data); {
		r, size := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && size == 1 {
			return off
		}
		off += size
	}
	return len(data)
}

var defaultSeeds = sync.OnceValues(func() ([]SeedTask, error) {
	return ParseSeedTasks(bytes.NewReader(selfinstruct.SeedTasksJSONL), "seed_tasks.jsonl (embedded)")
})

// DefaultSeedTasks returns the project's own 175 seed tasks, embedded in the
// binary. Each call returns a fresh copy the caller may modify.
func DefaultSeedTasks() []SeedTask {
	tasks, err := defaultSeeds()
	if err != nil {
		// The embedded file is checked by this package's tests, so this is a
		// broken build rather than bad user input.
		panic(fmt.Sprintf("prompts: embedded seed tasks are invalid: %v", err))
	}
	out := make([]SeedTask, len(tasks))
	for i, t := range tasks {
		t.Instances = append([]Instance(nil), t.Instances...)
		out[i] = t
	}
	return out
}
