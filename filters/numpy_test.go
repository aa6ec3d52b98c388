package filters

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// pythonWithNumpy returns a Python interpreter that can import numpy.
func pythonWithNumpy(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		py, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(py, "-c", "import numpy").Run() == nil {
			return py
		}
	}
	t.Skip("no python3 with numpy installed (apt-get install python3-numpy); TestNumpyPairwiseSum covers the algorithm")
	return ""
}

// TestNumpyMeanAgainstNumpy compares NumpyMean with float(np.mean(list))
// bit for bit, on score-like lists of the sizes Alpaca's pools reach.
func TestNumpyMeanAgainstNumpy(t *testing.T) {
	py := pythonWithNumpy(t)
	rng := rand.New(rand.NewPCG(5, 8))
	var lists [][]float64
	for _, n := range []int{1, 2, 7, 8, 9, 16, 17, 100, 127, 128, 129, 175, 1000, 5175, 8191, 8192, 8193, 20000, 52175} {
		a := make([]float64, n)
		for i := range a {
			// ROUGE-L scores: ratios of small integers.
			la, lb := 1+rng.IntN(30), 1+rng.IntN(30)
			a[i] = fmeasure(rng.IntN(min(la, lb)+1), la, lb)
		}
		lists = append(lists, a)
	}
	in, _ := json.Marshal(lists)
	cmd := exec.Command(py, "-c", "import json, sys, numpy as np\nprint(json.dumps([float(np.mean(a)).hex() for a in json.load(sys.stdin)]))")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, a := range lists {
		w := parseHexFloat(t, want[i])
		if got := NumpyMean(a); math.Float64bits(got) != math.Float64bits(w) {
			t.Errorf("n=%d: NumpyMean %v, numpy %v", len(a), got, w)
		}
	}
}
