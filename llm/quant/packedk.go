package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Q4_K weights repacked eight rows at a time (see Packing). The reference
// (ggml's scalar kernel) sums each row's integer products in 8 classes,
// element index mod 8, and scales each class into its own float partial
// sum, so the layout keeps the classes apart: one vector per class l and
// pair of sub-blocks jj (elements 64jj..64jj+63, sub-blocks A = 2jj and
// B = 2jj+1), each lane holding one row's 8 nibbles of that class in the
// pair. Once split, a lane's low nibbles are A(l), A(l+8), B(l), B(l+8) and
// its high nibbles A(l+16), A(l+24), B(l+16), B(l+24) (X(k) is the quant of
// element k of sub-block X), so one VPMADDUBSW per half against the
// matching expanded activations, added in int16, gives per lane the words
// ΣA and ΣB, and one VPMADDWD with the words (scale_A, scale_B) gives the
// row's exact scaled class sum for the pair.
//
// A packed block of 8 rows (one 256-element super-block of each) is:
//
//	[0:16)      the rows' f16 d, row 0 first
//	[16:32)     the rows' f16 dmin
//	[32:96)     scales: 16 bytes per pair jj, row i's (scale_2jj, scale_2jj+1)
//	            at bytes 2i, 2i+1, decoded from the 6-bit packing
//	[96:160)    mins: the same for the mins
//	[160:1184)  32 vectors of nibbles, vector 4l+jj for class l and pair jj;
//	            lane i's bytes are A(l)|A(l+16)<<4, A(l+8)|A(l+24)<<4,
//	            B(l)|B(l+16)<<4, B(l+8)|B(l+24)<<4 of row i
//
// 32 bytes more than the 8 rows' own blocks: the scales are kept in bytes
// rather than 6 bits.

// PackedQ4KBlockBytes is the size of one block of a group of 8 packed rows.
const PackedQ4KBlockBytes = 160 + 32*32

const (
	pkQ4KDmin   = 16
	pkQ4KScales = 32
	pkQ4KMins   = 96
	pkQ4KQuants = 160
)

// PackQ4Kx8 returns the packed form of a row-major Q4_K matrix of rows rows
// of n elements (rows a multiple of 8, n of 256).
func PackQ4Kx8(w []byte, rows, n int) ([]byte, error) {
	if rows%8 != 0 || rows <= 0 {
		return nil, fmt.Errorf("quant: PackQ4Kx8: %d rows is not a positive multiple of 8", rows)
	}
	rb, err := RowBytes(Q4_K, n)
	if err != nil {
		return nil, fmt.Errorf("quant: PackQ4Kx8: %w", err)
	}
	if len(w) != rb*rows {
		return nil, fmt.Errorf("quant: PackQ4Kx8: %d bytes for %d rows of %d bytes", len(w), rows, rb)
	}
	nb := n / QKK
	out := make([]byte, rows/8*nb*PackedQ4KBlockBytes)
	for g := 0; g < rows/8; g++ {
		for b := 0; b < nb; b++ {
			dst := out[(g*nb+b)*PackedQ4KBlockBytes:][:PackedQ4KBlockBytes]
			for i := 0; i < 8; i++ {
				src := (*[q4KBytes]byte)(w[(8*g+i)*rb+b*q4KBytes:])
				copy(dst[2*i:2*i+2], src[0:2])
				copy(dst[pkQ4KDmin+2*i:pkQ4KDmin+2*i+2], src[2:4])
				for j := 0; j < 8; j++ {
					sc, m := getScaleMinK4(j, src[q4KScales:q4KScales+12])
					dst[pkQ4KScales+16*(j/2)+2*i+j%2] = sc
					dst[pkQ4KMins+16*(j/2)+2*i+j%2] = m
				}
				qs := src[q4KQs:]
				for jj := 0; jj < 4; jj++ {
					a := func(k int) byte { return qs[32*jj+k] & 0xF }
					bq := func(k int) byte { return qs[32*jj+k] >> 4 }
					for l := 0; l < 8; l++ {
						v := dst[pkQ4KQuants+32*(4*l+jj)+4*i:]
						v[0] = a(l) | a(l+16)<<4
						v[1] = a(l+8) | a(l+24)<<4
						v[2] = bq(l) | bq(l+16)<<4
						v[3] = bq(l+8) | bq(l+24)<<4
					}
				}
			}
		}
	}
	return out, nil
}

// Q8KAuxBlockBytes is the size of one block of expanded Q8_K activations:
//
//	[0:256)    64 quads of quants, quad 2(4l+jj)+h for class l, pair jj
//	           and half h: for h = 0 x(64jj+l), x(64jj+l+8), x(64jj+32+l),
//	           x(64jj+40+l), for h = 1 the same elements plus 16 (the
//	           partners of the split nibbles of packed Q4_K)
//	[256:272)  4 dwords k: the words (Σx of sub-block 2k, Σx of 2k+1)
//	[272:276)  d_x as float32
//	[276:288)  zero
//
// The kernels broadcast each dword to a vector as they read it, so that a
// row's expansion stays small enough for L1 while every group of 8 rows
// passes over it.
const Q8KAuxBlockBytes = 288

const (
	q8KAuxSums  = 256
	q8KAuxScale = 272
)

// Q8KAuxBytes is the size of Q8KAux's output for a row of n elements.
func Q8KAuxBytes(n int) int { return n / QKK * Q8KAuxBlockBytes }

