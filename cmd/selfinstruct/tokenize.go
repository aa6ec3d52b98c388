package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/selfinstruct/selfinstruct/llm/tokenizer"
)

func init() { rootCmd.AddCommand(newTokenizeCmd()) }

type tokenizeFlags struct {
	model        string
	text         string
	file         string
	bos          bool
	parseSpecial bool
	jsonOut      bool
	split        string
}

// tokenizeResult is the --json output for one text.
type tokenizeResult struct {
	IDs    []int32  `json:"ids"`
	Pieces []string `json:"pieces"`
	Count  int      `json:"count"`
}

func newTokenizeCmd() *cobra.Command {
	var fl tokenizeFlags
	cmd := &cobra.Command{
		Use:   "tokenize --model M.gguf (--text T | --file F)",
		Short: "Print the token ids a GGUF model's tokenizer gives a text, as llama.cpp would",
		Long: `Tokenizes a text with the tokenizer stored in a GGUF file and prints the ids,
space-separated on one line. The ids are those llama.cpp's llama_tokenize gives.

By default no BOS/EOS is added and special-token text such as "<|im_start|>" is
tokenized as plain text. --bos adds BOS (and EOS) where the vocabulary asks for
it: LLaMA's SentencePiece and LLaMA 3 add BOS, Qwen2 and GPT-2 add none.
--parse-special turns special-token text into the special tokens.

--json prints {"ids":[...],"pieces":[...],"count":N}; a piece is the text of one
token (a byte token that is part of a UTF-8 character shows as U+FFFD).

--split SEP tokenizes each SEP-separated part of the input on its own and prints
one line per part (one JSON object per line with --json); a trailing SEP ends
the last part instead of starting an empty one. Escapes \n, \t and \\ in SEP are
interpreted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTokenize(cmd, &fl) },
	}
	f := cmd.Flags()
	f.StringVarP(&fl.model, "model", "m", "", "GGUF model or vocabulary file (required)")
	f.StringVar(&fl.text, "text", "", "text to tokenize")
	f.StringVarP(&fl.file, "file", "f", "", "file whose bytes to tokenize ('-' for stdin)")
	f.BoolVar(&fl.bos, "bos", false, "add BOS/EOS as the vocabulary asks")
	f.BoolVar(&fl.parseSpecial, "parse-special", false, "parse special-token text into special tokens")
	f.BoolVar(&fl.jsonOut, "json", false, `print {"ids":[...],"pieces":[...],"count":N}`)
	f.StringVar(&fl.split, "split", "", "tokenize each part between these separators on its own")
	return cmd
}

func runTokenize(cmd *cobra.Command, fl *tokenizeFlags) error {
	if fl.model == "" {
		return withCode(exitBadInput, errors.New("tokenize: --model is required"))
	}
	hasText := cmd.Flags().Changed("text")
	if hasText == (fl.file != "") {
		return withCode(exitBadInput, errors.New("tokenize: give exactly one of --text and --file"))
	}
	input := fl.text
	if !hasText {
		var data []byte
		var err error
		if fl.file == "-" {
			data, err = io.ReadAll(cmd.InOrStdin())
		} else {
			data, err = os.ReadFile(fl.file)
		}
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("tokenize: %w", err))
		}
		input = string(data)
	}
	tok, err := tokenizer.Open(fl.model)
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("tokenize: %w", err))
	}

	parts := []string{input}
	if fl.split != "" {
		sep := unescapeSeparator(fl.split)
		parts = strings.Split(input, sep)
		if len(parts) > 1 && parts[len(parts)-1] == "" {
			parts = parts[:len(parts)-1]
		}
	}

	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var line []byte
	for _, part := range parts {
		ids := tok.Encode(part, fl.bos, fl.parseSpecial)
		if fl.jsonOut {
			res := tokenizeResult{IDs: ids, Pieces: make([]string, len(ids)), Count: len(ids)}
			for i, id := range ids {
				res.Pieces[i] = tok.Piece(id)
			}
			if err := enc.Encode(res); err != nil {
				return fmt.Errorf("tokenize: writing output: %w", err)
			}
			continue
		}
		line = line[:0]
		for i, id := range ids {
			if i > 0 {
				line = append(line, ' ')
			}
			line = strconv.AppendInt(line, int64(id), 10)
		}
		line = append(line, '\n')
		if _, err := out.Write(line); err != nil {
			return fmt.Errorf("tokenize: writing output: %w", err)
		}
	}
	return nil
}

// unescapeSeparator lets a shell user write a separator containing newlines.
func unescapeSeparator(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case 't':
				b.WriteByte('\t')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
