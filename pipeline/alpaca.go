package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// Errors that end a run early; the CLI maps them to exit codes.
var (
	// ErrBarren: the teacher keeps answering, but nothing it writes survives.
	ErrBarren = errors.New("the teacher produced nothing usable")
	// ErrIncompatibleRun: --out holds a run made with other settings.
	ErrIncompatibleRun = errors.New("the output directory holds a different run")
)

// AlpacaConfig configures the Alpaca recipe (Stanford Alpaca's
// generate_instruction.py, made resumable and exact).
type AlpacaConfig struct {
	Num    int    // examples wanted in the final dataset
	OutDir string // journal, run.json and alpaca_data.json live here

	Seeds       []prompts.SeedTask
	SeedSource  string // file path or "embedded", for the report
	SeedSHA256  string // hash of the seed file's bytes
	Header      string // the prompt's requirements text
	NumPrompt   int    // seed tasks shown per prompt (Alpaca: 3)
	API         teacher.Mode
	PerRequest  int // prompts per completions request (Alpaca: 5); chat sends one
	Model       string
	Temperature float64
	TopP        float64
	MaxTokens   int

	// ExistingPool holds instructions already in a dataset being extended
	// (refresh): they join the novelty pool after the seeds, so nothing
	// new may be too similar to them, but they are not prompt examples.
	ExistingPool []string

	Threshold  float64 // ROUGE-L above this is rejected (Alpaca: 0.7)
	Tokenizer  filters.Tokenizer
	Heuristics filters.HeuristicOptions

	Seed    int64 // sampling seed; recorded on the first run and reused on resume
	SeedSet bool  // whether the user chose Seed (a resume must then agree)

	Concurrency     int
	WithSimilarity  bool
	CheckpointEvery time.Duration
	// MaxBarren stops the run after this many consecutive responses that
	// added nothing (0 means the default, 10).
	MaxBarren int
	// MaxFailures stops the run after this many consecutive failed requests.
	MaxFailures int

	// Cost prices a response's usage; ok=false when the model's price is unknown.
	Cost func(teacher.Usage) (usd float64, ok bool)

	Progress Progress
	Logger   *slog.Logger
	// Settings is recorded in run.json as the run's configuration.
	Settings map[string]any
}

func (c *AlpacaConfig) defaults() error {
	if c.Num <= 0 {
		return fmt.Errorf("--num must be positive, got %d", c.Num)
	}
	if c.NumPrompt <= 0 {
		c.NumPrompt = 3
	}
	if c.NumPrompt > 18 {
		return fmt.Errorf("--num-prompt-instructions %d leaves no room for new tasks before item 20", c.NumPrompt)
	}
	if len(c.Seeds) < c.NumPrompt {
		return fmt.Errorf("%d seed tasks, need at least %d to build a prompt", len(c.Seeds), c.NumPrompt)
	}
	if c.API == "" {
		c.API = teacher.ModeChat
	}
	if c.PerRequest <= 0 || c.API == teacher.ModeChat {
		c.PerRequest = 1
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 3072
	}
	if c.Threshold == 0 {
		c.Threshold = 0.7
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 30 * time.Second
	}
	if c.MaxBarren <= 0 {
		c.MaxBarren = 10
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 8
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Progress == nil {
		c.Progress = nopProgress{}
	}
	if c.Cost == nil {
		c.Cost = func(teacher.Usage) (float64, bool) { return 0, false }
	}
	return nil
}

// Files in the output directory.
const (
	JournalFile = "journal.jsonl"
	ReportFile  = "run.json"
	DataFile    = "alpaca_data.json"
)

// alpacaRun is the state of one Alpaca run, rebuilt from the journal.
type alpacaRun struct {
	cfg     AlpacaConfig
	journal *Journal
	header  HeaderEntry
	novelty *filters.Novelty
	pool    *filters.Index // only with WithSimilarity: seeds + kept, for top-10 and averages

	kept      []output.Record
	report    Report
	nextReq   int
	barren    int // consecutive responses that kept nothing
	failures  int // consecutive failed requests
	yieldSum  int // kept per response, to pace the end of the run
	responses int
}

// RunAlpaca generates cfg.Num examples with the Alpaca recipe, resuming
// whatever run is journaled in cfg.OutDir. ctx cancellation is a graceful
// stop: no new requests, in-flight ones are finished and journaled. hard
// cancellation abandons in-flight requests too.
func RunAlpaca(ctx, hard context.Context, t teacher.Teacher, cfg AlpacaConfig) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	lock, err := LockRunDir(cfg.OutDir)
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	defer lock.Unlock()

	r := &alpacaRun{cfg: cfg}
	if err := r.open(); err != nil {
		return nil, err
	}
	defer r.journal.Close()

	err = r.loop(ctx, hard, t)
	if perr := r.publish(err); perr != nil && err == nil {
		err = perr
	}
	return &r.report, err
}

