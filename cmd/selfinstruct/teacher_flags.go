package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/teacher"
)

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
}

func (tf *teacherFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&tf.kind, "teacher", "openai", "teacher backend: openai (any OpenAI-compatible API)")
	f.StringVar(&tf.model, "model", "gpt-4o-mini", "teacher model name")
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
}

// build makes the teacher and the function that prices its usage. spent is
// what earlier sessions of the same run paid, counted against --max-cost.
func (tf *teacherFlags) build(cmd *cobra.Command, spent float64) (teacher.Teacher, func(teacher.Usage) (float64, bool), error) {
	if tf.kind != "openai" {
		return nil, nil, withCode(exitBadInput, fmt.Errorf("--teacher %q: want openai", tf.kind))
	}
	if tf.concurrency <= 0 {
		return nil, nil, withCode(exitBadInput, fmt.Errorf("--concurrency must be positive, got %d", tf.concurrency))
	}
	baseURL := tf.baseURL
	if baseURL == "" {
		baseURL = os.Getenv(teacher.EnvBaseURL)
	}
	key := os.Getenv(teacher.EnvAPIKey)
	if key == "" && (baseURL == "" || baseURL == teacher.DefaultBaseURL) {
		return nil, nil, withCode(exitBadInput, fmt.Errorf(
			"no teacher: set %s to use the OpenAI API (export %s=sk-...), or point --base-url / %s at an OpenAI-compatible server",
			teacher.EnvAPIKey, teacher.EnvAPIKey, teacher.EnvBaseURL))
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
