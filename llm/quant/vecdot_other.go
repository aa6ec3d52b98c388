//go:build !amd64 || purego

package quant

// kernelSet mirrors vecdot_amd64.go's; without assembly there are none, and
// VecDot uses the pure-Go reference kernels.
type kernelSet struct {
	name    string
	usable  bool
	kernels [numTypes]VecDotFunc
	rows    [numTypes]vecDotRowsFunc // optional multi-row versions of kernels
	tile    [numTypes]vecDotTileFunc // optional rows × tokens versions
}

var kernelSets []kernelSet
