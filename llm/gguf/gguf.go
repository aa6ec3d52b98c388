// Package gguf reads and writes GGUF model files (versions 2 and 3), the
// format llama.cpp loads models from.
//
// Reading validates everything up front — header, metadata, tensor infos and
// the placement of every tensor's data — so that a truncated, corrupt or
// hostile file is rejected with an error naming the problem instead of
// causing a panic or an out-of-bounds read later. Tensor data is not copied:
// Open memory-maps the file and Tensor returns slices of the mapping.
package gguf

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"slices"
	"unicode/utf8"

	"github.com/selfinstruct/selfinstruct/llm/quant"
	"golang.org/x/sys/unix"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// AlignmentKey is the metadata key that overrides DefaultAlignment.
const AlignmentKey = "general.alignment"

// MaxDims is the largest number of dimensions ggml tensors have.
const MaxDims = 4

// maxArrayDepth bounds the nesting of arrays of arrays, so that a hostile
// file cannot exhaust the stack.
const maxArrayDepth = 16

// File is a parsed GGUF file. Its tensor data stays valid until Close.
type File struct {
	Version   uint32
	Alignment uint64
	KV        []KV
	Tensors   []TensorInfo
	// DataOffset is the absolute file offset of the tensor data section.
	DataOffset uint64

	data    []byte
	mapped  bool
	keys    map[string]int
	tensors map[string]int
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Dims are in ggml order: Dims[0] is the
// number of elements in a row (the fastest-varying dimension).
type TensorInfo struct {
	Name string
	Dims []uint64
	Type quant.Type
	// Offset is the absolute file offset of the tensor's data.
	Offset uint64
	// Size is the number of bytes of the tensor's data.
	Size uint64
}

// Elements is the number of elements of the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Open memory-maps the file read-only and parses it. Close releases the
// mapping; slices returned by Tensor must not be used after that.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return nil, fmt.Errorf("gguf: %s: empty file", path)
	}
	if size < 0 || uint64(size) > uint64(maxInt) {
		return nil, fmt.Errorf("gguf: %s: file size %d cannot be mapped", path, size)
	}
	data, err := unix.Mmap(int(fh.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		unix.Munmap(data)
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	f.mapped = true
	return f, nil
}

// Parse parses a GGUF file held in memory. The File refers to data, which
// must not be modified while the File is in use.
func Parse(data []byte) (*File, error) {
	p := &parser{data: data}
	f, err := p.file()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f.data = data
	return f, nil
}

// Close releases the memory mapping of a File made by Open (for one made by
// Parse it only drops the reference to the bytes). Metadata stays readable
// afterwards; Tensor no longer returns data. It is safe to call more than
// once.
func (f *File) Close() error {
	if !f.mapped || f.data == nil {
		f.data = nil
		return nil
	}
	data := f.data
	f.data = nil
	f.mapped = false
	if err := unix.Munmap(data); err != nil {
		return fmt.Errorf("gguf: munmap: %w", err)
	}
	return nil
}

// Lookup returns the metadata value stored under key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// String returns a string value.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return "", false
	}
	return v.AsString()
}

// Uint returns a non-negative integer value of any width.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsUint()
}

// Int returns an integer value of any width that fits in int64.
func (f *File) Int(key string) (int64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsInt()
}

// Float returns a float32 or float64 value.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsFloat()
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return false, false
	}
	return v.AsBool()
}

// Strings returns a string array.
func (f *File) Strings(key string) ([]string, bool) {
	a, ok := f.array(key)
	if !ok {
		return nil, false
	}
	return a.Strings()
}

// Float32s returns a float32 (or float64) array.
func (f *File) Float32s(key string) ([]float32, bool) {
	a, ok := f.array(key)
	if !ok {
		return nil, false
	}
	return a.Float32s()
}

// Int32s returns an integer array of any width whose values fit in int32.
func (f *File) Int32s(key string) ([]int32, bool) {
	a, ok := f.array(key)
	if !ok {
		return nil, false
	}
	return a.Int32s()
}

func (f *File) array(key string) (*Array, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, false
	}
	return v.AsArray()
}

// Tensor returns the info and the data of the named tensor. The data is a
// slice of the file (of the mapping for Open); it is valid until Close.
func (f *File) Tensor(name string) (TensorInfo, []byte, bool) {
	i, ok := f.tensors[name]
	if !ok || f.data == nil {
		return TensorInfo{}, nil, false
	}
	t := f.Tensors[i]
	return t, f.data[t.Offset : t.Offset+t.Size : t.Offset+t.Size], true
}

