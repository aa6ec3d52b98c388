// Package benchcorpus builds large, deterministic candidate sets for
// benchmarking the novelty filter at Alpaca's scale (52K) from the real
// Alpaca data in the shared reference folder: real instructions interleaved
// with near-duplicate variants of earlier ones, so that a realistic share is
// rejected, as happens to a teacher's output.
package benchcorpus

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Record is an Alpaca-format example.
type Record struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// Sources are the reference files, relative to the shared reference folder.
var Sources = []string{"alpaca_data_raw_5000.json", "alpaca_data_sample_2k.json", "code_alpaca_2k.json"}

// ReferenceDir returns the reference folder of ../shared relative to the
// repository root found upwards from the working directory, or an error
// saying it is absent.
func ReferenceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			ref := filepath.Join(filepath.Dir(dir), "shared", "reference")
			if _, err := os.Stat(ref); err != nil {
				return "", fmt.Errorf("reference data not found at %s (../shared beside the repository)", ref)
			}
			return ref, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Load reads the real records of all Sources, in order.
func Load(referenceDir string) ([]Record, error) {
	var all []Record
	for _, name := range Sources {
		path := filepath.Join(referenceDir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var recs []Record
		if err := json.Unmarshal(data, &recs); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, recs...)
	}
	return all, nil
}

// Generate returns n candidates, the same for the same (real, n, seed).
// About 60% are real records (each used once, in a shuffled order, while
// they last); the rest are variants of a random earlier candidate or real
// record: light ones (one or two word edits, case or punctuation changes,
// which ROUGE-L mostly rejects) and heavy ones (about half the words
// edited, which it mostly keeps). At 52K about half are rejected.
func Generate(real []Record, n int, seed uint64) []Record {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	order := rng.Perm(len(real))
	vocab := vocabulary(real)
	out := make([]Record, 0, n)
	next := 0
	for len(out) < n {
		if next < len(order) && (rng.Float64() < 0.6 || len(out) == 0) {
			out = append(out, real[order[next]])
			next++
			continue
		}
		var base Record
		if len(out) > 0 && rng.IntN(2) == 0 {
			base = out[rng.IntN(len(out))]
		} else {
			base = real[rng.IntN(len(real))]
		}
		words := strings.Fields(base.Instruction)
		if len(words) == 0 {
			continue
		}
		edits, heavy := 1+rng.IntN(2), rng.Float64() < 0.5
		if heavy {
			edits = 1 + len(words)/2
		}
		for range edits {
			words = edit(rng, words, vocab, heavy)
		}
		base.Instruction = strings.Join(words, " ")
		out = append(out, base)
	}
	return out
}

func vocabulary(real []Record) []string {
	seen := map[string]bool{}
	var v []string
	for _, r := range real {
		for _, w := range strings.Fields(r.Instruction) {
			w = strings.TrimFunc(w, unicode.IsPunct)
			if w != "" && !seen[w] {
				seen[w] = true
				v = append(v, w)
			}
		}
	}
	return v
}

// edit applies one random edit of the kinds a teacher's near-duplicates
// show; heavy edits only drop, insert or replace words, which change the
// tokens ROUGE-L sees.
func edit(rng *rand.Rand, w []string, vocab []string, heavy bool) []string {
	i := rng.IntN(len(w))
	op := rng.IntN(7)
	if heavy {
		op = 1 + rng.IntN(3)
	}
	switch op {
	case 0: // swap neighbours
		if j := i + 1; j < len(w) {
			w[i], w[j] = w[j], w[i]
		}
	case 1: // drop a word
		if len(w) > 2 {
			w = append(w[:i], w[i+1:]...)
		}
	case 2: // insert a word
		w = append(w[:i], append([]string{vocab[rng.IntN(len(vocab))]}, w[i:]...)...)
	case 3: // replace a word
		w[i] = vocab[rng.IntN(len(vocab))]
	case 4: // change case
		if rng.IntN(2) == 0 {
			w[i] = strings.ToUpper(w[i])
		} else {
			w[i] = strings.ToLower(w[i])
		}
	case 5: // punctuation
		w[i] += []string{",", ";", "!", "?", ":", " -"}[rng.IntN(6)]
	case 6: // a polite or framing prefix
		w = append([]string{[]string{"Please", "Now", "Also,", "Kindly"}[rng.IntN(4)]}, w...)
	}
	return w
}
