package pipeline

import (
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/selfinstruct/selfinstruct/teacher"
)

// Snapshot is what progress displays show.
type Snapshot struct {
	Kept     int
	Target   int
	Rejected map[string]int
	Usage    teacher.Usage
	CostUSD  float64
	// Stage names the step of a multi-stage recipe, empty for one-pass ones.
	Stage string
}

// Progress shows a run's advance to a person or a log.
type Progress interface {
	Update(Snapshot)
	Done()
}

type nopProgress struct{}

func (nopProgress) Update(Snapshot) {}
func (nopProgress) Done()           {}

// NewProgress returns a progress bar when w is a terminal, and periodic log
// lines otherwise (cron mail and CI logs have no use for a redrawn bar).
func NewProgress(w io.Writer, terminal bool, logger *slog.Logger, every time.Duration) Progress {
	if terminal {
		return &barProgress{w: w}
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	return &logProgress{logger: logger, every: every}
}

type barProgress struct {
	w      io.Writer
	bar    *progressbar.ProgressBar
	target int
}

func (p *barProgress) Update(s Snapshot) {
	if p.bar == nil || p.target != s.Target {
		p.target = s.Target
		p.bar = progressbar.NewOptions(s.Target,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	p.bar.Describe(describe(s))
	p.bar.Set(min(s.Kept, s.Target))
}

func (p *barProgress) Done() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

type logProgress struct {
	mu     sync.Mutex
	logger *slog.Logger
	every  time.Duration
	last   time.Time
	start  time.Time
	first  int
	latest Snapshot
}

func (p *logProgress) Update(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.start.IsZero() {
		p.start, p.first = now, s.Kept
	}
	p.latest = s
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.log(now)
}

func (p *logProgress) log(now time.Time) {
	s := p.latest
	attrs := []any{"kept", s.Kept, "target", s.Target, "rejected", FormatCounts(s.Rejected),
		"tokens", s.Usage.Total(), "cost_usd", fmt.Sprintf("%.4f", s.CostUSD)}
	if s.Stage != "" {
		attrs = append(attrs, "stage", s.Stage)
	}
	if done := s.Kept - p.first; done > 0 && s.Kept < s.Target {
		rate := float64(done) / now.Sub(p.start).Seconds()
		eta := time.Duration(float64(s.Target-s.Kept) / rate * float64(time.Second))
		attrs = append(attrs, "eta", eta.Round(time.Second).String())
	}
	p.logger.Info("progress", attrs...)
}

func (p *logProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.start.IsZero() {
		p.log(time.Now())
	}
}

func describe(s Snapshot) string {
	var b strings.Builder
	if s.Stage != "" {
		b.WriteString(s.Stage + " ")
	}
	total := 0
	keys := make([]string, 0, len(s.Rejected))
	for k, n := range s.Rejected {
		total += n
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return s.Rejected[keys[i]] > s.Rejected[keys[j]] })
	fmt.Fprintf(&b, "rejected %d", total)
	for i, k := range keys {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, " %s:%d", k, s.Rejected[k])
	}
	fmt.Fprintf(&b, " | %d tok $%.3f", s.Usage.Total(), s.CostUSD)
	return b.String()
}
