package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/selfinstruct/selfinstruct/teacher"
)

// TranslateEstimate is what --dry-run prints: the requests and tokens the
// examples still to translate would take, and their price.
type TranslateEstimate struct {
	Examples  int `json:"examples"`
	Done      int `json:"done"`      // translated or given up in earlier sessions
	Unchanged int `json:"unchanged"` // nothing to translate, no request
	Pending   int `json:"pending"`
	Requests  int `json:"requests"` // one per pending example, before retries
	// Usage is the expected usage: the prompts as they would be sent, and
	// answers as long as the text they translate.
	Usage teacher.Usage `json:"usage"`
	// MaxUsage bounds the completions by max_tokens instead.
	MaxUsage  teacher.Usage `json:"max_usage"`
	CostUSD   float64       `json:"cost_usd"`
	MaxCost   float64       `json:"max_cost_usd"`
	CostKnown bool          `json:"cost_known"`
	Spent     float64       `json:"spent_usd"` // by earlier sessions
}

// translationGrowth is how many tokens a translation takes per source token:
// Romance and Germanic languages run 10-30% longer than English, and
// tokenizers trained mostly on English split other languages finer.
const translationGrowth = 1.3

// EstimateTranslate prices the requests RunTranslate would make, without
// making any or taking the lock: the journal is only read.
func EstimateTranslate(cfg TranslateConfig) (*TranslateEstimate, error) {
	if err := cfg.defaults(); err != nil {
		return nil, &InputError{err}
	}
	r := &translateRun{cfg: cfg}
	if err := r.load(); err != nil {
		return nil, &InputError{err}
	}
	est := &TranslateEstimate{Examples: len(r.examples), CostKnown: true}
	data, err := os.ReadFile(filepath.Join(cfg.WorkDir, JournalFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		var e translateEntry
		if json.Unmarshal(line, &e) != nil || (e.Kind != kindResponse && e.Kind != kindFailed) {
			continue // the header, or a torn tail
		}
		if e.Idx < 0 || e.Idx >= len(r.examples) {
			return nil, fmt.Errorf("%s: line %d: example %d is not in the input: %w", JournalFile, i+1, e.Idx, ErrIncompatibleRun)
		}
		r.apply(e)
	}
	est.Spent = r.report.CostUSD
	for i := range r.examples {
		ex, st := &r.examples[i], &r.states[i]
		switch {
		case len(ex.send) == 0:
			est.Unchanged++
			continue
		case (st.done || st.failed != "") && !(cfg.RetryFailed && !st.done):
			est.Done++
			continue
		}
		est.Pending++
		est.Requests++
		req, err := r.request(ex, ex.send, "", viewExample)
		if err != nil {
			return nil, err
		}
		var prompt int64
		for _, m := range req.Messages {
			prompt += int64(teacher.EstimateTokens(m.Content)) + 4
		}
		user := req.Messages[len(req.Messages)-1].Content
		completion := int64(math.Ceil(float64(teacher.EstimateTokens(user)) * translationGrowth))
		est.Usage = est.Usage.Add(teacher.Usage{PromptTokens: prompt, CompletionTokens: completion})
		est.MaxUsage = est.MaxUsage.Add(teacher.Usage{PromptTokens: prompt, CompletionTokens: int64(req.MaxTokens)})
	}
	var ok1, ok2 bool
	est.CostUSD, ok1 = cfg.Cost(est.Usage)
	est.MaxCost, ok2 = cfg.Cost(est.MaxUsage)
	est.CostKnown = ok1 && ok2
	return est, nil
}
