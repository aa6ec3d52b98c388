package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/selfinstruct/selfinstruct/teacher"
)

// Candidate statuses in the journal.
const (
	StatusKept     = "kept"
	StatusRejected = "rejected"
	// StatusSurplus marks a candidate that arrived after the target was met.
	StatusSurplus = "surplus"
)

// Reasons a response or candidate produced nothing, besides the filters'.
const (
	ReasonTooSimilar     = "too_similar"
	ReasonRequestFailed  = "request_failed"
	ReasonEmptyResponse  = "empty_response"
	ReasonDuplicateInRun = "duplicate"
)

// SimilarEntry is one of Alpaca's most_similar_instructions.
type SimilarEntry struct {
	Instruction string  `json:"instruction"`
	Score       float64 `json:"score"`
}

// CandidateRecord is one parsed task and what the filters decided.
type CandidateRecord struct {
	Instruction string         `json:"instruction"`
	Input       string         `json:"input"`
	Output      string         `json:"output"`
	Status      string         `json:"status"`
	Reason      string         `json:"reason,omitempty"`
	MaxRouge    float64        `json:"max_rouge"`
	ArgMax      int            `json:"argmax"`
	MostSimilar []SimilarEntry `json:"most_similar,omitempty"`
	AvgSimilar  *float64       `json:"avg_similarity,omitempty"`
}

// ResponseEntry is the journal line for one teacher request: everything it
// cost and everything it produced, written once, after all its candidates
// were decided.
type ResponseEntry struct {
	Kind       string            `json:"kind"` // "response"
	Req        int               `json:"req"`
	Time       time.Time         `json:"time"`
	Usage      teacher.Usage     `json:"usage"`
	Cost       float64           `json:"cost"`
	Finish     []string          `json:"finish,omitempty"`
	Error      string            `json:"error,omitempty"`
	ParseDrops map[string]int    `json:"parse_drops,omitempty"`
	Candidates []CandidateRecord `json:"candidates,omitempty"`
}

// HeaderEntry is the journal's first line: what a resumed run must agree with.
type HeaderEntry struct {
	Kind       string    `json:"kind"` // "header"
	Version    int       `json:"version"`
	Recipe     string    `json:"recipe"`
	Created    time.Time `json:"created"`
	SeedSHA256 string    `json:"seed_sha256"`
	Seed       int64     `json:"seed"`
	Threshold  float64   `json:"threshold"`
	Tokenizer  string    `json:"tokenizer"`
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// SHA256Hex is the hex digest the journal records for seed files.
func SHA256Hex(b []byte) string { return sha256Hex(b) }
