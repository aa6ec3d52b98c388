package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// ErrNothingToDo means a refresh was asked to add nothing.
var ErrNothingToDo = errors.New("nothing to do")

// Files and directories of a refreshed dataset directory. Snapshots of
// earlier versions sit beside alpaca_data.json as
// alpaca_data.<UTC time>.json.
const (
	ChangelogFile = "CHANGELOG.jsonl"
	// RefreshWorkDir is where a refresh generates before it publishes: a
	// run killed there resumes from its own journal, and the published
	// dataset beside it is never touched until the new one is complete.
	RefreshWorkDir   = ".refresh"
	refreshStateFile = "refresh.json"
)

// RefreshConfig configures one refresh of a dataset directory.
type RefreshConfig struct {
	Dir string // holds alpaca_data.json, its snapshots, CHANGELOG.jsonl
	Add int    // new examples to add
	// KeepVersions is how many dated snapshots of earlier versions to keep.
	KeepVersions int
	// Alpaca generates the new examples; Num, OutDir and ExistingPool are
	// set by RunRefresh.
	Alpaca AlpacaConfig
	Now    func() time.Time // for tests; time.Now by default
	// Lock, when set, is the lock on Dir the caller took already (the CLI
	// takes it before loading a teacher, so a second refresh exits at once).
	Lock *DirLock
}

// ChangelogEntry is one line of CHANGELOG.jsonl, appended after a publish.
type ChangelogEntry struct {
	ID             string         `json:"id"`
	Time           time.Time      `json:"time"`
	Before         int            `json:"before"`
	Added          int            `json:"added"`
	After          int            `json:"after"`
	Rejected       map[string]int `json:"rejected"`
	Candidates     int            `json:"candidates"`
	Responses      int            `json:"responses"`
	FailedRequests int            `json:"failed_requests"`
	Usage          teacher.Usage  `json:"usage"`
	// The usage's parts again at the top level, for scripts that read them.
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	CostKnown        bool    `json:"cost_known"`
	Model            string  `json:"model"`
	Resumed          bool    `json:"resumed"`
	SHA256           string  `json:"sha256"`             // of the new alpaca_data.json
	Previous         string  `json:"previous,omitempty"` // snapshot of the version it replaced
}

// RefreshResult is what a refresh did.
type RefreshResult struct {
	Status   string // "published", or the generation's status when it stopped early
	Dataset  string
	Entry    ChangelogEntry // set when published
	Generate *Report        // the generation's run.json
}

// refreshState is DIR/.refresh/refresh.json: which dataset the work in
// progress extends and, once it is publishing, what it publishes, so a
// refresh killed at any step finishes or redoes exactly that step.
type refreshState struct {
	ID         string          `json:"id"`
	BaseSHA256 string          `json:"base_sha256"`
	BaseCount  int             `json:"base_count"`
	Add        int             `json:"add"`
	Started    time.Time       `json:"started"`
	Publish    *ChangelogEntry `json:"publish,omitempty"`
}

// RunRefresh adds cfg.Add examples to the dataset in cfg.Dir, deduplicated
// against the seeds and every existing instruction, and publishes the new
// full dataset atomically, keeping the previous one as a dated snapshot and
// appending to CHANGELOG.jsonl. The directory's lock is held throughout: a
// second refresh fails at once with ErrLocked.
func RunRefresh(ctx, hard context.Context, t teacher.Teacher, cfg RefreshConfig) (*RefreshResult, error) {
	if cfg.Add < 0 {
		return nil, &InputError{fmt.Errorf("--add must not be negative, got %d", cfg.Add)}
	}
	if cfg.Add == 0 {
		return nil, fmt.Errorf("--add 0: %w", ErrNothingToDo)
	}
	if cfg.KeepVersions < 0 {
		return nil, &InputError{fmt.Errorf("--keep-versions must not be negative, got %d", cfg.KeepVersions)}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, &InputError{fmt.Errorf("--dataset %s: %w", cfg.Dir, err)}
	}
	if cfg.Lock == nil {
		lock, err := LockDir(cfg.Dir)
		if err != nil {
			return nil, err
		}
		defer lock.Unlock()
	}
	logger := cfg.Alpaca.Logger
	if logger == nil {
		cfg.Alpaca.Logger = slog.Default()
		logger = cfg.Alpaca.Logger
	}
	rf := &refresher{cfg: cfg, work: filepath.Join(cfg.Dir, RefreshWorkDir), data: filepath.Join(cfg.Dir, DataFile)}

	base, err := rf.readBase()
	if err != nil {
		return nil, err
	}
	st, err := rf.readState()
	if err != nil {
		return nil, err
	}
	if st != nil && st.Publish != nil && st.Publish.SHA256 == base.sha {
		// A killed refresh published, then died before its bookkeeping.
		logger.Info("finishing the bookkeeping of a refresh that published before it was stopped", "id", st.ID)
		if err := rf.finish(*st.Publish); err != nil {
			return nil, err
		}
		st = nil
	}
	if st != nil && st.BaseSHA256 != base.sha {
		logger.Warn("the dataset changed since an interrupted refresh; its unpublished work is discarded",
			"dataset", rf.data, "work", rf.work)
		st = nil
	}
	if st == nil {
		if err := os.RemoveAll(rf.work); err != nil {
			return nil, fmt.Errorf("clear %s: %w", rf.work, err)
		}
		now := cfg.Now().UTC()
		st = &refreshState{ID: now.Format("20060102T150405Z") + "-" + short(base.sha), BaseSHA256: base.sha,
			BaseCount: len(base.items), Started: now}
	} else {
		logger.Info("resuming an interrupted refresh", "id", st.ID, "work", rf.work)
	}
	st.Add = cfg.Add
	if err := os.MkdirAll(rf.work, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", rf.work, err)
	}
	if err := rf.writeState(st); err != nil {
		return nil, err
	}

	ac := cfg.Alpaca
	ac.Num, ac.OutDir, ac.ExistingPool = cfg.Add, rf.work, base.instructions
	if ac.SeedSet {
		// A cron line with a fixed --seed would ask every night's refresh
		// the same questions; mixing in the dataset it extends keeps runs
		// reproducible (same dataset, same seed, same run) yet different.
		ac.Seed = mixSeed(ac.Seed, base.sha)
	}
	res := &RefreshResult{Dataset: rf.data}
	rep, err := RunAlpaca(ctx, hard, t, ac)
	res.Generate = rep
	if err != nil {
		if rep != nil {
			res.Status = rep.Status
		}
		return res, err
	}
	entry, err := rf.publish(st, base, rep)
	if err != nil {
		return res, err
	}
	res.Status, res.Entry = "published", entry
	return res, nil
}

