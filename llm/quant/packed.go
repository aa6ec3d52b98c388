package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Q4_0 weights repacked eight rows at a time, the layout llama.cpp's CPU
// backend also switches Q4_0 matrices to at load time on x86 (q4_0_8x8): the
// matrix-vector kernel then needs no horizontal sums, which are what bounds
// the row-major kernel on one token.
//
// A packed matrix is rows/8 groups; a group is the groups' blocks one after
// another, each PackedQ4_0BlockBytes bytes:
//
//	[0:16)    the 8 rows' f16 scales d, row 0 first
//	[16:144)  4 vectors of 32 bytes; in vector m, byte 4i+j holds row i's
//	          quant 8m+j in its low nibble and quant 8m+4+j in its high one
//
// so that, once the nibbles are split, each 32-bit lane of a vector holds
// four consecutive quants of one row. The values are Q4_0's own (q - 8 with
// q the unsigned nibble); only their places change.

// PackedQ4_0BlockBytes is the size of one block of a group of 8 packed rows.
const PackedQ4_0BlockBytes = 8 * q4_0Bytes

// PackQ4_0x8 returns the packed form of a row-major Q4_0 matrix of rows rows
// of n elements (rows a multiple of 8, n of 32).
func PackQ4_0x8(w []byte, rows, n int) ([]byte, error) {
	if rows%8 != 0 || rows <= 0 {
		return nil, fmt.Errorf("quant: PackQ4_0x8: %d rows is not a positive multiple of 8", rows)
	}
	rb, err := RowBytes(Q4_0, n)
	if err != nil {
		return nil, fmt.Errorf("quant: PackQ4_0x8: %w", err)
	}
	if len(w) != rb*rows {
		return nil, fmt.Errorf("quant: PackQ4_0x8: %d bytes for %d rows of %d bytes", len(w), rows, rb)
	}
	nb := n / QK
	out := make([]byte, len(w))
	for g := 0; g < rows/8; g++ {
		for b := 0; b < nb; b++ {
			dst := out[(g*nb+b)*PackedQ4_0BlockBytes:][:PackedQ4_0BlockBytes]
			for i := 0; i < 8; i++ {
				src := (*[q4_0Bytes]byte)(w[(8*g+i)*rb+b*q4_0Bytes:])
				dst[2*i], dst[2*i+1] = src[0], src[1]
				// Quant e is qs[e]&15 for e < 16 and qs[e-16]>>4 above;
				// byte 4i+j of vector m takes quants 8m+j and 8m+4+j, so
				// four bytes of a vector come from two quads of qs.
				le := binary.LittleEndian
				q0, q1, q2, q3 := le.Uint32(src[2:]), le.Uint32(src[6:]), le.Uint32(src[10:]), le.Uint32(src[14:])
				const lo, hi = 0x0F0F0F0F, 0xF0F0F0F0
				le.PutUint32(dst[16+4*i:], q0&lo|(q1&lo)<<4)
				le.PutUint32(dst[48+4*i:], q2&lo|(q3&lo)<<4)
				le.PutUint32(dst[80+4*i:], q0>>4&lo|q1&hi)
				le.PutUint32(dst[112+4*i:], q2>>4&lo|q3&hi)
			}
		}
	}
	return out, nil
}

// packedQuant is the unsigned nibble of element e of row i in a packed block.
func packedQuant(block []byte, i, e int) byte {
	m, j := e/8, e%8
	if j < 4 {
		return block[16+32*m+4*i+j] & 0x0F
	}
	return block[16+32*m+4*i+j-4] >> 4
}

// q8_0AuxBlockBytes is the size of one block of expanded activations: the
// 32 quants, 8·Σx as int32 and d_x as float32. The kernels broadcast each
// quad of quants to a vector as they read it, so a row's expansion stays
// small enough for L1 while every group of 8 rows passes over it.
const q8_0AuxBlockBytes = 32 + 4 + 4

const (
	q8_0AuxSum   = 32
	q8_0AuxScale = 36
)

// Q8_0AuxBytes is the size of Q8_0Aux's output for a row of n elements.
func Q8_0AuxBytes(n int) int { return n / QK * q8_0AuxBlockBytes }

