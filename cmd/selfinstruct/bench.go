package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/model"
)

func init() { rootCmd.AddCommand(newBenchCmd()) }

type benchFlags struct {
	model   string
	nPrompt int
	nGen    int
	threads int
	reps    int
	jsonOut bool
}

// benchResult is one test of `bench`, shaped like a llama-bench JSON record.
type benchResult struct {
	Model     string    `json:"model_filename"`
	ModelType string    `json:"model_type"`
	ModelSize int64     `json:"model_size"`
	Params    int64     `json:"model_n_params"`
	Threads   int       `json:"n_threads"`
	Test      string    `json:"test"`
	NPrompt   int       `json:"n_prompt"`
	NGen      int       `json:"n_gen"`
	AvgNS     int64     `json:"avg_ns"`
	StddevNS  int64     `json:"stddev_ns"`
	AvgTS     float64   `json:"avg_ts"`
	StddevTS  float64   `json:"stddev_ts"`
	SamplesTS []float64 `json:"samples_ts"`
}

func newBenchCmd() *cobra.Command {
	var fl benchFlags
	cmd := &cobra.Command{
		Use:   "bench --model M.gguf",
		Short: "Measure prompt-processing and generation speed of a GGUF model, like llama-bench",
		Long: `Runs llama-bench's two tests on the local engine:

  ppN  evaluate N random tokens as one batch in an empty context (prompt processing)
  tgN  generate N tokens one at a time from an empty context (text generation)

Each test runs --repetitions times after one warm-up run; the table shows the
mean tokens per second and its standard deviation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, &fl) },
	}
	f := cmd.Flags()
	f.StringVarP(&fl.model, "model", "m", "", "GGUF model file (required)")
	f.IntVarP(&fl.nPrompt, "n-prompt", "p", 512, "prompt tokens for the pp test (0 skips it)")
	f.IntVarP(&fl.nGen, "n-gen", "n", 128, "generated tokens for the tg test (0 skips it)")
	f.IntVarP(&fl.threads, "threads", "t", 0, "threads (default: all cores)")
	f.IntVarP(&fl.reps, "repetitions", "r", 5, "repetitions of each test")
	f.BoolVar(&fl.jsonOut, "json", false, "print a JSON array of results")
	return cmd
}

func runBench(cmd *cobra.Command, fl *benchFlags) error {
	ctx := cmd.Context()
	if fl.model == "" {
		return withCode(exitBadInput, errors.New("bench: --model is required"))
	}
	if fl.nPrompt < 0 || fl.nGen < 0 || fl.reps < 1 || fl.nPrompt+fl.nGen == 0 {
		return withCode(exitBadInput, errors.New("bench: need -p >= 0, -n >= 0 (not both 0) and -r >= 1"))
	}
	f, err := gguf.Open(fl.model)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	defer f.Close()
	m, err := model.Load(f, model.Options{Threads: fl.threads})
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("%s: %w", fl.model, err))
	}
	st, err := os.Stat(fl.model)
	if err != nil {
		return err
	}
	var params int64
	for _, t := range f.Tensors {
		params += int64(t.Elements())
	}
	base := benchResult{
		Model:     filepath.Base(fl.model),
		ModelType: fmt.Sprintf("%s %dL %dd", m.HP.Arch, m.HP.Layers, m.HP.Embd),
		ModelSize: st.Size(),
		Params:    params,
		Threads:   m.Threads(),
	}
	sess, err := m.NewSession(max(fl.nPrompt, fl.nGen, 1))
	if err != nil {
		return err
	}
	defer sess.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	randomTokens := func(n int) []int32 {
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(rng.IntN(m.HP.Vocab))
		}
		return ids
	}
	// run times one repetition of a test; the token ids are drawn before the
	// clock starts.
	type test struct {
		name       string
		nPrompt    int
		nGen       int
		run        func() (time.Duration, error)
		tokensDone int
	}
	var tests []test
	if fl.nPrompt > 0 {
		tests = append(tests, test{name: fmt.Sprintf("pp%d", fl.nPrompt), nPrompt: fl.nPrompt, tokensDone: fl.nPrompt, run: func() (time.Duration, error) {
			ids := randomTokens(fl.nPrompt)
			sess.Reset()
			start := time.Now()
			_, err := sess.Eval(ids)
			return time.Since(start), err
		}})
	}
	if fl.nGen > 0 {
		tests = append(tests, test{name: fmt.Sprintf("tg%d", fl.nGen), nGen: fl.nGen, tokensDone: fl.nGen, run: func() (time.Duration, error) {
			ids := randomTokens(fl.nGen)
			sess.Reset()
			start := time.Now()
			for i := range ids {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				if _, err := sess.Eval(ids[i : i+1]); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		}})
	}

	var results []benchResult
	for _, tc := range tests {
		if _, err := tc.run(); err != nil { // warm-up
			return fmt.Errorf("bench %s: %w", tc.name, err)
		}
		r := base
		r.Test, r.NPrompt, r.NGen = tc.name, tc.nPrompt, tc.nGen
		var ns []float64
		for i := 0; i < fl.reps; i++ {
			d, err := tc.run()
			if err != nil {
				return fmt.Errorf("bench %s: %w", tc.name, err)
			}
			ns = append(ns, float64(d.Nanoseconds()))
			r.SamplesTS = append(r.SamplesTS, float64(tc.tokensDone)/d.Seconds())
		}
		avgNS, sdNS := meanStddev(ns)
		r.AvgNS, r.StddevNS = int64(avgNS), int64(sdNS)
		r.AvgTS, r.StddevTS = meanStddev(r.SamplesTS)
		results = append(results, r)
	}

	out := cmd.OutOrStdout()
	if fl.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(out, "| %-30s | %10s | %10s | %7s | %8s | %20s |\n", "model", "size", "params", "threads", "test", "t/s")
	fmt.Fprintf(out, "| %-30s | %10s | %10s | %7s | %8s | %20s |\n", "---", "---:", "---:", "---:", "---:", "---:")
	for _, r := range results {
		fmt.Fprintf(out, "| %-30s | %10s | %10s | %7d | %8s | %20s |\n", r.Model, humanBytes(r.ModelSize), humanCount(r.Params),
			r.Threads, r.Test, fmt.Sprintf("%.2f ± %.2f", r.AvgTS, r.StddevTS))
	}
	return nil
}

func meanStddev(x []float64) (float64, float64) {
	if len(x) == 0 {
		return 0, 0
	}
	var sum float64
	for _, v := range x {
		sum += v
	}
	mean := sum / float64(len(x))
	if len(x) < 2 {
		return mean, 0
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(x)-1))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f B", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.2f K", float64(n)/1e3)
	}
}
