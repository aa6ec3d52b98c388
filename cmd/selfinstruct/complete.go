package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/llm/gguf"
	"github.com/selfinstruct/selfinstruct/llm/model"
	"github.com/selfinstruct/selfinstruct/llm/sample"
	"github.com/selfinstruct/selfinstruct/llm/tokenizer"
	"github.com/selfinstruct/selfinstruct/teacher"
)

func init() { rootCmd.AddCommand(newCompleteCmd()) }

type completeFlags struct {
	model      string
	prompt     string
	promptFile string
	n          int
	ctx        int
	threads    int
	chat       bool
	template   string
	jsonOut    bool
	params     sample.Params
	seed       uint64
}

// completeResult is the --json output of `complete`.
type completeResult struct {
	Model        string          `json:"model"`
	PromptTokens []int32         `json:"prompt_tokens"`
	Tokens       []int32         `json:"tokens"`
	Text         string          `json:"text"`
	FinishReason string          `json:"finish_reason"`
	Timings      completeTimings `json:"timings"`
}

type completeTimings struct {
	PromptN            int     `json:"prompt_n"`
	PromptMS           float64 `json:"prompt_ms"`
	PromptPerSecond    float64 `json:"prompt_per_second"`
	PredictedN         int     `json:"predicted_n"`
	PredictedMS        float64 `json:"predicted_ms"`
	PredictedPerSecond float64 `json:"predicted_per_second"`
}