// Q8_0Aux writes x (one Q8_0 row of n elements) expanded for the packed
// kernels: per block, the quants, the block's 8·Σx (the offset of the
// unsigned nibbles) and its scale as float32. It is computed once per
// activation row.
func Q8_0Aux(x []byte, n int, aux []byte) {
	nb := n / QK
	if n%QK != 0 || len(x) != nb*q8_0Bytes || len(aux) != nb*q8_0AuxBlockBytes {
		panic(fmt.Sprintf("quant: Q8_0Aux n=%d: %d bytes of activations, %d of aux", n, len(x), len(aux)))
	}
	le := binary.LittleEndian
	for b := 0; b < nb; b++ {
		xb := x[b*q8_0Bytes:][:q8_0Bytes]
		ab := aux[b*q8_0AuxBlockBytes:][:q8_0AuxBlockBytes]
		var s int32
		for _, q := range xb[2:] {
			s += int32(int8(q))
		}
		copy(ab, xb[2:])
		le.PutUint32(ab[q8_0AuxSum:], uint32(8*s))
		le.PutUint32(ab[q8_0AuxScale:], math.Float32bits(f16At(xb, 0)))
	}
}

// DotPackedQ4_0 sets dst[t*dstStride+r] to VecDot(Q4_0, n, row r, x_t) for
// the 8·groups rows of the packed groups in w and the tokens activation
// rows x_t given by their Q8_0Aux expansions at aux[t*auxStride:]. Results
// are exactly VecDot's on the unpacked rows. Wrong sizes panic.
func DotPackedQ4_0(n int, w []byte, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	dotPackedQ4_0(dotPackedQ4_0Group, n, w, aux, auxStride, tokens, dst, dstStride)
}

func init() {
	registerPacking(&Packing{
		Type:        Q4_0,
		Pack:        PackQ4_0x8,
		AuxName:     "q8_0",
		AuxBytes:    Q8_0AuxBytes,
		Aux:         Q8_0Aux,
		Dot:         DotPackedQ4_0,
		accelerated: func() bool { return packedQ4_0Accelerated },
		dotGeneric: func(n int, w, aux []byte, auxStride, tokens int, dst []float32, dstStride int) {
			dotPackedQ4_0(dotPackedQ4_0GroupGeneric, n, w, aux, auxStride, tokens, dst, dstStride)
		},
	})
}

type packedGroupFunc func(w []byte, nb int, aux []byte, auxStride int, tokens int, dst []float32, dstStride int)

func dotPackedQ4_0(group packedGroupFunc, n int, w []byte, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	groups, nb := packedGroups("DotPackedQ4_0", n, QK, PackedQ4_0BlockBytes, Q8_0AuxBytes(n), w, aux, auxStride, tokens, dst, dstStride)
	gb := nb * PackedQ4_0BlockBytes
	// Four tokens at a time over all the groups: the groups' weights stay
	// in L2 while each four tokens' activations pass over them.
	for t := 0; t < tokens; t += 4 {
		k := min(4, tokens-t)
		for g := 0; g < groups; g++ {
			group(w[g*gb:(g+1)*gb], nb, aux[t*auxStride:], auxStride, k, dst[t*dstStride+8*g:], dstStride)
		}
	}
}

// dotPackedQ4_0Group computes one group of 8 rows; an architecture file may
// replace it with a kernel that returns the same bits, and then sets
// packedQ4_0Accelerated.
var (
	dotPackedQ4_0Group    = dotPackedQ4_0GroupGeneric
	packedQ4_0Accelerated bool
)

func dotPackedQ4_0GroupGeneric(w []byte, nb int, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	le := binary.LittleEndian
	for t := 0; t < tokens; t++ {
		at := aux[t*auxStride:]
		for i := 0; i < 8; i++ {
			var sum float32
			for b := 0; b < nb; b++ {
				blk := w[b*PackedQ4_0BlockBytes:][:PackedQ4_0BlockBytes]
				ab := at[b*q8_0AuxBlockBytes:][:q8_0AuxBlockBytes]
				var isum int32
				for e := 0; e < QK; e++ {
					x := int8(ab[e])
					isum += int32(packedQuant(blk, i, e)) * int32(x)
				}
				isum -= int32(le.Uint32(ab[q8_0AuxSum:]))
				dw := f16At(blk, 2*i)
				dx := math.Float32frombits(le.Uint32(ab[q8_0AuxScale:]))
				sum += float32(float32(float32(isum)*dw) * dx)
			}
			dst[t*dstStride+i] = sum
		}
	}
}
