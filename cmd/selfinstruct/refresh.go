package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
)

type refreshFlags struct {
	dataset      string
	add          int
	keepVersions int
	gen          generateFlags
}

func init() {
	var rf refreshFlags
	cmd := &cobra.Command{
		Use:   "refresh --dataset DIR --add N",
		Short: "Add N new examples to a dataset and publish it atomically (for cron)",
		Long: `Refresh extends DIR/alpaca_data.json by exactly N new examples. The seeds and
every instruction already in the dataset form the novelty pool, so nothing new
is too similar (ROUGE-L above --threshold) to anything published before.

The new examples are generated in DIR/.refresh/ with their own journal: a
refresh that is killed resumes there, and the published dataset is not touched
until the new full dataset is complete. It is then published atomically; the
version it replaces is kept as DIR/alpaca_data.<UTC time>.json (the newest
--keep-versions of them), and a line is appended to DIR/CHANGELOG.jsonl
(time, added, rejected by reason, tokens, cost).

A lock on DIR keeps two refreshes from overlapping: the second exits at once.
A lock left by a killed run is released by the kernel and simply taken over.
Without a terminal, progress is logged every few seconds instead of drawn.

Exit codes: 0 published, 2 bad input, 3 nothing to do (--add 0), 4 locked
(another refresh is running), 5 --max-cost reached (rerun to continue),
6 teacher unavailable, 7 nothing the teacher writes passes the filters,
130 interrupted (rerun to resume).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRefresh(cmd, &rf)
		},
	}
	rf.gen.register(cmd)
	// The dataset directory and --add replace generate's --out and --num.
	cmd.Flags().MarkHidden("out")
	cmd.Flags().MarkHidden("num")
	f := cmd.Flags()
	f.StringVar(&rf.dataset, "dataset", "", "dataset directory holding alpaca_data.json (created if missing) (required)")
	f.IntVar(&rf.add, "add", 0, "new examples to add")
	f.IntVar(&rf.keepVersions, "keep-versions", 7, "dated snapshots of earlier versions to keep (DIR/alpaca_data.<UTC time>.json)")
	rootCmd.AddCommand(cmd)
}

func runRefresh(cmd *cobra.Command, rf *refreshFlags) error {
	for _, name := range []string{"out", "num"} {
		if cmd.Flags().Changed(name) {
			return withCode(exitBadInput, fmt.Errorf("refresh takes --dataset DIR and --add N, not --%s", name))
		}
	}
	if rf.dataset == "" {
		return withCode(exitBadInput, errors.New("--dataset DIR is required"))
	}
	if rf.add < 0 || rf.keepVersions < 0 {
		return withCode(exitBadInput, fmt.Errorf("--add and --keep-versions must not be negative, got %d and %d", rf.add, rf.keepVersions))
	}
	if rf.add == 0 {
		return withCode(exitNothingToDo, fmt.Errorf("--add 0: %w", pipeline.ErrNothingToDo))
	}
	ac, err := refreshAlpacaConfig(cmd, &rf.gen)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(rf.dataset); err == nil && !fi.IsDir() {
		return withCode(exitBadInput, fmt.Errorf("--dataset %s is a file; give the directory that holds %s", rf.dataset, pipeline.DataFile))
	}
	// The lock comes first: a second refresh must exit at once, before it
	// loads a teacher (a local model can take a while).
	if err := os.MkdirAll(rf.dataset, 0o755); err != nil {
		return withCode(exitBadInput, fmt.Errorf("--dataset: %w", err))
	}
	lock, err := pipeline.LockDir(rf.dataset)
	if err != nil {
		return mapRefreshError(err)
	}
	defer lock.Unlock()
	spent, err := pipeline.SpentSoFar(filepath.Join(rf.dataset, pipeline.RefreshWorkDir))
	if err != nil {
		return withCode(exitBadInput, err)
	}
	t, cost, err := rf.gen.teacher.build(cmd, spent)
	if err != nil {
		return err
	}
	ac.Model, ac.Cost = t.Model(), cost
	// build may set these for the teacher it made (the local engine's
	// sequence count and token bound).
	ac.Concurrency, ac.MaxTokens = rf.gen.teacher.concurrency, rf.gen.maxTokens
	soft, hard, cleanup := gracefulContexts(cmd.Context())
	defer cleanup()
	res, err := pipeline.RunRefresh(soft, hard, t, pipeline.RefreshConfig{
		Dir: rf.dataset, Add: rf.add, KeepVersions: rf.keepVersions, Alpaca: ac, Lock: lock,
	})
	out := cmd.OutOrStdout()
	switch {
	case err == nil:
		e := res.Entry
		prev := ""
		if e.Previous != "" {
			prev = "; previous version " + filepath.Join(rf.dataset, e.Previous)
		}
		fmt.Fprintf(out, "%s: %d -> %d examples (+%d; rejected %s; %d tokens, $%.4f%s)%s\n",
			res.Dataset, e.Before, e.After, e.Added, pipeline.FormatCounts(e.Rejected), e.TotalTokens, e.CostUSD, costNote(e.CostKnown), prev)
	case res != nil && res.Generate != nil:
		g := res.Generate
		fmt.Fprintf(out, "%s: not published; %d/%d new examples so far (status %s, %d tokens, $%.4f%s); run again to continue\n",
			filepath.Join(rf.dataset, pipeline.DataFile), g.Written, g.Target, g.Status, g.TotalTokens, g.CostUSD, costNote(g.CostKnown))
	}
	return mapRefreshError(err)
}

func mapRefreshError(err error) error {
	var ie *pipeline.InputError
	switch {
	case errors.As(err, &ie):
		return withCode(exitBadInput, err)
	case errors.Is(err, pipeline.ErrNothingToDo):
		return withCode(exitNothingToDo, err)
	case errors.Is(err, pipeline.ErrLocked):
		return withCode(exitLocked, fmt.Errorf("another refresh is running, this one exits: %w", err))
	}
	return mapRunError(err)
}

// refreshAlpacaConfig turns generate's flags into the Alpaca recipe's settings,
// as runGenerate does, for commands that run the same loop elsewhere.
func refreshAlpacaConfig(cmd *cobra.Command, g *generateFlags) (pipeline.AlpacaConfig, error) {
	if g.recipe != "alpaca" {
		return pipeline.AlpacaConfig{}, withCode(exitBadInput, fmt.Errorf("--recipe %q: want alpaca", g.recipe))
	}
	seeds, source, raw, err := loadSeeds(g.seedTasks)
	if err != nil {
		return pipeline.AlpacaConfig{}, err
	}
	header := prompts.DefaultAlpacaHeader()
	if g.promptFile != "" {
		if header, err = prompts.LoadPromptHeader(g.promptFile); err != nil {
			return pipeline.AlpacaConfig{}, withCode(exitBadInput, err)
		}
	}
	tok, err := filters.ParseTokenizer(g.tokenizer)
	if err != nil {
		return pipeline.AlpacaConfig{}, withCode(exitBadInput, fmt.Errorf("--tokenizer: %w", err))
	}
	heur, err := heuristicsByName(g.blacklist)
	if err != nil {
		return pipeline.AlpacaConfig{}, withCode(exitBadInput, err)
	}
	var mode teacher.Mode
	switch g.api {
	case "chat":
		mode = teacher.ModeChat
	case "completions", "completion":
		mode = teacher.ModeCompletion
	default:
		return pipeline.AlpacaConfig{}, withCode(exitBadInput, fmt.Errorf("--api %q: want chat or completions", g.api))
	}
	logger := slog.Default()
	return pipeline.AlpacaConfig{
		Seeds:          seeds,
		SeedSource:     source,
		SeedSHA256:     pipeline.SHA256Hex(raw),
		Header:         header,
		NumPrompt:      g.numPrompt,
		API:            mode,
		PerRequest:     g.perRequest,
		Model:          g.teacher.model,
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
		Progress:       pipeline.NewProgress(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), logger, 10*time.Second),
		Logger:         logger,
		Settings:       settingsOf(cmd),
	}, nil
}
