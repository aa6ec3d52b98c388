package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

func ulpDiff(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

// The vectorised exp is an approximation (documented max error 1.45 ulp +
// 0.5 ulp rounding): it must stay within 2 ulp of the true exp over the
// whole normal range, be exact at 0, and saturate like ggml's.
func TestVexpfAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	worst := int64(0)
	for i := 0; i < 200000; i++ {
		x := float32(rng.Float64()*170 - 87)
		got := vexpf(x)
		want := float32(math.Exp(float64(x)))
		if d := ulpDiff(got, want); d > worst {
			worst = d
			if d > 2 {
				t.Fatalf("vexpf(%v) = %v, exp = %v (%d ulp)", x, got, want, d)
			}
		}
	}
	if vexpf(0) != 1 {
		t.Errorf("vexpf(0) = %v", vexpf(0))
	}
	if v := vexpf(float32(math.Inf(-1))); v != 0 {
		t.Errorf("vexpf(-inf) = %v", v)
	}
	if v := vexpf(89); !math.IsInf(float64(v), 1) {
		t.Errorf("vexpf(89) = %v, want +Inf", v)
	}
	if v := vexpf(-110); v != 0 {
		t.Errorf("vexpf(-110) = %v, want 0", v)
	}
	// Between the flush thresholds the special path must still be accurate
	// (gradual underflow, values close to overflow).
	for _, x := range []float32{-100, -95, -88, 87.5, 88.3} {
		got, want := vexpf(x), float32(math.Exp(float64(x)))
		if math.Abs(float64(got)-float64(want)) > 4e-7*float64(want)+1e-44 {
			t.Errorf("vexpf(%v) = %g, want %g", x, got, want)
		}
	}
	// A differing last bit against libm's exp is what makes the polynomial
	// matter at all: check that it does differ somewhere.
	differs := 0
	for i := 0; i < 10000; i++ {
		x := float32(rng.Float64()*20 - 10)
		if vexpf(x) != float32(math.Exp(float64(x))) {
			differs++
		}
	}
	if differs == 0 {
		t.Error("vexpf never differs from exp: the polynomial is not being used")
	}
}

func TestSoftMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 3, 4, 5, 17, 64} {
		x := make([]float32, n)
		ref := make([]float64, n)
		mx := math.Inf(-1)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 3)
			mx = math.Max(mx, float64(x[i]))
		}
		var sum float64
		for i := range x {
			ref[i] = math.Exp(float64(x[i]) - mx)
			sum += ref[i]
		}
		softMax(x)
		var total float64
		for i := range x {
			total += float64(x[i])
			if d := math.Abs(float64(x[i]) - ref[i]/sum); d > 1e-6 {
				t.Fatalf("n=%d: p[%d] = %v, want %v", n, i, x[i], ref[i]/sum)
			}
		}
		if math.Abs(total-1) > 1e-5 {
			t.Fatalf("n=%d: probabilities sum to %v", n, total)
		}
	}
}

func TestSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{7, 8, 13} { // with and without a libm tail
		g, u, y := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range g {
			g[i] = float32(rng.NormFloat64() * 4)
			u[i] = float32(rng.NormFloat64())
		}
		swiGLU(y, g, u)
		for i := range y {
			want := float64(g[i]) / (1 + math.Exp(-float64(g[i]))) * float64(u[i])
			if math.Abs(float64(y[i])-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], want)
			}
		}
	}
}

func TestRMSNorm(t *testing.T) {
	x := []float32{1, -2, 3, 0.5}
	w := []float32{1, 0.5, 2, -1}
	y := make([]float32, 4)
	rmsNorm(y, x, w, 1e-5)
	ms := (1 + 4 + 9 + 0.25) / 4.0
	for i := range x {
		want := float64(x[i]) / math.Sqrt(ms+1e-5) * float64(w[i])
		if math.Abs(float64(y[i])-want) > 1e-6 {
			t.Fatalf("y[%d] = %v, want %v", i, y[i], want)
		}
	}
}

