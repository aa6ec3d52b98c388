package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/selfinstruct/selfinstruct/output"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// Report is run.json: what a run was asked to do and what it did, rebuilt
// from the journal, so a resumed run reports the totals of all its sessions.
type Report struct {
	Recipe         string         `json:"recipe"`
	Status         string         `json:"status"`
	Message        string         `json:"message,omitempty"`
	Started        time.Time      `json:"started"`
	Updated        time.Time      `json:"updated"`
	Resumed        bool           `json:"resumed"`
	OutDir         string         `json:"out_dir"`
	Model          string         `json:"model"`
	Settings       map[string]any `json:"settings,omitempty"`
	SeedSource     string         `json:"seed_source"`
	SeedSHA256     string         `json:"seed_sha256"`
	Seed           int64          `json:"seed"`
	Target         int            `json:"target"`
	Kept           int            `json:"kept"`
	Written        int            `json:"written"`
	Candidates     int            `json:"candidates"`
	Surplus        int            `json:"surplus"`
	Rejected       map[string]int `json:"rejected"`
	Responses      int            `json:"responses"`
	FailedRequests int            `json:"failed_requests"`
	Usage          teacher.Usage  `json:"usage"`
	TotalTokens    int64          `json:"total_tokens"`
	CostUSD        float64        `json:"cost_usd"`
	CostKnown      bool           `json:"cost_known"`
}

func (rep *Report) write(path string) error {
	rep.Updated = time.Now().UTC()
	rep.TotalTokens = rep.Usage.Total()
	return output.WriteFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	})
}

// SpentSoFar reads what the run journaled in dir has already spent, so a
// resumed run's --max-cost covers all its sessions. A missing journal is 0.
func SpentSoFar(dir string) (float64, error) {
	data, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read journal: %w", err)
	}
	var spent float64
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var e struct {
			Cost float64 `json:"cost"`
		}
		if json.Unmarshal(line, &e) == nil {
			spent += e.Cost
		}
	}
	return spent, nil
}
