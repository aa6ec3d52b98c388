package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	selfinstruct "github.com/selfinstruct/selfinstruct"
	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// generateFlags are the settings of `generate`, shared by commands that run
// the same loop (refresh).
type generateFlags struct {
	recipe         string
	num            int
	out            string
	seedTasks      string
	promptFile     string
	numPrompt      int
	api            string
	perRequest     int
	temperature    float64
	topP           float64
	maxTokens      int
	threshold      float64
	tokenizer      string
	blacklist      string
	seed           int64
	withSimilarity bool
	maxBarren      int
	teacher        teacherFlags
}

func (g *generateFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&g.recipe, "recipe", "alpaca", "generation recipe: alpaca or self-instruct")
	f.IntVar(&g.num, "num", 100, "number of examples the dataset ends with")
	f.StringVar(&g.out, "out", "out", "output directory (journal, run.json, alpaca_data.json); rerun to resume")
	f.StringVar(&g.seedTasks, "seed-tasks", "", "seed tasks: Self-Instruct JSONL or Alpaca JSON (default: the 175 built-in tasks)")
	f.StringVar(&g.promptFile, "prompt-file", "", "file whose text replaces the prompt's requirements header (e.g. Alpaca's prompt.txt)")
	f.IntVar(&g.numPrompt, "num-prompt-instructions", 3, "seed tasks shown in each prompt")
	f.StringVar(&g.api, "api", "chat", "teacher API: chat (chat completions) or completions (legacy, several prompts per request)")
	f.IntVar(&g.perRequest, "request-batch-size", 5, "prompts per request with --api completions")
	f.Float64Var(&g.temperature, "temperature", 1.0, "sampling temperature")
	f.Float64Var(&g.topP, "top-p", 1.0, "nucleus sampling top_p")
	f.IntVar(&g.maxTokens, "max-tokens", 3072, "maximum tokens per response")
	f.Float64Var(&g.threshold, "threshold", 0.7, "reject a task whose ROUGE-L with any earlier task is above this")
	f.StringVar(&g.tokenizer, "tokenizer", "rouge_score", "ROUGE tokenizer: rouge_score (bit-compatible with Google's rouge_score) or unicode (for non-English data)")
	f.StringVar(&g.blacklist, "blacklist", "alpaca", "word blacklist: alpaca or self-instruct")
	f.Int64Var(&g.seed, "seed", 0, "sampling seed (default: random, recorded in the journal and reused on resume)")
	f.BoolVar(&g.withSimilarity, "with-similarity", false, "add Alpaca's most_similar_instructions and avg_similarity_score to each record")
	f.IntVar(&g.maxBarren, "max-unproductive", 10, "stop after this many consecutive responses that add no example")
	g.teacher.register(cmd)
}

