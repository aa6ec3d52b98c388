package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Q6_K weights repacked eight rows at a time (see Packing). The reference
// (ggml's scalar kernel) sums each row's integer products in 8 classes,
// element index mod 8, and scales each class into its own float partial
// sum, so, as for Q4_K, the layout keeps the classes apart and each lane
// holds one row. Per class l and 64-element part jj (16-element scale
// groups 4jj..4jj+3) a lane needs the row's 8 quants of that class in the
// part, in the order of Q6KAux's quads: for half h = 0 the elements
// e = 64jj+l + 0, 8, 32, 40 and for h = 1 the same plus 16. A quad's first
// two elements lie in group 4jj+h and its last two in group 4jj+h+2.
//
// VPMADDUBSW multiplies unsigned bytes by signed ones, and both the
// weights (q-32, q the 6-bit quant 0..63) and the activations x are
// signed, so one side is offset, which way depending on the tokens:
//
//   - One token: VPMADDUBSW of the unsigned q against a quad of x gives per
//     lane the words (Σq·x of the first group, the same of the second),
//     each within ±2·63·128; subtracting the words 32·Σx of the same pairs
//     (from Q6KAux) leaves Σ(q-32)·x, and one VPMADDWD with the words
//     (scale_4jj+h, scale_4jj+h+2) gives the row's exact scaled class sum
//     for the half.
//   - Several tokens: VPMADDUBSW of a quad of x+128 (0..255) against the
//     signed w = q-32 gives words within ±2·255·32, and VPMADDWD with the
//     scales the scaled class sum plus 128·Σ scale·w. That excess depends
//     on the weights alone: it is computed once per block and class
//     (VPMADDUBSW of 128s against w, VPMADDWD with the scales) and taken
//     off every token's integer lane. Per token and half that leaves a
//     broadcast, a VPMADDUBSW, a VPMADDWD and an add, a third less than
//     the other way; with one token the excess costs more than it saves.
//
// Either way the integer lane is the reference's exactly.
//
// The quants keep their 6 bits, so the layout is exactly as large as the 8
// rows' own blocks (one token's product streams the weights from memory,
// and every byte costs): each half-0 quant takes a byte's low 6 bits,
// whose top 2 bits carry the top 2 bits of the half-1 quant in the same
// place, and the half-1 quants' low nibbles of two parts share a nibble
// vector. So q0 = P & 63 and q1 = (P>>2 & 48) | (N>>4·(jj%2) & 15), five
// or six operations per part (and two more for w = q-32), shared by all
// the tokens.
//
// A packed block of 8 rows (one 256-element super-block of each) is:
//
//	[0:16)      the rows' f16 d, row 0 first
//	[16:144)    scales: 16 bytes per (jj, h), chunk 2jj+h, row i's int8
//	            (scale_4jj+h, scale_4jj+h+2) at bytes 2i, 2i+1
//	[144:1680)  192 bytes per class l: the vectors P(l,0), P(l,1),
//	            N(l,0), P(l,2), P(l,3), N(l,2); in P(l,jj) lane i's byte k
//	            is q(e_0k) | (q(e_1k)>>4)<<6 of row i, in N(l,jj) it is
//	            q(e_1k)&15 of part jj | (q(e_1k)&15 of part jj+1)<<4, where
//	            e_hk is element 64jj+l+16h+(0, 8, 32, 40)[k]
const PackedQ6KBlockBytes = 8 * q6KBytes

const (
	pkQ6KScales     = 16
	pkQ6KQuants     = 144
	pkQ6KClassBytes = 192
)

// q6KQuadOffsets are the offsets of a quad's elements from 64jj+l+16h.
var q6KQuadOffsets = [4]int{0, 8, 32, 40}

