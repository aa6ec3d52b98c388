//go:build !linux

package quant

// threadCPUTime is unavailable here; benchmarks then report wall time only.
func threadCPUTime() int64 { return 0 }
