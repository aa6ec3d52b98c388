package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/selfinstruct/selfinstruct/llm/hub"
	"github.com/selfinstruct/selfinstruct/teacher"
)

// defaultOpenAIModel is --model for the OpenAI API.
const defaultOpenAIModel = "gpt-4o-mini"

// defaultLocalMaxTokens replaces --max-tokens' default for the local engine.
const defaultLocalMaxTokens = 512

// defaultLocalParallel is how many sequences the local engine batches when
// neither --parallel nor --concurrency says: 8 streams give several times
// one stream's aggregate rate on two cores (make bench-engine), and their KV
// caches fit a laptop's memory at the default context size.
const defaultLocalParallel = 8

// defaultLocalModel is --model for the local engine: the smallest Qwen2.5
// instruct model, whose Q8_0 file holds only Q8_0 and F32 tensors (both
// supported by llm/model) and carries a ChatML template. About 0.5 GB,
// pulled into the cache on first use.
const defaultLocalModel = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf"

// teacherFlags choose and configure the model that writes the data; every
// command that calls a teacher registers the same ones.
type teacherFlags struct {
	kind        string
	model       string
	baseURL     string
	concurrency int
	rpm, tpm    int
	timeout     time.Duration
	maxAttempts int
	backoff     time.Duration
	maxCost     float64
	pricesFile  string
	priceIn     float64
	priceOut    float64

	// The local engine's settings.
	threads      int
	parallel     int
	ctxSize      int
	chatTemplate string
	cacheDir     string
}

func (tf *teacherFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&tf.kind, "teacher", "auto", "teacher backend: openai (any OpenAI-compatible API), local (a GGUF model run in-process on the CPU; --max-tokens then defaults to "+fmt.Sprint(defaultLocalMaxTokens)+"), or auto: local for a GGUF --model, openai when "+teacher.EnvAPIKey+" or a base URL is set, else local")
	f.StringVar(&tf.model, "model", "", "teacher model: an API model name for openai (default "+defaultOpenAIModel+"); a GGUF file or "+hub.Scheme+"OWNER/REPO[@REVISION]/FILE.gguf for local (default "+defaultLocalModel+")")
	f.StringVar(&tf.baseURL, "base-url", "", "OpenAI-compatible API base URL (default $OPENAI_BASE_URL, else "+teacher.DefaultBaseURL+")")
	f.IntVar(&tf.concurrency, "concurrency", 4, "requests in flight at once")
	f.IntVar(&tf.rpm, "rpm", 0, "requests per minute limit on our side (0: follow the server's x-ratelimit headers)")
	f.IntVar(&tf.tpm, "tpm", 0, "tokens per minute limit on our side (0: follow the server's x-ratelimit headers)")
	f.DurationVar(&tf.timeout, "timeout", teacher.DefaultTimeout, "timeout of each attempt of a request")
	f.IntVar(&tf.maxAttempts, "max-attempts", teacher.DefaultMaxAttempts, "attempts per request before it is given up")
	f.DurationVar(&tf.backoff, "retry-backoff", teacher.DefaultBaseBackoff, "first retry's backoff ceiling; doubles per attempt (full jitter), unless the server sends Retry-After")
	f.Float64Var(&tf.maxCost, "max-cost", 0, "stop cleanly before spending more than this many USD in total (0: no limit)")
	f.StringVar(&tf.pricesFile, "prices", "", `JSON price table {"model": {"input": USD per 1M tokens, "output": ...}} added to (and overriding) the built-in one`)
	f.Float64Var(&tf.priceIn, "price-input", 0, "USD per 1M prompt tokens for --model (overrides the table)")
	f.Float64Var(&tf.priceOut, "price-output", 0, "USD per 1M completion tokens for --model (overrides the table)")
	f.IntVar(&tf.threads, "threads", 0, "local: engine threads (default: all cores)")
	f.IntVar(&tf.parallel, "parallel", 0, "local: sequences generated together, batched into one forward pass per token, each with its own KV cache (default: --concurrency when given, else 8)")
	f.IntVar(&tf.ctxSize, "ctx-size", teacher.DefaultLocalCtxSize, "local: context size in tokens (prompt + answer)")
	f.StringVar(&tf.chatTemplate, "chat-template", "", "local: chat template name (chatml, llama3, llama2, mistral, zephyr, phi3, gemma; default: detected from the model)")
	f.StringVar(&tf.cacheDir, "cache", "", "local: where "+hub.Scheme+" models are downloaded (default $"+hub.EnvCache+", else the user cache directory)")
}