// CheckSupported reports the first tensor whose type this engine cannot
// compute with. Parsing accepts every type whose layout ggml defines, so that
// metadata (a vocabulary, say) stays readable; a model loader calls this.
func (f *File) CheckSupported() error {
	for _, t := range f.Tensors {
		if !t.Type.Supported() {
			return fmt.Errorf("gguf: tensor %q: unsupported tensor type %s", t.Name, t.Type)
		}
	}
	return nil
}

const maxInt = int(^uint(0) >> 1)

var errTruncated = errors.New("unexpected end of file")

// parser reads little-endian fields with bounds checks; every error says
// where in the file it happened.
type parser struct {
	data []byte
	pos  uint64
}

func (p *parser) remaining() uint64 { return uint64(len(p.data)) - p.pos }

func (p *parser) bytes(n uint64, what string) ([]byte, error) {
	if n > p.remaining() {
		return nil, fmt.Errorf("%s at offset %d: need %d bytes, %d left: %w", what, p.pos, n, p.remaining(), errTruncated)
	}
	b := p.data[p.pos : p.pos+n]
	p.pos += n
	return b, nil
}

func (p *parser) u32(what string) (uint32, error) {
	b, err := p.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64(what string) (uint64, error) {
	b, err := p.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (p *parser) str(what string) (string, error) {
	start := p.pos
	n, err := p.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > p.remaining() {
		return "", fmt.Errorf("%s at offset %d: length %d exceeds the %d bytes left: %w", what, start, n, p.remaining(), errTruncated)
	}
	b, _ := p.bytes(n, what)
	return string(b), nil
}

func (p *parser) file() (*File, error) {
	magic, err := p.bytes(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("not a GGUF file: magic %q, want %q", magic, Magic)
	}
	version, err := p.u32("version")
	if err != nil {
		return nil, err
	}
	switch version {
	case 2, 3:
	case 1:
		return nil, fmt.Errorf("GGUF version 1 is not supported (32-bit counts; re-convert the model with a current llama.cpp)")
	default:
		return nil, fmt.Errorf("unsupported GGUF version %d (want 2 or 3)", version)
	}
	nTensors, err := p.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := p.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// Each entry takes at least this many bytes, which bounds how many a
	// file of this size can hold before anything is allocated.
	const minKVBytes = 8 + 4 + 1             // empty key, type, one-byte value
	const minTensorBytes = 8 + 4 + 8 + 4 + 8 // empty name, n_dims, one dim, type, offset
	if nKV > p.remaining()/minKVBytes {
		return nil, fmt.Errorf("metadata count %d is impossible in a file of %d bytes: %w", nKV, len(p.data), errTruncated)
	}
	if nTensors > p.remaining()/minTensorBytes {
		return nil, fmt.Errorf("tensor count %d is impossible in a file of %d bytes: %w", nTensors, len(p.data), errTruncated)
	}

	f := &File{
		Version:   version,
		Alignment: DefaultAlignment,
		KV:        make([]KV, 0, nKV),
		keys:      make(map[string]int, nKV),
	}
	for i := uint64(0); i < nKV; i++ {
		kv, err := p.kv()
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d: %w", i, err)
		}
		if _, dup := f.keys[kv.Key]; dup {
			return nil, fmt.Errorf("metadata entry %d: duplicate key %q", i, kv.Key)
		}
		f.keys[kv.Key] = len(f.KV)
		f.KV = append(f.KV, kv)
	}
	if v, ok := f.Lookup(AlignmentKey); ok {
		a, ok := v.AsUint()
		if !ok {
			return nil, fmt.Errorf("%s must be an unsigned integer, got %s %s", AlignmentKey, v.Type, v)
		}
		if a == 0 || a&(a-1) != 0 || a > 1<<30 {
			return nil, fmt.Errorf("%s %d is not a power of two (up to 2^30)", AlignmentKey, a)
		}
		f.Alignment = a
	}

	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.tensors = make(map[string]int, nTensors)
	relOffsets := make([]uint64, 0, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		t, rel, err := p.tensorInfo()
		if err != nil {
			return nil, fmt.Errorf("tensor info %d: %w", i, err)
		}
		if _, dup := f.tensors[t.Name]; dup {
			return nil, fmt.Errorf("tensor info %d: duplicate tensor name %q", i, t.Name)
		}
		f.tensors[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
		relOffsets = append(relOffsets, rel)
	}

	// The data section starts at the next multiple of the alignment. A file
	// without tensors (a vocabulary) may end before that padding.
	f.DataOffset = alignUp(p.pos, f.Alignment)
	if nTensors > 0 && f.DataOffset > uint64(len(p.data)) {
		return nil, fmt.Errorf("data section at offset %d lies beyond the end of the %d-byte file: %w", f.DataOffset, len(p.data), errTruncated)
	}
	if err := f.placeTensors(relOffsets, uint64(len(p.data))); err != nil {
		return nil, err
	}
	return f, nil
}

func alignUp(x, align uint64) uint64 {
	return (x + align - 1) &^ (align - 1)
}

func (p *parser) kv() (KV, error) {
	key, err := p.str("key")
	if err != nil {
		return KV{}, err
	}
	if key == "" {
		return KV{}, fmt.Errorf("empty key")
	}
	if !utf8.ValidString(key) {
		return KV{}, fmt.Errorf("key %q is not valid UTF-8", key)
	}
	typ, err := p.u32("value type")
	if err != nil {
		return KV{}, fmt.Errorf("key %q: %w", key, err)
	}
	v, err := p.value(ValueType(typ), 0)
	if err != nil {
		return KV{}, fmt.Errorf("key %q: %w", key, err)
	}
	return KV{Key: key, Value: v}, nil
}

func (p *parser) value(t ValueType, depth int) (Value, error) {
	if !t.valid() {
		return Value{}, fmt.Errorf("unknown value type %d at offset %d", uint32(t), p.pos-4)
	}
	switch t {
	case TypeString:
		s, err := p.str("string value")
		if err != nil {
			return Value{}, err
		}
		return StringValue(s), nil
	case TypeArray:
		a, err := p.array(depth + 1)
		if err != nil {
			return Value{}, err
		}
		return Value{Type: TypeArray, arr: a}, nil
	}
	b, err := p.bytes(uint64(t.size()), t.String()+" value")
	if err != nil {
		return Value{}, err
	}
	v := scalarFromBytes(t, b)
	if t == TypeBool && v.bits > 1 {
		return Value{}, fmt.Errorf("bool value %d at offset %d is neither 0 nor 1", v.bits, p.pos-1)
	}
	return v, nil
}

func (p *parser) array(depth int) (*Array, error) {
	if depth > maxArrayDepth {
		return nil, fmt.Errorf("arrays nested deeper than %d at offset %d", maxArrayDepth, p.pos)
	}
	et, err := p.u32("array element type")
	if err != nil {
		return nil, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return nil, fmt.Errorf("unknown array element type %d at offset %d", et, p.pos-4)
	}
	start := p.pos
	n, err := p.u64("array length")
	if err != nil {
		return nil, err
	}
	minBytes := uint64(elem.size())
	switch elem {
	case TypeString:
		minBytes = 8
	case TypeArray:
		minBytes = 4 + 8
	}
	if n > p.remaining()/minBytes {
		return nil, fmt.Errorf("array of %d %s at offset %d cannot fit in the %d bytes left: %w", n, elem, start, p.remaining(), errTruncated)
	}
	a := &Array{Elem: elem, n: int(n)}
	switch elem {
	case TypeString:
		// Vocabularies hold hundreds of thousands of strings: validate the
		// lengths in a first pass, then copy the whole region once and let
		// every element share that one allocation.
		for i := uint64(0); i < n; i++ {
			at := p.pos
			l, err := p.u64("array string length")
			if err != nil {
				return nil, fmt.Errorf("string %d of array: %w", i, err)
			}
			if l > p.remaining() {
				return nil, fmt.Errorf("string %d of array at offset %d: length %d exceeds the %d bytes left: %w", i, at, l, p.remaining(), errTruncated)
			}
			p.pos += l
		}
		raw := p.data[start+8 : p.pos]
		blob := string(raw)
		a.strs = make([]string, n)
		off := uint64(0)
		for i := range a.strs {
			l := binary.LittleEndian.Uint64(raw[off:])
			a.strs[i] = blob[off+8 : off+8+l]
			off += 8 + l
		}
	case TypeArray:
		a.nested = make([]Value, n)
		for i := range a.nested {
			sub, err := p.array(depth + 1)
			if err != nil {
				return nil, fmt.Errorf("element %d of array: %w", i, err)
			}
			a.nested[i] = Value{Type: TypeArray, arr: sub}
		}
	default:
		b, _ := p.bytes(n*minBytes, "array data")
		a.packed = append([]byte(nil), b...) // copy: the mapping may go away
		if elem == TypeBool {
			for i, x := range a.packed {
				if x > 1 {
					return nil, fmt.Errorf("bool %d of array is %d, neither 0 nor 1", i, x)
				}
			}
		}
	}
	return a, nil
}

func (p *parser) tensorInfo() (TensorInfo, uint64, error) {
	name, err := p.str("tensor name")
	if err != nil {
		return TensorInfo{}, 0, err
	}
	if name == "" {
		return TensorInfo{}, 0, fmt.Errorf("empty tensor name")
	}
	if !utf8.ValidString(name) {
		return TensorInfo{}, 0, fmt.Errorf("tensor name %q is not valid UTF-8", name)
	}
	fail := func(err error) (TensorInfo, uint64, error) {
		return TensorInfo{}, 0, fmt.Errorf("tensor %q: %w", name, err)
	}
	nDims, err := p.u32("dimension count")
	if err != nil {
		return fail(err)
	}
	if nDims < 1 || nDims > MaxDims {
		return fail(fmt.Errorf("%d dimensions, want 1 to %d", nDims, MaxDims))
	}
	t := TensorInfo{Name: name, Dims: make([]uint64, nDims)}
	elems := uint64(1)
	for i := range t.Dims {
		d, err := p.u64("dimension")
		if err != nil {
			return fail(err)
		}
		// ggml keeps sizes in int64; a zero dimension makes an empty tensor,
		// which llama.cpp rejects too.
		if d == 0 || d > math.MaxInt64 {
			return fail(fmt.Errorf("dimension %d is %d", i, d))
		}
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 || lo > math.MaxInt64 {
			return fail(fmt.Errorf("element count overflows (dims %v)", t.Dims[:i+1]))
		}
		elems = lo
		t.Dims[i] = d
	}
	typ, err := p.u32("tensor type")
	if err != nil {
		return fail(err)
	}
	t.Type = quant.Type(typ)
	if !t.Type.Known() {
		return fail(fmt.Errorf("unsupported tensor type %s", t.Type))
	}
	bs := uint64(t.Type.BlockSize())
	if t.Dims[0]%bs != 0 {
		return fail(fmt.Errorf("row of %d elements is not a multiple of the %s block size %d", t.Dims[0], t.Type, bs))
	}
	hi, size := bits.Mul64(elems/bs, uint64(t.Type.BlockBytes()))
	if hi != 0 || size > math.MaxInt64 {
		return fail(fmt.Errorf("data size overflows (dims %v, type %s)", t.Dims, t.Type))
	}
	t.Size = size
	rel, err := p.u64("tensor data offset")
	if err != nil {
		return fail(err)
	}
	return t, rel, nil
}

// placeTensors turns the data-section-relative offsets into absolute ones and
// checks that every tensor is aligned, inside the file and disjoint from the
// others.
func (f *File) placeTensors(rel []uint64, fileSize uint64) error {
	type span struct{ start, end uint64 }
	spans := make([]span, len(rel))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if rel[i]%f.Alignment != 0 {
			return fmt.Errorf("tensor %q: data offset %d is not a multiple of the alignment %d", t.Name, rel[i], f.Alignment)
		}
		avail := fileSize - f.DataOffset
		if rel[i] > avail || t.Size > avail-rel[i] {
			return fmt.Errorf("tensor %q: data [%d, +%d) runs past the end of the data section (%d bytes): %w", t.Name, rel[i], t.Size, avail, errTruncated)
		}
		t.Offset = f.DataOffset + rel[i]
		spans[i] = span{t.Offset, t.Offset + t.Size}
	}
	order := make([]int, len(spans))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(spans[a].start, spans[b].start) })
	for k := 1; k < len(order); k++ {
		a, b := order[k-1], order[k]
		if spans[b].start < spans[a].end {
			return fmt.Errorf("tensors %q and %q overlap in the data section", f.Tensors[a].Name, f.Tensors[b].Name)
		}
	}
	return nil
}