func (r *alpacaRun) open() error {
	cfg := &r.cfg
	j, lines, err := openRunJournal(cfg.OutDir, cfg.Logger)
	if err != nil {
		return fmt.Errorf("--out %s: %w", cfg.OutDir, err)
	}
	r.journal = j
	r.novelty = filters.NewNovelty(filters.IndexOptions{Tokenizer: cfg.Tokenizer}, cfg.Threshold)
	if cfg.WithSimilarity {
		r.pool = filters.NewIndex(filters.IndexOptions{Tokenizer: cfg.Tokenizer})
	}
	for _, s := range cfg.Seeds {
		r.novelty.AddPool(s.Instruction)
		if r.pool != nil {
			r.pool.Add(s.Instruction)
		}
	}
	for _, inst := range cfg.ExistingPool {
		r.novelty.AddPool(inst)
		if r.pool != nil {
			r.pool.Add(inst)
		}
	}
	r.report = Report{
		Recipe:     "alpaca",
		Status:     "running",
		Started:    time.Now().UTC(),
		Settings:   cfg.Settings,
		SeedSource: cfg.SeedSource,
		SeedSHA256: cfg.SeedSHA256,
		Target:     cfg.Num,
		Rejected:   map[string]int{},
		OutDir:     cfg.OutDir,
		Model:      cfg.Model,
		CostKnown:  true,
	}
	want := HeaderEntry{Kind: "header", Version: 1, Recipe: "alpaca", Created: time.Now().UTC(),
		SeedSHA256: cfg.SeedSHA256, Seed: cfg.Seed, Threshold: cfg.Threshold, Tokenizer: cfg.Tokenizer.String()}
	if len(lines) == 0 {
		if !cfg.SeedSet {
			want.Seed = rand.Int64N(1 << 53)
		}
		r.header = want
		if err := j.Append(want); err != nil {
			return err
		}
	} else {
		if err := json.Unmarshal(lines[0], &r.header); err != nil || r.header.Kind != "header" {
			return fmt.Errorf("%s: line 1 is not a journal header: %w", j.Path(), ErrIncompatibleRun)
		}
		if err := r.checkCompatible(want); err != nil {
			return err
		}
		r.report.Resumed = true
	}
	r.report.Seed = r.header.Seed
	if len(lines) > 0 {
		lines = lines[1:]
	}
	for i, line := range lines {
		var e ResponseEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%s: line %d: %w", j.Path(), i+2, err)
		}
		if e.Kind != "response" {
			continue
		}
		r.replay(e)
	}
	return nil
}

