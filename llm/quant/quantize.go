package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Quantize encodes src as type t with llama.cpp's reference quantisers (the
// quantize_row_*_ref functions llama-quantize uses when no importance matrix
// is given), producing the same bytes. len(src) must be a whole number of
// blocks.
func Quantize(t Type, src []float32) ([]byte, error) {
	if !t.Supported() {
		return nil, fmt.Errorf("quant: unsupported tensor type %s", t)
	}
	n, err := RowBytes(t, len(src))
	if err != nil {
		return nil, fmt.Errorf("quant: quantize: %w", err)
	}
	dst := make([]byte, n)
	quantizeInto(t, src, dst)
	return dst, nil
}

// quantizeRowKernels optionally holds architecture kernels for whole rows
// (quantize_amd64.go); each must write exactly the bytes the reference below
// writes.
var quantizeRowKernels [numTypes]func(src []float32, dst []byte)

// quantizeInto assumes dst has exactly RowBytes(t, len(src)) bytes.
func quantizeInto(t Type, src []float32, dst []byte) {
	if k := quantizeRowKernels[t]; k != nil {
		k(src, dst)
		return
	}
	switch t {
	case F32:
		for i, f := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	case F16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], FP32ToFP16(f))
		}
	case BF16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], FP32ToBF16(f))
		}
	case Q4_0:
		for b := 0; b < len(src)/QK; b++ {
			quantizeQ4_0(src[b*QK:(b+1)*QK], dst[b*q4_0Bytes:(b+1)*q4_0Bytes])
		}
	case Q8_0:
		for b := 0; b < len(src)/QK; b++ {
			quantizeQ8_0(src[b*QK:(b+1)*QK], dst[b*q8_0Bytes:(b+1)*q8_0Bytes])
		}
	case Q4_K:
		for b := 0; b < len(src)/QKK; b++ {
			quantizeQ4K(src[b*QKK:(b+1)*QKK], dst[b*q4KBytes:(b+1)*q4KBytes])
		}
	case Q6_K:
		for b := 0; b < len(src)/QKK; b++ {
			quantizeQ6K(src[b*QKK:(b+1)*QKK], dst[b*q6KBytes:(b+1)*q6KBytes])
		}
	case Q8_K:
		for b := 0; b < len(src)/QKK; b++ {
			quantizeQ8K(src[b*QKK:(b+1)*QKK], dst[b*q8KBytes:(b+1)*q8KBytes])
		}
	default:
		panic("quant: quantizeInto: unhandled type " + t.String())
	}
}

// quantizeQ4_0 is quantize_row_q4_0_ref for one block: the scale maps the
// value of largest magnitude to -8, and nibbles are offset by 8.
func quantizeQ4_0(x []float32, y []byte) {
	var amax, max float32
	for _, v := range x[:QK] {
		if amax < abs32(v) {
			amax, max = abs32(v), v
		}
	}
	d := max / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(y, 0, d)
	qs := y[2 : 2+QK/2]
	for j := range qs {
		x0 := float32(x[j] * id)
		x1 := float32(x[QK/2+j] * id)
		qs[j] = q4Nibble(x0) | q4Nibble(x1)<<4
	}
}

// q4Nibble is C's (uint8_t)MIN(15, (int8_t)(x + 8.5f)): truncation toward
// zero, the int8 cast wrapping, the comparison done in int.
func q4Nibble(x float32) uint8 {
	return uint8(min(15, int32(int8(truncInt32(x+8.5)))))
}

