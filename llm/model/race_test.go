//go:build race

package model

// raceEnabled: the race detector makes sync.Pool drop items on purpose (the
// quant kernels keep their scratch in one), so allocation counts mean
// nothing in a -race build.
const raceEnabled = true