// resolveKind turns --teacher auto into a backend: an explicit GGUF model
// means local; an API key or base URL means openai; another model name is
// an API model; with none of these the local default model makes the run
// work without any account.
func (tf *teacherFlags) resolveKind(cmd *cobra.Command, baseURL, key string) (string, error) {
	switch tf.kind {
	case "openai", "local":
		return tf.kind, nil
	case "auto", "":
	default:
		return "", withCode(exitBadInput, fmt.Errorf("--teacher %q: want auto, openai or local", tf.kind))
	}
	switch {
	case isLocalModel(tf.model):
		return "local", nil
	case key != "" || baseURL != "" || cmd.Flags().Changed("base-url") || tf.model != "":
		return "openai", nil
	}
	return "local", nil
}

func isLocalModel(m string) bool {
	return hub.IsRef(m) || strings.HasSuffix(strings.ToLower(m), ".gguf")
}

// buildLocal loads the local engine, pulling an hf:// model first.
func (tf *teacherFlags) buildLocal(cmd *cobra.Command, auto bool) (teacher.Teacher, func(teacher.Usage) (float64, bool), error) {
	ref := tf.model
	if ref == "" {
		ref = defaultLocalModel
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"--threads", tf.threads}, {"--parallel", tf.parallel}, {"--ctx-size", tf.ctxSize}} {
		if c.v < 0 {
			return nil, nil, withCode(exitBadInput, fmt.Errorf("%s must be positive, got %d", c.name, c.v))
		}
	}
	// Sequences batched together share each read of the weights, so a CPU
	// generates several at nearly the cost of one: the engine runs as many
	// as requests are in flight.
	if tf.parallel == 0 {
		tf.parallel = defaultLocalParallel
		if cmd.Flags().Changed("concurrency") {
			tf.parallel = tf.concurrency
		}
	}
	path, err := hub.Resolve(cmd.Context(), ref, hub.Options{
		CacheDir: tf.cacheDir,
		Progress: cmd.ErrOrStderr(),
		Terminal: term.IsTerminal(int(os.Stderr.Fd())),
		Logger:   slog.Default(),
	})
	if err != nil {
		return nil, nil, localPullError(ref, auto, err)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, withCode(exitBadInput, fmt.Errorf("--model: %w", err))
	}
	lt, err := teacher.NewLocal(teacher.LocalConfig{
		Model:    path,
		Name:     ref,
		Threads:  tf.threads,
		Parallel: tf.parallel,
		CtxSize:  tf.ctxSize,
		Template: tf.chatTemplate,
		Logger:   slog.Default(),
	})
	if err != nil {
		return nil, nil, withCode(exitBadInput, fmt.Errorf("--model: %w", err))
	}
	// Requests beyond the sequences the engine runs would only queue, and
	// a graceful stop waits for every request in flight.
	if !cmd.Flags().Changed("concurrency") {
		tf.concurrency = tf.parallel
	}
	// A CPU engine pays for every token of a model that never stops on its
	// own (a base model writing stories instead of tasks), so its default
	// bound is smaller than the API's; a small instruct model still fits
	// several tasks in it, and a shared prompt prefix is evaluated once.
	// Set through the flag's value so the command reads it as its default.
	if f := cmd.Flags().Lookup("max-tokens"); f != nil && !f.Changed {
		if err := f.Value.Set(fmt.Sprint(defaultLocalMaxTokens)); err != nil {
			return nil, nil, err
		}
	}
	if tf.maxCost > 0 {
		slog.Info("--max-cost has no effect: the local teacher costs nothing")
	}
	// The engine runs here: no bill.
	return lt, func(teacher.Usage) (float64, bool) { return 0, true }, nil
}