func mixSeed(seed int64, sha string) int64 {
	h := fnv.New64a()
	h.Write([]byte(sha))
	return (seed ^ int64(h.Sum64())) & (1<<53 - 1)
}

type refresher struct {
	cfg  RefreshConfig
	work string // DIR/.refresh
	data string // DIR/alpaca_data.json
}

type baseDataset struct {
	raw          []byte
	sha          string
	items        []output.DatasetItem
	instructions []string
}

// readBase loads the published dataset; a directory without one starts empty.
func (rf *refresher) readBase() (*baseDataset, error) {
	raw, err := os.ReadFile(rf.data)
	if errors.Is(err, os.ErrNotExist) {
		rf.cfg.Alpaca.Logger.Info("no dataset yet; this refresh creates it", "dataset", rf.data)
		return &baseDataset{sha: sha256Hex(nil)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rf.data, err)
	}
	d, err := output.ParseDataset(rf.data, raw)
	if err != nil {
		return nil, &InputError{err}
	}
	if d.Shape != output.ShapeJSONRecords {
		return nil, &InputError{fmt.Errorf("%s: a %s; refresh keeps an Alpaca JSON list of records", rf.data, d.Shape)}
	}
	inst, err := d.Texts("instruction")
	if err != nil {
		return nil, &InputError{err}
	}
	return &baseDataset{raw: raw, sha: sha256Hex(raw), items: d.Items, instructions: inst}, nil
}

func (rf *refresher) readState() (*refreshState, error) {
	path := filepath.Join(rf.work, refreshStateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var st refreshState
	if err := json.Unmarshal(data, &st); err != nil {
		// Written atomically, so this is not a torn write: someone edited it.
		return nil, &InputError{fmt.Errorf("%s: %w (remove %s to start the refresh over)", path, err, rf.work)}
	}
	return &st, nil
}

func (rf *refresher) writeState(st *refreshState) error {
	return output.WriteFileAtomic(filepath.Join(rf.work, refreshStateFile), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	})
}