// pkQ6KP and pkQ6KN are the offsets of vectors P(l,jj) and N(l,jj) in a
// packed block (N(l,jj) for odd jj is N(l,jj-1), read by its high nibbles).
func pkQ6KP(l, jj int) int { return pkQ6KQuants + pkQ6KClassBytes*l + 96*(jj/2) + 32*(jj%2) }
func pkQ6KN(l, jj int) int { return pkQ6KQuants + pkQ6KClassBytes*l + 96*(jj/2) + 64 }

// PackQ6Kx8 returns the packed form of a row-major Q6_K matrix of rows rows
// of n elements (rows a multiple of 8, n of 256).
func PackQ6Kx8(w []byte, rows, n int) ([]byte, error) {
	if rows%8 != 0 || rows <= 0 {
		return nil, fmt.Errorf("quant: PackQ6Kx8: %d rows is not a positive multiple of 8", rows)
	}
	rb, err := RowBytes(Q6_K, n)
	if err != nil {
		return nil, fmt.Errorf("quant: PackQ6Kx8: %w", err)
	}
	if len(w) != rb*rows {
		return nil, fmt.Errorf("quant: PackQ6Kx8: %d bytes for %d rows of %d bytes", len(w), rows, rb)
	}
	nb := n / QKK
	out := make([]byte, len(w))
	var q [QKK]byte // one row's block, unsigned quants 0..63
	for g := 0; g < rows/8; g++ {
		for b := 0; b < nb; b++ {
			dst := out[(g*nb+b)*PackedQ6KBlockBytes:][:PackedQ6KBlockBytes]
			for i := 0; i < 8; i++ {
				src := (*[q6KBytes]byte)(w[(8*g+i)*rb+b*q6KBytes:])
				copy(dst[2*i:2*i+2], src[q6KD:q6KD+2])
				for jj := 0; jj < 4; jj++ {
					for h := 0; h < 2; h++ {
						c := dst[pkQ6KScales+16*(2*jj+h)+2*i:]
						c[0] = src[q6KScales+4*jj+h]
						c[1] = src[q6KScales+4*jj+h+2]
					}
				}
				// q6KValues' decoding, without its -32.
				for half := 0; half < 2; half++ {
					ql := (*[64]byte)(src[64*half:])
					qh := (*[32]byte)(src[q6KQh+32*half:])
					e := q[128*half : 128*half+128]
					for l, h := range qh {
						e[l] = ql[l]&15 | h&3<<4
						e[l+32] = ql[l+32]&15 | h>>2&3<<4
						e[l+64] = ql[l]>>4 | h>>4&3<<4
						e[l+96] = ql[l+32]>>4 | h>>6<<4
					}
				}
				for l := 0; l < 8; l++ {
					for jj := 0; jj < 4; jj += 2 {
						// Parts jj and jj+1 share their nibble vector.
						pa := (*[4]byte)(dst[pkQ6KP(l, jj)+4*i:])
						pb := (*[4]byte)(dst[pkQ6KP(l, jj+1)+4*i:])
						nv := (*[4]byte)(dst[pkQ6KN(l, jj)+4*i:])
						ea := (*[57]byte)(q[64*jj+l:])
						eb := (*[57]byte)(q[64*jj+64+l:])
						for k, o := range q6KQuadOffsets {
							a0, a1 := ea[o], ea[o+16]
							b0, b1 := eb[o], eb[o+16]
							pa[k] = a0 | a1>>4<<6
							pb[k] = b0 | b1>>4<<6
							nv[k] = a1&15 | b1<<4
						}
					}
				}
			}
		}
	}
	return out, nil
}

// packedQ6KQuant returns the unsigned quant (0..63) of element
// 64jj+l+16h+q6KQuadOffsets[k] of row i in a packed block.
func packedQ6KQuant(blk []byte, i, l, jj, h, k int) int32 {
	p := blk[pkQ6KP(l, jj)+4*i+k]
	if h == 0 {
		return int32(p & 63)
	}
	nib := blk[pkQ6KN(l, jj)+4*i+k] >> (4 * (jj % 2)) & 15
	return int32(p>>6<<4 | nib)
}

