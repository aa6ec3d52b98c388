// Package sample picks the next token from a model's logits the way
// llama.cpp's default sampler chain does (penalties, top-k, top-p, min-p,
// temperature, then a draw), and renders chat conversations into the prompt
// formats the common model families were trained on.
package sample

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Params configures a Sampler. Zero values switch a stage off, except where
// noted, so Params{} is plain greedy decoding.
type Params struct {
	// Temperature divides the logits before the draw. <= 0 means greedy:
	// the highest (penalised) logit, the lowest id among equals.
	Temperature float32
	TopK        int     // keep the K most likely tokens; <= 0: all
	TopP        float32 // keep the smallest set whose probability reaches P; <= 0 or >= 1: off
	MinP        float32 // drop tokens less likely than MinP times the best one; <= 0: off

	// RepeatPenalty divides positive logits (multiplies negative ones) of
	// tokens seen in the last RepeatLastN history entries; 0 or 1: off.
	RepeatPenalty float32
	// PresencePenalty is subtracted once from the logit of every seen token,
	// FrequencyPenalty once per occurrence.
	PresencePenalty, FrequencyPenalty float32
	// RepeatLastN is how much history the penalties look at: 0 means
	// llama.cpp's default of 64, a negative value the whole history.
	RepeatLastN int

	// Seed makes the draws reproducible: the same seed, logits and history
	// give the same tokens.
	Seed uint64
}

// DefaultParams are llama.cpp's command-line defaults.
func DefaultParams() Params {
	return Params{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1, RepeatLastN: 64}
}

const defaultRepeatLastN = 64

type candidate struct {
	id    int32
	logit float32
	p     float32
}

// Sampler draws tokens. It reuses its buffers between calls, so it is not
// safe for concurrent use; give each generation its own.
type Sampler struct {
	p      Params
	rng    *rand.Rand
	cands  []candidate
	counts []int32 // occurrences per token id in the penalty window
}

// New makes a sampler; its random stream starts from p.Seed.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9E3779B97F4A7C15))}
}

// Params returns the sampler's configuration.
func (s *Sampler) Params() Params { return s.p }

// Sample picks the next token id from logits (one per vocabulary entry),
// applying the penalties to the tokens in history (oldest first). It
// returns -1 only for empty logits.
func (s *Sampler) Sample(logits []float32, history []int32) int32 {
	if len(logits) == 0 {
		return -1
	}
	window := s.penaltyWindow(history)
	if len(window) > 0 {
		if cap(s.counts) < len(logits) {
			s.counts = make([]int32, len(logits))
		}
		s.counts = s.counts[:len(logits)]
		for _, id := range window {
			if id >= 0 && int(id) < len(logits) {
				s.counts[id]++
			}
		}
		defer func() {
			for _, id := range window {
				if id >= 0 && int(id) < len(logits) {
					s.counts[id] = 0
				}
			}
		}()
	}

	if s.p.Temperature <= 0 {
		best, bestLogit := int32(-1), float32(0)
		for i, l := range logits {
			if len(window) > 0 {
				l = s.penalize(l, s.counts[i])
			}
			if l != l {
				continue // NaN cannot be ranked
			}
			// ">" keeps the first index among equal logits.
			if best < 0 || l > bestLogit {
				best, bestLogit = int32(i), l
			}
		}
		return max(best, 0)
	}

	cands := s.cands[:0]
	for i, l := range logits {
		if len(window) > 0 {
			l = s.penalize(l, s.counts[i])
		}
		if l != l { // NaN cannot be ranked; llama.cpp's behaviour is undefined
			continue
		}
		cands = append(cands, candidate{id: int32(i), logit: l})
	}
	s.cands = cands
	if len(cands) == 0 {
		return 0
	}

	// Highest logit first; among equals the lower id, so results do not
	// depend on the sort algorithm.
	byLogit := func(a, b candidate) int {
		switch {
		case a.logit > b.logit:
			return -1
		case a.logit < b.logit:
			return 1
		}
		return int(a.id - b.id)
	}

	if k := s.p.TopK; k > 0 && k < len(cands) {
		selectTop(cands, k, byLogit)
		cands = cands[:k]
	}

	// llama.cpp applies top-p, then min-p. Both keep a best-first prefix, so
	// the result is the shorter of the two; top-p's probabilities are those
	// of the candidates before min-p, so they are computed first, and min-p
	// (a single pass over the logits) runs before the sorting top-p needs.
	topP := s.p.TopP > 0 && s.p.TopP < 1
	if topP && !softmax(cands) {
		return bestOf(cands, byLogit)
	}
	if s.p.MinP > 0 {
		maxLogit := cands[0].logit
		for _, c := range cands {
			maxLogit = max(maxLogit, c.logit)
		}
		floor := maxLogit + float32(math.Log(float64(s.p.MinP)))
		kept := cands[:0]
		for _, c := range cands {
			if c.logit >= floor {
				kept = append(kept, c)
			}
		}
		if len(kept) == 0 {
			// MinP > 1 would drop everything; llama.cpp keeps the best.
			best := bestOf(cands, byLogit)
			kept = append(kept, candidate{id: best, logit: maxLogit})
		}
		cands = kept
	}
	if topP {
		cands = cands[:topPPrefix(cands, s.p.TopP, byLogit)]
	}

	inv := 1 / s.p.Temperature
	for i := range cands {
		cands[i].logit *= inv
	}
	if !softmax(cands) {
		return bestOf(cands, byLogit)
	}
	r := s.rng.Float32()
	var cum float32
	for _, c := range cands {
		cum += c.p
		if r < cum {
			return c.id
		}
	}
	return cands[len(cands)-1].id // rounding left r just above the total
}

