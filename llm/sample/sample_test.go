package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func logProbs(ps ...float64) []float32 {
	out := make([]float32, len(ps))
	for i, p := range ps {
		out[i] = float32(math.Log(p))
	}
	return out
}

func TestGreedy(t *testing.T) {
	s := New(Params{})
	if got := s.Sample([]float32{1, 3, 2, 3}, nil); got != 1 {
		t.Errorf("argmax with a tie = %d, want the first, 1", got)
	}
	nan := float32(math.NaN())
	if got := s.Sample([]float32{nan, -1, nan, 0.5}, nil); got != 3 {
		t.Errorf("NaN logits must not win: got %d", got)
	}
	if got := s.Sample(nil, nil); got != -1 {
		t.Errorf("empty logits = %d", got)
	}
}

func TestPenaltiesFollowLlamaCpp(t *testing.T) {
	logits := []float32{2, -2, 1.5}
	// Repetition divides positive logits and multiplies negative ones:
	// token 0 becomes 1 and loses to token 2.
	s := New(Params{RepeatPenalty: 2})
	if got := s.Sample(logits, []int32{0, 1}); got != 2 {
		t.Errorf("repeat penalty: got %d, want 2", got)
	}
	// Only the last RepeatLastN tokens count.
	s = New(Params{RepeatPenalty: 2, RepeatLastN: 1})
	if got := s.Sample(logits, []int32{0, 1}); got != 0 {
		t.Errorf("window of 1 (token 1 only): got %d, want 0", got)
	}
	// Frequency is per occurrence: 2 - 3*0.2 = 1.4 < 1.5; presence once:
	// 2 - 0.4 = 1.6 > 1.5.
	if got := New(Params{FrequencyPenalty: 0.2}).Sample(logits, []int32{0, 0, 0}); got != 2 {
		t.Errorf("frequency penalty: got %d, want 2", got)
	}
	if got := New(Params{PresencePenalty: 0.4}).Sample(logits, []int32{0, 0, 0}); got != 0 {
		t.Errorf("presence penalty: got %d, want 0", got)
	}
	// The logits themselves are not modified.
	if !slices.Equal(logits, []float32{2, -2, 1.5}) {
		t.Errorf("logits changed: %v", logits)
	}
	// Out-of-range history ids are ignored, not a panic.
	New(Params{RepeatPenalty: 1.1}).Sample(logits, []int32{-5, 99})
}

func frequencies(s *Sampler, logits []float32, n int) []float64 {
	counts := make([]float64, len(logits))
	for range n {
		counts[s.Sample(logits, nil)]++
	}
	for i := range counts {
		counts[i] /= float64(n)
	}
	return counts
}

func TestDrawFollowsTheDistribution(t *testing.T) {
	logits := logProbs(0.5, 0.3, 0.2)
	const n = 40000
	check := func(name string, got []float64, want ...float64) {
		t.Helper()
		for i := range want {
			if math.Abs(got[i]-want[i]) > 0.015 {
				t.Errorf("%s: frequencies %v, want %v", name, got, want)
				return
			}
		}
	}
	check("temperature 1", frequencies(New(Params{Temperature: 1, Seed: 1}), logits, n), 0.5, 0.3, 0.2)
	// Temperature 0.5 squares the probabilities before renormalising.
	check("temperature 0.5", frequencies(New(Params{Temperature: 0.5, Seed: 2}), logits, n), 0.25/0.38, 0.09/0.38, 0.04/0.38)
	// top-p 0.6 keeps {0.5, 0.3}: cumulative 0.5 < 0.6, 0.8 >= 0.6.
	check("top-p", frequencies(New(Params{Temperature: 1, TopP: 0.6, Seed: 3}), logits, n), 0.625, 0.375, 0)
	// top-p exactly reached by the first token keeps only it.
	check("top-p boundary", frequencies(New(Params{Temperature: 1, TopP: 0.5, Seed: 4}), logits, n), 1, 0, 0)
	// min-p 0.5: tokens below 0.25 (half of the best) go.
	check("min-p", frequencies(New(Params{Temperature: 1, MinP: 0.5, Seed: 5}), logits, n), 0.625, 0.375, 0)
	check("top-k", frequencies(New(Params{Temperature: 1, TopK: 2, Seed: 6}), logits, n), 0.625, 0.375, 0)
	// top-p sees the probabilities before min-p: 0.5 < 0.6, so it keeps two;
	// min-p keeps the same two.
	check("top-p and min-p", frequencies(New(Params{Temperature: 1, TopP: 0.6, MinP: 0.5, Seed: 8}), logits, n), 0.625, 0.375, 0)
	check("min-p above 1 keeps the best", frequencies(New(Params{Temperature: 1, MinP: 2, Seed: 9}), logits, n), 1, 0, 0)
	// Temperature applies after the filters (top-p computed on raw logits).
	check("top-p then temperature", frequencies(New(Params{Temperature: 0.5, TopP: 0.6, Seed: 7}), logits, n), 0.25/0.34, 0.09/0.34, 0)
}

func TestSeedReproducible(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	logits := make([]float32, 500)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	run := func(seed uint64) []int32 {
		s := New(Params{Temperature: 1.2, TopK: 100, TopP: 0.9, MinP: 0.01, RepeatPenalty: 1.1, Seed: seed})
		var hist []int32
		for range 50 {
			hist = append(hist, s.Sample(logits, hist))
		}
		return hist
	}
	a, b, c := run(42), run(42), run(43)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different tokens")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same 50 tokens")
	}
}

func TestSampleDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 32000)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	hist := []int32{5, 6, 7, 5, 100, 31999}
	for _, p := range []Params{
		{},
		{RepeatPenalty: 1.1, PresencePenalty: 0.1},
		DefaultParams(),
		{Temperature: 0.7, TopP: 0.9, RepeatPenalty: 1.1},
	} {
		s := New(p)
		s.Sample(logits, hist) // grow the buffers once
		if n := testing.AllocsPerRun(20, func() { s.Sample(logits, hist) }); n != 0 {
			t.Errorf("%+v: %v allocations per call", p, n)
		}
	}
}

func TestSelectTopMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cmp := func(a, b candidate) int {
		switch {
		case a.logit > b.logit:
			return -1
		case a.logit < b.logit:
			return 1
		}
		return int(a.id - b.id)
	}
	for trial := range 200 {
		n := 1 + r.IntN(300)
		c := make([]candidate, n)
		for i := range c {
			// few distinct values, so ties are common
			c[i] = candidate{id: int32(i), logit: float32(r.IntN(7))}
		}
		k := 1 + r.IntN(n)
		want := slices.Clone(c)
		slices.SortFunc(want, cmp)
		selectTop(c, k, cmp)
		got := slices.Clone(c[:k])
		slices.SortFunc(got, cmp)
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("trial %d n=%d k=%d: top-k differs", trial, n, k)
		}
	}
}

func TestInfiniteLogits(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, p := range []Params{{Temperature: 1}, {Temperature: 1, TopP: 0.9}, DefaultParams()} {
		s := New(p)
		if got := s.Sample([]float32{0, inf, 3, inf}, nil); got != 1 {
			t.Errorf("%+v: +Inf logits: got %d, want the first, 1", p, got)
		}
		if got := s.Sample([]float32{-inf, -inf, -inf}, nil); got != 0 {
			t.Errorf("%+v: all -Inf: got %d, want 0", p, got)
		}
		if got := s.Sample([]float32{-inf, 2, -inf}, nil); got != 1 {
			t.Errorf("%+v: one finite logit: got %d, want 1", p, got)
		}
	}
}

func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 151936)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2)
	}
	hist := make([]int32, 64)
	for i := range hist {
		hist[i] = int32(r.IntN(len(logits)))
	}
	for _, c := range []struct {
		name string
		p    Params
	}{
		{"greedy", Params{}},
		{"defaults", DefaultParams()},
		{"top-p-only", Params{Temperature: 0.8, TopP: 0.95, RepeatPenalty: 1.1}},
		{"temperature-only", Params{Temperature: 0.8}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := New(c.p)
			b.ReportAllocs()
			for b.Loop() {
				s.Sample(logits, hist)
			}
		})
	}
}

func TestTopPPrefixMatchesFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cmp := func(a, b candidate) int {
		switch {
		case a.logit > b.logit:
			return -1
		case a.logit < b.logit:
			return 1
		}
		return int(a.id - b.id)
	}
	for trial := range 100 {
		n := 1 + r.IntN(3000)
		c := make([]candidate, n)
		for i := range c {
			c[i] = candidate{id: int32(i), logit: float32(r.IntN(40)) / 4}
		}
		softmax(c)
		p := r.Float32()
		want := slices.Clone(c)
		slices.SortFunc(want, cmp)
		var cum float32
		wantCut := n
		for i := range want {
			cum += want[i].p
			if cum >= p {
				wantCut = i + 1
				break
			}
		}
		cut := topPPrefix(c, p, cmp)
		if cut != wantCut || !slices.Equal(c[:cut], want[:wantCut]) {
			t.Fatalf("trial %d n=%d p=%v: prefix %d, want %d", trial, n, p, cut, wantCut)
		}
	}
}

// FuzzSample throws arbitrary parameters and logits at the sampler: it must
// never panic and always return an id inside the logits.
func FuzzSample(f *testing.F) {
	f.Add(float32(0.8), float32(0.95), float32(0.05), float32(1.1), float32(0), float32(0), 40, 64, uint64(1), []byte{1, 2, 3, 200})
	f.Add(float32(1), float32(0.5), float32(2), float32(0), float32(0.5), float32(-1), -3, -1, uint64(7), []byte{255, 255, 0})
	f.Add(float32(math.NaN()), float32(math.NaN()), float32(math.Inf(1)), float32(math.NaN()), float32(1), float32(1), 1, 0, uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, temp, topP, minP, rep, pres, freq float32, topK, lastN int, seed uint64, raw []byte) {
		logits := make([]float32, len(raw))
		for i, b := range raw {
			switch b {
			case 255:
				logits[i] = float32(math.Inf(1))
			case 254:
				logits[i] = float32(math.Inf(-1))
			case 253:
				logits[i] = float32(math.NaN())
			default:
				logits[i] = float32(int(b)-128) / 8
			}
		}
		hist := make([]int32, 0, len(raw))
		for _, b := range raw {
			hist = append(hist, int32(b)-3)
		}
		s := New(Params{Temperature: temp, TopP: topP, MinP: minP, RepeatPenalty: rep, PresencePenalty: pres,
			FrequencyPenalty: freq, TopK: topK, RepeatLastN: lastN, Seed: seed})
		got := s.Sample(logits, hist)
		if len(logits) == 0 {
			if got != -1 {
				t.Fatalf("empty logits gave %d", got)
			}
			return
		}
		if got < 0 || int(got) >= len(logits) {
			t.Fatalf("id %d outside %d logits", got, len(logits))
		}
	})
}