// Q6KAuxBlockBytes is the size of one block of Q6KAux's expansion, with
// v = 2(4l+jj)+h for class l, part jj and half h, and e = 64jj+l+16h:
//
//	[0:512)    for one token, 64 pairs of dwords, pair v: the quad x(e),
//	           x(e+8), x(e+32), x(e+40), then the words 32·(x(e)+x(e+8)),
//	           32·(x(e+32)+x(e+40)) that undo the +32 of the unsigned
//	           quants (|32·Σ| ≤ 8192 fits a word)
//	[512:768)  for several tokens, 64 dwords, dword v: the same quad plus
//	           128 in each byte
//	[768:800)  d_x as float32, 8 times
//
// The kernels broadcast each dword to a vector as they read it, so that
// the part of a row's expansion a kernel reads is at most a third the
// size of the weights of a block of 8 rows, and stays in L1 while every
// group of 8 rows passes over it.
const Q6KAuxBlockBytes = 64*8 + 64*4 + 32

const (
	q6KAuxOffset = 64 * 8
	q6KAuxScale  = q6KAuxOffset + 64*4
)

// Q6KAuxBytes is the size of Q6KAux's output for a row of n elements.
func Q6KAuxBytes(n int) int { return n / QKK * Q6KAuxBlockBytes }

// Q6KAux writes x (one Q8_K row of n elements) expanded for the packed
// Q6_K kernels. It is computed once per activation row.
func Q6KAux(x []byte, n int, aux []byte) {
	nb := n / QKK
	if n%QKK != 0 || len(x) != nb*q8KBytes || len(aux) != nb*Q6KAuxBlockBytes {
		panic(fmt.Sprintf("quant: Q6KAux n=%d: %d bytes of activations, %d of aux", n, len(x), len(aux)))
	}
	le := binary.LittleEndian
	for b := 0; b < nb; b++ {
		xb := x[b*q8KBytes:][:q8KBytes]
		ab := aux[b*Q6KAuxBlockBytes:][:Q6KAuxBlockBytes]
		qs := xb[q8KQs : q8KQs+QKK]
		for v := 0; v < 64; v++ {
			lj, h := v/2, v%2
			l, jj := lj/4, lj%4
			e := 64*jj + l + 16*h
			quad := [4]byte{qs[e], qs[e+8], qs[e+32], qs[e+40]}
			copy(ab[8*v:], quad[:])
			lo := 32 * (int16(int8(quad[0])) + int16(int8(quad[1])))
			hi := 32 * (int16(int8(quad[2])) + int16(int8(quad[3])))
			le.PutUint32(ab[8*v+4:], uint32(uint16(lo))|uint32(uint16(hi))<<16)
			// x+128 of an int8 is its byte with the top bit flipped.
			le.PutUint32(ab[q6KAuxOffset+4*v:], le.Uint32(quad[:])^0x80808080)
		}
		d := le.Uint32(xb)
		for o := 0; o < 32; o += 4 {
			le.PutUint32(ab[q6KAuxScale+o:], d)
		}
	}
}

// DotPackedQ6K is Packing.Dot for Q6_K.
func DotPackedQ6K(n int, w []byte, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	dotPackedQ6K(dotPackedQ6KGroup, n, w, aux, auxStride, tokens, dst, dstStride)
}

func init() {
	registerPacking(&Packing{
		Type:        Q6_K,
		Pack:        PackQ6Kx8,
		AuxName:     "q6_k",
		AuxBytes:    Q6KAuxBytes,
		Aux:         Q6KAux,
		Dot:         DotPackedQ6K,
		accelerated: func() bool { return packedQ6KAccelerated },
		dotGeneric: func(n int, w, aux []byte, auxStride, tokens int, dst []float32, dstStride int) {
			dotPackedQ6K(dotPackedQ6KGroupGeneric, n, w, aux, auxStride, tokens, dst, dstStride)
		},
	})
}

