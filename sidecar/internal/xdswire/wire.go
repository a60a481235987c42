package xdswire

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded field of a message. Its accessors check the wire
// type; a mismatch marks the field bad and walk turns that into an error.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // varint, fixed32 or fixed64 value
	b   []byte // bytes value (aliases the input)
	err error
}

// walk calls fn for every field of the message encoded in b, in wire
// order. Groups are skipped; unknown fields are ignored by fn. Malformed
// input, a wire type that does not fit the field fn reads, or an error of
// fn stops the walk.
func walk(b []byte, fn func(f *field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		case protowire.StartGroupType:
			_, n = protowire.ConsumeGroup(num, b)
		default:
			return fmt.Errorf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(&f); err != nil {
			return err
		}
		if f.err != nil {
			return f.err
		}
	}
	return nil
}

func (f *field) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("field %d: "+format, append([]any{f.num}, args...)...)
	}
}

func (f *field) want(t protowire.Type) bool {
	if f.typ != t {
		f.fail("wire type %d, want %d", f.typ, t)
		return false
	}
	return true
}

// bytes returns a length-delimited value (aliasing the input).
func (f *field) bytes() []byte {
	if !f.want(protowire.BytesType) {
		return nil
	}
	return f.b
}

// str returns a string field; protobuf strings must be valid UTF-8.
func (f *field) str() string {
	b := f.bytes()
	if !utf8.Valid(b) {
		f.fail("string is not valid UTF-8")
		return ""
	}
	return string(b)
}

func (f *field) uint64() uint64 {
	if !f.want(protowire.VarintType) {
		return 0
	}
	return f.u
}

func (f *field) uint32() uint32 { return uint32(f.uint64()) }
func (f *field) int32() int32   { return int32(f.uint64()) }
func (f *field) int64() int64   { return int64(f.uint64()) }
func (f *field) bool() bool     { return f.uint64() != 0 }

func (f *field) double() float64 {
	if !f.want(protowire.Fixed64Type) {
		return 0
	}
	return math.Float64frombits(f.u)
}

// uint32s appends a repeated uint32 field, packed or not.
func (f *field) uint32s(dst []uint32) []uint32 {
	if f.typ == protowire.VarintType {
		return append(dst, uint32(f.u))
	}
	b := f.bytes()
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			f.fail("packed varint: %v", protowire.ParseError(n))
			return dst
		}
		dst = append(dst, uint32(v))
		b = b[n:]
	}
	return dst
}

// wrapper decodes a google.protobuf.{UInt32,UInt64,Bool}Value: its value
// is field 1, a varint.
func wrapperValue(b []byte) (uint64, error) {
	var v uint64
	err := walk(b, func(f *field) error {
		if f.num == 1 {
			v = f.uint64()
		}
		return nil
	})
	return v, err
}

func (f *field) u32Value() *uint32 {
	v, err := wrapperValue(f.bytes())
	if err != nil {
		f.fail("UInt32Value: %v", err)
		return nil
	}
	u := uint32(v)
	return &u
}

func (f *field) u64Value() *uint64 {
	v, err := wrapperValue(f.bytes())
	if err != nil {
		f.fail("UInt64Value: %v", err)
		return nil
	}
	return &v
}

func (f *field) boolValue() *bool {
	v, err := wrapperValue(f.bytes())
	if err != nil {
		f.fail("BoolValue: %v", err)
		return nil
	}
	b := v != 0
	return &b
}

// duration decodes a google.protobuf.Duration.
func (f *field) duration() *Duration {
	var secs int64
	var nanos int32
	err := walk(f.bytes(), func(f *field) error {
		switch f.num {
		case 1:
			secs = f.int64()
		case 2:
			nanos = f.int32()
		}
		return nil
	})
	if err != nil {
		f.fail("Duration: %v", err)
		return nil
	}
	d := Duration{Seconds: secs, Nanos: nanos}
	return &d
}

// msg decodes a nested message with dec, prefixing its error.
func (f *field) msg(name string, dec func([]byte) error) {
	if err := dec(f.bytes()); err != nil && f.err == nil {
		f.err = fmt.Errorf("%s: %w", name, err)
	}
}

// anyOf decodes a google.protobuf.Any into its type URL and value.
func decodeAny(b []byte) (typeURL string, value []byte, err error) {
	err = walk(b, func(f *field) error {
		switch f.num {
		case 1:
			typeURL = f.str()
		case 2:
			value = f.bytes()
		}
		return nil
	})
	return typeURL, value, err
}

// Duration is a google.protobuf.Duration.
type Duration struct {
	Seconds int64
	Nanos   int32
}

// Std returns d as a time.Duration (0 for nil), saturating.
func (d *Duration) Std() time.Duration {
	if d == nil {
		return 0
	}
	const maxSecs = math.MaxInt64 / int64(time.Second)
	switch {
	case d.Seconds > maxSecs:
		return math.MaxInt64
	case d.Seconds < -maxSecs:
		return math.MinInt64
	}
	return time.Duration(d.Seconds)*time.Second + time.Duration(d.Nanos)
}

// MarshalJSON writes d as protojson does: "1.500s".
func (d Duration) MarshalJSON() ([]byte, error) {
	s := fmt.Sprintf("%d", d.Seconds)
	if d.Seconds == 0 && d.Nanos < 0 {
		s = "-0"
	}
	if n := d.Nanos; n != 0 {
		if n < 0 {
			n = -n
		}
		frac := fmt.Sprintf("%09d", n)
		for len(frac) > 3 && frac[len(frac)-3:] == "000" {
			frac = frac[:len(frac)-3]
		}
		s += "." + frac
	}
	return []byte(`"` + s + `s"`), nil
}

// valid reports whether d is a valid Duration (protobuf's range rules).
func (d *Duration) valid() bool {
	const maxSecs = 315576000000
	if d.Seconds < -maxSecs || d.Seconds > maxSecs || d.Nanos <= -1e9 || d.Nanos >= 1e9 {
		return false
	}
	return (d.Seconds >= 0 && d.Nanos >= 0) || (d.Seconds <= 0 && d.Nanos <= 0)
}

// errUnsupportedType reports a type URL the decoder does not know.
var errUnsupportedType = errors.New("unsupported type")

// Encoding helpers: proto3 semantics, default values are not written.

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendMessage appends a nested message that enc encodes (written even
// if empty: presence matters for messages).
func appendMessage(b []byte, num protowire.Number, enc func([]byte) []byte) []byte {
	return appendBytes(b, num, enc(nil))
}

func appendAny(b []byte, num protowire.Number, typeURL string, value []byte) []byte {
	return appendMessage(b, num, func(m []byte) []byte {
		m = appendString(m, 1, typeURL)
		if len(value) > 0 {
			m = appendBytes(m, 2, value)
		}
		return m
	})
}
