package filters

import (
	"math/bits"
)

// fmeasure is rouge_score's _score_lcs(target, prediction) F-measure with
// target = the new text (length la) and prediction = the pool text (lb):
// precision = lcs/lb, recall = lcs/la, F = 2*p*r/(p+r), evaluated in that
// order. The explicit conversions forbid fused multiply-adds, which could
// change the last bit and flip decisions at the 0.7 boundary (9 vs 11 tokens
// with LCS 7 must give 0.7000000000000001, not 0.7).
func fmeasure(lcs, la, lb int) float64 {
	if lcs == 0 || la == 0 || lb == 0 {
		return 0
	}
	p := float64(lcs) / float64(lb)
	r := float64(lcs) / float64(la)
	num := float64(float64(2*p) * r)
	return num / float64(p+r)
}

// boundMargin absorbs the rounding of fmeasure (a few ulps) so that pruning
// by the exact rational bound 2U/(la+lb) never discards a pair whose computed
// score could reach the bar.
const boundMargin = 1e-12

// couldReach reports whether a pair with lengths la, lb whose LCS is at most
// u can score at least bar. bar < 0 means there is no bar yet.
func couldReach(u, la, lb int, bar float64) bool {
	if bar < 0 {
		return true
	}
	if u <= 0 {
		return bar <= 0
	}
	return float64(2*u) >= bar*float64(la+lb)*(1-boundMargin)
}

// lcsDP is the textbook O(la*lb) dynamic programme, kept as the reference the
// bit-parallel kernels are tested and benchmarked against.
func lcsDP(a, b []int32) int {
	return lcsDPRow(a, b, make([]int, len(b)+1))
}

// lcsDPRow is lcsDP with the caller's row of len(b)+1 ints, so that
// benchmarks compare the kernels without the allocation.
func lcsDPRow(a, b []int32, row []int) int {
	row = row[:len(b)+1]
	clear(row)
	for i := range a {
		diag := 0 // row[j] of the previous i
		for j := range b {
			up := row[j+1]
			switch {
			case a[i] == b[j]:
				row[j+1] = diag + 1
			case row[j] > up:
				row[j+1] = row[j]
			}
			diag = up
		}
	}
	return row[len(b)]
}

// lcsWord runs the Allison–Dix / Hyyrö bit-vector LCS for a bit side of at
// most 64 tokens: maskOf(tok) has bit i set where bitSide[i] == tok. Bits of
// V above the bit side's length stay 1 (their match masks are 0), so the
// zeros of V count the LCS.
func lcsWord(dense []uint64, scan []int32) int {
	v := ^uint64(0)
	for _, t := range scan {
		var m uint64
		if uint32(t) < uint32(len(dense)) {
			m = dense[t]
		}
		u := v & m
		v = (v + u) | (v &^ u)
	}
	return bits.OnesCount64(^v)
}

// lcsMulti is lcsWord for bit sides longer than 64 tokens: masks holds
// `words` words per slot, slot[tok] < 0 means tok is absent from the bit
// side. v is scratch of `words` words. Since u ⊆ v, v-u is v&^u and only the
// addition carries between words.
func lcsMulti(slot []int32, masks []uint64, words int, scan []int32, v []uint64) int {
	if words == 2 {
		return lcs2Words(slot, masks, scan)
	}
	v = v[:words]
	for i := range v {
		v[i] = ^uint64(0)
	}
	for _, t := range scan {
		if uint32(t) >= uint32(len(slot)) {
			continue // an unmatched token leaves V unchanged: u = 0
		}
		s := slot[t]
		if s < 0 {
			continue
		}
		m := masks[int(s)*words : int(s)*words+words]
		var carry uint64
		for w := range v {
			u := v[w] & m[w]
			sum, c := bits.Add64(v[w], u, carry)
			carry = c
			v[w] = sum | (v[w] &^ u)
		}
	}
	n := 0
	for _, x := range v {
		n += bits.OnesCount64(^x)
	}
	return n
}

