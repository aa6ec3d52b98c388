// Package pipeline runs the data-generation recipes: it drives the teacher,
// filters what comes back, and keeps every decision in a journal so that a
// run killed at any moment resumes without losing or repeating work.
package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Journal is an append-only JSON-lines file. Each Append is one line written
// with a single write and fsynced before it returns: a line is either wholly
// in the journal or, after a crash, a torn tail that Open cuts off.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// OpenJournal opens (or creates) the journal at path and returns the lines
// already in it. A torn last line — one without its newline, or not valid
// JSON — is what a kill mid-write leaves; it is cut off and reported in
// torn. Invalid JSON anywhere else is corruption, and an error.
func OpenJournal(path string) (j *Journal, lines []json.RawMessage, torn bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, false, fmt.Errorf("open journal: %w", err)
	}
	data, err := readAll(f)
	if err != nil {
		f.Close()
		return nil, nil, false, fmt.Errorf("read journal %s: %w", path, err)
	}
	good := 0 // length of the valid prefix
	lineNo := 0
	for good < len(data) {
		lineNo++
		nl := bytes.IndexByte(data[good:], '\n')
		if nl < 0 {
			torn = true
			break
		}
		line := data[good : good+nl]
		if !json.Valid(line) {
			if good+nl+1 == len(data) {
				torn = true
				break
			}
			f.Close()
			return nil, nil, false, fmt.Errorf("journal %s: line %d is not valid JSON; the journal is damaged (move it away to start over)", path, lineNo)
		}
		lines = append(lines, json.RawMessage(line))
		good += nl + 1
	}
	if torn {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, false, fmt.Errorf("cut torn tail of journal %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), 0); err != nil {
		f.Close()
		return nil, nil, false, fmt.Errorf("seek journal %s: %w", path, err)
	}
	return &Journal{f: f, path: path}, lines, torn, nil
}

func readAll(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(f)
	return buf.Bytes(), err
}

// openRunJournal opens the journal in dir, saying in the log when it had
// to cut the torn line a killed run left.
func openRunJournal(dir string, logger *slog.Logger) (*Journal, []json.RawMessage, error) {
	j, lines, torn, err := OpenJournal(filepath.Join(dir, JournalFile))
	if err != nil {
		return nil, nil, err
	}
	if torn {
		logger.Warn("cut off the torn last line of the journal (a killed run was writing it)", "journal", j.Path())
	}
	return j, lines, nil
}

// Append writes v as one line and makes it durable.
func (j *Journal) Append(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal %s: encode: %w", j.path, err)
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal is closed")
	}
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("journal %s: write: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: sync: %w", j.path, err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// Path is where the journal lives.
func (j *Journal) Path() string { return j.path }
