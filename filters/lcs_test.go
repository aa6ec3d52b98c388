package filters

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randSeq(rng *rand.Rand, n, alphabet int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(rng.IntN(alphabet))
	}
	return s
}

// TestLCSBitParallelMatchesDP checks every kernel path (one word, several
// words, either side shorter) against the dynamic programme, around the
// 64- and 128-token word boundaries.
func TestLCSBitParallelMatchesDP(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	lengths := []int{0, 1, 2, 5, 31, 63, 64, 65, 100, 127, 128, 129, 200, 300}
	var k lcsKernel
	k.grow(64)
	for _, la := range lengths {
		for _, lb := range lengths {
			for _, alphabet := range []int{2, 5, 40} {
				a, b := randSeq(rng, la, alphabet), randSeq(rng, lb, alphabet)
				want := lcsDP(a, b)
				if got := k.lcs(a, b); got != want {
					t.Fatalf("la=%d lb=%d alphabet=%d: bit-parallel %d, DP %d", la, lb, alphabet, got, want)
				}
				if got := LCSLength(b, a); got != want {
					t.Fatalf("la=%d lb=%d alphabet=%d: LCSLength %d, DP %d", lb, la, alphabet, got, want)
				}
				// Long bit side against the other, prepared once as the
				// Index does for a query.
				k.prepare(a)
				if got := k.run(b); got != want {
					t.Fatalf("prepared la=%d lb=%d: %d, DP %d", la, lb, got, want)
				}
				k.reset()
			}
		}
	}
	for i := range 2000 {
		a, b := randSeq(rng, rng.IntN(200), 1+rng.IntN(30)), randSeq(rng, rng.IntN(200), 1+rng.IntN(30))
		if got, want := k.lcs(a, b), lcsDP(a, b); got != want {
			t.Fatalf("case %d: bit-parallel %d, DP %d (a=%v b=%v)", i, got, want, a, b)
		}
	}
}

func TestFmeasureBoundary(t *testing.T) {
	// 9 vs 11 tokens with LCS 7: Python gives 0.7000000000000001, not the
	// 0.7 of 2*lcs/(la+lb).
	if got := fmeasure(7, 9, 11); got != 0.7000000000000001 {
		t.Errorf("fmeasure(7, 9, 11) = %v", got)
	}
	if got := fmeasure(7, 10, 10); got != 0.7 {
		t.Errorf("fmeasure(7, 10, 10) = %v", got)
	}
	if fmeasure(0, 3, 4) != 0 || fmeasure(1, 0, 4) != 0 {
		t.Error("zero LCS or empty side must score 0")
	}
	// The pruning bound must never fall below a computed score.
	for la := 1; la < 300; la++ {
		for lb := 1; lb < 300; lb += 7 {
			for l := 1; l <= min(la, lb); l++ {
				f := fmeasure(l, la, lb)
				if !couldReach(l, la, lb, f) {
					t.Fatalf("couldReach(%d, %d, %d, %v) = false", l, la, lb, f)
				}
				if math.Abs(f-2*float64(l)/float64(la+lb)) > 1e-15 {
					t.Fatalf("fmeasure(%d,%d,%d) = %v far from 2l/(la+lb)", l, la, lb, f)
				}
			}
		}
	}
}

// TestNewDocLengthsIsThePredicate checks that the interval is exactly the
// set of lengths the pruning predicate accepts.
func TestNewDocLengthsIsThePredicate(t *testing.T) {
	for la := 1; la < 80; la++ {
		for r := 0; r <= la; r++ {
			for _, bar := range []float64{0, 0.1, 0.3333333333333333, 0.45, 0.5, 0.7, 0.7000000000000001, 0.9, 1} {
				lo, hi := newDocLengths(la, r, bar)
				for lb := 1; lb < 400; lb++ {
					want := couldReach(min(r, lb), la, lb, bar)
					if got := int32(lb) >= lo && int32(lb) <= hi; got != want {
						t.Fatalf("la=%d r=%d bar=%v lb=%d: interval [%d,%d] says %v, predicate %v", la, r, bar, lb, lo, hi, got, want)
					}
				}
			}
		}
	}
}