func TestRope(t *testing.T) {
	const hd = 8
	cos, sin := make([]float32, hd/2), make([]float32, hd/2)
	thetaScale := float32(math.Pow(10000, -2.0/hd))
	base := []float32{1, 2, 3, 4, 5, 6, 7, 8}

	ropeCache(cos, sin, 0, thetaScale, 1, nil)
	x := append([]float32(nil), base...)
	rope(x, cos, sin, ropeNorm)
	for i := range x {
		if x[i] != base[i] {
			t.Fatalf("position 0 changed x: %v", x)
		}
	}

	ropeCache(cos, sin, 5, thetaScale, 1, nil)
	for _, style := range []int{ropeNorm, ropeNeox} {
		x := append([]float32(nil), base...)
		rope(x, cos, sin, style)
		for i := 0; i < hd/2; i++ {
			a, b := 2*i, 2*i+1
			if style == ropeNeox {
				a, b = i, i+hd/2
			}
			ang := 5 * math.Pow(10000, -2*float64(i)/hd)
			wa := float64(base[a])*math.Cos(ang) - float64(base[b])*math.Sin(ang)
			wb := float64(base[a])*math.Sin(ang) + float64(base[b])*math.Cos(ang)
			if math.Abs(float64(x[a])-wa) > 1e-5 || math.Abs(float64(x[b])-wb) > 1e-5 {
				t.Fatalf("style %d pair %d: (%v, %v), want (%v, %v)", style, i, x[a], x[b], wa, wb)
			}
		}
	}

	// Linear scaling by 4 at position 8 is position 2 unscaled.
	c2, s2 := make([]float32, hd/2), make([]float32, hd/2)
	ropeCache(cos, sin, 8, thetaScale, 0.25, nil)
	ropeCache(c2, s2, 2, thetaScale, 1, nil)
	for i := range cos {
		if math.Abs(float64(cos[i]-c2[i])) > 1e-6 || math.Abs(float64(sin[i]-s2[i])) > 1e-6 {
			t.Fatalf("scaled angle %d differs", i)
		}
	}
}

// TestSwiGLUKernelMatchesGo checks the architecture kernel, where there is
// one, against the portable code bit for bit, on rows of every length mod
// 8 with values that send the exponent out of the normal range (either
// way, alone or in the middle of a group), NaN, infinities and signed
// zeros.
func TestSwiGLUKernelMatchesGo(t *testing.T) {
	if swiGLUGroups == nil {
		t.Skip("no swiGLU kernel on this CPU or build")
	}
	kernel := swiGLUGroups
	defer func() { swiGLUGroups = kernel }()
	specials := []float32{0, float32(math.Copysign(0, -1)), 87, -87, 87.5, -87.5, 88.8, -88.8, 100, -100, 104, -104, 200, -200,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40, -1e-40, 3e38, -3e38}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 4, 7, 8, 9, 15, 16, 17, 31, 64, 100, 5632} {
		for trial := range 20 {
			g, u := make([]float32, n), make([]float32, n)
			for i := range g {
				g[i] = float32(rng.NormFloat64() * 6)
				u[i] = float32(rng.NormFloat64())
				if trial > 0 && rng.IntN(8*trial) == 0 {
					g[i] = specials[rng.IntN(len(specials))]
				}
			}
			got, want := make([]float32, n), make([]float32, n)
			swiGLUGroups = kernel
			swiGLU(got, g, u)
			swiGLUGroups = nil
			swiGLU(want, g, u)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n=%d trial %d: y[%d] for gate %v = %v (%#x), want %v (%#x)", n, trial, i, g[i], got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
	}
}

// TestSoftMaxKernelMatchesGo checks softMax with the architecture exp
// kernel, where there is one, against the portable code bit for bit, on
// rows of every length mod 8, with spreads that send some exponents below
// the normal range and rows holding -Inf (masked positions).
func TestSoftMaxKernelMatchesGo(t *testing.T) {
	if expGroups == nil {
		t.Skip("no exp kernel on this CPU or build")
	}
	kernel := expGroups
	defer func() { expGroups = kernel }()
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 3, 4, 7, 8, 9, 15, 16, 17, 33, 100, 1537} {
		for _, spread := range []float64{0.1, 3, 30, 200} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * spread)
				if rng.IntN(20) == 0 {
					x[i] = float32(math.Inf(-1))
				}
			}
			got, want := append([]float32(nil), x...), append([]float32(nil), x...)
			expGroups = kernel
			softMax(got)
			expGroups = nil
			softMax(want)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n=%d spread %v: p[%d] for %v = %v, want %v", n, spread, i, x[i], got[i], want[i])
				}
			}
		}
	}
}
