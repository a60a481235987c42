// Package logging builds the binary's slog logger: logfmt text in which a
// key appears once per line and maps and slices print as JSON.
//
// Components tag their logger with With("component", …) and hand it to
// the components they build, which tag it again: slog's handlers append
// attributes, so a line read "component=controlplane component=api
// component=api". The handler here keeps the last value of a repeated key
// instead, in the position the key first appeared.
package logging

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
)

// New returns a text logger writing to w at level.
func New(w io.Writer, level slog.Level) *slog.Logger {
	base := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: jsonComposites})
	return slog.New(&dedupHandler{base: base, bound: base})
}

// jsonComposites prints maps, slices and arrays as JSON instead of Go's
// fmt syntax (map[a:b], [x y]), so a line can be read back by a machine.
// []byte stays as it is.
func jsonComposites(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	v := a.Value.Any()
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		if _, isBytes := v.([]byte); isBytes {
			return a
		}
		if b, err := json.Marshal(v); err == nil {
			return slog.String(a.Key, string(b))
		}
	}
	return a
}

// dedupHandler holds the attributes added with WithAttrs, one per key,
// and hands them to base once (bound) so records are formatted as fast
// as by base itself. Attributes after WithGroup are base's business.
type dedupHandler struct {
	base  slog.Handler // without our attributes
	attrs []slog.Attr  // one per key, first-seen order
	bound slog.Handler // base.WithAttrs(attrs)
}

var _ slog.Handler = (*dedupHandler)(nil)

func (h *dedupHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.base.Enabled(ctx, l)
}

func (h *dedupHandler) WithAttrs(as []slog.Attr) slog.Handler {
	attrs := merge(h.attrs, as)
	return &dedupHandler{base: h.base, attrs: attrs, bound: h.base.WithAttrs(attrs)}
}

func (h *dedupHandler) WithGroup(name string) slog.Handler { return h.bound.WithGroup(name) }

// Handle writes r; a record attribute whose key a With attribute already
// has replaces that one, in its place.
func (h *dedupHandler) Handle(ctx context.Context, r slog.Record) error {
	clash := false
	r.Attrs(func(a slog.Attr) bool {
		clash = slices.ContainsFunc(h.attrs, func(b slog.Attr) bool { return b.Key == a.Key })
		return !clash
	})
	if !clash {
		return h.bound.Handle(ctx, r)
	}
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	attrs := merge(h.attrs, own)
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	return h.base.WithAttrs(attrs).Handle(ctx, nr)
}

// merge returns attrs with as applied: a known key takes the new value in
// its old position, a new key is appended. attrs is not modified.
func merge(attrs, as []slog.Attr) []slog.Attr {
	out := slices.Clone(attrs)
	for _, a := range as {
		if i := slices.IndexFunc(out, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			out[i] = a
			continue
		}
		out = append(out, a)
	}
	return out
}