func newCompleteCmd() *cobra.Command {
	var fl completeFlags
	cmd := &cobra.Command{
		Use:   "complete --model M.gguf (--prompt P | --prompt-file F)",
		Short: "Continue a prompt with a local GGUF model (the local teacher's engine)",
		Long: `Loads a GGUF model (llama or qwen2 architecture) and continues the prompt.

The prompt is tokenized as llama.cpp does it (BOS added when the vocabulary asks
for it, special-token text not parsed); with --chat it is wrapped as one user
message in the model's chat template (or --template NAME) and special tokens in
the rendered text are parsed. Generation is greedy unless --temperature > 0, and
stops after -n tokens or at an end-of-generation token.

Without --json the generated text is streamed to stdout and timings go to
stderr. With --json one object is printed: prompt_tokens, tokens (generated
ids), text, finish_reason and timings.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runComplete(cmd, &fl)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fl.model, "model", "m", "", "GGUF model file (required)")
	f.StringVarP(&fl.prompt, "prompt", "p", "", "prompt text")
	f.StringVarP(&fl.promptFile, "prompt-file", "f", "", "file holding the prompt text (used byte for byte)")
	f.IntVarP(&fl.n, "n-predict", "n", 128, "maximum number of tokens to generate")
	f.IntVar(&fl.ctx, "ctx-size", 0, "context size in tokens (default: prompt + n-predict)")
	f.IntVarP(&fl.threads, "threads", "t", 0, "threads for the matrix products (default: all cores)")
	f.BoolVar(&fl.chat, "chat", false, "wrap the prompt as a user message in the chat template")
	f.StringVar(&fl.template, "template", "", "chat template name (default: detected from the model's tokenizer.chat_template)")
	f.BoolVar(&fl.jsonOut, "json", false, "print one JSON object instead of streaming text")
	f.Float32Var(&fl.params.Temperature, "temperature", 0, "sampling temperature; 0 is greedy (argmax)")
	f.IntVar(&fl.params.TopK, "top-k", 40, "top-k sampling (0 = off)")
	f.Float32Var(&fl.params.TopP, "top-p", 0.95, "nucleus sampling (1 = off)")
	f.Float32Var(&fl.params.MinP, "min-p", 0.05, "min-p sampling (0 = off)")
	f.Float32Var(&fl.params.RepeatPenalty, "repeat-penalty", 1, "repetition penalty (1 = off)")
	f.IntVar(&fl.params.RepeatLastN, "repeat-last-n", 64, "tokens the repetition penalty looks back over")
	f.Uint64Var(&fl.seed, "seed", 0, "sampling seed")
	return cmd
}

func runComplete(cmd *cobra.Command, fl *completeFlags) error {
	ctx := cmd.Context()
	if fl.model == "" {
		return withCode(exitBadInput, errors.New("complete: --model is required"))
	}
	if (fl.prompt == "") == (fl.promptFile == "") {
		return withCode(exitBadInput, errors.New("complete: give exactly one of --prompt and --prompt-file"))
	}
	if fl.n <= 0 {
		return withCode(exitBadInput, fmt.Errorf("complete: -n must be positive, got %d", fl.n))
	}
	prompt := fl.prompt
	if fl.promptFile != "" {
		b, err := os.ReadFile(fl.promptFile)
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("complete: %w", err))
		}
		prompt = string(b)
	}

	lm, err := loadLocalModel(fl.model, fl.threads)
	if err != nil {
		return err
	}
	defer lm.close()

	var ids []int32
	if fl.chat {
		// The local teacher's encoder, so that `complete --chat` shows
		// exactly what the teacher sends the model.
		enc, err := teacher.NewChatEncoder(lm.tok, fl.template)
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("complete: %w; name one with --template", err))
		}
		if ids, err = enc.Encode([]sample.Message{{Role: "user", Content: prompt}}); err != nil {
			return fmt.Errorf("complete: chat template: %w", err)
		}
	} else {
		ids = lm.tok.Encode(prompt, true, false)
	}
	if len(ids) == 0 {
		return withCode(exitBadInput, errors.New("complete: the prompt tokenizes to nothing"))
	}
	nCtx := fl.ctx
	if nCtx <= 0 {
		nCtx = len(ids) + fl.n
	}
	if len(ids) >= nCtx {
		return withCode(exitBadInput, fmt.Errorf("complete: prompt of %d tokens does not fit the context of %d", len(ids), nCtx))
	}
	sess, err := lm.m.NewSession(nCtx)
	if err != nil {
		return err
	}
	defer sess.Close()

	out := cmd.OutOrStdout()
	dec := lm.tok.NewStreamDecoder()
	var text strings.Builder
	opts := model.GenerateOptions{
		MaxTokens: min(fl.n, nCtx-len(ids)),
		Stop:      lm.tok.IsEOG,
		OnToken: func(id int32) bool {
			piece := dec.Add(id)
			text.WriteString(piece)
			if !fl.jsonOut {
				io.WriteString(out, piece)
			}
			return true
		},
	}
	// With --temperature 0 the sampler is greedy (penalties still apply).
	p := fl.params
	p.Seed = fl.seed
	opts.Sampler = sample.New(p)
	gen, err := sess.Generate(ctx, ids, opts)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	rest := dec.Flush()
	text.WriteString(rest)

	tm := completeTimings{
		PromptN:     gen.PromptTokens,
		PromptMS:    ms(gen.PromptTime),
		PredictedN:  gen.GenEvals,
		PredictedMS: ms(gen.GenTime),
	}
	tm.PromptPerSecond = perSecond(tm.PromptN, gen.PromptTime)
	tm.PredictedPerSecond = perSecond(tm.PredictedN, gen.GenTime)
	if fl.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		return enc.Encode(completeResult{
			Model:        fl.model,
			PromptTokens: ids,
			Tokens:       gen.Tokens,
			Text:         text.String(),
			FinishReason: gen.Finish,
			Timings:      tm,
		})
	}
	io.WriteString(out, rest+"\n")
	fmt.Fprintf(cmd.ErrOrStderr(), "prompt: %d tokens in %.2f ms (%.1f tok/s); generation: %d tokens in %.2f ms (%.1f tok/s); finish: %s\n",
		tm.PromptN, tm.PromptMS, tm.PromptPerSecond, tm.PredictedN, tm.PredictedMS, tm.PredictedPerSecond, gen.Finish)
	return nil
}

// localModel is an open GGUF file with its tokenizer and weights.
type localModel struct {
	f   *gguf.File
	tok *tokenizer.Tokenizer
	m   *model.Model
}

func (lm *localModel) close() { lm.f.Close() }

func loadLocalModel(path string, threads int) (*localModel, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, withCode(exitBadInput, err)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		f.Close()
		return nil, withCode(exitBadInput, fmt.Errorf("%s: %w", path, err))
	}
	m, err := model.Load(f, model.Options{Threads: threads})
	if err != nil {
		f.Close()
		return nil, withCode(exitBadInput, fmt.Errorf("%s: %w", path, err))
	}
	return &localModel{f: f, tok: tok, m: m}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func perSecond(n int, d time.Duration) float64 {
	if n == 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