func init() {
	var g generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate an instruction-tuning dataset from seed tasks",
		Long: `Generate bootstraps new tasks from seed tasks with a teacher model and writes
an Alpaca-format dataset (DIR/alpaca_data.json). Every decision is journaled in
DIR/journal.jsonl: running the same command again resumes where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGenerate(cmd, &g)
		},
	}
	g.register(cmd)
	rootCmd.AddCommand(cmd)
}

func loadSeeds(path string) (tasks []prompts.SeedTask, source string, raw []byte, err error) {
	if path == "" {
		return prompts.DefaultSeedTasks(), "embedded", selfinstruct.SeedTasksJSONL, nil
	}
	raw, err = os.ReadFile(path)
	if err != nil {
		return nil, "", nil, withCode(exitBadInput, fmt.Errorf("--seed-tasks: %w", err))
	}
	tasks, err = prompts.ParseSeedTasks(strings.NewReader(string(raw)), path)
	if err != nil {
		return nil, "", nil, withCode(exitBadInput, err)
	}
	return tasks, path, raw, nil
}

func heuristicsByName(name string) (filters.HeuristicOptions, error) {
	switch name {
	case "alpaca":
		return filters.AlpacaHeuristics(), nil
	case "self-instruct", "selfinstruct":
		return filters.SelfInstructHeuristics(), nil
	}
	return filters.HeuristicOptions{}, fmt.Errorf("--blacklist %q: want alpaca or self-instruct", name)
}

// gracefulContexts splits interruption in two: the first SIGINT/SIGTERM
// cancels soft (stop asking, finish what is in flight, save), a second one
// cancels hard (abandon the requests in flight too).
func gracefulContexts(parent context.Context) (soft, hard context.Context, cleanup func()) {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(parent))
	soft, cancelSoft := context.WithCancel(hard)
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range sig {
			n++
			if n == 1 {
				cancelSoft()
				continue
			}
			cancelHard()
		}
	}()
	// A signal that reached the parent before we listened still counts.
	go func() {
		select {
		case <-parent.Done():
			cancelSoft()
		case <-hard.Done():
		}
	}()
	return soft, hard, func() {
		signal.Stop(sig)
		cancelSoft()
		cancelHard()
	}
}

func runGenerate(cmd *cobra.Command, g *generateFlags) error {
	if g.recipe == "self-instruct" || g.recipe == "selfinstruct" {
		return runSelfInstruct(cmd, g)
	}
	if g.recipe != "alpaca" {
		return withCode(exitBadInput, fmt.Errorf("--recipe %q: want alpaca or self-instruct", g.recipe))
	}
	seeds, source, raw, err := loadSeeds(g.seedTasks)
	if err != nil {
		return err
	}
	header := prompts.DefaultAlpacaHeader()
	if g.promptFile != "" {
		if header, err = prompts.LoadPromptHeader(g.promptFile); err != nil {
			return withCode(exitBadInput, err)
		}
	}
	tok, err := filters.ParseTokenizer(g.tokenizer)
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("--tokenizer: %w", err))
	}
	heur, err := heuristicsByName(g.blacklist)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	var mode teacher.Mode
	switch g.api {
	case "chat":
		mode = teacher.ModeChat
	case "completions", "completion":
		mode = teacher.ModeCompletion
	default:
		return withCode(exitBadInput, fmt.Errorf("--api %q: want chat or completions", g.api))
	}
	if err := os.MkdirAll(g.out, 0o755); err != nil {
		return withCode(exitBadInput, fmt.Errorf("--out: %w", err))
	}
	spent, err := pipeline.SpentSoFar(g.out)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	t, cost, err := g.teacher.build(cmd, spent)
	if err != nil {
		return err
	}
	logger := slog.Default()
	terminal := term.IsTerminal(int(os.Stderr.Fd()))
	cfg := pipeline.AlpacaConfig{
		Num:            g.num,
		OutDir:         g.out,
		Seeds:          seeds,
		SeedSource:     source,
		SeedSHA256:     pipeline.SHA256Hex(raw),
		Header:         header,
		NumPrompt:      g.numPrompt,
		API:            mode,
		PerRequest:     g.perRequest,
		Model:          t.Model(),
		Temperature:    g.temperature,
		TopP:           g.topP,
		MaxTokens:      g.maxTokens,
		Threshold:      g.threshold,
		Tokenizer:      tok,
		Heuristics:     heur,
		Seed:           g.seed,
		SeedSet:        cmd.Flags().Changed("seed"),
		Concurrency:    g.teacher.concurrency,
		WithSimilarity: g.withSimilarity,
		MaxBarren:      g.maxBarren,
		Cost:           cost,
		Progress:       pipeline.NewProgress(os.Stderr, terminal, logger, 10*time.Second),
		Logger:         logger,
		Settings:       settingsOf(cmd),
	}
	soft, hard, cleanup := gracefulContexts(cmd.Context())
	defer cleanup()
	rep, err := pipeline.RunAlpaca(soft, hard, t, cfg)
	if rep != nil {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %d/%d examples in %s (status %s, %d tokens, $%.4f%s)\n",
			g.out, rep.Written, rep.Target, pipeline.DataFile, rep.Status, rep.TotalTokens, rep.CostUSD, costNote(rep.CostKnown))
	}
	return mapRunError(err)
}

func costNote(known bool) string {
	if known {
		return ""
	}
	return ", price unknown for this model"
}

// mapRunError gives a run's outcome its documented exit code.
func mapRunError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pipeline.ErrLocked):
		return withCode(exitLocked, err)
	case errors.Is(err, teacher.ErrBudget):
		return withCode(exitBudget, fmt.Errorf("--max-cost reached, run again with a higher limit to continue: %w", err))
	case errors.Is(err, teacher.ErrUnavailable):
		return withCode(exitTeacherDown, err)
	case errors.Is(err, pipeline.ErrBarren):
		return withCode(exitUnproductive, err)
	case errors.Is(err, pipeline.ErrIncompatibleRun):
		return withCode(exitBadInput, err)
	case errors.Is(err, context.Canceled):
		return withCode(exitInterrupted, fmt.Errorf("interrupted; run the same command again to resume: %w", err))
	}
	return err
}

// settingsOf records the flags the user set, for run.json. Secrets never
// travel in flags, so all of them can be written.
func settingsOf(cmd *cobra.Command) map[string]any {
	out := map[string]any{}
	cmd.Flags().Visit(func(f *pflag.Flag) { out[f.Name] = f.Value.String() })
	return out
}
