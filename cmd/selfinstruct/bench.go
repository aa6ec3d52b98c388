package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	depth   int
	threads string
	seqs    string
	reps    int
	jsonOut bool
	noBW    bool
	cpuProf string
}

// benchResult is one test of `bench`, shaped like a llama-bench JSON record,
// with the number of sequences run together and the memory-bandwidth bound
// added.
type benchResult struct {
	Model     string    `json:"model_filename"`
	ModelType string    `json:"model_type"`
	ModelSize int64     `json:"model_size"`
	Params    int64     `json:"model_n_params"`
	Threads   int       `json:"n_threads"`
	Seqs      int       `json:"n_seq"`
	Test      string    `json:"test"`
	NPrompt   int       `json:"n_prompt"`
	NGen      int       `json:"n_gen"`
	NDepth    int       `json:"n_depth"`
	AvgNS     int64     `json:"avg_ns"`
	StddevNS  int64     `json:"stddev_ns"`
	AvgTS     float64   `json:"avg_ts"`
	StddevTS  float64   `json:"stddev_ts"`
	SamplesTS []float64 `json:"samples_ts"`
	// WeightBytes is what one forward pass reads of the weights (every
	// matrix but the embedding table, of which it reads one row per token).
	WeightBytes int64 `json:"weight_bytes"`
	// MemReadGBs is the read bandwidth measured with n_threads threads, and
	// BoundTS the generation rate it allows when every step streams the
	// weights once for all n_seq sequences (0 for pp tests or --no-bandwidth).
	MemReadGBs float64 `json:"mem_read_gbs,omitempty"`
	BoundTS    float64 `json:"bound_ts,omitempty"`
}