// quantizeQ8_0 is quantize_row_q8_0_ref for one block (also what ggml's CPU
// backend uses to quantise activations for Q4_0 and Q8_0 weights).
func quantizeQ8_0(x []float32, y []byte) {
	var amax float32
	for _, v := range x[:QK] {
		amax = max(amax, abs32(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(y, 0, d)
	for j, v := range x[:QK] {
		y[2+j] = byte(truncInt32(roundHalfAway(v * id)))
	}
}

// roundHalfAway is C's roundf.
func roundHalfAway(f float32) float32 { return float32(math.Round(float64(f))) }

// quantizeQ8K is quantize_row_q8_K_ref for one block: the value of largest
// magnitude maps to -127, d = 1/iscale, plus sums of each 16 quants.
func quantizeQ8K(x []float32, y []byte) {
	var max, amax float32
	for _, v := range x[:QKK] {
		if ax := abs32(v); ax > amax {
			amax, max = ax, v
		}
	}
	if amax == 0 {
		clear(y[:q8KBytes])
		return
	}
	iscale := -127 / max
	qs := y[q8KQs : q8KQs+QKK]
	for j, v := range x[:QKK] {
		qs[j] = byte(int8(min(127, nearestInt(iscale*v))))
	}
	for j := 0; j < QKK/16; j++ {
		var sum int32
		for _, q := range qs[16*j : 16*j+16] {
			sum += int32(int8(q))
		}
		binary.LittleEndian.PutUint16(y[q8KBsums+2*j:], uint16(int16(sum)))
	}
	binary.LittleEndian.PutUint32(y, math.Float32bits(1/iscale))
}

// quantizeQ4K is quantize_row_q4_K_ref for one block: 8 sub-blocks of 32
// with an affine (scale, min) fit each, both quantised to 6 bits against the
// block's largest scale and min.
func quantizeQ4K(x []float32, y []byte) {
	var (
		L       [QKK]uint8
		laux    [32]uint8
		weights [32]float32
		mins    [QKK / 32]float32
		scales  [QKK / 32]float32
	)
	var maxScale, maxMin float32
	for j := 0; j < QKK/32; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := sqrt32(sumX2 / 32)
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = makeQKX2Quants(15, xs, weights[:], L[32*j:32*j+32], laux[:], -1, 0.1, 20, false)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	packed := y[q4KScales : q4KScales+12]
	for j := 0; j < QKK/32; j++ {
		// C stores nearest_int into a uint8_t before clamping, so negative
		// values wrap; keep that.
		ls := min(63, uint8(nearestInt(invScale*scales[j])))
		lm := min(63, uint8(nearestInt(invMin*mins[j])))
		if j < 4 {
			packed[j] = ls
			packed[j+4] = lm
		} else {
			packed[j+4] = ls&0xF | (lm&0xF)<<4
			packed[j-4] |= (ls >> 4) << 6
			packed[j] |= (lm >> 4) << 6
		}
	}
	putF16(y, 0, maxScale/63)
	putF16(y, 2, maxMin/63)
	d0, dmin0 := f16At(y, 0), f16At(y, 2)
	for j := 0; j < QKK/32; j++ {
		sc, m := getScaleMinK4(j, packed)
		d := d0 * float32(sc)
		if d == 0 {
			continue
		}
		dm := float32(dmin0 * float32(m))
		for ii := 0; ii < 32; ii++ {
			l := nearestInt((x[32*j+ii] + dm) / d)
			L[32*j+ii] = uint8(max(0, min(15, l)))
		}
	}
	q := y[q4KQs:q4KBytes]
	for j := 0; j < QKK; j += 64 {
		for l := 0; l < 32; l++ {
			q[j/2+l] = L[j+l] | L[j+l+32]<<4
		}
	}
}

// makeQKX2Quants is ggml's make_qkx2_quants: it fits x ≈ scale*L + min with
// L in [0, nmax] and min <= 0, trying nstep+1 scales around the range-based
// one and keeping the weighted least-squares best. It returns the scale and
// the negated min. Every float32(...) below marks a rounding C performs that
// Go could otherwise fuse away.
func makeQKX2Quants(nmax int32, x, weights []float32, L, laux []uint8, rmin, rdelta float32, nstep int, useMad bool) (scale, negMin float32) {
	n := len(x)
	minV, maxV := x[0], x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < minV {
			minV = x[i]
		}
		if x[i] > maxV {
			maxV = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if minV > 0 {
		minV = 0
	}
	if maxV == minV {
		clear(L[:n])
		return 0, -minV
	}
	fmax := float32(nmax)
	iscale := fmax / (maxV - minV)
	scale = 1 / iscale
	var bestError float32
	for i := 0; i < n; i++ {
		l := nearestInt(iscale * (x[i] - minV))
		L[i] = uint8(max(0, min(nmax, l)))
		diff := float32(float32(scale*float32(L[i]))+minV) - x[i]
		if useMad {
			diff = abs32(diff)
		} else {
			diff = float32(diff * diff)
		}
		bestError += float32(weights[i] * diff)
	}
	if nstep < 1 {
		return scale, -minV
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + fmax) / (maxV - minV)
		var sumL, sumL2, sumXL float32
		for i := 0; i < n; i++ {
			l := nearestInt(iscale * (x[i] - minV))
			l = max(0, min(nmax, l))
			laux[i] = uint8(l)
			w := weights[i]
			wl := float32(w * float32(l))
			sumL += wl
			sumL2 += float32(wl * float32(l))
			sumXL += float32(wl * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i := 0; i < n; i++ {
				diff := float32(float32(thisScale*float32(laux[i]))+thisMin) - x[i]
				if useMad {
					diff = abs32(diff)
				} else {
					diff = float32(diff * diff)
				}
				curError += float32(weights[i] * diff)
			}
			if curError < bestError {
				copy(L[:n], laux[:n])
				bestError = curError
				scale = thisScale
				minV = thisMin
			}
		}
	}
	return scale, -minV
}

// quantizeQ6K is quantize_row_q6_K_ref for one block: 16 sub-blocks of 16
// with a symmetric 6-bit fit each, their scales quantised to int8 against
// the scale of largest magnitude.
func quantizeQ6K(x []float32, y []byte) {
	var (
		L      [QKK]uint8
		scales [QKK / 16]float32
	)
	var maxScale, maxAbsScale float32
	for ib := 0; ib < QKK/16; ib++ {
		scale := makeQXQuants(32, x[16*ib:16*ib+16], L[16*ib:16*ib+16])
		scales[ib] = scale
		if a := abs32(scale); a > maxAbsScale {
			maxAbsScale, maxScale = a, scale
		}
	}
	if maxAbsScale < groupMaxEps {
		clear(y[:q6KBytes])
		return
	}
	iscale := -128 / maxScale
	putF16(y, q6KD, 1/iscale)
	sc := y[q6KScales : q6KScales+QKK/16]
	for ib := range sc {
		sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
	}
	d0 := f16At(y, q6KD)
	for j := 0; j < QKK/16; j++ {
		d := d0 * float32(int8(sc[j]))
		if d == 0 {
			continue
		}
		for ii := 0; ii < 16; ii++ {
			l := nearestInt(x[16*j+ii] / d)
			L[16*j+ii] = uint8(max(-32, min(31, l)) + 32)
		}
	}
	for half := 0; half < 2; half++ {
		Lh := L[128*half : 128*half+128]
		ql := y[64*half : 64*half+64]
		qh := y[q6KQh+32*half : q6KQh+32*half+32]
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := Lh[l], Lh[l+32], Lh[l+64], Lh[l+96]
			ql[l] = q1&0xF | (q3&0xF)<<4
			ql[l+32] = q2&0xF | (q4&0xF)<<4
			qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
}

// makeQXQuants is ggml's make_qx_quants with rmse_type 1 and no importance
// weights (the only form the reference quantisers use): a symmetric fit
// x ≈ scale*(L-nmax), weighted by x², refined over 18 nearby scales. L gets
// values in [0, 2*nmax).
func makeQXQuants(nmax int32, x []float32, L []uint8) float32 {
	var maxV, amax float32
	for _, v := range x {
		if ax := abs32(v); ax > amax {
			amax, maxV = ax, v
		}
	}
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	fmax := float32(nmax)
	sums := func(iscale float32, store bool) (sumLX, sumL2 float32) {
		for i, v := range x {
			l := nearestInt(iscale * v)
			l = max(-nmax, min(nmax-1, l))
			if store {
				L[i] = uint8(l + nmax)
			}
			w := float32(v * v)
			fl := float32(l)
			sumLX += float32(float32(w*v) * fl)
			sumL2 += float32(float32(w*fl) * fl)
		}
		return
	}
	iscale := -fmax / maxV
	sumLX, sumL2 := sums(iscale, true)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(fmax + float32(0.1*float32(is))) / maxV
		sumLX, sumL2 = sums(iscale, false)
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			sums(iscale, true)
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}