func dotPackedQ6K(group packedGroupFunc, n int, w []byte, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	groups, nb := packedGroups("DotPackedQ6K", n, QKK, PackedQ6KBlockBytes, Q6KAuxBytes(n), w, aux, auxStride, tokens, dst, dstStride)
	gb := nb * PackedQ6KBlockBytes
	// Groups outer: a group's weights (13 KB for a row of 2048) stay in
	// L1 or L2 while every token passes over them, so a matrix larger than
	// the caches streams from memory once whatever the tokens, and the
	// expansions (6.4 KB per token for 2048) stay cached throughout.
	for g := 0; g < groups; g++ {
		for t := 0; t < tokens; t += packedQ6KTokens {
			k := min(packedQ6KTokens, tokens-t)
			group(w[g*gb:(g+1)*gb], nb, aux[t*auxStride:], auxStride, k, dst[t*dstStride+8*g:], dstStride)
		}
	}
}

// packedQ6KTokens is how many tokens one group call takes at most.
const packedQ6KTokens = 8

// dotPackedQ6KGroup computes one group of 8 rows for up to
// packedQ6KTokens tokens; an architecture file may replace it with a
// kernel that returns the same bits, and then sets packedQ6KAccelerated.
var (
	dotPackedQ6KGroup    packedGroupFunc = dotPackedQ6KGroupGeneric
	packedQ6KAccelerated bool
)

// dotPackedQ6KGroupGeneric follows vecDotQ6KQ8K's arithmetic row by row,
// reading the packed layout and the expansion the way the kernels do: for
// one token unsigned quants against the quads less the offset words, for
// more offset activations against signed weights less the excess.
func dotPackedQ6KGroupGeneric(w []byte, nb int, aux []byte, auxStride int, tokens int, dst []float32, dstStride int) {
	le := binary.LittleEndian
	for t := 0; t < tokens; t++ {
		at := aux[t*auxStride:]
		for i := 0; i < 8; i++ {
			var sums [8]float32
			for b := 0; b < nb; b++ {
				blk := w[b*PackedQ6KBlockBytes:][:PackedQ6KBlockBytes]
				ab := at[b*Q6KAuxBlockBytes:][:Q6KAuxBlockBytes]
				var lanes [8]int32
				for l := 0; l < 8; l++ {
					var excess int32
					for jj := 0; jj < 4; jj++ {
						for h := 0; h < 2; h++ {
							v := 2*(4*l+jj) + h
							sc := blk[pkQ6KScales+16*(2*jj+h)+2*i:]
							s0, s1 := int32(int8(sc[0])), int32(int8(sc[1]))
							var words [2]int32
							if tokens == 1 {
								quad := ab[8*v:][:4]
								for k := 0; k < 4; k++ {
									words[k/2] += packedQ6KQuant(blk, i, l, jj, h, k) * int32(int8(quad[k]))
								}
								off := ab[8*v+4:]
								words[0] -= int32(int16(le.Uint16(off)))
								words[1] -= int32(int16(le.Uint16(off[2:])))
							} else {
								quad := ab[q6KAuxOffset+4*v:][:4]
								var wsums [2]int32
								for k := 0; k < 4; k++ {
									wq := packedQ6KQuant(blk, i, l, jj, h, k) - 32
									words[k/2] += int32(quad[k]) * wq
									wsums[k/2] += 128 * wq
								}
								excess += s0*wsums[0] + s1*wsums[1]
							}
							lanes[l] += s0*words[0] + s1*words[1]
						}
					}
					lanes[l] -= excess
				}
				d := f16At(blk, 2*i) * math.Float32frombits(le.Uint32(ab[q6KAuxScale:]))
				for l := range sums {
					sums[l] += float32(d * float32(lanes[l]))
				}
			}
			var sumf float32
			for _, s := range sums {
				sumf += s
			}
			dst[t*dstStride+i] = sumf
		}
	}
}
