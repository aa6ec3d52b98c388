//go:build race

package quant

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// allocation counts of pooled paths mean nothing under -race.
const raceEnabled = true
