package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// TasksFile holds a Self-Instruct run's tasks in the seed-file format.
const TasksFile = "tasks.jsonl"

// Journal line kinds of the Self-Instruct recipe, one per teacher answer.
const (
	KindSIBootstrap = "si_bootstrap"
	KindSIClassify  = "si_classify"
	KindSIInstances = "si_instances"
)

// Task-level reasons a kept task ends without instances.
const (
	ReasonNoInstances        = "no_valid_instances"
	ReasonConflictingOutputs = "conflicting_outputs"
)

// SelfInstructConfig configures the Self-Instruct recipe (Wang et al.,
// 2022): bootstrap tasks, decide which are classification tasks, write their
// instances output-first or input-first, filter.
type SelfInstructConfig struct {
	Num    int // tasks wanted, each with at least one instance
	OutDir string

	Seeds      []prompts.SeedTask
	SeedSource string
	SeedSHA256 string
	API        teacher.Mode
	Model      string

	// Bootstrapping sampling; the paper's are 0.7, 0.5 and 2 (see
	// DefaultSelfInstructConfig). Zero values are sent as zero.
	Temperature     float64
	TopP            float64
	PresencePenalty float64
	MaxTokens       int // per bootstrap response (default 1024)
	// InstanceMaxTokens bounds an instance response (default 1024: chat
	// models are wordier than the original's 300).
	InstanceMaxTokens int
	PromptTasks       int // tasks shown per bootstrap prompt (default 8)
	MachineTasks      int // of which generated ones, once that many exist (default 2)
	MaxInstances      int // instances kept per task (default 5)

	Threshold  float64
	Tokenizer  filters.Tokenizer
	Heuristics filters.HeuristicOptions

	Seed    int64
	SeedSet bool

	Concurrency     int
	CheckpointEvery time.Duration
	// MaxBarren stops the run after this many consecutive bootstrap
	// responses that keep no task, or tasks that end without instances.
	MaxBarren   int
	MaxFailures int

	Cost     func(teacher.Usage) (usd float64, ok bool)
	Progress Progress
	Logger   *slog.Logger
	Settings map[string]any
}

// siNewPerPrompt is how many new tasks a bootstrap response may add: the
// paper shows 8 and stops at item 16.
const siNewPerPrompt = 7

// DefaultSelfInstructConfig returns the paper's settings.
func DefaultSelfInstructConfig() SelfInstructConfig {
	return SelfInstructConfig{
		API:               teacher.ModeChat,
		Temperature:       0.7,
		TopP:              0.5,
		PresencePenalty:   2,
		MaxTokens:         1024,
		InstanceMaxTokens: 1024,
		PromptTasks:       prompts.SelfInstructPromptTasks,
		MachineTasks:      prompts.SelfInstructMachineTasks,
		MaxInstances:      prompts.SelfInstructMaxInstances,
		Threshold:         0.7,
		Heuristics:        filters.AlpacaHeuristics(),
	}
}

