package filters

import "math"

// numpyPairwiseBlock is numpy's PW_BLOCKSIZE: below it, sums run over eight
// interleaved accumulators; above it, the range is halved recursively.
const numpyPairwiseBlock = 128

// numpyPairwiseSum reproduces numpy's DOUBLE_pairwise_sum (the inner loop of
// np.add.reduce on a contiguous float64 array), whose rounding differs from
// a left-to-right sum.
func numpyPairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		res := 0.0
		for _, x := range a {
			res += x
		}
		return res
	case n <= numpyPairwiseBlock:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			r[0] += a[i+0]
			r[1] += a[i+1]
			r[2] += a[i+2]
			r[3] += a[i+3]
			r[4] += a[i+4]
			r[5] += a[i+5]
			r[6] += a[i+6]
			r[7] += a[i+7]
		}
		res := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return numpyPairwiseSum(a[:n2]) + numpyPairwiseSum(a[n2:])
	}
}

// NumpyMean returns float(np.mean(a)) for a list of Python floats: the
// reduction starts from add's identity 0.0, adds the pairwise sum of the
// whole array, and divides by the count. An empty list gives NaN.
func NumpyMean(a []float64) float64 {
	if len(a) == 0 {
		return math.NaN()
	}
	return (0.0 + numpyPairwiseSum(a)) / float64(len(a))
}
