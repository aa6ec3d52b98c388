package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/selfinstruct/selfinstruct/llm/quant"
)

// Writer builds a GGUF version 3 file. Metadata keys and tensors are written
// in the order they were first added, so a file read with Parse and copied
// into a Writer comes out byte for byte as llama.cpp's writer lays it out.
type Writer struct {
	kv      []KV
	keys    map[string]int
	tensors []writerTensor
	names   map[string]bool
}

type writerTensor struct {
	name string
	typ  quant.Type
	dims []uint64
	data []byte
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{keys: map[string]int{}, names: map[string]bool{}}
}

// Set stores a metadata value. Setting an existing key replaces its value but
// keeps its position. Invalid keys are reported by WriteTo.
func (w *Writer) Set(key string, v Value) {
	if i, ok := w.keys[key]; ok {
		w.kv[i].Value = v
		return
	}
	w.keys[key] = len(w.kv)
	w.kv = append(w.kv, KV{Key: key, Value: v})
}

func (w *Writer) SetString(key, v string)           { w.Set(key, StringValue(v)) }
func (w *Writer) SetUint8(key string, v uint8)      { w.Set(key, Uint8Value(v)) }
func (w *Writer) SetInt8(key string, v int8)        { w.Set(key, Int8Value(v)) }
func (w *Writer) SetUint16(key string, v uint16)    { w.Set(key, Uint16Value(v)) }
func (w *Writer) SetInt16(key string, v int16)      { w.Set(key, Int16Value(v)) }
func (w *Writer) SetUint32(key string, v uint32)    { w.Set(key, Uint32Value(v)) }
func (w *Writer) SetInt32(key string, v int32)      { w.Set(key, Int32Value(v)) }
func (w *Writer) SetUint64(key string, v uint64)    { w.Set(key, Uint64Value(v)) }
func (w *Writer) SetInt64(key string, v int64)      { w.Set(key, Int64Value(v)) }
func (w *Writer) SetFloat32(key string, v float32)  { w.Set(key, Float32Value(v)) }
func (w *Writer) SetFloat64(key string, v float64)  { w.Set(key, Float64Value(v)) }
func (w *Writer) SetBool(key string, v bool)        { w.Set(key, BoolValue(v)) }
func (w *Writer) SetStrings(key string, v []string) { w.Set(key, StringsValue(v)) }
func (w *Writer) SetFloat32s(key string, v []float32) {
	w.Set(key, Float32sValue(v))
}
func (w *Writer) SetInt32s(key string, v []int32) { w.Set(key, Int32sValue(v)) }

// SetArray stores an array whose elements all have type elem (arrays of
// arrays included).
func (w *Writer) SetArray(key string, elem ValueType, elems []Value) error {
	v, err := ArrayValue(elem, elems)
	if err != nil {
		return fmt.Errorf("gguf: key %q: %w", key, err)
	}
	w.Set(key, v)
	return nil
}

// AddTensor appends a tensor. dims are in ggml order (row length first);
// data must hold exactly the tensor's bytes and is not copied, so it must
// not change until the file is written.
func (w *Writer) AddTensor(name string, typ quant.Type, dims []uint64, data []byte) error {
	if name == "" || !utf8.ValidString(name) {
		return fmt.Errorf("gguf: tensor name %q is empty or not UTF-8", name)
	}
	if w.names[name] {
		return fmt.Errorf("gguf: duplicate tensor name %q", name)
	}
	if len(dims) < 1 || len(dims) > MaxDims {
		return fmt.Errorf("gguf: tensor %q: %d dimensions, want 1 to %d", name, len(dims), MaxDims)
	}
	if !typ.Known() {
		return fmt.Errorf("gguf: tensor %q: unsupported tensor type %s", name, typ)
	}
	rows := uint64(1)
	for i, d := range dims[1:] {
		if d == 0 || rows > uint64(maxInt)/d {
			return fmt.Errorf("gguf: tensor %q: dimension %d is %d", name, i+1, d)
		}
		rows *= d
	}
	if dims[0] == 0 || dims[0] > uint64(maxInt) {
		return fmt.Errorf("gguf: tensor %q: dimension 0 is %d", name, dims[0])
	}
	rowBytes, err := quant.RowBytes(typ, int(dims[0]))
	if err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	if rows > uint64(maxInt/rowBytes) || uint64(len(data)) != uint64(rowBytes)*rows {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d rows of %d bytes", name, len(data), rows, rowBytes)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{name, typ, append([]uint64(nil), dims...), data})
	return nil
}

func (w *Writer) alignment() (uint64, error) {
	i, ok := w.keys[AlignmentKey]
	if !ok {
		return DefaultAlignment, nil
	}
	v := w.kv[i].Value
	a, ok := v.AsUint()
	if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
		return 0, fmt.Errorf("gguf: %s must be a power of two up to 2^30, got %s %s", AlignmentKey, v.Type, v)
	}
	return a, nil
}