// publish replaces alpaca_data.json with the base plus the new examples.
// Each step is recorded or idempotent: the state file names the result
// before anything visible changes, the previous version is hard-linked
// into versions/ (so it survives the rename), the new file is renamed into
// place, and only then is the changelog appended and the work removed.
func (rf *refresher) publish(st *refreshState, base *baseDataset, rep *Report) (ChangelogEntry, error) {
	newRaw, err := os.ReadFile(filepath.Join(rf.work, DataFile))
	if err != nil {
		return ChangelogEntry{}, fmt.Errorf("read the new examples: %w", err)
	}
	added, err := output.ParseDataset(filepath.Join(rf.work, DataFile), newRaw)
	if err != nil {
		return ChangelogEntry{}, err
	}
	if len(added.Items) != rf.cfg.Add {
		return ChangelogEntry{}, fmt.Errorf("the generation wrote %d examples, want %d", len(added.Items), rf.cfg.Add)
	}
	items := append(append([]output.DatasetItem(nil), base.items...), added.Items...)
	var buf bytes.Buffer
	if err := output.WriteDataset(&buf, output.ShapeJSONRecords, items); err != nil {
		return ChangelogEntry{}, err
	}
	entry := ChangelogEntry{
		ID: st.ID, Time: rf.cfg.Now().UTC(), Before: len(base.items), Added: len(added.Items), After: len(items),
		Rejected: rep.Rejected, Candidates: rep.Candidates, Responses: rep.Responses, FailedRequests: rep.FailedRequests,
		Usage: rep.Usage, TotalTokens: rep.Usage.Total(),
		PromptTokens: rep.Usage.PromptTokens, CompletionTokens: rep.Usage.CompletionTokens, CostUSD: rep.CostUSD, CostKnown: rep.CostKnown,
		Model: rep.Model, Resumed: rep.Resumed, SHA256: sha256Hex(buf.Bytes()),
	}
	if base.raw != nil && rf.cfg.KeepVersions > 0 {
		snap, err := rf.snapshot()
		if err != nil {
			return ChangelogEntry{}, err
		}
		entry.Previous = snap
	}
	st.Publish = &entry
	if err := rf.writeState(st); err != nil {
		return ChangelogEntry{}, err
	}
	if err := output.WriteFileAtomic(rf.data, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	}); err != nil {
		return ChangelogEntry{}, err
	}
	return entry, rf.finish(entry)
}

// snapshotRE matches the snapshot names prune may remove, and nothing else.
var snapshotRE = regexp.MustCompile(`^alpaca_data\.\d{8}T\d{6}Z(-\d+)?\.json$`)

func snapshotKey(name string) (stamp string, n int) {
	m := snapshotRE.FindStringSubmatch(name)
	if m == nil {
		return name, 0
	}
	if m[1] != "" {
		n, _ = strconv.Atoi(m[1][1:])
	}
	return name[len("alpaca_data.") : len("alpaca_data.")+16], n
}

// snapshot hard-links the current alpaca_data.json to
// alpaca_data.<UTC time>.json, named by the time it was published (its
// modification time); the rename that publishes the new version leaves the
// link holding the old one.
func (rf *refresher) snapshot() (string, error) {
	fi, err := os.Stat(rf.data)
	if err != nil {
		return "", err
	}
	dir := rf.cfg.Dir
	stamp := fi.ModTime().UTC().Format("20060102T150405Z")
	for n := 0; ; n++ {
		name := "alpaca_data." + stamp + ".json"
		if n > 0 {
			name = fmt.Sprintf("alpaca_data.%s-%d.json", stamp, n)
		}
		path := filepath.Join(dir, name)
		if si, err := os.Stat(path); err == nil {
			if os.SameFile(si, fi) {
				return name, nil // linked by a refresh killed after this step
			}
			continue
		}
		if err := os.Link(rf.data, path); err != nil {
			// No hard links (some network file systems): copy, atomically.
			data, rerr := os.ReadFile(rf.data)
			if rerr != nil {
				return "", rerr
			}
			if err := output.WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
				return "", err
			}
		}
		return name, output.SyncDir(dir)
	}
}

// finish appends the changelog entry (once), prunes old snapshots and
// removes the work directory.
func (rf *refresher) finish(entry ChangelogEntry) error {
	path := filepath.Join(rf.cfg.Dir, ChangelogFile)
	logged, err := changelogHas(path, entry.ID)
	if err != nil {
		return err
	}
	if !logged {
		line, err := json.Marshal(entry)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("changelog: %w", err)
		}
		_, werr := f.Write(append(line, '\n'))
		serr := f.Sync()
		cerr := f.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			return fmt.Errorf("changelog %s: %w", path, err)
		}
	}
	if err := rf.prune(); err != nil {
		return err
	}
	if err := os.RemoveAll(rf.work); err != nil {
		return fmt.Errorf("remove %s: %w", rf.work, err)
	}
	return nil
}

func changelogHas(path, id string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read changelog: %w", err)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var e struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &e) == nil && e.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// prune keeps the newest KeepVersions snapshots.
func (rf *refresher) prune() error {
	dir := rf.cfg.Dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var snaps []string
	for _, e := range entries {
		if n := e.Name(); snapshotRE.MatchString(n) && !e.IsDir() {
			snaps = append(snaps, n)
		}
	}
	// UTC stamps sort by time; a "-n" suffix (two versions in one second)
	// comes after the plain name.
	sort.Slice(snaps, func(i, j int) bool {
		si, ni := snapshotKey(snaps[i])
		sj, nj := snapshotKey(snaps[j])
		if si != sj {
			return si < sj
		}
		return ni < nj
	})
	for len(snaps) > rf.cfg.KeepVersions {
		if err := os.Remove(filepath.Join(dir, snaps[0])); err != nil {
			return fmt.Errorf("prune %s: %w", snaps[0], err)
		}
		snaps = snaps[1:]
	}
	return nil
}