// lcs2Words is lcsMulti unrolled for 65..128-token bit sides (typical of
// long outputs), with the vector in registers.
func lcs2Words(slot []int32, masks []uint64, scan []int32) int {
	v0, v1 := ^uint64(0), ^uint64(0)
	for _, t := range scan {
		if uint32(t) >= uint32(len(slot)) {
			continue
		}
		s := slot[t]
		if s < 0 {
			continue
		}
		m := masks[2*int(s) : 2*int(s)+2 : 2*int(s)+2]
		u0, u1 := v0&m[0], v1&m[1]
		sum0, c := bits.Add64(v0, u0, 0)
		sum1, _ := bits.Add64(v1, u1, c)
		v0 = sum0 | (v0 &^ u0)
		v1 = sum1 | (v1 &^ u1)
	}
	return bits.OnesCount64(^v0) + bits.OnesCount64(^v1)
}

// lcsKernel holds reusable tables for bit-parallel LCS over token ids in
// [0, vocab). It never allocates per pair once its tables have grown.
type lcsKernel struct {
	dense []uint64 // per token id: match mask when the bit side has <= 64 tokens
	slot  []int32  // per token id: row in masks, or -1
	masks []uint64
	v     []uint64
	used  []int32 // token ids whose dense/slot entries must be cleared
	words int
	n     int // length of the prepared bit side
}

func (k *lcsKernel) grow(vocab int) {
	if len(k.dense) < vocab {
		k.dense = append(k.dense, make([]uint64, vocab-len(k.dense))...)
	}
	for len(k.slot) < vocab {
		k.slot = append(k.slot, -1)
	}
}

// prepare makes side the bit side of the following runs. Token ids < 0 (not
// in the vocabulary) take a position but match nothing.
func (k *lcsKernel) prepare(side []int32) {
	k.reset()
	k.n = len(side)
	if len(side) <= 64 {
		k.words = 1
		for i, t := range side {
			if t < 0 {
				continue
			}
			if k.dense[t] == 0 {
				k.used = append(k.used, t)
			}
			k.dense[t] |= 1 << uint(i)
		}
		return
	}
	k.words = (len(side) + 63) / 64
	if cap(k.v) < k.words {
		k.v = make([]uint64, k.words)
	}
	k.masks = k.masks[:0]
	for i, t := range side {
		if t < 0 {
			continue
		}
		s := k.slot[t]
		if s < 0 {
			s = int32(len(k.masks) / k.words)
			k.slot[t] = s
			k.used = append(k.used, t)
			for range k.words {
				k.masks = append(k.masks, 0)
			}
		}
		k.masks[int(s)*k.words+i/64] |= 1 << uint(i%64)
	}
}

func (k *lcsKernel) reset() {
	for _, t := range k.used {
		k.dense[t] = 0
		k.slot[t] = -1
	}
	k.used = k.used[:0]
}

// run returns the LCS of the prepared bit side and scan.
func (k *lcsKernel) run(scan []int32) int {
	if k.n == 0 || len(scan) == 0 {
		return 0
	}
	if k.words == 1 {
		return lcsWord(k.dense, scan)
	}
	return lcsMulti(k.slot, k.masks, k.words, scan, k.v)
}

// lcs computes the LCS of a and b with the shorter one as the bit side, which
// needs the fewest words per step. The kernel's tables must cover every
// non-negative id in a and b.
func (k *lcsKernel) lcs(a, b []int32) int {
	if len(b) < len(a) {
		a, b = b, a
	}
	k.prepare(a)
	n := k.run(b)
	k.reset()
	return n
}

// LCSLength returns the length of the longest common subsequence of two
// token-id sequences (ids must be >= 0), using the bit-parallel kernel.
func LCSLength(a, b []int32) int {
	var maxID int32 = -1
	for _, t := range a {
		maxID = max(maxID, t)
	}
	for _, t := range b {
		maxID = max(maxID, t)
	}
	var k lcsKernel
	k.grow(int(maxID) + 1)
	return k.lcs(a, b)
}
