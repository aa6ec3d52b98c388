package teacher

import "unicode/utf8"

// chatMessageOverheadTokens approximates what the chat format adds around each
// message (role markers and separators, about 4 tokens in OpenAI's own
// accounting), so estimates for many short messages are not far too low.
const chatMessageOverheadTokens = 4

// EstimateTokens guesses how many tokens s takes without a tokenizer: one
// token per four characters, rounded up. It is the usual rule of thumb for
// English under OpenAI's tokenizers; it under-counts scripts where one
// character is a whole token, which is acceptable for rate limiting and
// budgets because the completion's max_tokens dominates the worst case.
func EstimateTokens(s string) int {
	n := utf8.RuneCountInString(s)
	return (n + 3) / 4
}

// estimatePromptTokens guesses the prompt tokens req will be billed for.
func estimatePromptTokens(req Request) int64 {
	var total int64
	switch req.Mode {
	case ModeChat:
		for _, m := range req.Messages {
			total += int64(EstimateTokens(m.Content)) + chatMessageOverheadTokens
		}
	case ModeCompletion:
		for _, p := range req.Prompts {
			total += int64(EstimateTokens(p))
		}
	}
	return total
}

// maxCompletionTokens is the most completion tokens req can be billed for:
// max_tokens per generated choice, and there is one choice per prompt.
// It is 0 when MaxTokens is unset, since then no bound is known.
func maxCompletionTokens(req Request) int64 {
	if req.MaxTokens <= 0 {
		return 0
	}
	choices := int64(1)
	if req.Mode == ModeCompletion {
		choices = int64(len(req.Prompts))
	}
	return int64(req.MaxTokens) * choices
}

// worstCaseUsage is the usage req could at most be billed for, as far as an
// estimate of its prompt can tell.
func worstCaseUsage(req Request) Usage {
	return Usage{PromptTokens: estimatePromptTokens(req), CompletionTokens: maxCompletionTokens(req)}
}
