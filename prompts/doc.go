// Package prompts holds what the pipeline says to a teacher model and how it
// reads the answer back: seed tasks (Self-Instruct JSONL or Alpaca JSON), the
// Alpaca-style generation prompt, and the parser that turns a teacher's
// numbered list of tasks into candidate examples.
//
// The renderer and the parser reproduce Stanford Alpaca's encode_prompt and
// post_process_gpt3_response so that a run with Alpaca's own prompt file is
// comparable with theirs; where Alpaca silently loses or corrupts data (two
// tasks run together without a ### separator, "No input" written instead of
// <noinput>, a stop string that cuts "in 2020.") the parser repairs or counts
// the damage instead. Quality heuristics (word counts, blacklisted words) and
// novelty filtering are not done here: package filters owns them.
package prompts
