package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// TranslateConfig configures a translation run.
type TranslateConfig struct {
	InPath  string // the dataset to translate (JSON list or JSONL of records)
	OutPath string // the translated dataset, same shape as the input
	// WorkDir holds the journal and the lock (default OutPath + ".work").
	WorkDir string
	// ReportPath is translation_report.json (default next to OutPath).
	ReportPath string

	From, To       string // language codes or names
	Keep           []string
	Glossary       prompts.Glossary
	GlossarySHA256 string
	KeepSource     bool // add instruction_source, input_source, output_source
	RetryFailed    bool // try the examples an earlier session gave up on again

	Model       string
	Temperature float64
	MaxTokens   int // per request; 0 sizes it from the request

	Concurrency int
	// ExampleAttempts is how many whole-example requests an example gets
	// before it falls back to one request per field (default 2).
	ExampleAttempts int
	// FieldAttempts is how many requests each field gets in the fallback (default 4).
	FieldAttempts int
	// MaxFailures stops the run after this many examples in a row were given up (default 10).
	MaxFailures int

	Cost     func(teacher.Usage) (usd float64, ok bool)
	Progress Progress
	Logger   *slog.Logger
	Settings map[string]any
}

// InputError is a problem with the user's input (a flag, the dataset, the
// glossary) rather than with the run; the CLI exits with its bad-input code.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// TranslationReportFile is the report's default name, next to the output.
const TranslationReportFile = "translation_report.json"