// countingWriter remembers how much was written and the first error, so the
// encoder below can write field after field and check once.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) u32(x uint32) { c.write(binary.LittleEndian.AppendUint32(nil, x)) }
func (c *countingWriter) u64(x uint64) { c.write(binary.LittleEndian.AppendUint64(nil, x)) }
func (c *countingWriter) str(s string) {
	c.u64(uint64(len(s)))
	c.write([]byte(s))
}

func (c *countingWriter) pad(align uint64) {
	if n := alignUp(uint64(c.n), align) - uint64(c.n); n > 0 {
		c.write(make([]byte, n))
	}
}

// WriteTo writes the whole file.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	for _, kv := range w.kv {
		if kv.Key == "" || !utf8.ValidString(kv.Key) {
			return 0, fmt.Errorf("gguf: metadata key %q is empty or not UTF-8", kv.Key)
		}
		if err := checkValue(kv.Value, 0); err != nil {
			return 0, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	c := &countingWriter{w: bufio.NewWriterSize(out, 1<<20)}
	c.write([]byte(Magic))
	c.u32(3)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kv)))
	for _, kv := range w.kv {
		c.str(kv.Key)
		c.u32(uint32(kv.Value.Type))
		writeValue(c, kv.Value)
	}
	var offset uint64
	for _, t := range w.tensors {
		c.str(t.name)
		c.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			c.u64(d)
		}
		c.u32(uint32(t.typ))
		c.u64(offset)
		offset = alignUp(offset+uint64(len(t.data)), align)
	}
	if len(w.tensors) > 0 {
		c.pad(align)
	}
	for _, t := range w.tensors {
		c.write(t.data)
		c.pad(align)
	}
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if c.err != nil {
		return c.n, fmt.Errorf("gguf: write: %w", c.err)
	}
	return c.n, nil
}

func checkValue(v Value, depth int) error {
	if !v.Type.valid() {
		return fmt.Errorf("invalid value type %d", uint32(v.Type))
	}
	if v.Type != TypeArray {
		return nil
	}
	if depth >= maxArrayDepth {
		return fmt.Errorf("arrays nested deeper than %d", maxArrayDepth)
	}
	if v.arr == nil {
		return fmt.Errorf("array value without elements (use the Value constructors)")
	}
	for _, e := range v.arr.nested {
		if err := checkValue(e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func writeValue(c *countingWriter, v Value) {
	switch v.Type {
	case TypeString:
		c.str(v.str)
	case TypeArray:
		a := v.arr
		c.u32(uint32(a.Elem))
		c.u64(uint64(a.n))
		switch a.Elem {
		case TypeString:
			for _, s := range a.strs {
				c.str(s)
			}
		case TypeArray:
			for _, e := range a.nested {
				writeValue(c, e)
			}
		default:
			c.write(a.packed)
		}
	default:
		c.write(appendScalar(nil, v))
	}
}

// WriteFile writes the file atomically: to a temporary file in the same
// directory, synced, then renamed over path, so a crash never leaves a
// half-written model behind.
func (w *Writer) WriteFile(path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = w.WriteTo(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("gguf: sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("gguf: close %s: %w", tmp.Name(), err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}
