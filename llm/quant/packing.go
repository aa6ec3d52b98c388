package quant

import "fmt"

// A Packing is an interleaved layout of a weight type that the CPU
// multiplies faster than the row-major one: 8 rows side by side, each
// 32-bit lane of a vector holding one row, so the products need no
// horizontal sums (llama.cpp's CPU backend repacks the same way at load).
// The activations are expanded once per row (Aux) into the operands the
// kernels read straight from memory. Every Packing returns VecDot's bits.
type Packing struct {
	// Type is the weight type the layout repacks.
	Type Type
	// Pack returns the packed form of a row-major matrix of rows rows (a
	// positive multiple of 8) of n elements.
	Pack func(w []byte, rows, n int) ([]byte, error)
	// AuxName names the activation expansion; packings that share it
	// share one expansion of each row.
	AuxName string
	// AuxBytes is the size of Aux's output for a row of n elements.
	AuxBytes func(n int) int
	// Aux expands one activation row x of n elements, already converted
	// to VecDotType(Type).
	Aux func(x []byte, n int, aux []byte)
	// Dot sets dst[t*dstStride+r] to VecDot(Type, n, row r, x_t) for the
	// 8·groups rows packed in w and the tokens activation rows x_t given
	// by their expansions at aux[t*auxStride:]. Wrong sizes panic.
	Dot func(n int, w, aux []byte, auxStride, tokens int, dst []float32, dstStride int)

	// accelerated reports whether this CPU has kernels for the layout;
	// without them the row-major kernels are faster.
	accelerated func() bool
	// dotGeneric is Dot on the portable kernels, for tests that compare
	// them with the installed ones.
	dotGeneric func(n int, w, aux []byte, auxStride, tokens int, dst []float32, dstStride int)
}

var packings [numTypes]*Packing

func registerPacking(p *Packing) { packings[p.Type] = p }

// PackingFor returns the packed layout of weight type t when this CPU has
// kernels for it, or nil: keep such matrices row-major.
func PackingFor(t Type) *Packing {
	if int(t) >= len(packings) || packings[t] == nil || !packings[t].accelerated() {
		return nil
	}
	return packings[t]
}

// packedGroups checks the sizes of a Dot call on a layout whose blocks hold
// blockElems elements of a row and take blockBytes for a group of 8 rows,
// and whose expansion takes auxRowBytes per activation row; it returns the
// number of groups and of blocks per row. Wrong sizes panic.
func packedGroups(name string, n, blockElems, blockBytes, auxRowBytes int, w, aux []byte, auxStride, tokens int, dst []float32, dstStride int) (groups, nb int) {
	nb = n / blockElems
	gb := nb * blockBytes
	if n <= 0 || n%blockElems != 0 || len(w)%gb != 0 {
		panic(fmt.Sprintf("quant: %s n=%d: %d bytes of packed weights", name, n, len(w)))
	}
	groups = len(w) / gb
	rows := 8 * groups
	if tokens < 0 || tokens > 0 && (auxStride < auxRowBytes || dstStride < rows ||
		len(aux) < (tokens-1)*auxStride+auxRowBytes || len(dst) < (tokens-1)*dstStride+rows) {
		panic(fmt.Sprintf("quant: %s n=%d rows=%d tokens=%d: sizes aux %d/%d dst %d/%d",
			name, n, rows, tokens, len(aux), auxStride, len(dst), dstStride))
	}
	return groups, nb
}