// Q8KAux writes x (one Q8_K row of n elements) expanded for the packed
// Q4_K kernels. It is computed once per activation row.
func Q8KAux(x []byte, n int, aux []byte) {
	nb := n / QKK
	if n%QKK != 0 || len(x) != nb*q8KBytes || len(aux) != nb*Q8KAuxBlockBytes {
		panic(fmt.Sprintf("quant: Q8KAux n=%d: %d bytes of activations, %d of aux", n, len(x), len(aux)))
	}
	le := binary.LittleEndian
	for b := 0; b < nb; b++ {
		xb := x[b*q8KBytes:][:q8KBytes]
		qs := xb[q8KQs : q8KQs+QKK]
		ab := aux[b*Q8KAuxBlockBytes:][:Q8KAuxBlockBytes]
		for l := 0; l < 8; l++ {
			for jj := 0; jj < 4; jj++ {
				for h := 0; h < 2; h++ {
					e := 64*jj + l + 16*h
					v := ab[4*(2*(4*l+jj)+h):][:4]
					v[0], v[1], v[2], v[3] = qs[e], qs[e+8], qs[e+32], qs[e+40]
				}
			}
		}
		for k := 0; k < 4; k++ {
			for h := 0; h < 2; h++ {
				j := 2*k + h // sub-block
				s := int16(le.Uint16(xb[q8KBsums+4*j:])) + int16(le.Uint16(xb[q8KBsums+4*j+2:]))
				le.PutUint16(ab[q8KAuxSums+4*k+2*h:], uint16(s))
			}
		}
		copy(ab[q8KAuxScale:q8KAuxScale+4], xb[:4])
		clear(ab[q8KAuxScale+4:])
	}
}

// DotPackedQ4K is Packing.Dot for Q4_K.
func DotPackedQ4K(n int, w []byte, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	dotPackedQ4K(dotPackedQ4KGroup, n, w, aux, auxStride, tokens, dst, dstStride)
}

func init() {
	registerPacking(&Packing{
		Type:        Q4_K,
		Pack:        PackQ4Kx8,
		AuxName:     "q8_k",
		AuxBytes:    Q8KAuxBytes,
		Aux:         Q8KAux,
		Dot:         DotPackedQ4K,
		accelerated: func() bool { return packedQ4KAccelerated },
		dotGeneric: func(n int, w, aux []byte, auxStride, tokens int, dst []float32, dstStride int) {
			dotPackedQ4K(dotPackedQ4KGroupGeneric, n, w, aux, auxStride, tokens, dst, dstStride)
		},
	})
}

func dotPackedQ4K(group packedGroupFunc, n int, w []byte, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	groups, nb := packedGroups("DotPackedQ4K", n, QKK, PackedQ4KBlockBytes, Q8KAuxBytes(n), w, aux, auxStride, tokens, dst, dstStride)
	gb := nb * PackedQ4KBlockBytes
	for t := 0; t < tokens; t += packedQ4KTokens {
		k := min(packedQ4KTokens, tokens-t)
		for g := 0; g < groups; g++ {
			group(w[g*gb:(g+1)*gb], nb, aux[t*auxStride:], auxStride, k, dst[t*dstStride+8*g:], dstStride)
		}
	}
}

// packedQ4KTokens is how many tokens one group call takes at most.
const packedQ4KTokens = 4

// dotPackedQ4KGroup computes one group of 8 rows for up to
// packedQ4KTokens tokens; an architecture file may replace it with a
// kernel that returns the same bits, and then sets packedQ4KAccelerated.
var (
	dotPackedQ4KGroup    packedGroupFunc = dotPackedQ4KGroupGeneric
	packedQ4KAccelerated bool
)

// dotPackedQ4KGroupGeneric follows vecDotQ4KQ8K's arithmetic row by row,
// reading the packed layout.
func dotPackedQ4KGroupGeneric(w []byte, nb int, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	le := binary.LittleEndian
	for t := 0; t < tokens; t++ {
		at := aux[t*auxStride:]
		for i := 0; i < 8; i++ {
			var sums [8]float32
			var sumf float32
			for b := 0; b < nb; b++ {
				blk := w[b*PackedQ4KBlockBytes:][:PackedQ4KBlockBytes]
				ab := at[b*Q8KAuxBlockBytes:][:Q8KAuxBlockBytes]
				var lanes [8]int32
				for l := 0; l < 8; l++ {
					for jj := 0; jj < 4; jj++ {
						v := blk[pkQ4KQuants+32*(4*l+jj)+4*i:][:4]
						lo := ab[4*(2*(4*l+jj)):][:4]
						hi := ab[4*(2*(4*l+jj)+1):][:4]
						var sA, sB int32
						for k := 0; k < 2; k++ {
							sA += int32(v[k]&0xF)*int32(int8(lo[k])) + int32(v[k]>>4)*int32(int8(hi[k]))
							sB += int32(v[2+k]&0xF)*int32(int8(lo[2+k])) + int32(v[2+k]>>4)*int32(int8(hi[2+k]))
						}
						lanes[l] += int32(blk[pkQ4KScales+16*jj+2*i])*sA + int32(blk[pkQ4KScales+16*jj+2*i+1])*sB
					}
				}
				var sumMins int32
				for k := 0; k < 4; k++ {
					for h := 0; h < 2; h++ {
						bs := int32(int16(le.Uint16(ab[q8KAuxSums+4*k+2*h:])))
						sumMins += bs * int32(blk[pkQ4KMins+16*k+2*i+h])
					}
				}
				dx := math.Float32frombits(le.Uint32(ab[q8KAuxScale:]))
				d := f16At(blk, 2*i) * dx
				for l := range sums {
					sums[l] += float32(d * float32(lanes[l]))
				}
				dmin := f16At(blk, pkQ4KDmin+2*i) * dx
				sumf -= float32(dmin * float32(sumMins))
			}
			for _, s := range sums {
				sumf += s
			}
			dst[t*dstStride+i] = sumf
		}
	}
}
