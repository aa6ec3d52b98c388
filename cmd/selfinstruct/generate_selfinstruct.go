package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// selfInstructFlags are the settings only --recipe self-instruct reads.
type selfInstructFlags struct {
	machineTasks      int
	maxInstances      int
	instanceMaxTokens int
	presencePenalty   float64
}

var siFlags selfInstructFlags

// The flags are added to the generate command from here, so that the
// recipe's settings live with the recipe. Go runs a package's init functions
// in file-name order, so generate.go's init has registered the command by
// now.
func init() {
	var gen *cobra.Command
	for _, c := range rootCmd.Commands() {
		if c.Name() == "generate" {
			gen = c
		}
	}
	if gen == nil {
		panic("generate_selfinstruct.go: the generate command is not registered")
	}
	d := pipeline.DefaultSelfInstructConfig()
	f := gen.Flags()
	f.IntVar(&siFlags.machineTasks, "machine-prompt-instructions", d.MachineTasks, "self-instruct: generated tasks among those each bootstrap prompt shows")
	f.IntVar(&siFlags.maxInstances, "max-instances", d.MaxInstances, "self-instruct: instances kept per task")
	f.IntVar(&siFlags.instanceMaxTokens, "instance-max-tokens", d.InstanceMaxTokens, "self-instruct: maximum tokens of an instance response")
	f.Float64Var(&siFlags.presencePenalty, "presence-penalty", d.PresencePenalty, "self-instruct: presence penalty of bootstrap requests")
	gen.Long += `

With --recipe self-instruct, the original Self-Instruct method: each
bootstrap prompt shows 8 tasks (6 seeds, 2 generated) and asks for up to 7
more; each new task is classified ("Is it classification?") and its
instances are asked label-first for classification tasks and input-first
otherwise. --num counts tasks; DIR/tasks.jsonl holds them with their
instances in the seed-file format. Defaults follow the paper (temperature
0.7, top-p 0.5, presence penalty 2, 1024 tokens) unless set.`
}

// runSelfInstruct runs `generate --recipe self-instruct`.
func runSelfInstruct(cmd *cobra.Command, g *generateFlags) error {
	changed := cmd.Flags().Changed
	for _, name := range []string{"prompt-file", "with-similarity", "request-batch-size"} {
		if changed(name) {
			return withCode(exitBadInput, fmt.Errorf("--%s applies to --recipe alpaca only", name))
		}
	}
	seeds, source, raw, err := loadSeeds(g.seedTasks)
	if err != nil {
		return err
	}
	tok, err := filters.ParseTokenizer(g.tokenizer)
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("--tokenizer: %w", err))
	}
	heur, err := heuristicsByName(g.blacklist)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	cfg := pipeline.DefaultSelfInstructConfig()
	switch g.api {
	case "chat":
		cfg.API = teacher.ModeChat
	case "completions", "completion":
		cfg.API = teacher.ModeCompletion
	default:
		return withCode(exitBadInput, fmt.Errorf("--api %q: want chat or completions", g.api))
	}
	// The generate command's defaults are Alpaca's; the paper's apply
	// unless the user chose otherwise.
	if changed("temperature") {
		cfg.Temperature = g.temperature
	}
	if changed("top-p") {
		cfg.TopP = g.topP
	}
	if changed("max-tokens") {
		cfg.MaxTokens = g.maxTokens
	}
	if changed("num-prompt-instructions") {
		cfg.PromptTasks = g.numPrompt
	}
	cfg.MachineTasks = siFlags.machineTasks
	cfg.MaxInstances = siFlags.maxInstances
	cfg.InstanceMaxTokens = siFlags.instanceMaxTokens
	cfg.PresencePenalty = siFlags.presencePenalty
	switch {
	case cfg.PromptTasks <= 0 || cfg.PromptTasks > 40:
		return withCode(exitBadInput, fmt.Errorf("--num-prompt-instructions %d: want 1 to 40", cfg.PromptTasks))
	case cfg.MachineTasks < 0 || cfg.MachineTasks >= cfg.PromptTasks:
		return withCode(exitBadInput, fmt.Errorf("--machine-prompt-instructions %d: want 0 to %d (fewer than --num-prompt-instructions)", cfg.MachineTasks, cfg.PromptTasks-1))
	case cfg.MaxInstances <= 0:
		return withCode(exitBadInput, fmt.Errorf("--max-instances must be positive, got %d", cfg.MaxInstances))
	case cfg.InstanceMaxTokens <= 0 || cfg.MaxTokens <= 0:
		return withCode(exitBadInput, fmt.Errorf("--max-tokens and --instance-max-tokens must be positive"))
	case g.num <= 0:
		return withCode(exitBadInput, fmt.Errorf("--num must be positive, got %d", g.num))
	case len(seeds) < cfg.PromptTasks:
		return withCode(exitBadInput, fmt.Errorf("--seed-tasks %s: %d tasks, a bootstrap prompt shows %d", source, len(seeds), cfg.PromptTasks))
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
	cfg.Num = g.num
	cfg.OutDir = g.out
	cfg.Seeds = seeds
	cfg.SeedSource = source
	cfg.SeedSHA256 = pipeline.SHA256Hex(raw)
	cfg.Model = t.Model()
	cfg.Threshold = g.threshold
	cfg.Tokenizer = tok
	cfg.Heuristics = heur
	cfg.Seed = g.seed
	cfg.SeedSet = changed("seed")
	cfg.Concurrency = g.teacher.concurrency
	cfg.MaxBarren = g.maxBarren
	cfg.Cost = cost
	cfg.Progress = pipeline.NewProgress(os.Stderr, terminal, logger, 10*time.Second)
	cfg.Logger = logger
	cfg.Settings = settingsOf(cmd)

	soft, hard, cleanup := gracefulContexts(cmd.Context())
	defer cleanup()
	rep, err := pipeline.RunSelfInstruct(soft, hard, t, cfg)
	if rep != nil {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %d/%d tasks (%.0f%% classification) with %d instances in %s and %s (status %s, %d tokens, $%.4f%s)\n",
			g.out, rep.Written, rep.Target, 100*rep.ClassificationShare, rep.InstancesWritten, pipeline.TasksFile, pipeline.DataFile,
			rep.Status, rep.TotalTokens, rep.CostUSD, costNote(rep.CostKnown))
	}
	return mapRunError(err)
}
