//go:build !purego

package quant

import "testing"

// TestQuantizeRowKernelsInstalled guards the comparisons in
// quantize_simd_test.go, which skip a type without a kernel: on an AVX2 CPU
// every row kernel must be in place.
func TestQuantizeRowKernelsInstalled(t *testing.T) {
	if !hasAVX2 {
		t.Skip("CPU without AVX2 and F16C: the pure-Go quantisers run")
	}
	for _, typ := range rowKernelTypes {
		if quantizeRowKernels[typ] == nil {
			t.Errorf("AVX2 CPU but no %s row kernel installed", typ)
		}
	}
}