func (c *SelfInstructConfig) defaults() error {
	if c.Num <= 0 {
		return fmt.Errorf("--num must be positive, got %d", c.Num)
	}
	if c.PromptTasks <= 0 {
		c.PromptTasks = prompts.SelfInstructPromptTasks
	}
	if c.MachineTasks < 0 || c.MachineTasks >= c.PromptTasks {
		return fmt.Errorf("%d generated tasks per prompt of %d leaves no room for seed tasks", c.MachineTasks, c.PromptTasks)
	}
	if len(c.Seeds) < c.PromptTasks {
		return fmt.Errorf("%d seed tasks, need at least %d to build a prompt", len(c.Seeds), c.PromptTasks)
	}
	if c.MaxInstances <= 0 {
		c.MaxInstances = prompts.SelfInstructMaxInstances
	}
	if c.API == "" {
		c.API = teacher.ModeChat
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 1024
	}
	if c.InstanceMaxTokens <= 0 {
		c.InstanceMaxTokens = 1024
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

// SIHeader is the journal's first line for this recipe: HeaderEntry plus
// the prompt settings a resumed run must share.
type SIHeader struct {
	HeaderEntry
	PromptTasks  int `json:"prompt_tasks"`
	MachineTasks int `json:"machine_tasks"`
	MaxInstances int `json:"max_instances"`
}

// SIBootstrapEntry journals one bootstrap response and every decision on
// its candidates; kept candidates become tasks, numbered in journal order.
type SIBootstrapEntry struct {
	Kind       string            `json:"kind"`
	Req        int               `json:"req"`
	Time       time.Time         `json:"time"`
	Usage      teacher.Usage     `json:"usage"`
	Cost       float64           `json:"cost"`
	Finish     string            `json:"finish,omitempty"`
	Error      string            `json:"error,omitempty"`
	ParseDrops map[string]int    `json:"parse_drops,omitempty"`
	Candidates []CandidateRecord `json:"candidates,omitempty"`
}

// SIClassifyEntry journals the answer to "Is it classification?" for one
// task (or the failed request that asked it).
type SIClassifyEntry struct {
	Kind             string        `json:"kind"`
	Task             int           `json:"task"`
	Instruction      string        `json:"instruction"`
	Time             time.Time     `json:"time"`
	Usage            teacher.Usage `json:"usage"`
	Cost             float64       `json:"cost"`
	Error            string        `json:"error,omitempty"`
	Answer           string        `json:"answer"`
	IsClassification bool          `json:"is_classification"`
	Unclear          bool          `json:"unclear,omitempty"`
}

// SIInstancesEntry journals one task's instance response and what survived
// the filters (or the failed request that asked for it).
type SIInstancesEntry struct {
	Kind        string             `json:"kind"`
	Task        int                `json:"task"`
	Instruction string             `json:"instruction"`
	OutputFirst bool               `json:"output_first"`
	Time        time.Time          `json:"time"`
	Usage       teacher.Usage      `json:"usage"`
	Cost        float64            `json:"cost"`
	Error       string             `json:"error,omitempty"`
	Finish      string             `json:"finish,omitempty"`
	Answer      string             `json:"answer"`
	Parsed      int                `json:"parsed"`
	Dropped     map[string]int     `json:"dropped,omitempty"`
	Instances   []prompts.Instance `json:"instances"`
	Status      string             `json:"status"` // kept or rejected
	Reason      string             `json:"reason,omitempty"`
}

// SIStages is run.json's per-stage account.
type SIStages struct {
	Bootstrap SIBootstrapStats `json:"bootstrap"`
	Classify  SIClassifyStats  `json:"classify"`
	Instances SIInstanceStats  `json:"instances"`
}

// SIBootstrapStats counts stage 1.
type SIBootstrapStats struct {
	Responses   int            `json:"responses"`
	Failed      int            `json:"failed_requests"`
	CutByLength int            `json:"cut_by_length"`
	Candidates  int            `json:"candidates"`
	Kept        int            `json:"kept"`
	Rejected    map[string]int `json:"rejected"`
	// Unused: kept tasks the run did not need (it reached --num first).
	Unused int `json:"unused"`
}

// SIClassifyStats counts stage 2.
type SIClassifyStats struct {
	Responses         int     `json:"responses"`
	Failed            int     `json:"failed_requests"`
	Classification    int     `json:"classification"`
	NotClassification int     `json:"not_classification"`
	Unclear           int     `json:"unclear"` // counted as not classification, as the original does
	Share             float64 `json:"classification_share"`
}

// SIInstanceStats counts stage 3.
type SIInstanceStats struct {
	Responses    int            `json:"responses"`
	Failed       int            `json:"failed_requests"`
	OutputFirst  int            `json:"output_first"`
	InputFirst   int            `json:"input_first"`
	TasksKept    int            `json:"tasks_kept"`
	TasksDropped map[string]int `json:"tasks_dropped"`
	Parsed       int            `json:"instances_parsed"`
	Kept         int            `json:"instances_kept"`
	Dropped      map[string]int `json:"instances_dropped"`
}

// SelfInstructReport is run.json for this recipe: the common report (Kept
// and Written count tasks) plus the stages and the classification share of
// the tasks written.
type SelfInstructReport struct {
	Report
	InstancesWritten    int      `json:"instances_written"`
	ClassificationTasks int      `json:"classification_tasks"`
	ClassificationShare float64  `json:"classification_share"`
	Stages              SIStages `json:"stages"`
}

// siTask is one task kept at stage 1 and how far it got.
type siTask struct {
	instruction string
	started     bool // stages 2-3 begun (or done)
	classified  bool
	isClf       bool
	resolved    bool // stage 3 journaled
	instances   []prompts.Instance
	inflight    bool
}

type siRun struct {
	cfg     SelfInstructConfig
	journal *Journal
	header  SIHeader
	novelty *filters.Novelty
	tasks   []*siTask
	report  SelfInstructReport

	nextReq     int
	nextIdle    int // first task not started
	complete    int // resolved with instances
	dropped     int // resolved without
	inProgress  int // started, not resolved
	barren      int // consecutive bootstrap responses keeping nothing
	barrenTasks int // consecutive tasks resolved without instances
	failures    int
}

// RunSelfInstruct generates cfg.Num tasks with their instances, resuming
// whatever run is journaled in cfg.OutDir. The stages overlap: a task is
// classified and instantiated as soon as it is kept, and bootstrapping
// stops once the tasks kept are likely to bring the run to its target.
// Every teacher answer is journaled (with its usage) before it counts, so a
// resumed run asks nothing twice that it already has an answer to.
// Cancellation works as in RunAlpaca.
func RunSelfInstruct(ctx, hard context.Context, t teacher.Teacher, cfg SelfInstructConfig) (*SelfInstructReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	lock, err := LockRunDir(cfg.OutDir)
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	defer lock.Unlock()

	r := &siRun{cfg: cfg}
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

func (r *siRun) open() error {
	cfg := &r.cfg
	j, lines, err := openRunJournal(cfg.OutDir, cfg.Logger)
	if err != nil {
		return fmt.Errorf("--out %s: %w", cfg.OutDir, err)
	}
	r.journal = j
	r.novelty = filters.NewNovelty(filters.IndexOptions{Tokenizer: cfg.Tokenizer}, cfg.Threshold)
	for _, s := range cfg.Seeds {
		r.novelty.AddPool(s.Instruction)
	}
	r.report = SelfInstructReport{Report: Report{
		Recipe: "self-instruct", Status: "running", Started: time.Now().UTC(), Settings: cfg.Settings,
		SeedSource: cfg.SeedSource, SeedSHA256: cfg.SeedSHA256, Target: cfg.Num, Rejected: map[string]int{},
		OutDir: cfg.OutDir, Model: cfg.Model, CostKnown: true,
	}}
	st := &r.report.Stages
	st.Bootstrap.Rejected = map[string]int{}
	st.Instances.TasksDropped = map[string]int{}
	st.Instances.Dropped = map[string]int{}

	want := SIHeader{
		HeaderEntry: HeaderEntry{Kind: "header", Version: 1, Recipe: "self-instruct", Created: time.Now().UTC(),
			SeedSHA256: cfg.SeedSHA256, Seed: cfg.Seed, Threshold: cfg.Threshold, Tokenizer: cfg.Tokenizer.String()},
		PromptTasks: cfg.PromptTasks, MachineTasks: cfg.MachineTasks, MaxInstances: cfg.MaxInstances,
	}
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
		lines = lines[1:]
	}
	r.report.Seed = r.header.Seed
	for i, line := range lines {
		if err := r.replayLine(line); err != nil {
			return fmt.Errorf("%s: line %d: %w", j.Path(), i+2, err)
		}
	}
	// Tasks are started in order, so every task up to the last one with a
	// journaled answer was started; one whose answer was in flight at the
	// kill is asked again, the others go on from where they are.
	for i, tk := range r.tasks {
		if tk.classified || tk.resolved {
			r.nextIdle = i + 1
		}
	}
	for _, tk := range r.tasks[:r.nextIdle] {
		tk.started = true
		if !tk.resolved {
			r.inProgress++
		}
	}
	return nil
}

func (r *siRun) checkCompatible(want SIHeader) error {
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
	if h.Recipe == want.Recipe && (h.PromptTasks != want.PromptTasks || h.MachineTasks != want.MachineTasks || h.MaxInstances != want.MaxInstances) {
		diffs = append(diffs, fmt.Sprintf("%d tasks per prompt (%d generated) and %d instances per task, now %d (%d) and %d",
			h.PromptTasks, h.MachineTasks, h.MaxInstances, want.PromptTasks, want.MachineTasks, want.MaxInstances))
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

// replayLine applies one journaled answer exactly as processing it did.
func (r *siRun) replayLine(line json.RawMessage) error {
	var k struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(line, &k); err != nil {
		return err
	}
	switch k.Kind {
	case KindSIBootstrap:
		var e SIBootstrapEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		if e.Req >= r.nextReq {
			r.nextReq = e.Req + 1
		}
		r.applyBootstrap(e)
	case KindSIClassify:
		var e SIClassifyEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		if err := r.checkTaskRef(e.Task, e.Instruction); err != nil {
			return err
		}
		r.applyClassify(e)
	case KindSIInstances:
		var e SIInstancesEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		if err := r.checkTaskRef(e.Task, e.Instruction); err != nil {
			return err
		}
		r.applyInstances(e)
	default:
		return fmt.Errorf("kind %q is not a Self-Instruct journal line: %w", k.Kind, ErrIncompatibleRun)
	}
	return nil
}

func (r *siRun) checkTaskRef(task int, instruction string) error {
	if task < 0 || task >= len(r.tasks) {
		return fmt.Errorf("field \"task\": %d, but only %d tasks were kept before it; the journal is damaged", task, len(r.tasks))
	}
	if r.tasks[task].instruction != instruction {
		return fmt.Errorf("field \"instruction\": task %d is %q here but %q when it was kept; the journal is damaged",
			task, instruction, r.tasks[task].instruction)
	}
	return nil
}

func (r *siRun) account(usage teacher.Usage, cost float64, failed bool) {
	rep := &r.report
	rep.Usage = rep.Usage.Add(usage)
	rep.CostUSD += cost
	if failed {
		rep.FailedRequests++
	} else {
		rep.Responses++
	}
}

func (r *siRun) applyBootstrap(e SIBootstrapEntry) {
	r.account(e.Usage, e.Cost, e.Error != "")
	st := &r.report.Stages.Bootstrap
	if e.Error != "" {
		st.Failed++
		return
	}
	st.Responses++
	if e.Finish == teacher.FinishLength {
		st.CutByLength++
	}
	for reason, n := range e.ParseDrops {
		st.Rejected[reason] += n
		r.report.Rejected[reason] += n
	}
	kept := 0
	for _, c := range e.Candidates {
		st.Candidates++
		r.report.Candidates++
		switch c.Status {
		case StatusKept:
			kept++
			st.Kept++
			r.novelty.Keep(c.Instruction)
			r.tasks = append(r.tasks, &siTask{instruction: c.Instruction})
		case StatusRejected:
			st.Rejected[c.Reason]++
			r.report.Rejected[c.Reason]++
		}
	}
	if kept == 0 {
		r.barren++
	} else {
		r.barren = 0
	}
}

func (r *siRun) applyClassify(e SIClassifyEntry) {
	r.account(e.Usage, e.Cost, e.Error != "")
	st := &r.report.Stages.Classify
	if e.Error != "" {
		st.Failed++
		return
	}
	st.Responses++
	tk := r.tasks[e.Task]
	if tk.classified {
		return // cannot happen: a classified task is not asked again
	}
	tk.classified, tk.isClf = true, e.IsClassification
	switch {
	case e.IsClassification:
		st.Classification++
	default:
		st.NotClassification++
	}
	if e.Unclear {
		st.Unclear++
	}
}

func (r *siRun) applyInstances(e SIInstancesEntry) {
	r.account(e.Usage, e.Cost, e.Error != "")
	st := &r.report.Stages.Instances
	if e.Error != "" {
		st.Failed++
		return
	}
	st.Responses++
	if e.OutputFirst {
		st.OutputFirst++
	} else {
		st.InputFirst++
	}
	st.Parsed += e.Parsed
	for reason, n := range e.Dropped {
		st.Dropped[reason] += n
	}
	tk := r.tasks[e.Task]
	if tk.resolved {
		return
	}
	tk.resolved = true
	if tk.started {
		r.inProgress--
	}
	if e.Status == StatusKept {
		tk.instances = e.Instances
		st.TasksKept++
		st.Kept += len(e.Instances)
		r.complete++
		r.barrenTasks = 0
		r.report.Kept = r.complete
		return
	}
	st.TasksDropped[e.Reason]++
	r.report.Rejected[e.Reason]++
	r.dropped++
	r.barrenTasks++
}

// siJob is one request to make.
type siJob struct {
	kind string // KindSIBootstrap, KindSIClassify, KindSIInstances
	req  int    // bootstrap
	task int    // classify, instances
	clf  bool   // instances: output-first
	next int    // bootstrap: the open item number
}

type siResult struct {
	job  siJob
	resp teacher.Response
	err  error
}

func (r *siRun) loop(ctx, hard context.Context, t teacher.Teacher) error {
	cfg := &r.cfg
	if r.complete >= cfg.Num {
		r.report.Status = "complete"
		return nil
	}
	results := make(chan siResult, cfg.Concurrency)
	inflight, inflightBoot := 0, 0
	nextDispatch, nextProcess := r.nextReq, r.nextReq
	pending := map[int]siResult{}
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

	dispatch := func(job siJob) {
		inflight++
		req := r.buildRequest(job)
		go func() {
			resp, err := t.Complete(hard, req)
			results <- siResult{job: job, resp: resp, err: err}
		}()
	}
	for {
		// As in the Alpaca loop: in-order processing of the bootstrap
		// responses must not let a stalled request open an unbounded window.
		for !stopping && inflight < cfg.Concurrency && inflight+len(pending) < 2*cfg.Concurrency {
			if job, ok := r.nextTaskJob(); ok {
				r.tasks[job.task].inflight = true
				dispatch(job)
				continue
			}
			if r.wantBootstrap(inflightBoot) {
				job := siJob{kind: KindSIBootstrap, req: nextDispatch}
				nextDispatch++
				inflightBoot++
				dispatch(job)
				continue
			}
			break
		}
		if inflight == 0 {
			break
		}
		select {
		case res := <-results:
			inflight--
			if res.job.kind != KindSIBootstrap {
				r.tasks[res.job.task].inflight = false
				if err := r.processTask(res); err != nil {
					stop(err)
				}
			} else {
				// Bootstrap answers are decided in request order, so the
				// novelty filter sees the same sequence on every run. One
				// waiting for an earlier one still counts as in flight for
				// pacing: its tasks are not kept yet.
				pending[res.job.req] = res
				for {
					res, ok := pending[nextProcess]
					if !ok {
						break
					}
					delete(pending, nextProcess)
					nextProcess++
					inflightBoot--
					if err := r.processBootstrap(res); err != nil {
						stop(err)
					}
				}
			}
			if r.complete >= cfg.Num {
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
	case r.complete >= cfg.Num:
		r.report.Status = "complete"
		return nil
	case stopErr == nil:
		stopErr = errors.New("stopped before the target for no recorded reason")
	}
	return stopErr
}

// nextTaskJob picks the most advanced work first (instances, then
// classification, then starting the next kept task), so that tasks finish
// rather than pile up, and starts a task only while the tasks done and in
// progress are short of the target: the run ends with exactly --num.
func (r *siRun) nextTaskJob() (siJob, bool) {
	var classify = -1
	for i := 0; i < r.nextIdle; i++ {
		tk := r.tasks[i]
		if !tk.started || tk.resolved || tk.inflight {
			continue
		}
		if tk.classified {
			return siJob{kind: KindSIInstances, task: i, clf: tk.isClf}, true
		}
		if classify < 0 {
			classify = i
		}
	}
	if classify >= 0 {
		return siJob{kind: KindSIClassify, task: classify}, true
	}
	if r.complete+r.inProgress < r.cfg.Num && r.nextIdle < len(r.tasks) {
		i := r.nextIdle
		r.nextIdle++
		r.tasks[i].started = true
		r.inProgress++
		return siJob{kind: KindSIClassify, task: i}, true
	}
	return siJob{}, false
}

// wantBootstrap paces stage 1: ask for more tasks only while the kept tasks
// not yet started, at the rate tasks have come through stage 3, plus what
// the bootstrap requests in flight usually bring, fall short of the target.
func (r *siRun) wantBootstrap(inflight int) bool {
	need := r.cfg.Num - r.complete - r.inProgress
	if need <= 0 {
		return false
	}
	st := r.report.Stages.Bootstrap
	if inflight >= r.cfg.Concurrency {
		// Answers waiting for an earlier one to be decided count too:
		// without this cap one slow first answer lets the others pile up.
		return false
	}
	if st.Responses == 0 {
		return true
	}
	success := 1.0
	if resolved := r.complete + r.dropped; resolved > 0 {
		success = max(float64(r.complete)/float64(resolved), 0.1)
	}
	perResponse := float64(st.Kept) / float64(st.Responses)
	idle := len(r.tasks) - r.nextIdle
	return (float64(idle)+float64(inflight)*perResponse)*success < float64(need)
}

// bootstrapTasks draws the tasks one prompt shows: PromptTasks-MachineTasks
// seeds and MachineTasks generated ones, or all seeds until that many have
// been generated, shuffled. The draw depends only on the run's seed, the
// request number and the tasks kept so far.
func (r *siRun) bootstrapTasks(req int) []string {
	cfg := &r.cfg
	rng := rand.New(rand.NewPCG(uint64(r.header.Seed), uint64(req)))
	machine := 0
	if len(r.tasks) >= cfg.MachineTasks {
		machine = cfg.MachineTasks
	}
	var out []string
	for _, i := range rng.Perm(len(r.tasks))[:machine] {
		out = append(out, r.tasks[i].instruction)
	}
	for _, i := range rng.Perm(len(cfg.Seeds))[:cfg.PromptTasks-machine] {
		out = append(out, cfg.Seeds[i].Instruction)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (r *siRun) buildRequest(job siJob) teacher.Request {
	cfg := &r.cfg
	var tr teacher.Request
	var text string
	switch job.kind {
	case KindSIBootstrap:
		last := cfg.PromptTasks + siNewPerPrompt
		text = prompts.RenderBootstrapPrompt(r.bootstrapTasks(job.req))
		tr = teacher.Request{MaxTokens: cfg.MaxTokens, Temperature: cfg.Temperature, TopP: cfg.TopP,
			PresencePenalty: cfg.PresencePenalty, Stop: prompts.BootstrapStop(last)}
	case KindSIClassify:
		// Temperature 0 and a few tokens: the answer is one word.
		text = prompts.RenderClassifyPrompt(r.tasks[job.task].instruction)
		tr = teacher.Request{MaxTokens: 8, Temperature: 0, Stop: prompts.ClassifyStop()}
	case KindSIInstances:
		// The original's settings: greedy, with a presence penalty against
		// repeating one example.
		text = prompts.RenderInstancePrompt(r.tasks[job.task].instruction, job.clf)
		tr = teacher.Request{MaxTokens: cfg.InstanceMaxTokens, Temperature: 0, PresencePenalty: 1.5,
			Stop: prompts.InstanceStop(cfg.MaxInstances)}
	}
	tr.Mode = cfg.API
	if cfg.API == teacher.ModeChat {
		tr.Messages = []teacher.Message{{Role: "user", Content: text}}
	} else {
		tr.Prompts = []string{text}
	}
	return tr
}

// failed handles a request that did not produce an answer. It returns
// stop=true with the error that must end the run, or journals the failure.
func (r *siRun) failed(err error, entry any, apply func()) error {
	switch {
	case errors.Is(err, teacher.ErrBudget), errors.Is(err, context.Canceled), errors.Is(err, teacher.ErrUnavailable):
		return err // nothing to journal: not sent, or abandoned
	}
	if jerr := r.journal.Append(entry); jerr != nil {
		return jerr
	}
	apply()
	r.failures++
	r.cfg.Logger.Warn("request failed", "err", err)
	if r.failures >= r.cfg.MaxFailures {
		return fmt.Errorf("%d requests in a row failed, last: %w", r.failures, err)
	}
	return nil
}

func (r *siRun) cost(u teacher.Usage) float64 {
	usd, ok := r.cfg.Cost(u)
	if !ok {
		r.report.CostKnown = false
	}
	return usd
}

func choiceOf(resp teacher.Response) teacher.Choice {
	if len(resp.Choices) == 0 {
		return teacher.Choice{}
	}
	return resp.Choices[0]
}

func (r *siRun) processBootstrap(res siResult) error {
	cfg := &r.cfg
	entry := SIBootstrapEntry{Kind: KindSIBootstrap, Req: res.job.req, Time: time.Now().UTC()}
	if res.err != nil {
		entry.Error = res.err.Error()
		return r.failed(res.err, entry, func() { r.applyBootstrap(entry) })
	}
	r.failures = 0
	entry.Usage, entry.Cost = res.resp.Usage, r.cost(res.resp.Usage)
	ch := choiceOf(res.resp)
	entry.Finish = ch.FinishReason
	next, last := cfg.PromptTasks+1, cfg.PromptTasks+siNewPerPrompt
	parsed := prompts.ParseBootstrapResponse(ch.Text, next, last, ch.FinishReason)
	entry.ParseDrops = map[string]int{}
	for reason, n := range parsed.Dropped {
		entry.ParseDrops[string(reason)] += n
	}
	if len(entry.ParseDrops) == 0 {
		entry.ParseDrops = nil
	}
	// Decide against the pool as it will be after each earlier keep; the
	// pool itself changes only in applyBootstrap, after the journal write.
	var keptHere []string
	for _, inst := range parsed.Instructions {
		rec := CandidateRecord{Instruction: inst, ArgMax: -1}
		if reason, ok := cfg.Heuristics.Check(inst); !ok {
			rec.Status, rec.Reason = StatusRejected, string(reason)
		} else if keep, score, argmax := r.checkNovel(inst, keptHere); !keep {
			rec.MaxRouge, rec.ArgMax = score, argmax
			rec.Status, rec.Reason = StatusRejected, ReasonTooSimilar
		} else {
			rec.MaxRouge, rec.ArgMax = score, argmax
			rec.Status = StatusKept
			keptHere = append(keptHere, inst)
		}
		entry.Candidates = append(entry.Candidates, rec)
	}
	if err := r.journal.Append(entry); err != nil {
		return err
	}
	r.applyBootstrap(entry)
	if r.barren >= cfg.MaxBarren {
		return fmt.Errorf("%w: the last %d bootstrap responses added no task (so far: %s)",
			ErrBarren, r.barren, FormatCounts(r.report.Stages.Bootstrap.Rejected))
	}
	return nil
}

// checkNovel scores inst against the pool and the tasks this response kept
// before it; argmax numbers those after the pool.
func (r *siRun) checkNovel(inst string, keptHere []string) (bool, float64, int) {
	keep, score, argmax := r.novelty.Check(inst)
	pool := r.novelty.Index().Len()
	for i, k := range keptHere {
		if s := filters.RougeLWith(inst, k, r.cfg.Tokenizer); s > score {
			score, argmax = s, pool+i
		}
	}
	return keep && score <= r.cfg.Threshold, score, argmax
}

func (r *siRun) processTask(res siResult) error {
	cfg := &r.cfg
	tk := r.tasks[res.job.task]
	now := time.Now().UTC()
	if res.job.kind == KindSIClassify {
		entry := SIClassifyEntry{Kind: KindSIClassify, Task: res.job.task, Instruction: tk.instruction, Time: now}
		if res.err != nil {
			entry.Error = res.err.Error()
			return r.failed(res.err, entry, func() { r.applyClassify(entry) })
		}
		r.failures = 0
		entry.Usage, entry.Cost = res.resp.Usage, r.cost(res.resp.Usage)
		entry.Answer = choiceOf(res.resp).Text
		yes, ok := prompts.ParseClassification(entry.Answer)
		entry.IsClassification, entry.Unclear = yes, !ok
		if err := r.journal.Append(entry); err != nil {
			return err
		}
		r.applyClassify(entry)
		return nil
	}

	entry := SIInstancesEntry{Kind: KindSIInstances, Task: res.job.task, Instruction: tk.instruction, OutputFirst: res.job.clf, Time: now}
	if res.err != nil {
		entry.Error = res.err.Error()
		return r.failed(res.err, entry, func() { r.applyInstances(entry) })
	}
	r.failures = 0
	entry.Usage, entry.Cost = res.resp.Usage, r.cost(res.resp.Usage)
	ch := choiceOf(res.resp)
	entry.Answer, entry.Finish = ch.Text, ch.FinishReason
	var parsed prompts.InstanceResult
	if res.job.clf {
		parsed = prompts.ParseClassInstances(ch.Text, ch.FinishReason)
	} else {
		parsed = prompts.ParseGenInstances(ch.Text, ch.FinishReason)
	}
	kept, dropped, conflict := prompts.FilterInstances(parsed.Instances, cfg.MaxInstances)
	entry.Parsed = len(parsed.Instances)
	entry.Dropped = map[string]int{}
	for _, m := range []map[prompts.DropReason]int{parsed.Dropped, dropped} {
		for reason, n := range m {
			entry.Dropped[string(reason)] += n
		}
	}
	if len(entry.Dropped) == 0 {
		entry.Dropped = nil
	}
	switch {
	case conflict:
		entry.Status, entry.Reason = StatusRejected, ReasonConflictingOutputs
	case len(kept) == 0:
		entry.Status, entry.Reason = StatusRejected, ReasonNoInstances
	default:
		entry.Status, entry.Instances = StatusKept, kept
	}
	if err := r.journal.Append(entry); err != nil {
		return err
	}
	r.applyInstances(entry)
	if r.barrenTasks >= cfg.MaxBarren {
		return fmt.Errorf("%w: the last %d tasks got no usable instance (so far: %s)",
			ErrBarren, r.barrenTasks, FormatCounts(r.report.Stages.Instances.TasksDropped))
	}
	return nil
}

// publish writes the outputs and the report, whatever ended the run.
func (r *siRun) publish(runErr error) error {
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

// finished returns the tasks that have instances, in the order they were
// kept, at most --num of them.
func (r *siRun) finished() []int {
	var out []int
	for i, tk := range r.tasks {
		if tk.resolved && len(tk.instances) > 0 && len(out) < r.cfg.Num {
			out = append(out, i)
		}
	}
	return out
}

func (r *siRun) writeOutputs() error {
	done := r.finished()
	var records []output.Record
	seeds := make([]prompts.SeedTask, 0, len(done))
	clf := 0
	for _, i := range done {
		tk := r.tasks[i]
		for _, in := range tk.instances {
			records = append(records, output.Record{Example: output.Example{Instruction: tk.instruction, Input: in.Input, Output: in.Output}})
		}
		if tk.isClf {
			clf++
		}
		seeds = append(seeds, prompts.SeedTask{
			ID: fmt.Sprintf("machine_task_%d", i), Name: taskName(tk.instruction),
			Instruction: tk.instruction, Instances: tk.instances, IsClassification: tk.isClf,
		})
	}
	if err := output.WriteAlpacaFile(filepath.Join(r.cfg.OutDir, DataFile), records); err != nil {
		return err
	}
	if err := writeTasks(filepath.Join(r.cfg.OutDir, TasksFile), seeds); err != nil {
		return err
	}
	rep := &r.report
	rep.Written = len(done)
	rep.InstancesWritten = len(records)
	rep.ClassificationTasks = clf
	rep.ClassificationShare = 0
	if len(done) > 0 {
		rep.ClassificationShare = float64(clf) / float64(len(done))
	}
	cs := &rep.Stages.Classify
	if n := cs.Classification + cs.NotClassification; n > 0 {
		cs.Share = float64(cs.Classification) / float64(n)
	}
	unused := 0
	for _, tk := range r.tasks {
		if !tk.started {
			unused++
		}
	}
	rep.Stages.Bootstrap.Unused = unused
	rep.Updated = time.Now().UTC()
	rep.TotalTokens = rep.Usage.Total()
	return output.WriteFileAtomic(filepath.Join(r.cfg.OutDir, ReportFile), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	})
}

// writeTasks writes tasks in the seed-file format (one JSON object a line,
// Self-Instruct's keys and order), so the file can seed another run.
func writeTasks(path string, tasks []prompts.SeedTask) error {
	return output.WriteFileAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for _, t := range tasks {
			if err := enc.Encode(t); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}

// taskName makes a seed-style name from the first words of an instruction.
func taskName(instruction string) string {
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(instruction), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		words = append(words, w)
		if len(words) == 5 {
			break
		}
	}
	return strings.Join(words, "_")
}

func (r *siRun) snapshot() Snapshot {
	cs := r.report.Stages.Classify
	share := 0.0
	if n := cs.Classification + cs.NotClassification; n > 0 {
		share = float64(cs.Classification) / float64(n)
	}
	classifying, instancing := 0, 0
	for _, tk := range r.tasks[:r.nextIdle] {
		switch {
		case tk.resolved || !tk.started:
		case tk.classified:
			instancing++
		default:
			classifying++
		}
	}
	return Snapshot{
		Kept:     r.complete,
		Target:   r.cfg.Num,
		Rejected: r.report.Rejected,
		Usage:    r.report.Usage,
		CostUSD:  r.report.CostUSD,
		Stage: fmt.Sprintf("bootstrap %d kept | classify %d (%.0f%% clf) | instances %d",
			r.report.Stages.Bootstrap.Kept, classifying, 100*share, instancing),
	}
}
