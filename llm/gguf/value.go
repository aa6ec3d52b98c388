package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// ValueType is the type tag of a GGUF metadata value.
type ValueType uint32

// GGUF metadata value types, numbered as in the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("value-type(%d)", uint32(t))
}

// size is the encoded size of a fixed-size scalar type, 0 for string, array
// and unknown types.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isInteger() bool {
	switch t {
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64:
		return true
	}
	return false
}

func (t ValueType) isSigned() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}

func (t ValueType) valid() bool { return t <= TypeFloat64 }

// Value is one metadata value. Scalars keep their declared type so that a file
// written back gets the same encoding; the As* accessors convert between
// widths where that loses nothing.
type Value struct {
	Type ValueType
	// bits holds integers (signed ones sign-extended), bools as 0/1 and
	// floats as float64 bits (a float32 widens exactly).
	bits uint64
	str  string
	arr  *Array
}

// Array is the payload of an array value. Fixed-size elements stay packed in
// their little-endian encoding, because vocabularies hold arrays of hundreds
// of thousands of scores and token types.
type Array struct {
	Elem   ValueType
	n      int
	packed []byte   // fixed-size elements
	strs   []string // TypeString elements
	nested []Value  // TypeArray elements
}

// Len is the number of elements.
func (a *Array) Len() int { return a.n }

// Index returns element i as a Value; it panics when i is out of range, like
// a slice index.
func (a *Array) Index(i int) Value {
	if i < 0 || i >= a.n {
		panic(fmt.Sprintf("gguf: array index %d out of range [0,%d)", i, a.n))
	}
	switch a.Elem {
	case TypeString:
		return Value{Type: TypeString, str: a.strs[i]}
	case TypeArray:
		return a.nested[i]
	}
	sz := a.Elem.size()
	return scalarFromBytes(a.Elem, a.packed[i*sz:(i+1)*sz])
}

// Strings returns the elements of a string array.
func (a *Array) Strings() ([]string, bool) {
	if a.Elem != TypeString {
		return nil, false
	}
	return append([]string(nil), a.strs...), true
}

// Float32s returns the elements of a float32 array (float64 arrays are
// rounded to float32).
func (a *Array) Float32s() ([]float32, bool) {
	switch a.Elem {
	case TypeFloat32:
		out := make([]float32, a.n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.packed[4*i:]))
		}
		return out, true
	case TypeFloat64:
		out := make([]float32, a.n)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(a.packed[8*i:])))
		}
		return out, true
	}
	return nil, false
}