func newBenchCmd() *cobra.Command {
	var fl benchFlags
	cmd := &cobra.Command{
		Use:   "bench --model M.gguf",
		Short: "Measure prompt-processing and generation speed of a GGUF model, like llama-bench",
		Long: `Runs llama-bench's two tests on the local engine, for each thread count of
--threads and each number of sequences of --seqs:

  ppN  evaluate N random tokens in an empty context as one batch (prompt
       processing), once per thread count
  tgN  generate N tokens one step at a time from an empty context; with S
       sequences, every step evaluates one token of each of S sequences in one
       forward pass (continuous batching, as the local teacher does with
       --concurrency S) and t/s is the aggregate over the S sequences

With --n-depth D every sequence first holds D random tokens of context
(evaluated before the clock starts, as llama-bench's -d): generation at the
context lengths a dataset's prompts and answers reach, where attention over
the cache costs as much as the weights.

Each test runs --repetitions times after one warm-up run; the table shows the
mean tokens per second and its standard deviation.

Generation on a CPU is bound by memory bandwidth: every step reads all the
weights. bench measures the read bandwidth with each thread count (a 1 GiB
buffer summed by that many goroutines, best of several passes) and prints
the rate that bandwidth allows, S × bandwidth ÷ bytes of weights per step,
next to each tg result (--no-bandwidth skips it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, &fl) },
	}
	f := cmd.Flags()
	f.StringVarP(&fl.model, "model", "m", "", "GGUF model file (required)")
	f.IntVarP(&fl.nPrompt, "n-prompt", "p", 512, "prompt tokens for the pp test (0 skips it)")
	f.IntVarP(&fl.nGen, "n-gen", "n", 128, "generated tokens for the tg test (0 skips it)")
	f.IntVarP(&fl.depth, "n-depth", "d", 0, "tokens already in every sequence's context before each test (evaluated untimed), as llama-bench's -d")
	f.StringVarP(&fl.threads, "threads", "t", "", "comma-separated thread counts (default: 1 and all cores)")
	f.StringVarP(&fl.seqs, "seqs", "s", "1,4,8,16", "comma-separated numbers of sequences generating together (tg)")
	f.IntVarP(&fl.reps, "repetitions", "r", 5, "repetitions of each test")
	f.BoolVar(&fl.jsonOut, "json", false, "print a JSON array of results")
	f.BoolVar(&fl.noBW, "no-bandwidth", false, "skip the memory-bandwidth measurement")
	f.StringVar(&fl.cpuProf, "cpuprofile", "", "write a Go CPU profile of the tests to this file")
	return cmd
}

// parseCounts reads a comma-separated list of positive integers.
func parseCounts(flag, s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bench: %s %q: want comma-separated positive integers", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(cmd *cobra.Command, fl *benchFlags) error {
	ctx := cmd.Context()
	if fl.model == "" {
		return withCode(exitBadInput, errors.New("bench: --model is required"))
	}
	if fl.nPrompt < 0 || fl.nGen < 0 || fl.depth < 0 || fl.reps < 1 || fl.nPrompt+fl.nGen == 0 {
		return withCode(exitBadInput, errors.New("bench: need -p >= 0, -n >= 0 (not both 0), -d >= 0 and -r >= 1"))
	}
	if fl.threads == "" {
		fl.threads = "1"
		if n := runtime.NumCPU(); n > 1 {
			fl.threads += "," + strconv.Itoa(n)
		}
	}
	threadCounts, err := parseCounts("--threads", fl.threads)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	seqCounts, err := parseCounts("--seqs", fl.seqs)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	f, err := gguf.Open(fl.model)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	defer f.Close()
	st, err := os.Stat(fl.model)
	if err != nil {
		return err
	}
	var params int64
	for _, t := range f.Tensors {
		params += int64(t.Elements())
	}

	if fl.cpuProf != "" {
		pf, err := os.Create(fl.cpuProf)
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("bench: --cpuprofile: %w", err))
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var results []benchResult
	var bwBuf []uint64 // filled once, read with each thread count
	for _, threads := range threadCounts {
		m, err := model.Load(f, model.Options{Threads: threads})
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("%s: %w", fl.model, err))
		}
		base := benchResult{
			Model:       filepath.Base(fl.model),
			ModelType:   fmt.Sprintf("%s %dL %dd", m.HP.Arch, m.HP.Layers, m.HP.Embd),
			ModelSize:   st.Size(),
			Params:      params,
			Threads:     m.Threads(),
			WeightBytes: weightBytesPerStep(m),
		}
		if !fl.noBW {
			if bwBuf == nil {
				bwBuf = newBandwidthBuffer(bandwidthBuffer)
			}
			base.MemReadGBs = measureReadBandwidth(bwBuf, threads) / 1e9
		}
		// A prompt is already a batch of tokens: pp runs once per thread
		// count, with one sequence, as llama-bench's does; tg runs for every
		// number of sequences.
		if fl.nPrompt > 0 {
			rs, err := benchModel(ctx, m, base, 1, true, fl)
			if err != nil {
				return err
			}
			results = append(results, rs...)
		}
		for _, seqs := range seqCounts {
			if fl.nGen == 0 {
				break
			}
			rs, err := benchModel(ctx, m, base, seqs, false, fl)
			if err != nil {
				return err
			}
			results = append(results, rs...)
		}
	}

	out := cmd.OutOrStdout()
	if fl.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(out, "| %-24s | %10s | %8s | %7s | %5s | %8s | %16s | %18s |\n", "model", "size", "params", "threads", "seqs", "test", "t/s", "bandwidth bound")
	fmt.Fprintf(out, "| %-24s | %10s | %8s | %7s | %5s | %8s | %16s | %18s |\n", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
	for _, r := range results {
		bound := ""
		if r.BoundTS > 0 {
			bound = fmt.Sprintf("%.1f (%.1f GB/s)", r.BoundTS, r.MemReadGBs)
		}
		fmt.Fprintf(out, "| %-24s | %10s | %8s | %7d | %5d | %8s | %16s | %18s |\n", r.Model, humanBytes(r.ModelSize), humanCount(r.Params),
			r.Threads, r.Seqs, r.Test, fmt.Sprintf("%.2f ± %.2f", r.AvgTS, r.StddevTS), bound)
	}
	return nil
}

// benchModel runs the pp test (pp) or the tg test with seqs sequences
// evaluated together through one Batcher.
func benchModel(ctx context.Context, m *model.Model, base benchResult, seqs int, pp bool, fl *benchFlags) ([]benchResult, error) {
	// Either test alone: the other's parameters do not size anything.
	nPrompt, nGen := fl.nPrompt, 0
	if !pp {
		nPrompt, nGen = 0, fl.nGen
	}
	depth := fl.depth
	nCtx := depth + max(nPrompt, nGen, 1)
	sessions := make([]*model.Session, seqs)
	for i := range sessions {
		s, err := m.NewSession(nCtx)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		sessions[i] = s
	}
	// The depth is filled one sequence at a time, in chunks of at most
	// depthChunk tokens.
	const depthChunk = 256
	batcher, err := m.NewBatcher(max(seqs*max(nPrompt, 1), min(depth, depthChunk)))
	if err != nil {
		return nil, err
	}
	defer batcher.Close()
	items := make([]model.BatchItem, seqs)
	rng := rand.New(rand.NewPCG(1, 2))
	randomTokens := func(n int) [][]int32 {
		ids := make([][]int32, seqs)
		for i := range ids {
			ids[i] = make([]int32, n)
			for j := range ids[i] {
				ids[i][j] = int32(rng.IntN(m.HP.Vocab))
			}
		}
		return ids
	}
	// reset empties every sequence and then fills it with depth random
	// tokens, before the clock starts.
	reset := func() error {
		for _, s := range sessions {
			s.Reset()
		}
		if depth == 0 {
			return nil
		}
		fill := randomTokens(depth)
		for i, s := range sessions {
			for lo := 0; lo < depth; lo += depthChunk {
				one := []model.BatchItem{{Session: s, Tokens: fill[i][lo:min(lo+depthChunk, depth)]}}
				if _, err := batcher.Eval(one); err != nil {
					return fmt.Errorf("filling %d tokens of context: %w", depth, err)
				}
			}
		}
		return nil
	}
	suffix := ""
	if depth > 0 {
		suffix = fmt.Sprintf(" @ d%d", depth)
	}
	// step evaluates column j of every sequence's tokens (or all of them
	// when j < 0) as one batch.
	step := func(ids [][]int32, j int) error {
		for i, s := range sessions {
			if j < 0 {
				items[i] = model.BatchItem{Session: s, Tokens: ids[i]}
			} else {
				items[i] = model.BatchItem{Session: s, Tokens: ids[i][j : j+1]}
			}
		}
		_, err := batcher.Eval(items)
		return err
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
	if nPrompt > 0 {
		tests = append(tests, test{name: fmt.Sprintf("pp%d", nPrompt) + suffix, nPrompt: nPrompt, tokensDone: seqs * nPrompt, run: func() (time.Duration, error) {
			ids := randomTokens(nPrompt)
			if err := reset(); err != nil {
				return 0, err
			}
			start := time.Now()
			err := step(ids, -1)
			return time.Since(start), err
		}})
	}
	if nGen > 0 {
		tests = append(tests, test{name: fmt.Sprintf("tg%d", nGen) + suffix, nGen: nGen, tokensDone: seqs * nGen, run: func() (time.Duration, error) {
			ids := randomTokens(nGen)
			if err := reset(); err != nil {
				return 0, err
			}
			start := time.Now()
			for j := range nGen {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				if err := step(ids, j); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		}})
	}
	var results []benchResult
	for _, tc := range tests {
		if _, err := tc.run(); err != nil { // warm-up
			return nil, fmt.Errorf("bench %s: %w", tc.name, err)
		}
		r := base
		r.Seqs = seqs
		r.Test, r.NPrompt, r.NGen, r.NDepth = tc.name, tc.nPrompt, tc.nGen, depth
		if tc.nGen == 0 {
			r.MemReadGBs = 0
		} else if r.MemReadGBs > 0 && r.WeightBytes > 0 {
			r.BoundTS = float64(seqs) * r.MemReadGBs * 1e9 / float64(r.WeightBytes)
		}
		var ns []float64
		for i := 0; i < fl.reps; i++ {
			d, err := tc.run()
			if err != nil {
				return nil, fmt.Errorf("bench %s: %w", tc.name, err)
			}
			ns = append(ns, float64(d.Nanoseconds()))
			r.SamplesTS = append(r.SamplesTS, float64(tc.tokensDone)/d.Seconds())
		}
		avgNS, sdNS := meanStddev(ns)
		r.AvgNS, r.StddevNS = int64(avgNS), int64(sdNS)
		r.AvgTS, r.StddevTS = meanStddev(r.SamplesTS)
		results = append(results, r)
	}
	return results, nil
}

// weightBytesPerStep is what a forward pass streams from the weights: every
// layer matrix and the output matrix (the embedding table is only indexed).
func weightBytesPerStep(m *model.Model) int64 {
	var n int64
	for _, L := range m.Layers {
		for _, w := range []*model.Weight{L.Wq, L.Wk, L.Wv, L.Wo, L.Gate, L.Up, L.Down} {
			n += int64(len(w.Data))
		}
	}
	return n + int64(len(m.Output.Data))
}

// bandwidthBuffer is the memory measureReadBandwidth streams: large enough
// that no cache holds a useful part of it.
const bandwidthBuffer = 1 << 30

// newBandwidthBuffer returns size bytes written once, so that every page is
// real memory before the probe reads them.
func newBandwidthBuffer(size int) []uint64 {
	buf := make([]uint64, size/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	return buf
}

// measureReadBandwidth returns the bytes per second that threads goroutines
// read from buf (far larger than the caches), each summing its own
// contiguous share, as the weight streaming of a mat-vec does: the best of
// four passes.
func measureReadBandwidth(buf []uint64, threads int) float64 {
	best := 0.0
	var sink atomic.Uint64
	for pass := 0; pass < 4; pass++ {
		var wg sync.WaitGroup
		share := (len(buf) + threads - 1) / threads
		start := time.Now()
		for t := 0; t < threads; t++ {
			part := buf[min(t*share, len(buf)):min((t+1)*share, len(buf))]
			wg.Go(func() { sink.Add(sumWords(part)) })
		}
		wg.Wait()
		if bw := float64(8*len(buf)) / time.Since(start).Seconds(); bw > best {
			best = bw
		}
	}
	return best
}

// sumWords reads every word of p; four sums keep enough loads in flight
// that the loop runs at the memory's pace, not the adder's.
func sumWords(p []uint64) uint64 {
	var a, b, c, d uint64
	for len(p) >= 8 {
		a += p[0] + p[4]
		b += p[1] + p[5]
		c += p[2] + p[6]
		d += p[3] + p[7]
		p = p[8:]
	}
	for _, v := range p {
		a += v
	}
	return a + b + c + d
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
