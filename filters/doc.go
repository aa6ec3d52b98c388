// Package filters decides which generated instructions enter a dataset: the
// ROUGE-L novelty filter of Self-Instruct / Alpaca and Alpaca's heuristic
// filters.
//
// # Exactness
//
// With TokenizerRougeScore every score is bit for bit what Google's
// rouge_score computes in Alpaca's loop (rouge_scorer._score_lcs(new, pool)):
// Python lower() (so "İ" gives "i" plus a separator), runs of [a-z0-9],
// precision = LCS/len(pool), recall = LCS/len(new), F = 2*p*r/(p+r) in that
// order, so 9 vs 11 tokens with LCS 7 scores 0.7000000000000001 and is
// rejected at 0.7. Novelty keeps an item iff its maximum is <= the
// threshold, and reports the first pool id with the maximum, as Python's
// max() and list.index would. The tests replay the reference results of
// rouge_score kept in ../shared (3,018 stress candidates, 5,000 raw Alpaca
// instructions, 17 probe pairs) and compare every decision, maximum and
// argmax; AverageSimilarity reproduces numpy's pairwise-summed mean.
//
// # Speed
//
// Tokens are interned to int32 ids once. The LCS is the Allison–Dix / Hyyrö
// bit-vector algorithm (one 64-bit word per 64 tokens of the shorter side).
// Pruning never changes an answer: an inverted index gives the multiset
// token overlap of the query with each text, an upper bound on their LCS and
// so, with the lengths, on the F-measure (2*LCS/(la+lb), with a margin for
// rounding). Rare tokens are processed first, the common tokens' postings
// are skipped once no text reached only through them could matter, and only
// texts whose bound can reach the bar (the best so far, the threshold, or
// the k-th best) get a full LCS. Novelty.Filter spreads a batch of
// candidates over all cores against the pool as it stood, then settles the
// batch in order, which gives exactly the sequential result.
package filters
