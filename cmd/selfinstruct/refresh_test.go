package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

func refreshArgs(srv *openaitest.Server, dir string, add int) []string {
	return []string{"refresh", "--dataset", dir, "--add", strconv.Itoa(add), "--base-url", srv.BaseURL(),
		"--model", "gpt-4o-mini", "--concurrency", "2", "--retry-backoff", "5ms"}
}

func datasetLen(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, pipeline.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	var ex []output.Example
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	return len(ex)
}

// waitForLock waits until pid holds the lock on dir (its pid is in the lock file).
func waitForLock(t *testing.T, dir string, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, ".selfinstruct.lock"))
		if strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d never took the lock on %s", pid, dir)
}

// The checks, with real processes: two refreshes started at once
// (one runs, the other exits with the locked code at once); a kill -9 in
// the middle of a refresh leaves the published dataset byte for byte as it
// was, and the next refresh takes over the stale lock and publishes.
func TestRefreshLockAndKill(t *testing.T) {
	srv := openaitest.New(openaitest.Options{
		Respond: openaitest.AlpacaResponder(nil, 8),
		Faults:  openaitest.Faults{Slow: 1, SlowDelay: 150 * time.Millisecond},
		Seed:    2, APIKey: "sk-test-secret",
	})
	t.Cleanup(srv.Close)
	env := []string{"OPENAI_API_KEY=sk-test-secret"}
	dir := filepath.Join(t.TempDir(), "data")

	stdout, stderr, code := runCLI(t, env, refreshArgs(srv, dir, 10)...)
	if code != 0 || datasetLen(t, dir) != 10 || !strings.Contains(stdout, "0 -> 10 examples") {
		t.Fatalf("first refresh: exit %d\n%s%s", code, stdout, stderr)
	}
	published, _ := os.ReadFile(filepath.Join(dir, pipeline.DataFile))

	// Two at once.
	first := exec.Command(binPath, refreshArgs(srv, dir, 300)...)
	first.Env = append(os.Environ(), env...)
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLock(t, dir, first.Process.Pid)
	start := time.Now()
	stdout, stderr, code = runCLI(t, env, refreshArgs(srv, dir, 10)...)
	if code != exitLocked || !strings.Contains(stderr, "pid "+strconv.Itoa(first.Process.Pid)) {
		t.Fatalf("second refresh: exit %d (want %d), stderr should name the holder:\n%s%s", code, exitLocked, stdout, stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the locked refresh took %v to give up", d)
	}

	// kill -9 the first in the middle of its generation.
	time.Sleep(600 * time.Millisecond)
	first.Process.Kill()
	first.Wait()
	now, _ := os.ReadFile(filepath.Join(dir, pipeline.DataFile))
	if !bytes.Equal(now, published) {
		t.Fatalf("a killed refresh changed the published dataset\n%s", firstOut.String())
	}
	journal, err := os.ReadFile(filepath.Join(dir, pipeline.RefreshWorkDir, pipeline.JournalFile))
	if err != nil || bytes.Count(journal, []byte("\n")) < 2 {
		t.Fatalf("the killed refresh journaled nothing (%v); the test did not kill it mid-run", err)
	}

	// The next run takes over the stale lock, resumes and publishes.
	stdout, stderr, code = runCLI(t, env, refreshArgs(srv, dir, 300)...)
	if code != 0 || datasetLen(t, dir) != 310 {
		t.Fatalf("refresh after kill -9: exit %d, %d examples\n%s%s", code, datasetLen(t, dir), stdout, stderr)
	}
	if !strings.Contains(stderr, "resuming an interrupted refresh") {
		t.Errorf("the refresh after the kill did not resume the killed one's work:\n%s", stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Error("a progress bar was drawn without a terminal")
	}
	var log []pipeline.ChangelogEntry
	data, _ := os.ReadFile(filepath.Join(dir, pipeline.ChangelogFile))
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e pipeline.ChangelogEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		log = append(log, e)
	}
	if len(log) != 2 || log[1].Before != 10 || log[1].Added != 300 || !log[1].Resumed {
		t.Fatalf("changelog %+v", log)
	}
	old, err := os.ReadFile(filepath.Join(dir, log[1].Previous))
	if err != nil || !bytes.Equal(old, published) {
		t.Fatalf("the previous version %s is not the dataset it replaced: %v", log[1].Previous, err)
	}
}

func TestRefreshCLIInputs(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Respond: openaitest.AlpacaResponder(nil, 8), APIKey: "sk-test-secret"})
	t.Cleanup(srv.Close)
	env := []string{"OPENAI_API_KEY=sk-test-secret"}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	bad := filepath.Join(dir, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, pipeline.DataFile), []byte("[\n  {\"input\": \"\", \"output\": \"x\"}\n]"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"add 0", refreshArgs(srv, filepath.Join(dir, "d"), 0), exitNothingToDo, "nothing to do"},
		{"no dataset", []string{"refresh", "--add", "5"}, exitBadInput, "--dataset"},
		{"num", append(refreshArgs(srv, filepath.Join(dir, "d"), 5), "--num", "5"), exitBadInput, "--num"},
		{"dataset is a file", refreshArgs(srv, file, 5), exitBadInput, "is a file"},
		{"record without instruction", refreshArgs(srv, bad, 5), exitBadInput, pipeline.DataFile + ":2"},
		{"teacher down", append(refreshArgs(srv, filepath.Join(dir, "d"), 5), "--base-url", "http://127.0.0.1:1/v1", "--max-attempts", "1"), exitTeacherDown, "127.0.0.1:1"},
		{"budget", append(refreshArgs(srv, filepath.Join(dir, "d2"), 5), "--max-cost", "0.0000001"), exitBudget, "--max-cost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, env, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d (want %d), stderr lacks %q:\n%s%s", code, tc.code, tc.want, stdout, stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "d", pipeline.DataFile)); !os.IsNotExist(err) {
		t.Error("a refresh that could not run published a dataset")
	}
}