func (r *alpacaRun) checkCompatible(want HeaderEntry) error {
	h := r.header
	var diffs []string
	if h.Recipe != want.Recipe {
		diffs = append(diffs, fmt.Sprintf("recipe %q, now %q", h.Recipe, want.Recipe))
	}
	if h.SeedSHA256 != want.SeedSHA256 {
		diffs = append(diffs, "the seed tasks differ (sha256 "+short(h.SeedSHA256)+", now "+short(want.SeedSHA256)+")")
	}
	if h.Threshold != want.Threshold {
		diffs = append(diffs, fmt.Sprintf("threshold %v, now %v", h.Threshold, want.Threshold))
	}
	if h.Tokenizer != want.Tokenizer {
		diffs = append(diffs, fmt.Sprintf("tokenizer %s, now %s", h.Tokenizer, want.Tokenizer))
	}
	if r.cfg.SeedSet && h.Seed != want.Seed {
		diffs = append(diffs, fmt.Sprintf("--seed %d, now %d", h.Seed, want.Seed))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s was started with %s; use another --out or the same settings: %w",
			r.cfg.OutDir, strings.Join(diffs, "; "), ErrIncompatibleRun)
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// replay applies a journaled response to the in-memory state, exactly as
// processing it did the first time.
func (r *alpacaRun) replay(e ResponseEntry) {
	if e.Req >= r.nextReq {
		r.nextReq = e.Req + 1
	}
	r.account(e)
	for _, c := range e.Candidates {
		if c.Status == StatusKept {
			r.keep(c)
		}
	}
}

// account adds a journaled response to the report's counters.
func (r *alpacaRun) account(e ResponseEntry) {
	rep := &r.report
	rep.Usage = rep.Usage.Add(e.Usage)
	rep.CostUSD += e.Cost
	if e.Error != "" {
		rep.FailedRequests++
		return
	}
	rep.Responses++
	for reason, n := range e.ParseDrops {
		rep.Rejected[reason] += n
	}
	kept := 0
	for _, c := range e.Candidates {
		rep.Candidates++
		switch c.Status {
		case StatusKept:
			kept++
		case StatusRejected:
			rep.Rejected[c.Reason]++
		case StatusSurplus:
			rep.Surplus++
		}
	}
	r.responses++
	r.yieldSum += kept
	if kept == 0 {
		r.barren++
	} else {
		r.barren = 0
	}
}

func (r *alpacaRun) keep(c CandidateRecord) {
	r.novelty.Keep(c.Instruction)
	if r.pool != nil {
		r.pool.Add(c.Instruction)
	}
	rec := output.Record{Example: output.Example{Instruction: c.Instruction, Input: c.Input, Output: c.Output}}
	if r.cfg.WithSimilarity {
		rec.MostSimilar = make([]output.Similar, len(c.MostSimilar))
		for i, s := range c.MostSimilar {
			rec.MostSimilar[i] = output.Similar{Instruction: s.Instruction, Score: s.Score}
		}
		if c.AvgSimilar != nil {
			rec.AvgSimilarity = *c.AvgSimilar
		}
	}
	r.kept = append(r.kept, rec)
	r.report.Kept = len(r.kept)
}

type alpacaResult struct {
	req     int
	resp    teacher.Response
	err     error
	elapsed time.Duration
}

func (r *alpacaRun) loop(ctx, hard context.Context, t teacher.Teacher) error {
	cfg := &r.cfg
	if len(r.kept) >= cfg.Num {
		r.report.Status = "complete"
		return nil
	}
	results := make(chan alpacaResult, cfg.Concurrency)
	inflight := 0
	nextDispatch, nextProcess := r.nextReq, r.nextReq
	pending := map[int]alpacaResult{}
	var stopErr error
	stopping := false
	stop := func(err error) {
		if !stopping {
			stopping, stopErr = true, err
		}
	}
	done := ctx.Done()
	checkpoint := time.NewTicker(cfg.CheckpointEvery)
	defer checkpoint.Stop()
	cfg.Progress.Update(r.snapshot())

	for {
		// Responses are processed in request order; the ones that overtake
		// a slow request wait in pending. Bounding the two together keeps
		// one stalled request from letting the run send ever more while
		// nothing is processed, so a stop (the barren limit, an error)
		// takes effect within 2×Concurrency requests.
		for !stopping && inflight < cfg.Concurrency && inflight+len(pending) < 2*cfg.Concurrency && r.wantMore(inflight) {
			req := nextDispatch
			nextDispatch++
			inflight++
			go func() {
				start := time.Now()
				resp, err := t.Complete(hard, r.buildRequest(req))
				results <- alpacaResult{req: req, resp: resp, err: err, elapsed: time.Since(start)}
			}()
		}
		if inflight == 0 {
			break
		}
		select {
		case res := <-results:
			inflight--
			pending[res.req] = res
			for {
				res, ok := pending[nextProcess]
				if !ok {
					break
				}
				delete(pending, nextProcess)
				nextProcess++
				if err := r.process(res); err != nil {
					stop(err)
				}
			}
			if len(r.kept) >= cfg.Num {
				stop(nil)
			}
			cfg.Progress.Update(r.snapshot())
		case <-done:
			done = nil
			cfg.Logger.Info("interrupted: finishing the requests in flight, then saving", "in_flight", inflight)
			stop(context.Canceled)
		case <-checkpoint.C:
			if err := r.writeOutputs(); err != nil {
				stop(err)
			}
		}
	}
	cfg.Progress.Done()
	switch {
	case len(r.kept) >= cfg.Num:
		r.report.Status = "complete"
		return nil
	case stopErr == nil:
		stopErr = errors.New("stopped before the target for no recorded reason")
	}
	return stopErr
}

// wantMore paces the end of the run: once the requests in flight are likely
// to bring the run to its target, wait for them instead of paying for more.
func (r *alpacaRun) wantMore(inflight int) bool {
	need := r.cfg.Num - len(r.kept)
	if need <= 0 {
		return false
	}
	if r.responses == 0 || inflight == 0 {
		return true
	}
	perResponse := float64(r.yieldSum) / float64(r.responses)
	return float64(inflight)*perResponse < float64(need)
}

// seedSample draws the seed tasks for one prompt. The generator depends only
// on the run's seed and the prompt's position, so a resumed or re-run job
// asks the same questions in the same order.
func (r *alpacaRun) seedSample(req, prompt int) []prompts.SeedTask {
	rng := rand.New(rand.NewPCG(uint64(r.header.Seed), uint64(req)<<8|uint64(prompt)))
	idx := rng.Perm(len(r.cfg.Seeds))[:r.cfg.NumPrompt]
	out := make([]prompts.SeedTask, len(idx))
	for i, j := range idx {
		out[i] = r.cfg.Seeds[j]
	}
	return out
}

func (r *alpacaRun) buildRequest(req int) teacher.Request {
	cfg := &r.cfg
	tr := teacher.Request{
		Mode:        cfg.API,
		MaxTokens:   cfg.MaxTokens,
		Temperature: cfg.Temperature,
		TopP:        cfg.TopP,
		Stop:        prompts.AlpacaStop(),
	}
	for p := 0; p < cfg.PerRequest; p++ {
		text := prompts.RenderAlpacaPrompt(cfg.Header, r.seedSample(req, p))
		if cfg.API == teacher.ModeChat {
			tr.Messages = []teacher.Message{{Role: "user", Content: text}}
		} else {
			tr.Prompts = append(tr.Prompts, text)
		}
	}
	return tr
}

// process decides every candidate of one response, journals the result and
// only then lets it count.
func (r *alpacaRun) process(res alpacaResult) error {
	cfg := &r.cfg
	entry := ResponseEntry{Kind: "response", Req: res.req, Time: time.Now().UTC()}
	if res.err != nil {
		switch {
		case errors.Is(res.err, teacher.ErrBudget):
			return res.err // nothing was sent, nothing to journal
		case errors.Is(res.err, context.Canceled), errors.Is(res.err, teacher.ErrUnavailable):
			return res.err
		}
		entry.Error = res.err.Error()
		if err := r.journal.Append(entry); err != nil {
			return err
		}
		r.account(entry)
		r.failures++
		cfg.Logger.Warn("request failed", "req", res.req, "err", res.err)
		if r.failures >= cfg.MaxFailures {
			return fmt.Errorf("%d requests in a row failed, last: %w", r.failures, res.err)
		}
		return nil
	}
	r.failures = 0
	entry.Usage = res.resp.Usage
	if usd, ok := cfg.Cost(res.resp.Usage); ok {
		entry.Cost = usd
	} else {
		r.report.CostKnown = false
	}
	entry.ParseDrops = map[string]int{}
	var decided []CandidateRecord
	for _, ch := range res.resp.Choices {
		entry.Finish = append(entry.Finish, ch.FinishReason)
		parsed := prompts.ParseAlpacaResponse(ch.Text, cfg.NumPrompt, ch.FinishReason)
		for reason, n := range parsed.Dropped {
			entry.ParseDrops[string(reason)] += n
		}
		if len(parsed.Candidates) == 0 && strings.TrimSpace(ch.Text) == "" {
			entry.ParseDrops[ReasonEmptyResponse]++
		}
		for _, c := range parsed.Candidates {
			decided = append(decided, r.decide(c))
		}
	}
	entry.Candidates = decided
	if len(entry.ParseDrops) == 0 {
		entry.ParseDrops = nil
	}
	if err := r.journal.Append(entry); err != nil {
		return err
	}
	r.account(entry)
	if r.barren >= cfg.MaxBarren {
		return fmt.Errorf("%w: the last %d responses added no example (so far: %s)",
			ErrBarren, r.barren, FormatCounts(r.report.Rejected))
	}
	return nil
}

// decide runs Alpaca's filters in Alpaca's order on one candidate; a kept
// candidate joins the pool at once, so later items of the same response are
// compared with it.
func (r *alpacaRun) decide(c prompts.Candidate) CandidateRecord {
	rec := CandidateRecord{Instruction: c.Instruction, Input: c.Input, Output: c.Output, ArgMax: -1}
	if len(r.kept) >= r.cfg.Num {
		rec.Status = StatusSurplus
		return rec
	}
	if reason, ok := r.cfg.Heuristics.Check(c.Instruction); !ok {
		rec.Status, rec.Reason = StatusRejected, string(reason)
		return rec
	}
	keep, maxScore, argmax := r.novelty.Check(c.Instruction)
	rec.MaxRouge, rec.ArgMax = maxScore, argmax
	if !keep {
		rec.Status, rec.Reason = StatusRejected, ReasonTooSimilar
		return rec
	}
	if r.pool != nil {
		for _, m := range r.pool.MostSimilar(c.Instruction, 10) {
			rec.MostSimilar = append(rec.MostSimilar, SimilarEntry{Instruction: m.Text, Score: m.Score})
		}
		avg := r.pool.AverageSimilarity(c.Instruction)
		rec.AvgSimilar = &avg
	}
	rec.Status = StatusKept
	r.keep(rec)
	return rec
}

// FormatCounts writes counts by reason as "a=1 b=2", sorted by reason, for
// logs and messages.
func FormatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// publish writes the dataset and the report; it runs whatever ended the run.
func (r *alpacaRun) publish(runErr error) error {
	rep := &r.report
	switch {
	case runErr == nil:
	case errors.Is(runErr, context.Canceled):
		rep.Status = "interrupted"
	case errors.Is(runErr, teacher.ErrBudget):
		rep.Status = "budget_reached"
	case errors.Is(runErr, ErrBarren):
		rep.Status = "unproductive"
	case errors.Is(runErr, teacher.ErrUnavailable):
		rep.Status = "teacher_unavailable"
	default:
		rep.Status = "failed"
	}
	if runErr != nil {
		rep.Message = runErr.Error()
	}
	return r.writeOutputs()
}

func (r *alpacaRun) writeOutputs() error {
	records := r.kept
	if len(records) > r.cfg.Num {
		records = records[:r.cfg.Num]
	}
	if err := output.WriteAlpacaFile(filepath.Join(r.cfg.OutDir, DataFile), records); err != nil {
		return err
	}
	r.report.Written = len(records)
	return r.report.write(filepath.Join(r.cfg.OutDir, ReportFile))
}

func (r *alpacaRun) snapshot() Snapshot {
	return Snapshot{
		Kept:     len(r.kept),
		Target:   r.cfg.Num,
		Rejected: r.report.Rejected,
		Usage:    r.report.Usage,
		CostUSD:  r.report.CostUSD,
	}
}