// topPPrefix orders the candidates (probabilities set) best first as far as
// needed and returns the length of the shortest prefix whose probability
// reaches p. It sorts growing chunks from the top rather than the whole
// vocabulary; cmp is a total order, so the prefix is the one a full sort
// gives.
func topPPrefix(cands []candidate, p float32, cmp func(a, b candidate) int) int {
	var cum float32
	for done, chunk := 0, 64; done < len(cands); done, chunk = done+chunk, chunk*2 {
		rest := cands[done:]
		k := min(chunk, len(rest))
		if k < len(rest) {
			selectTop(rest, k, cmp)
		}
		slices.SortFunc(rest[:k], cmp)
		for i := done; i < done+k; i++ {
			cum += cands[i].p
			if cum >= p {
				return i + 1
			}
		}
	}
	return len(cands)
}

// bestOf is the first candidate in cmp order.
func bestOf(cands []candidate, cmp func(a, b candidate) int) int32 {
	best := cands[0]
	for _, c := range cands[1:] {
		if cmp(c, best) < 0 {
			best = c
		}
	}
	return best.id
}

func (s *Sampler) penaltyWindow(history []int32) []int32 {
	p := s.p
	if (p.RepeatPenalty == 0 || p.RepeatPenalty == 1) && p.PresencePenalty == 0 && p.FrequencyPenalty == 0 {
		return nil
	}
	n := p.RepeatLastN
	switch {
	case n == 0:
		n = defaultRepeatLastN
	case n < 0:
		n = len(history)
	}
	if n < len(history) {
		history = history[len(history)-n:]
	}
	return history
}

// penalize applies llama.cpp's repetition, frequency and presence penalties
// to one logit whose token occurred count times.
func (s *Sampler) penalize(logit float32, count int32) float32 {
	if count == 0 {
		return logit
	}
	if rp := s.p.RepeatPenalty; rp != 0 && rp != 1 {
		if logit <= 0 {
			logit *= rp
		} else {
			logit /= rp
		}
	}
	return logit - float32(count)*s.p.FrequencyPenalty - s.p.PresencePenalty
}

// softmax sets p from the logits. It reports false when an infinite best
// logit leaves no distribution to draw from (the caller then takes the best).
func softmax(cands []candidate) bool {
	maxLogit := cands[0].logit
	for _, c := range cands {
		maxLogit = max(maxLogit, c.logit)
	}
	if math.IsInf(float64(maxLogit), 0) {
		return false
	}
	var sum float32
	for i := range cands {
		e := float32(math.Exp(float64(cands[i].logit - maxLogit)))
		cands[i].p = e
		sum += e
	}
	for i := range cands {
		cands[i].p /= sum
	}
	return true
}

// selectTop moves the k best candidates (by cmp) to the front, in any
// order: quickselect, so a 150k-token vocabulary is not fully sorted.
func selectTop(c []candidate, k int, cmp func(a, b candidate) int) {
	lo, hi := 0, len(c)-1
	for lo < hi {
		// median of three keeps sorted input from going quadratic
		mid := lo + (hi-lo)/2
		if cmp(c[mid], c[lo]) < 0 {
			c[mid], c[lo] = c[lo], c[mid]
		}
		if cmp(c[hi], c[lo]) < 0 {
			c[hi], c[lo] = c[lo], c[hi]
		}
		if cmp(c[hi], c[mid]) < 0 {
			c[hi], c[mid] = c[mid], c[hi]
		}
		pivot := c[mid]
		i, j := lo, hi
		for i <= j {
			for cmp(c[i], pivot) < 0 {
				i++
			}
			for cmp(c[j], pivot) > 0 {
				j--
			}
			if i <= j {
				c[i], c[j] = c[j], c[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}