// pullExitCode maps a download failure to an exit code; unreachable is
// the code for a hub that could not be reached or kept failing.
func pullExitCode(err error, unreachable int) int {
	switch {
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, hub.ErrBadRef), errors.Is(err, hub.ErrNotFound), errors.Is(err, hub.ErrAccess):
		return exitBadInput
	case errors.Is(err, hub.ErrIntegrity):
		return exitError
	}
	return unreachable
}

// localPullError explains a failed model download; when the model was only
// the keyless default, it says how to choose a teacher instead.
func localPullError(ref string, auto bool, err error) error {
	code := pullExitCode(err, exitTeacherDown)
	if !auto || code == exitInterrupted {
		return withCode(code, fmt.Errorf("--model: %w", err))
	}
	return withCode(code, fmt.Errorf(
		"no teacher: %s is not set, so the default local model was to be used, but %w\n"+
			"Set %s to use the OpenAI API (export %s=sk-...), point --base-url / %s at an OpenAI-compatible server, "+
			"or pass --model PATH.gguf to run a GGUF model file you have (or set %s to a reachable mirror of the hub)",
		teacher.EnvAPIKey, err, teacher.EnvAPIKey, teacher.EnvAPIKey, teacher.EnvBaseURL, hub.EnvEndpoint))
}

// build makes the teacher and the function that prices its usage. spent is
// what earlier sessions of the same run paid, counted against --max-cost.
func (tf *teacherFlags) build(cmd *cobra.Command, spent float64) (teacher.Teacher, func(teacher.Usage) (float64, bool), error) {
	if tf.concurrency <= 0 {
		return nil, nil, withCode(exitBadInput, fmt.Errorf("--concurrency must be positive, got %d", tf.concurrency))
	}
	baseURL := tf.baseURL
	if baseURL == "" {
		baseURL = os.Getenv(teacher.EnvBaseURL)
	}
	key := os.Getenv(teacher.EnvAPIKey)
	kind, err := tf.resolveKind(cmd, baseURL, key)
	if err != nil {
		return nil, nil, err
	}
	if kind == "local" {
		return tf.buildLocal(cmd, tf.kind != "local" && tf.model == "")
	}
	if tf.model == "" {
		tf.model = defaultOpenAIModel
	}
	if key == "" && (baseURL == "" || baseURL == teacher.DefaultBaseURL) {
		return nil, nil, withCode(exitBadInput, fmt.Errorf(
			"no teacher: set %s to use the OpenAI API (export %s=sk-...), or point --base-url / %s at an OpenAI-compatible server; "+
				"or run a local GGUF model with --teacher local [--model PATH.gguf|%sOWNER/REPO/FILE.gguf]",
			teacher.EnvAPIKey, teacher.EnvAPIKey, teacher.EnvBaseURL, hub.Scheme))
	}
	prices := teacher.DefaultPrices()
	if tf.pricesFile != "" {
		p, err := teacher.LoadPrices(tf.pricesFile)
		if err != nil {
			return nil, nil, withCode(exitBadInput, err)
		}
		prices = p
	}
	if cmd.Flags().Changed("price-input") || cmd.Flags().Changed("price-output") {
		p, err := prices.WithOverride(tf.model, teacher.Price{Input: tf.priceIn, Output: tf.priceOut})
		if err != nil {
			return nil, nil, withCode(exitBadInput, err)
		}
		prices = p
	}
	oa, err := teacher.NewOpenAI(teacher.OpenAIConfig{
		BaseURL:           baseURL,
		APIKey:            key,
		Model:             tf.model,
		Timeout:           tf.timeout,
		MaxAttempts:       tf.maxAttempts,
		BaseBackoff:       tf.backoff,
		RequestsPerMinute: tf.rpm,
		TokensPerMinute:   tf.tpm,
		MaxConcurrent:     tf.concurrency,
	})
	if err != nil {
		return nil, nil, withCode(exitBadInput, err)
	}
	cost := func(u teacher.Usage) (float64, bool) { return prices.Cost(tf.model, u) }
	var t teacher.Teacher = oa
	if tf.maxCost > 0 {
		b := teacher.WithBudget(oa, tf.maxCost, prices, spent)
		if err := b.Validate(); err != nil {
			return nil, nil, withCode(exitBadInput, err)
		}
		t = b
	}
	return t, cost, nil
}
