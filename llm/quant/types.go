// Package quant implements ggml's tensor element types: their block layouts,
// dequantisation, the reference quantisers llama.cpp uses to write GGUF files,
// and the scalar dot-product kernels its CPU backend uses for inference.
//
// Everything here reproduces llama.cpp bit for bit (ggml's scalar reference
// code paths, as built for x86-64 without AVX), because the inference engine
// must pick exactly the tokens llama.cpp picks.
package quant

import "fmt"

// Type is a ggml_type id as stored in GGUF tensor infos.
type Type uint32

// The element types this package implements kernels for.
const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q8_0 Type = 8
	Q4_K Type = 12
	Q6_K Type = 14
	Q8_K Type = 15
	BF16 Type = 30
)

// Other ggml types whose layout is known, so that a GGUF reader can size and
// validate such tensors even though this package cannot compute with them.
const (
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q5_K    Type = 13
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// QK is the block size of the 32-element formats, QKK that of the K-quants.
const (
	QK  = 32
	QKK = 256
)

type layout struct {
	name       string
	blockSize  int // elements per block
	blockBytes int // bytes per block
	supported  bool
}

// numTypes bounds the type ids ggml defines (GGML_TYPE_COUNT).
const numTypes = 40

// layouts mirrors ggml's type_traits (blck_size, type_size) for every type id
// that ggml still defines; ids it has removed (4, 5, 31-33, 36-38) are left
// zero. It is an array, not a map, because VecDot consults it on every call.
var layouts = [numTypes]layout{
	F32:     {"F32", 1, 4, true},
	F16:     {"F16", 1, 2, true},
	Q4_0:    {"Q4_0", QK, 2 + QK/2, true},
	Q4_1:    {"Q4_1", QK, 4 + QK/2, false},
	Q5_0:    {"Q5_0", QK, 2 + 4 + QK/2, false},
	Q5_1:    {"Q5_1", QK, 4 + 4 + QK/2, false},
	Q8_0:    {"Q8_0", QK, 2 + QK, true},
	Q8_1:    {"Q8_1", QK, 4 + QK, false},
	Q2_K:    {"Q2_K", QKK, QKK/16 + QKK/4 + 4, false},
	Q3_K:    {"Q3_K", QKK, QKK/8 + QKK/4 + 12 + 2, false},
	Q4_K:    {"Q4_K", QKK, 4 + 12 + QKK/2, true},
	Q5_K:    {"Q5_K", QKK, 4 + 12 + QKK/8 + QKK/2, false},
	Q6_K:    {"Q6_K", QKK, QKK/2 + QKK/4 + QKK/16 + 2, true},
	Q8_K:    {"Q8_K", QKK, 4 + QKK + QKK/16*2, true},
	IQ2_XXS: {"IQ2_XXS", QKK, 2 + QKK/8*2, false},
	IQ2_XS:  {"IQ2_XS", QKK, 2 + QKK/8*2 + QKK/32, false},
	IQ3_XXS: {"IQ3_XXS", QKK, 2 + 3*QKK/8, false},
	IQ1_S:   {"IQ1_S", QKK, 2 + QKK/8 + QKK/16, false},
	IQ4_NL:  {"IQ4_NL", QK, 2 + QK/2, false},
	IQ3_S:   {"IQ3_S", QKK, 2 + QKK/4 + QKK/8 + QKK/32 + 4, false},
	IQ2_S:   {"IQ2_S", QKK, 2 + QKK/4 + QKK/16, false},
	IQ4_XS:  {"IQ4_XS", QKK, 2 + 2 + QKK/64 + QKK/2, false},
	I8:      {"I8", 1, 1, false},
	I16:     {"I16", 1, 2, false},
	I32:     {"I32", 1, 4, false},
	I64:     {"I64", 1, 8, false},
	F64:     {"F64", 1, 8, false},
	IQ1_M:   {"IQ1_M", QKK, QKK/8 + QKK/16 + QKK/32, false},
	BF16:    {"BF16", 1, 2, true},
	TQ1_0:   {"TQ1_0", QKK, 2 + 4*13, false},
	TQ2_0:   {"TQ2_0", QKK, 2 + 64, false},
	MXFP4:   {"MXFP4", QK, 1 + QK/2, false},
}

func (t Type) layout() (layout, bool) {
	if t >= numTypes || layouts[t].blockSize == 0 {
		return layout{}, false
	}
	return layouts[t], true
}

// String returns ggml's name for the type; unknown ids print as their number.
func (t Type) String() string {
	if l, ok := t.layout(); ok {
		return l.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether ggml defines the type, i.e. whether its block layout
// is known. Known types can be sized even when they are not Supported.
func (t Type) Known() bool {
	_, ok := t.layout()
	return ok
}

// Supported reports whether this package can dequantise and quantise the
// type. (HasVecDot tells which types also have a dot-product kernel.)
func (t Type) Supported() bool {
	l, _ := t.layout()
	return l.supported
}

// BlockSize is the number of elements per block (1 for F32, F16, BF16), or 0
// for an unknown type.
func (t Type) BlockSize() int {
	l, _ := t.layout()
	return l.blockSize
}

// BlockBytes is the number of bytes per block, or 0 for an unknown type.
func (t Type) BlockBytes() int {
	l, _ := t.layout()
	return l.blockBytes
}

// RowBytes is the storage size of n consecutive elements of type t. It fails
// when the type is unknown or n is not a whole number of blocks.
func RowBytes(t Type, n int) (int, error) {
	l, ok := t.layout()
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %s", t)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s: negative element count %d", t, n)
	}
	if n%l.blockSize != 0 {
		return 0, fmt.Errorf("%s: %d elements is not a multiple of the block size %d", t, n, l.blockSize)
	}
	blocks := n / l.blockSize
	if blocks > maxInt/l.blockBytes {
		return 0, fmt.Errorf("%s: %d elements overflow the row size", t, n)
	}
	return blocks * l.blockBytes, nil
}

const maxInt = int(^uint(0) >> 1)
