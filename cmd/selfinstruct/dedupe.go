package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adrg/strutil"
	"github.com/adrg/strutil/metrics"
	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/output"
)

func init() { rootCmd.AddCommand(newDedupeCmd()) }

type dedupeFlags struct {
	out       string
	seedTasks string
	threshold float64
	field     string
	metric    string
	tokenizer string
	threads   int
}

func newDedupeCmd() *cobra.Command {
	var fl dedupeFlags
	cmd := &cobra.Command{
		Use:   "dedupe IN.json -o OUT.json",
		Short: "Drop near-duplicates from a dataset with the greedy ROUGE-L filter of Self-Instruct/Alpaca",
		Long: `Runs the greedy novelty filter over a dataset, in order: an item is kept iff
its highest similarity to the pool is <= --threshold, and a kept item joins the
pool at once. The pool starts with the --seed-tasks instructions (none by
default). With the default metric, rougeL, and tokenizer, rouge_score, the
decisions are exactly those of Alpaca's generate_instruction.py.

IN.json may be an Alpaca JSON list of records, JSONL records, or a JSON list of
strings; OUT.json gets the kept items in the same shape, each record with all
its fields as read (JSON lists laid out like Python's json.dump(indent=4)).

The character metrics (levenshtein, jaro-winkler, jaccard, sorensen-dice) use
github.com/adrg/strutil's similarities in [0, 1] and score every pair, so they
are much slower than rougeL on large files.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDedupe(cmd, args[0], &fl) },
	}
	f := cmd.Flags()
	f.StringVarP(&fl.out, "output", "o", "", "where to write the kept items (required)")
	f.StringVar(&fl.seedTasks, "seed-tasks", "", "Self-Instruct seed tasks (JSONL with an instruction field) that start the pool")
	f.Float64Var(&fl.threshold, "threshold", 0.7, "reject an item whose similarity to the pool is above this")
	f.StringVar(&fl.field, "field", "instruction", "record field compared: instruction, input or output (ignored for a list of strings)")
	f.StringVar(&fl.metric, "metric", "rougeL", "similarity: rougeL, levenshtein, jaro-winkler, jaccard or sorensen-dice")
	f.StringVar(&fl.tokenizer, "tokenizer", "rouge_score", "rougeL tokenizer: rouge_score (Alpaca's) or unicode (any script)")
	f.IntVar(&fl.threads, "threads", 0, "worker goroutines (0 = all cores)")
	return cmd
}

// charMetric returns the strutil metric for a --metric name, nil for rougeL.
func charMetric(name string) (strutil.StringMetric, error) {
	switch strings.ToLower(name) {
	case "rougel", "rouge-l", "rouge_l":
		return nil, nil
	case "levenshtein":
		return metrics.NewLevenshtein(), nil
	case "jaro-winkler", "jarowinkler", "jaro_winkler":
		return metrics.NewJaroWinkler(), nil
	case "jaccard":
		return metrics.NewJaccard(), nil
	case "sorensen-dice", "sorensendice", "sorensen_dice", "dice":
		return metrics.NewSorensenDice(), nil
	}
	return nil, fmt.Errorf("--metric: unknown metric %q (want rougeL, levenshtein, jaro-winkler, jaccard or sorensen-dice)", name)
}

func runDedupe(cmd *cobra.Command, in string, fl *dedupeFlags) error {
	start := time.Now()
	if fl.out == "" {
		return withCode(exitBadInput, errors.New("dedupe: -o OUT.json is required"))
	}
	if math.IsNaN(fl.threshold) {
		return withCode(exitBadInput, errors.New("--threshold: not a number"))
	}
	if fl.field == "" {
		return withCode(exitBadInput, errors.New("--field: empty field name"))
	}
	if fl.threads < 0 {
		return withCode(exitBadInput, fmt.Errorf("--threads: %d is negative", fl.threads))
	}
	metric, err := charMetric(fl.metric)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	tk, err := filters.ParseTokenizer(fl.tokenizer)
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("--tokenizer: %w", err))
	}
	var seeds []string
	if fl.seedTasks != "" {
		if seeds, err = readSeedInstructions(fl.seedTasks); err != nil {
			return withCode(exitBadInput, err)
		}
	}
	ds, err := output.ReadDataset(in)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	texts, err := ds.Texts(fl.field)
	if err != nil {
		return withCode(exitBadInput, err)
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	var keep []bool
	if metric == nil {
		keep, err = dedupeRouge(ctx, texts, seeds, fl.threshold, tk, fl.threads)
	} else {
		keep, err = dedupeChars(ctx, texts, seeds, fl.threshold, metric, fl.threads)
	}
	if err != nil {
		return err
	}
	kept := make([]output.DatasetItem, 0, len(texts))
	for i, k := range keep {
		if k {
			kept = append(kept, ds.Items[i])
		}
	}
	if err := os.MkdirAll(filepath.Dir(fl.out), 0o755); err != nil {
		return err
	}
	if err := output.WriteDatasetFile(fl.out, ds.Shape, kept); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "dedupe: kept %d, rejected %d of %d (%s > %g, pool %d seeds) in %.3fs -> %s\n",
		len(kept), len(texts)-len(kept), len(texts), fl.metric, fl.threshold, len(seeds), time.Since(start).Seconds(), fl.out)
	return nil
}

// readSeedInstructions reads the instruction of each line of a Self-Instruct
// seed file (JSONL); other fields are not looked at here.
func readSeedInstructions(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--seed-tasks: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var task struct {
			Instruction *string `json:"instruction"`
		}
		if err := json.Unmarshal([]byte(text), &task); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if task.Instruction == nil {
			return nil, fmt.Errorf("%s:%d: no \"instruction\" string field", path, line)
		}
		out = append(out, *task.Instruction)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func dedupeRouge(ctx context.Context, texts, seeds []string, threshold float64, tk filters.Tokenizer, threads int) ([]bool, error) {
	nv := filters.NewNovelty(filters.IndexOptions{Tokenizer: tk, Threads: threads}, threshold)
	for _, s := range seeds {
		nv.AddPool(s)
	}
	ds, err := nv.Filter(ctx, texts)
	if err != nil {
		return nil, err
	}
	keep := make([]bool, len(ds))
	for i, d := range ds {
		keep[i] = d.Keep
	}
	st := nv.Stats()
	slog.Debug("dedupe", "pairs_full", st.PairsFull, "pairs_pruned", st.PairsPruned)
	return keep, nil
}

// dedupeChars is the greedy filter with a character metric, which has no
// pruning bound: every (item, pool) pair is scored until one exceeds the
// threshold. Items are checked in parallel batches against the pool as it
// stood before the batch, then in order against the batch's earlier kept
// items, which gives the sequential result.
func dedupeChars(ctx context.Context, texts, seeds []string, threshold float64, metric strutil.StringMetric, threads int) ([]bool, error) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	pool := append([]string(nil), seeds...)
	exceeds := func(text string, against []string) bool {
		for _, p := range against {
			if strutil.Similarity(text, p, metric) > threshold {
				return true
			}
		}
		return false
	}
	keep := make([]bool, len(texts))
	batch := 16 * threads
	rejected := make([]bool, batch)
	for start := 0; start < len(texts); start += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+batch, len(texts))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(threads, end-start) {
			wg.Go(func() {
				for {
					i := start + int(next.Add(1)-1)
					if i >= end {
						return
					}
					rejected[i-start] = exceeds(texts[i], pool)
				}
			})
		}
		wg.Wait()
		base := len(pool)
		for i := start; i < end; i++ {
			if rejected[i-start] || exceeds(texts[i], pool[base:]) {
				continue
			}
			keep[i] = true
			pool = append(pool, texts[i])
		}
	}
	return keep, nil
}