// Int64s returns the elements of an integer array of any width; it fails if
// a uint64 element does not fit in int64.
func (a *Array) Int64s() ([]int64, bool) {
	if !a.Elem.isInteger() {
		return nil, false
	}
	sz := a.Elem.size()
	out := make([]int64, a.n)
	for i := range out {
		v := scalarFromBytes(a.Elem, a.packed[i*sz:(i+1)*sz])
		x, ok := v.AsInt()
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// Int32s returns the elements of an integer array of any width whose values
// all fit in int32.
func (a *Array) Int32s() ([]int32, bool) {
	wide, ok := a.Int64s()
	if !ok {
		return nil, false
	}
	out := make([]int32, len(wide))
	for i, x := range wide {
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}

// Values returns every element as a Value (useful for arrays of arrays).
func (a *Array) Values() []Value {
	out := make([]Value, a.n)
	for i := range out {
		out[i] = a.Index(i)
	}
	return out
}

func scalarFromBytes(t ValueType, b []byte) Value {
	v := Value{Type: t}
	switch t {
	case TypeUint8, TypeBool:
		v.bits = uint64(b[0])
	case TypeInt8:
		v.bits = uint64(int64(int8(b[0])))
	case TypeUint16:
		v.bits = uint64(binary.LittleEndian.Uint16(b))
	case TypeInt16:
		v.bits = uint64(int64(int16(binary.LittleEndian.Uint16(b))))
	case TypeUint32:
		v.bits = uint64(binary.LittleEndian.Uint32(b))
	case TypeInt32:
		v.bits = uint64(int64(int32(binary.LittleEndian.Uint32(b))))
	case TypeFloat32:
		v.bits = math.Float64bits(float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
	case TypeUint64, TypeInt64:
		v.bits = binary.LittleEndian.Uint64(b)
	case TypeFloat64:
		v.bits = binary.LittleEndian.Uint64(b)
	}
	return v
}

// appendScalar encodes a fixed-size scalar value in its declared type.
func appendScalar(dst []byte, v Value) []byte {
	switch v.Type {
	case TypeUint8, TypeInt8, TypeBool:
		return append(dst, byte(v.bits))
	case TypeUint16, TypeInt16:
		return binary.LittleEndian.AppendUint16(dst, uint16(v.bits))
	case TypeUint32, TypeInt32:
		return binary.LittleEndian.AppendUint32(dst, uint32(v.bits))
	case TypeFloat32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(math.Float64frombits(v.bits))))
	case TypeUint64, TypeInt64, TypeFloat64:
		return binary.LittleEndian.AppendUint64(dst, v.bits)
	}
	panic("gguf: appendScalar on " + v.Type.String())
}

// AsUint returns an integer value of any width as uint64; it fails for
// negative values and non-integers.
func (v Value) AsUint() (uint64, bool) {
	if !v.Type.isInteger() {
		return 0, false
	}
	if v.Type.isSigned() && int64(v.bits) < 0 {
		return 0, false
	}
	return v.bits, true
}

// AsInt returns an integer value of any width as int64; it fails for uint64
// values above MaxInt64 and non-integers.
func (v Value) AsInt() (int64, bool) {
	if !v.Type.isInteger() {
		return 0, false
	}
	if v.Type == TypeUint64 && v.bits > math.MaxInt64 {
		return 0, false
	}
	return int64(v.bits), true
}

// AsFloat returns a float32 or float64 value as float64.
func (v Value) AsFloat() (float64, bool) {
	if v.Type != TypeFloat32 && v.Type != TypeFloat64 {
		return 0, false
	}
	return math.Float64frombits(v.bits), true
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, bool) {
	if v.Type != TypeBool {
		return false, false
	}
	return v.bits != 0, true
}

// AsString returns a string value.
func (v Value) AsString() (string, bool) {
	if v.Type != TypeString {
		return "", false
	}
	return v.str, true
}

// AsArray returns the payload of an array value.
func (v Value) AsArray() (*Array, bool) {
	if v.Type != TypeArray || v.arr == nil {
		return nil, false
	}
	return v.arr, true
}

// String formats the value for humans; long arrays are abbreviated.
func (v Value) String() string {
	switch {
	case v.Type == TypeString:
		return fmt.Sprintf("%q", v.str)
	case v.Type == TypeBool:
		return fmt.Sprint(v.bits != 0)
	case v.Type == TypeFloat32:
		return fmt.Sprint(float32(math.Float64frombits(v.bits)))
	case v.Type == TypeFloat64:
		return fmt.Sprint(math.Float64frombits(v.bits))
	case v.Type.isSigned():
		return fmt.Sprint(int64(v.bits))
	case v.Type.isInteger():
		return fmt.Sprint(v.bits)
	case v.Type == TypeArray && v.arr != nil:
		s := fmt.Sprintf("[%d x %s:", v.arr.n, v.arr.Elem)
		for i := 0; i < v.arr.n && i < 4; i++ {
			s += " " + v.arr.Index(i).String()
		}
		if v.arr.n > 4 {
			s += " ..."
		}
		return s + "]"
	}
	return "<invalid " + v.Type.String() + ">"
}

// Constructors for values to hand to Writer.Set.

func Uint8Value(x uint8) Value   { return Value{Type: TypeUint8, bits: uint64(x)} }
func Int8Value(x int8) Value     { return Value{Type: TypeInt8, bits: uint64(int64(x))} }
func Uint16Value(x uint16) Value { return Value{Type: TypeUint16, bits: uint64(x)} }
func Int16Value(x int16) Value   { return Value{Type: TypeInt16, bits: uint64(int64(x))} }
func Uint32Value(x uint32) Value { return Value{Type: TypeUint32, bits: uint64(x)} }
func Int32Value(x int32) Value   { return Value{Type: TypeInt32, bits: uint64(int64(x))} }
func Uint64Value(x uint64) Value { return Value{Type: TypeUint64, bits: x} }
func Int64Value(x int64) Value   { return Value{Type: TypeInt64, bits: uint64(x)} }
func Float32Value(x float32) Value {
	return Value{Type: TypeFloat32, bits: math.Float64bits(float64(x))}
}
func Float64Value(x float64) Value { return Value{Type: TypeFloat64, bits: math.Float64bits(x)} }
func BoolValue(x bool) Value {
	v := Value{Type: TypeBool}
	if x {
		v.bits = 1
	}
	return v
}
func StringValue(s string) Value { return Value{Type: TypeString, str: s} }

// StringsValue makes an array of strings.
func StringsValue(s []string) Value {
	return Value{Type: TypeArray, arr: &Array{Elem: TypeString, n: len(s), strs: append([]string(nil), s...)}}
}

// Float32sValue makes an array of float32.
func Float32sValue(xs []float32) Value {
	packed := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		packed = binary.LittleEndian.AppendUint32(packed, math.Float32bits(x))
	}
	return Value{Type: TypeArray, arr: &Array{Elem: TypeFloat32, n: len(xs), packed: packed}}
}

// Int32sValue makes an array of int32.
func Int32sValue(xs []int32) Value {
	packed := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		packed = binary.LittleEndian.AppendUint32(packed, uint32(x))
	}
	return Value{Type: TypeArray, arr: &Array{Elem: TypeInt32, n: len(xs), packed: packed}}
}

// ArrayValue makes an array whose elements all have type elem; elements may
// themselves be arrays (of any element type each).
func ArrayValue(elem ValueType, elems []Value) (Value, error) {
	if !elem.valid() {
		return Value{}, fmt.Errorf("gguf: invalid array element type %d", uint32(elem))
	}
	a := &Array{Elem: elem, n: len(elems)}
	for i, e := range elems {
		if e.Type != elem {
			return Value{}, fmt.Errorf("gguf: array element %d has type %s, want %s", i, e.Type, elem)
		}
		switch elem {
		case TypeString:
			a.strs = append(a.strs, e.str)
		case TypeArray:
			if e.arr == nil {
				return Value{}, fmt.Errorf("gguf: array element %d is an empty array value", i)
			}
			a.nested = append(a.nested, e)
		default:
			a.packed = appendScalar(a.packed, e)
		}
	}
	return Value{Type: TypeArray, arr: a}, nil
}
