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

	"github.com/selfinstruct/selfinstruct/pipeline"
	"github.com/selfinstruct/selfinstruct/prompts"
	"github.com/selfinstruct/selfinstruct/teacher"
)

type translateFlags struct {
	in, out, to, from string
	workDir, report   string
	keep              []string
	glossary          string
	keepSource        bool
	retryFailed       bool
	dryRun            bool
	temperature       float64
	maxTokens         int
	exampleAttempts   int
	fieldAttempts     int
	maxFailures       int
	teacher           teacherFlags
}

func init() {
	var tf translateFlags
	cmd := &cobra.Command{
		Use:   "translate --in FILE --to LANG",
		Short: "Translate an instruction dataset into another language",
		Long: `Translate sends each example's instruction, input and output to the teacher
together, as one JSON object, and checks the answer: the same fields back and
nothing added, every protected span (code, URLs, e-mail addresses, numbers with
units, {placeholders}, --keep matches) back byte-identical. An answer that fails
is retried once, then each field is translated on its own.

The output has one record per input record, in the input's order; a
translation_report.json beside it counts requests, retries, fallbacks, failures
(with reasons), tokens and cost. Every paid response is journaled in
OUT.work/: running the same command again resumes without paying twice.

Exit codes: 0 done (failed examples are listed in the report), 2 bad input,
4 another run holds OUT.work, 5 --max-cost reached, 6 teacher unavailable,
7 examples keep failing, 130 interrupted (rerun to resume).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTranslate(cmd, &tf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tf.in, "in", "", "dataset to translate: a JSON list or JSONL of {instruction, input, output} records (required)")
	f.StringVar(&tf.to, "to", "", "target language: a code (pt, pt-BR, de, zh-TW ...) or a name (required)")
	f.StringVar(&tf.from, "from", "en", "source language")
	f.StringVar(&tf.out, "out", "", "translated dataset, same format as --in (default: IN with .LANG before the extension)")
	f.StringVar(&tf.workDir, "work-dir", "", "journal and lock directory (default: OUT.work)")
	f.StringVar(&tf.report, "report", "", "report file (default: translation_report.json beside OUT)")
	f.StringArrayVar(&tf.keep, "keep", nil, "regular expression whose matches must stay unchanged (repeatable)")
	f.StringVar(&tf.glossary, "glossary", "", `fixed term translations: a JSON object {"term": "translation"} or "term<TAB>translation" lines`)
	f.BoolVar(&tf.keepSource, "keep-source", false, "keep the source texts in instruction_source, input_source, output_source (and translation_error) for auditing")
	f.BoolVar(&tf.retryFailed, "retry-failed", false, "try again the examples an earlier session gave up on")
	f.BoolVar(&tf.dryRun, "dry-run", false, "print the requests, tokens and cost the translation would take, and send nothing")
	f.Float64Var(&tf.temperature, "temperature", 0, "sampling temperature")
	f.IntVar(&tf.maxTokens, "max-tokens", 0, "maximum tokens per answer (0: three times the request's size, plus 256)")
	f.IntVar(&tf.exampleAttempts, "example-attempts", 2, "whole-example requests before falling back to one request per field")
	f.IntVar(&tf.fieldAttempts, "field-attempts", 4, "requests per field in the fallback before the example is given up")
	f.IntVar(&tf.maxFailures, "max-failures", 10, "stop after this many examples in a row are given up")
	tf.teacher.register(cmd)
	rootCmd.AddCommand(cmd)
}

func runTranslate(cmd *cobra.Command, tf *translateFlags) error {
	if tf.in == "" || tf.to == "" {
		return withCode(exitBadInput, errors.New("--in and --to are required (e.g. --in alpaca_data.json --to pt)"))
	}
	for name, v := range map[string]int{"--example-attempts": tf.exampleAttempts, "--field-attempts": tf.fieldAttempts, "--max-failures": tf.maxFailures} {
		if v <= 0 {
			return withCode(exitBadInput, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	cfg := pipeline.TranslateConfig{
		InPath: tf.in, OutPath: tf.out, WorkDir: tf.workDir, ReportPath: tf.report,
		From: tf.from, To: tf.to, Keep: tf.keep, KeepSource: tf.keepSource, RetryFailed: tf.retryFailed,
		Model: tf.teacher.model, Temperature: tf.temperature, MaxTokens: tf.maxTokens,
		Concurrency: tf.teacher.concurrency, ExampleAttempts: tf.exampleAttempts,
		FieldAttempts: tf.fieldAttempts, MaxFailures: tf.maxFailures,
		Logger: slog.Default(), Settings: settingsOf(cmd),
	}
	if tf.out == "" {
		cfg.OutPath = pipeline.DefaultTranslateOut(tf.in, tf.to)
	}
	if tf.workDir == "" {
		cfg.WorkDir = cfg.OutPath + ".work"
	}
	if tf.report == "" {
		cfg.ReportPath = filepath.Join(filepath.Dir(cfg.OutPath), pipeline.TranslationReportFile)
	}
	if tf.glossary != "" {
		raw, err := os.ReadFile(tf.glossary)
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("--glossary: %w", err))
		}
		g, err := prompts.ParseGlossary(tf.glossary, raw)
		if err != nil {
			return withCode(exitBadInput, err)
		}
		cfg.Glossary, cfg.GlossarySHA256 = g, pipeline.SHA256Hex(raw)
	}
	out := cmd.OutOrStdout()
	if tf.dryRun {
		prices, err := translatePriceTable(cmd, &tf.teacher)
		if err != nil {
			return err
		}
		baseURL := tf.teacher.baseURL
		if baseURL == "" {
			baseURL = os.Getenv(teacher.EnvBaseURL)
		}
		kind, err := tf.teacher.resolveKind(cmd, baseURL, os.Getenv(teacher.EnvAPIKey))
		if err != nil {
			return err
		}
		model := tf.teacher.model
		if model == "" {
			model = defaultOpenAIModel
		}
		if kind == "local" {
			model = "the local teacher" // priced at nothing below
			prices = teacher.Prices{model: {}}
		}
		tf.teacher.model = model
		cfg.Cost = func(u teacher.Usage) (float64, bool) { return prices.Cost(model, u) }
		est, err := pipeline.EstimateTranslate(cfg)
		if err != nil {
			return mapTranslateError(err)
		}
		fmt.Fprintf(out, "%s: %d examples, %d to translate (%d done earlier, %d with nothing to translate)\n",
			tf.in, est.Examples, est.Pending, est.Done, est.Unchanged)
		fmt.Fprintf(out, "requests: %d, before retries and fallbacks\n", est.Requests)
		fmt.Fprintf(out, "expected tokens: %d prompt + %d completion = %d\n", est.Usage.PromptTokens, est.Usage.CompletionTokens, est.Usage.Total())
		if est.CostKnown {
			fmt.Fprintf(out, "expected cost with %s: $%.4f (at most $%.4f if every answer used max_tokens)", tf.teacher.model, est.CostUSD, est.MaxCost)
			if est.Spent > 0 {
				fmt.Fprintf(out, "; $%.4f spent earlier", est.Spent)
			}
			fmt.Fprintln(out)
		} else {
			fmt.Fprintf(out, "cost: no price known for %s (give --price-input/--price-output)\n", tf.teacher.model)
		}
		return nil
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return withCode(exitBadInput, fmt.Errorf("--work-dir: %w", err))
	}
	spent, err := pipeline.SpentSoFar(cfg.WorkDir)
	if err != nil {
		return withCode(exitBadInput, err)
	}
	t, cost, err := tf.teacher.build(cmd, spent)
	if err != nil {
		return err
	}
	cfg.Cost = cost
	cfg.Model = t.Model()
	cfg.Concurrency = tf.teacher.concurrency // build sets it for the local engine
	cfg.Progress = pipeline.NewProgress(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), slog.Default(), 10*time.Second)
	soft, hard, cleanup := gracefulContexts(cmd.Context())
	defer cleanup()
	rep, err := pipeline.RunTranslate(soft, hard, t, cfg)
	if rep != nil && rep.Examples > 0 {
		fmt.Fprintf(out, "%s: %d/%d examples (%d translated, %d unchanged, %d failed, %d fallbacks, %d retries; status %s, %d tokens, $%.4f%s)\n",
			rep.Output, rep.Written, rep.Examples, rep.Translated, rep.Unchanged, rep.Failed, rep.Fallbacks, rep.Retries,
			rep.Status, rep.TotalTokens, rep.CostUSD, costNote(rep.CostKnown))
		if rep.Failed > 0 {
			slog.Warn("some examples could not be translated and keep their source text; see the report",
				"failed", rep.Failed, "report", cfg.ReportPath)
		}
	}
	return mapTranslateError(err)
}

func mapTranslateError(err error) error {
	var ie *pipeline.InputError
	if errors.As(err, &ie) {
		return withCode(exitBadInput, err)
	}
	return mapRunError(err)
}

// translatePriceTable is the price table build uses, for commands that price work
// without calling the teacher (--dry-run needs no API key).
func translatePriceTable(cmd *cobra.Command, tf *teacherFlags) (teacher.Prices, error) {
	prices := teacher.DefaultPrices()
	if tf.pricesFile != "" {
		p, err := teacher.LoadPrices(tf.pricesFile)
		if err != nil {
			return nil, withCode(exitBadInput, err)
		}
		prices = p
	}
	if cmd.Flags().Changed("price-input") || cmd.Flags().Changed("price-output") {
		p, err := prices.WithOverride(tf.model, teacher.Price{Input: tf.priceIn, Output: tf.priceOut})
		if err != nil {
			return nil, withCode(exitBadInput, err)
		}
		prices = p
	}
	return prices, nil
}
