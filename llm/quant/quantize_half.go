package quant

import (
	"fmt"
	"unsafe"
)

// FP32ToFP16Row sets dst[i] = FP32ToFP16(src[i]) for the whole row, with the
// F16C kernel where the CPU has one (the same bits either way), for callers
// that round whole vectors to half precision, such as a KV cache store.
// Lengths that differ are a programming error and panic.
func FP32ToFP16Row(dst []uint16, src []float32) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("quant: FP32ToFP16Row: dst has %d values, src %d", len(dst), len(src)))
	}
	// The kernel writes little-endian halves, which are the uint16 values
	// themselves only on a little-endian CPU; every CPU with the kernel is.
	if k := quantizeRowKernels[F16]; k != nil && len(src) > 0 {
		k(src, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 2*len(dst)))
		return
	}
	for i, f := range src {
		dst[i] = FP32ToFP16(f)
	}
}