func (c *TranslateConfig) defaults() error {
	if c.InPath == "" {
		return errors.New("--in is required")
	}
	if c.To == "" {
		return errors.New("--to is required (a language code such as pt, or a name)")
	}
	if c.From == "" {
		c.From = "en"
	}
	if c.OutPath == "" {
		c.OutPath = DefaultTranslateOut(c.InPath, c.To)
	}
	if sameFile(c.InPath, c.OutPath) {
		return fmt.Errorf("--out %s is the input file; choose another", c.OutPath)
	}
	if c.WorkDir == "" {
		c.WorkDir = c.OutPath + ".work"
	}
	if c.ReportPath == "" {
		c.ReportPath = filepath.Join(filepath.Dir(c.OutPath), TranslationReportFile)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.ExampleAttempts <= 0 {
		c.ExampleAttempts = 2
	}
	if c.FieldAttempts <= 0 {
		c.FieldAttempts = 4
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 10
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

func sameFile(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == bb {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// DefaultTranslateOut is where --out defaults to: alpaca_data.json
// translated to pt becomes alpaca_data.pt.json beside it.
func DefaultTranslateOut(in, to string) string {
	ext := filepath.Ext(in)
	return strings.TrimSuffix(in, ext) + "." + strings.ToLower(strings.TrimSpace(to)) + ext
}

// TranslationFailure is an example given up on.
type TranslationFailure struct {
	Index  int    `json:"index"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// TranslationReport is translation_report.json, rebuilt from the journal so
// a resumed run reports the totals of all its sessions.
type TranslationReport struct {
	Status         string               `json:"status"`
	Message        string               `json:"message,omitempty"`
	Started        time.Time            `json:"started"`
	Updated        time.Time            `json:"updated"`
	Resumed        bool                 `json:"resumed"`
	Input          string               `json:"input"`
	InputSHA256    string               `json:"input_sha256"`
	Output         string               `json:"output"`
	WorkDir        string               `json:"work_dir"`
	From           string               `json:"from"`
	To             string               `json:"to"`
	Model          string               `json:"model"`
	Settings       map[string]any       `json:"settings,omitempty"`
	Examples       int                  `json:"examples"`
	Translated     int                  `json:"translated"`
	Unchanged      int                  `json:"unchanged"` // nothing in them to translate
	Failed         int                  `json:"failed"`
	Remaining      int                  `json:"remaining"`
	Written        int                  `json:"written"`
	Requests       int                  `json:"requests"`
	FailedRequests int                  `json:"failed_requests"`
	Retries        int                  `json:"retries"`
	Fallbacks      int                  `json:"fallbacks"`
	Invalid        map[string]int       `json:"invalid"`
	Failures       []TranslationFailure `json:"failures"`
	ProtectedSpans int                  `json:"protected_spans"`
	GlossaryMisses int                  `json:"glossary_misses,omitempty"`
	Usage          teacher.Usage        `json:"usage"`
	// The usage's parts again at the top level, for scripts that read them.
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	CostKnown        bool    `json:"cost_known"`
}

func (rep *TranslationReport) write(path string) error {
	rep.Updated = time.Now().UTC()
	rep.TotalTokens = rep.Usage.Total()
	rep.PromptTokens, rep.CompletionTokens = rep.Usage.PromptTokens, rep.Usage.CompletionTokens
	return output.WriteFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	})
}

// translateHeader is the first journal line: what a resumed run must agree with.
type translateHeader struct {
	Kind           string    `json:"kind"` // "header"
	Version        int       `json:"version"`
	Recipe         string    `json:"recipe"` // "translate"
	Created        time.Time `json:"created"`
	InputSHA256    string    `json:"input_sha256"`
	Examples       int       `json:"examples"`
	From           string    `json:"from"`
	To             string    `json:"to"`
	Keep           []string  `json:"keep,omitempty"`
	GlossarySHA256 string    `json:"glossary_sha256,omitempty"`
}

// translateEntry is the journal line of one paid (or failed) request.
type translateEntry struct {
	Kind  string `json:"kind"` // "response"
	Idx   int    `json:"idx"`
	Mode  string `json:"mode"` // "example" or "field"
	Field string `json:"field,omitempty"`
	// Raw marks the last-resort request of a field whose placeholders kept
	// coming back broken: the field is sent as it is and every protected
	// span is checked in the answer instead.
	Raw     bool          `json:"raw,omitempty"`
	Attempt int           `json:"attempt"`
	Time    time.Time     `json:"time"`
	Usage   teacher.Usage `json:"usage"`
	Cost    float64       `json:"cost"`
	Finish  string        `json:"finish,omitempty"`
	Error   string        `json:"error,omitempty"`   // the request failed
	Invalid string        `json:"invalid,omitempty"` // the answer was rejected, for this reason
	Detail  string        `json:"detail,omitempty"`
	// Text holds the validated translations (spans restored) of the fields
	// this request carried.
	Text map[string]string `json:"text,omitempty"`
	// Translation is set on the response that completed the example.
	Translation map[string]string `json:"translation,omitempty"`
	// Failed is set on the response after which the example was given up.
	Failed string `json:"failed,omitempty"`
}

const (
	kindResponse = "response"
	kindFailed   = "failed" // an example given up without a request
	modeExample  = "example"
	modeField    = "field"
	numFields    = 3
)

// trExample is one input example, masked once at load.
type trExample struct {
	line   int
	fields []objField
	src    [numFields]string
	has    [numFields]bool   // the field is in the source record
	masked [numFields]string // placeholders numbered across the example
	// local holds each field masked on its own, placeholders from ⟦0⟧: a
	// per-field request keeps its ids short (a model or a word mapping that
	// reverses or splits "⟦12⟧" cannot then break it).
	local      [numFields]string
	localSpans [numFields][]prompts.Span
	spans      [numFields][]prompts.Span
	send       []int // fields that need translating
	glossed    prompts.Glossary
}

// trState is what the journal says about one example.
type trState struct {
	exAttempts    int
	fieldAttempts [numFields]int
	fieldDone     [numFields]bool
	fieldText     [numFields]string
	fallback      bool
	rawTried      [numFields]bool
	done          bool
	result        [numFields]string
	failed        string
	lastReason    string
}

type translateRun struct {
	cfg      TranslateConfig
	journal  *Journal
	data     *output.Dataset
	examples []trExample
	header   translateHeader
	from, to string

	mu          sync.Mutex
	states      []trState
	report      TranslationReport
	consecFails int
}

// RunTranslate translates every example of cfg.InPath, resuming whatever
// run is journaled in cfg.WorkDir, and writes cfg.OutPath in the input's
// order once every example is translated or given up. ctx cancellation is a
// graceful stop (requests in flight finish and are journaled); hard
// cancellation abandons them.
func RunTranslate(ctx, hard context.Context, t teacher.Teacher, cfg TranslateConfig) (*TranslationReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, &InputError{err}
	}
	r := &translateRun{cfg: cfg}
	if err := r.load(); err != nil {
		return nil, &InputError{err}
	}
	lock, err := LockRunDir(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer lock.Unlock()
	if err := r.openJournal(); err != nil {
		return nil, err
	}
	defer r.journal.Close()

	err = r.loop(ctx, hard, t)
	if perr := r.publish(err); perr != nil && err == nil {
		err = perr
	}
	return &r.report, err
}

// load reads and masks the input; every problem names the file, line and field.
func (r *translateRun) load() error {
	cfg := &r.cfg
	raw, err := os.ReadFile(cfg.InPath)
	if err != nil {
		return fmt.Errorf("--in: %w", err)
	}
	d, err := output.ParseDataset(cfg.InPath, raw)
	if err != nil {
		return err
	}
	if d.Shape == output.ShapeJSONStrings {
		return fmt.Errorf("%s: a list of strings; translate wants records with instruction, input and output", cfg.InPath)
	}
	r.data = d
	prot, err := prompts.NewProtector(cfg.Keep)
	if err != nil {
		return err
	}
	r.from, r.to = prompts.LanguageName(cfg.From), prompts.LanguageName(cfg.To)
	r.examples = make([]trExample, len(d.Items))
	spans := 0
	for i, it := range d.Items {
		ex := &r.examples[i]
		ex.line = it.Line
		ex.fields, err = parseObjectFields(it.Raw)
		if err != nil {
			return fmt.Errorf("%s:%d: item %d: %w", cfg.InPath, it.Line, it.Index, err)
		}
		for f, name := range prompts.TranslateFields {
			k := slices.IndexFunc(ex.fields, func(o objField) bool { return o.Key == name })
			if k >= 0 && slices.IndexFunc(ex.fields[k+1:], func(o objField) bool { return o.Key == name }) >= 0 {
				// JSON readers disagree on which one counts.
				return fmt.Errorf("%s:%d: item %d: field %q appears twice", cfg.InPath, it.Line, it.Index, name)
			}
			if k < 0 {
				if name == "input" {
					continue // Alpaca writes "" for no input; some datasets leave it out
				}
				return fmt.Errorf("%s:%d: item %d: no field %q", cfg.InPath, it.Line, it.Index, name)
			}
			if err := json.Unmarshal(ex.fields[k].Value, &ex.src[f]); err != nil {
				return fmt.Errorf("%s:%d: item %d: field %q is a %s, want a string", cfg.InPath, it.Line, it.Index, name, jsonKind(ex.fields[k].Value))
			}
			ex.has[f] = true
		}
		next := 0
		for f := range numFields {
			ex.masked[f], ex.spans[f] = prot.Mask(ex.src[f], next)
			ex.local[f], ex.localSpans[f] = prot.Mask(ex.src[f], 0)
			next += len(ex.spans[f])
			spans += len(ex.spans[f])
			if strings.TrimSpace(ex.src[f]) != "" && prompts.NeedsTranslation(ex.masked[f]) {
				ex.send = append(ex.send, f)
			}
		}
		if len(cfg.Glossary) > 0 {
			ex.glossed = cfg.Glossary.Relevant(ex.src[:]...)
		}
	}
	r.states = make([]trState, len(r.examples))
	r.header = translateHeader{Kind: "header", Version: 1, Recipe: "translate", Created: time.Now().UTC(),
		InputSHA256: sha256Hex(raw), Examples: len(r.examples), From: cfg.From, To: cfg.To,
		Keep: cfg.Keep, GlossarySHA256: cfg.GlossarySHA256}
	r.report = TranslationReport{
		Status: "running", Started: time.Now().UTC(), Input: cfg.InPath, InputSHA256: r.header.InputSHA256,
		Output: cfg.OutPath, WorkDir: cfg.WorkDir, From: cfg.From, To: cfg.To, Model: cfg.Model,
		Settings: cfg.Settings, Examples: len(r.examples), Invalid: map[string]int{},
		Failures: []TranslationFailure{}, ProtectedSpans: spans, CostKnown: true,
	}
	return nil
}

func jsonKind(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "":
		return "nothing"
	case s[0] == '{':
		return "object"
	case s[0] == '[':
		return "list"
	case s[0] == 't' || s[0] == 'f':
		return "boolean"
	case s[0] == 'n':
		return "null"
	}
	return "number"
}

func (r *translateRun) openJournal() error {
	cfg := &r.cfg
	j, lines, err := openRunJournal(cfg.WorkDir, cfg.Logger)
	if err != nil {
		return err
	}
	r.journal = j
	if len(lines) == 0 {
		return j.Append(r.header)
	}
	var h translateHeader
	if err := json.Unmarshal(lines[0], &h); err != nil || h.Kind != "header" || h.Recipe != "translate" {
		return fmt.Errorf("%s: line 1 is not a translation journal header: %w", j.Path(), ErrIncompatibleRun)
	}
	var diffs []string
	if h.InputSHA256 != r.header.InputSHA256 {
		diffs = append(diffs, "the input file changed (sha256 "+short(h.InputSHA256)+", now "+short(r.header.InputSHA256)+")")
	}
	if !strings.EqualFold(h.To, r.header.To) || !strings.EqualFold(h.From, r.header.From) {
		diffs = append(diffs, fmt.Sprintf("--from %s --to %s, now --from %s --to %s", h.From, h.To, r.header.From, r.header.To))
	}
	if !slices.Equal(h.Keep, r.header.Keep) {
		diffs = append(diffs, fmt.Sprintf("--keep %q, now %q", h.Keep, r.header.Keep))
	}
	if h.GlossarySHA256 != r.header.GlossarySHA256 {
		diffs = append(diffs, "the glossary changed")
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s holds a translation started with %s; use another --out or the same settings: %w",
			cfg.WorkDir, strings.Join(diffs, "; "), ErrIncompatibleRun)
	}
	r.header = h
	r.report.Resumed = true
	for i, line := range lines[1:] {
		var e translateEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%s: line %d: %w", j.Path(), i+2, err)
		}
		if e.Kind != kindResponse && e.Kind != kindFailed {
			continue
		}
		if e.Idx < 0 || e.Idx >= len(r.examples) {
			return fmt.Errorf("%s: line %d: example %d is not in the input: %w", j.Path(), i+2, e.Idx, ErrIncompatibleRun)
		}
		r.apply(e)
	}
	if cfg.RetryFailed {
		for i := range r.states {
			if r.states[i].failed != "" {
				r.states[i] = trState{}
			}
		}
	}
	return nil
}

func fieldIndex(name string) int { return slices.Index(prompts.TranslateFields, name) }

// apply adds one journaled response to the state and the report: replay on
// resume and live processing go through it alike.
func (r *translateRun) apply(e translateEntry) {
	if e.Kind == kindFailed {
		r.states[e.Idx].failed = e.Failed
		return
	}
	account(&r.report, e)
	applyState(&r.states[e.Idx], e)
}

func account(rep *TranslationReport, e translateEntry) {
	rep.Usage = rep.Usage.Add(e.Usage)
	rep.CostUSD += e.Cost
	if e.Error != "" {
		rep.FailedRequests++
	} else {
		rep.Requests++
	}
	if e.Attempt > 1 {
		rep.Retries++
	}
	if e.Invalid != "" {
		rep.Invalid[e.Invalid]++
	}
}

func applyState(st *trState, e translateEntry) {
	switch {
	case e.Error != "":
		st.lastReason = "request failed: " + e.Error
	case e.Invalid != "":
		st.lastReason = e.Invalid + ": " + e.Detail
	}
	switch e.Mode {
	case modeExample:
		st.exAttempts++
		for k, v := range e.Text {
			if f := fieldIndex(k); f >= 0 {
				st.fieldDone[f], st.fieldText[f] = true, v
			}
		}
	case modeField:
		st.fallback = true
		if f := fieldIndex(e.Field); f >= 0 {
			st.fieldAttempts[f]++
			st.rawTried[f] = st.rawTried[f] || e.Raw
			if v, ok := e.Text[e.Field]; ok {
				st.fieldDone[f], st.fieldText[f] = true, v
			}
		}
	}
	if e.Translation != nil {
		st.done = true
		for f, name := range prompts.TranslateFields {
			st.result[f] = e.Translation[name]
		}
	}
	if e.Failed != "" {
		st.failed = e.Failed
	}
}

// step is what an example needs next.
type step struct {
	mode  string
	field int    // with modeField
	raw   bool   // with modeField: send the field unmasked
	fail  string // give up, for this reason
}

func (r *translateRun) next(ex *trExample, st *trState) step {
	if len(ex.send) == 0 || r.complete(ex, st) {
		return step{}
	}
	if !st.fallback && st.exAttempts < r.cfg.ExampleAttempts {
		return step{mode: modeExample}
	}
	for _, f := range ex.send {
		if st.fieldDone[f] {
			continue
		}
		if st.fieldAttempts[f] >= r.cfg.FieldAttempts {
			if !st.rawTried[f] && len(ex.localSpans[f]) > 0 && strings.HasPrefix(st.lastReason, prompts.ReasonSpanBroken) {
				return step{mode: modeField, field: f, raw: true}
			}
			return step{fail: fmt.Sprintf("field %s failed %d times after %d whole-example attempts; last: %s",
				prompts.TranslateFields[f], st.fieldAttempts[f], st.exAttempts, st.lastReason)}
		}
		return step{mode: modeField, field: f}
	}
	return step{}
}

func (r *translateRun) complete(ex *trExample, st *trState) bool {
	for _, f := range ex.send {
		if !st.fieldDone[f] {
			return false
		}
	}
	return true
}

// errStopped ends a worker whose run is stopping.
var errStopped = errors.New("stopped")

func (r *translateRun) loop(ctx, hard context.Context, t teacher.Teacher) error {
	cfg := &r.cfg
	var todo []int
	for i := range r.examples {
		st := &r.states[i]
		if !st.done && st.failed == "" && len(r.examples[i].send) > 0 {
			todo = append(todo, i)
		}
	}
	r.snapshotProgress()
	if len(todo) == 0 {
		cfg.Progress.Done()
		return nil
	}
	var (
		stopOnce sync.Once
		stopErr  error
	)
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	halt := func(err error) {
		stopOnce.Do(func() { stopErr = err; stop(err) })
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := range jobs {
				if err := r.translateExample(stopCtx, hard, t, idx); err != nil {
					if !errors.Is(err, errStopped) {
						halt(err)
					}
				}
				r.snapshotProgress()
			}
		}()
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
dispatch:
	for _, idx := range todo {
		for sent := false; !sent; {
			select {
			case jobs <- idx:
				sent = true
			case <-tick.C:
				r.checkpoint()
			case <-stopCtx.Done():
				break dispatch
			}
		}
	}
	close(jobs)
	wg.Wait()
	cfg.Progress.Done()
	if stopErr != nil {
		return stopErr
	}
	if ctx.Err() != nil {
		return context.Canceled
	}
	return nil
}

// translateExample drives one example to done or given up, journaling every
// response before it counts.
func (r *translateRun) translateExample(ctx, hard context.Context, t teacher.Teacher, idx int) error {
	ex := &r.examples[idx]
	for {
		r.mu.Lock()
		st := r.states[idx]
		r.mu.Unlock()
		if st.done || st.failed != "" {
			return nil
		}
		s := r.next(ex, &st)
		if s.fail == "" && s.mode == "" {
			// Every field is done: only the final record is missing (all
			// fields were empty or kept as they are, nothing to send).
			return nil
		}
		if s.fail != "" {
			// Out of attempts without a response saying so: a resumed run
			// with fewer --field-attempts than the one that started.
			return r.giveUp(ex, idx, s.fail)
		}
		if ctx.Err() != nil {
			return errStopped
		}
		e := translateEntry{Kind: "response", Idx: idx, Mode: s.mode, Raw: s.raw}
		var keys []int
		v := viewExample
		note := retryNote(&st, 0)
		if s.mode == modeExample {
			keys = ex.send
			e.Attempt = st.exAttempts + 1
			note = retryNote(&st, e.Attempt)
		} else {
			keys = []int{s.field}
			e.Field = prompts.TranslateFields[s.field]
			e.Attempt = st.fieldAttempts[s.field] + 1
			v = viewField
			if s.raw {
				v = viewRaw
				note = "the ⟦n⟧ placeholders kept coming back damaged, so this time the text is sent as it is: " +
					"copy code, URLs, e-mail addresses, numbers with units and {placeholders} exactly as they are"
			}
		}
		req, err := r.request(ex, keys, note, v)
		if err != nil {
			return err
		}
		resp, err := t.Complete(hard, req)
		e.Time = time.Now().UTC()
		if err != nil {
			switch {
			case errors.Is(err, teacher.ErrBudget), errors.Is(err, teacher.ErrUnavailable),
				errors.Is(err, context.Canceled), hard.Err() != nil:
				return err
			}
			e.Error = err.Error()
			r.cfg.Logger.Warn("translation request failed", "example", idx, "mode", s.mode, "attempt", e.Attempt, "err", err)
		} else {
			e.Usage = resp.Usage
			if usd, ok := r.cfg.Cost(resp.Usage); ok {
				e.Cost = usd
			} else {
				r.mu.Lock()
				r.report.CostKnown = false
				r.mu.Unlock()
			}
			var ch teacher.Choice
			if len(resp.Choices) > 0 {
				ch = resp.Choices[0]
			}
			e.Finish = ch.FinishReason
			text, verr := r.validate(ex, keys, ch, v)
			var te *prompts.TranslateError
			switch {
			case errors.As(verr, &te):
				e.Invalid, e.Detail = te.Reason, te.Detail
			case verr != nil:
				return verr
			default:
				e.Text = text
			}
		}
		if err := r.commit(ex, idx, e); err != nil {
			return err
		}
	}
}

// giveUp journals that an example is given up without a request.
func (r *translateRun) giveUp(ex *trExample, idx int, reason string) error {
	e := translateEntry{Kind: kindFailed, Idx: idx, Time: time.Now().UTC(), Failed: reason}
	if err := r.journal.Append(e); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apply(e)
	r.cfg.Logger.Warn("gave up on an example", "example", idx, "line", ex.line, "reason", reason)
	return nil
}

// commit decides whether e finishes the example, journals it, then applies it.
func (r *translateRun) commit(ex *trExample, idx int, e translateEntry) error {
	// A copy of the state tells whether this response completes the
	// example or was its last chance, so the journal line says so.
	r.mu.Lock()
	after := r.states[idx]
	r.mu.Unlock()
	applyState(&after, e)
	if r.complete(ex, &after) {
		e.Translation = r.finalText(ex, &after)
	} else if s := r.next(ex, &after); s.fail != "" {
		e.Failed = s.fail
	}
	if err := r.journal.Append(e); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apply(e)
	switch {
	case e.Translation != nil:
		r.consecFails = 0
	case e.Failed != "":
		r.consecFails++
		r.cfg.Logger.Warn("gave up on an example", "example", idx, "line", ex.line, "reason", e.Failed)
		if r.consecFails >= r.cfg.MaxFailures {
			return fmt.Errorf("%w: the last %d examples could not be translated (last: %s)", ErrBarren, r.consecFails, e.Failed)
		}
	}
	return nil
}

// finalText is the translated example: the translations of the fields sent,
// and the source of those that had nothing to translate.
func (r *translateRun) finalText(ex *trExample, st *trState) map[string]string {
	out := make(map[string]string, numFields)
	for f, name := range prompts.TranslateFields {
		out[name] = ex.src[f]
		if st.fieldDone[f] && slices.Contains(ex.send, f) {
			out[name] = st.fieldText[f]
		}
	}
	return out
}

// retryNote is the reason the previous answer was rejected, for any request
// but an example's first (attempt 0: a per-field request after the first).
func retryNote(st *trState, attempt int) string {
	if attempt == 1 {
		return ""
	}
	return st.lastReason
}

// view is how a request shows the fields: masked with the example's
// numbering, masked field by field, or as they are.
type view int

const (
	viewExample view = iota
	viewField
	viewRaw
)

func (ex *trExample) text(f int, v view) (string, []prompts.Span) {
	switch v {
	case viewField:
		return ex.local[f], ex.localSpans[f]
	case viewRaw:
		return ex.src[f], ex.localSpans[f]
	}
	return ex.masked[f], ex.spans[f]
}

// request builds the chat request for the given fields of ex.
func (r *translateRun) request(ex *trExample, fields []int, retry string, v view) (teacher.Request, error) {
	p := prompts.TranslatePrompt{From: r.from, To: r.to, Glossary: ex.glossed, Retry: retry}
	for _, f := range fields {
		text, _ := ex.text(f, v)
		p.Keys = append(p.Keys, prompts.TranslateFields[f])
		p.Values = append(p.Values, text)
	}
	system, user, err := prompts.RenderTranslate(p)
	if err != nil {
		return teacher.Request{}, err
	}
	maxTokens := r.cfg.MaxTokens
	if maxTokens <= 0 {
		// A translation is rarely more than twice its source in tokens,
		// even into scripts a tokenizer splits finely; the slack covers the
		// JSON around it.
		maxTokens = 3*teacher.EstimateTokens(user) + 256
	}
	return teacher.Request{
		Mode:               teacher.ModeChat,
		Messages:           []teacher.Message{{Role: "system", Content: system}, {Role: "user", Content: user}},
		MaxTokens:          maxTokens,
		Temperature:        r.cfg.Temperature,
		ResponseFormatJSON: true,
	}, nil
}

// validate checks one answer: the same fields back and nothing added, every
// protected span back exactly once, nothing left empty that was not empty.
func (r *translateRun) validate(ex *trExample, fields []int, ch teacher.Choice, view view) (map[string]string, error) {
	if ch.FinishReason == teacher.FinishLength {
		return nil, &prompts.TranslateError{Reason: prompts.ReasonTruncated, Detail: "the answer hit max_tokens"}
	}
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = prompts.TranslateFields[f]
	}
	// Fields not sent because they are empty may come back empty.
	var emptyOK []string
	for f, name := range prompts.TranslateFields {
		if strings.TrimSpace(ex.src[f]) == "" {
			emptyOK = append(emptyOK, name)
		}
	}
	got, err := prompts.ParseTranslateResponse(ch.Text, keys, emptyOK...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		name := prompts.TranslateFields[f]
		if strings.TrimSpace(got[name]) == "" {
			return nil, &prompts.TranslateError{Reason: prompts.ReasonEmptyTranslation, Detail: "field " + name + " came back empty"}
		}
		_, spans := ex.text(f, view)
		var text string
		var err error
		if view == viewRaw {
			text, err = spansKept(got[name], ex.src[f], spans)
		} else {
			text, err = prompts.Unmask(got[name], spans)
		}
		if err != nil {
			var te *prompts.TranslateError
			if errors.As(err, &te) {
				return nil, &prompts.TranslateError{Reason: te.Reason, Detail: "field " + name + ": " + te.Detail}
			}
			return nil, err
		}
		out[name] = text
	}
	return out, nil
}

// spansKept checks an answer sent without placeholders: every protected
// span of the source must occur in it verbatim, as often as in the source.
func spansKept(translated, src string, spans []prompts.Span) (string, error) {
	for _, sp := range spans {
		if want := strings.Count(src, sp.Text); strings.Count(translated, sp.Text) < want {
			return "", &prompts.TranslateError{Reason: prompts.ReasonSpanBroken,
				Detail: fmt.Sprintf("%s %q changed (sent without placeholders)", sp.Kind, sp.Text)}
		}
	}
	return translated, nil
}

func (r *translateRun) snapshotProgress() {
	r.mu.Lock()
	done, failed := r.counts()
	s := Snapshot{Kept: done + failed, Target: len(r.examples), Rejected: maps(r.report.Invalid),
		Usage: r.report.Usage, CostUSD: r.report.CostUSD, Stage: "translate"}
	r.mu.Unlock()
	r.cfg.Progress.Update(s)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// counts returns how many examples are finished (translated or with nothing
// to translate) and how many were given up.
func (r *translateRun) counts() (done, failed int) {
	for i := range r.states {
		st := &r.states[i]
		switch {
		case st.failed != "":
			failed++
		case st.done || len(r.examples[i].send) == 0:
			done++
		}
	}
	return done, failed
}

// tally recounts the report's per-example numbers from the states; r.mu held.
func (r *translateRun) tally() {
	rep := &r.report
	rep.Translated, rep.Unchanged, rep.Failed, rep.GlossaryMisses, rep.Fallbacks = 0, 0, 0, 0, 0
	rep.Failures = []TranslationFailure{}
	for i := range r.states {
		st, ex := &r.states[i], &r.examples[i]
		switch {
		case st.failed != "":
			rep.Failed++
			rep.Failures = append(rep.Failures, TranslationFailure{Index: i, Line: ex.line, Reason: st.failed})
		case len(ex.send) == 0:
			rep.Unchanged++
		case st.done:
			rep.Translated++
			if len(ex.glossed) > 0 {
				rep.GlossaryMisses += len(ex.glossed.Missing(st.result[:]...))
			}
		}
		if st.fallback {
			rep.Fallbacks++
		}
	}
	rep.Remaining = len(r.examples) - rep.Translated - rep.Unchanged - rep.Failed
}

// checkpoint writes the report of a run in progress, for whoever watches a
// long translation (the dataset itself is written only when complete).
func (r *translateRun) checkpoint() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tally()
	r.report.Status = "running"
	if err := r.report.write(r.cfg.ReportPath); err != nil {
		r.cfg.Logger.Warn("could not write the report", "err", err)
	}
}

// publish writes the report, and the dataset once every example is finished.
func (r *translateRun) publish(runErr error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tally()
	rep := &r.report
	switch {
	case runErr == nil && rep.Remaining == 0:
		rep.Status = "complete"
	case runErr == nil:
		rep.Status = "failed"
		runErr = fmt.Errorf("%d examples left untranslated for no recorded reason", rep.Remaining)
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
	rep.Message = ""
	if runErr != nil {
		rep.Message = runErr.Error()
	}
	if rep.Status == "complete" {
		if err := r.writeDataset(); err != nil {
			rep.Status, rep.Message = "failed", err.Error()
			rep.write(r.cfg.ReportPath)
			return err
		}
	}
	return rep.write(r.cfg.ReportPath)
}

// writeDataset writes one record per input record, in order: the source
// record with its three fields translated (other fields kept), the source
// texts alongside with KeepSource, and the source text where translation
// was given up.
func (r *translateRun) writeDataset() error {
	items := make([]output.DatasetItem, len(r.examples))
	for i := range r.examples {
		ex, st := &r.examples[i], &r.states[i]
		fields := slices.Clone(ex.fields)
		for f, name := range prompts.TranslateFields {
			if !ex.has[f] {
				continue
			}
			text := ex.src[f]
			if st.done && slices.Contains(ex.send, f) {
				text = st.result[f]
			}
			k := slices.IndexFunc(fields, func(o objField) bool { return o.Key == name })
			fields[k].Value = jsonString(text)
		}
		if r.cfg.KeepSource {
			for f, name := range prompts.TranslateFields {
				if ex.has[f] {
					fields = setField(fields, name+"_source", jsonString(ex.src[f]))
				}
			}
			if st.failed != "" {
				fields = setField(fields, "translation_error", jsonString(st.failed))
			}
		}
		items[i] = output.DatasetItem{Raw: encodeObjectFields(fields), Line: ex.line, Index: i}
	}
	if dir := filepath.Dir(r.cfg.OutPath); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	if err := output.WriteDatasetFile(r.cfg.OutPath, r.data.Shape, items); err != nil {
		return err
	}
	r.report.Written = len(items)
	return nil
}

func setField(fields []objField, key string, v json.RawMessage) []objField {
	if k := slices.IndexFunc(fields, func(o objField) bool { return o.Key == key }); k >= 0 {
		fields[k].Value = v
		return fields
	}
	return append(fields, objField{Key: key, Value: v})
}
