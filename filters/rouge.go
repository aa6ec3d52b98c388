package filters

// RougeL returns rouge_score's rougeL F-measure of target a against
// prediction b with the default tokenizer (no stemmer), bit for bit:
// precision = LCS/len(b), recall = LCS/len(a).
func RougeL(a, b string) float64 {
	return RougeLWith(a, b, TokenizerRougeScore)
}

// RougeLTokenized is RougeL on already tokenized texts.
func RougeLTokenized(a, b []string) float64 {
	ids := make(map[string]int32, len(a)+len(b))
	intern := func(toks []string) []int32 {
		out := make([]int32, len(toks))
		for i, t := range toks {
			id, ok := ids[t]
			if !ok {
				id = int32(len(ids))
				ids[t] = id
			}
			out[i] = id
		}
		return out
	}
	ia, ib := intern(a), intern(b)
	return fmeasure(LCSLength(ia, ib), len(ia), len(ib))
}

// RougeLWith is RougeL with a chosen tokenizer.
func RougeLWith(a, b string, tk Tokenizer) float64 {
	return RougeLTokenized(Tokenize(a, tk), Tokenize(b, tk))
}
