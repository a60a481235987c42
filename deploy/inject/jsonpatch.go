package inject

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Operation is one RFC 6902 JSON patch operation. Only add, remove, replace
// and test are supported: they are all Diff emits and all the admission
// path needs.
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// MarshalJSON keeps "value" on add, replace and test even when it is null.
func (o Operation) MarshalJSON() ([]byte, error) {
	if o.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{o.Op, o.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{o.Op, o.Path, o.Value})
}

// Diff returns the operations that turn a into b, both JSON values as
// encoding/json decodes them into any (maps, slices, float64, string, bool,
// nil). Object keys are visited in sorted order, so the patch is
// deterministic. Arrays that only grew keep their prefix and get the new
// elements appended with "/-", which is the shape of a sidecar injection.
func Diff(a, b any) []Operation {
	var ops []Operation
	diff("", a, b, &ops)
	return ops
}

func diff(path string, a, b any, ops *[]Operation) {
	if reflect.DeepEqual(a, b) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, dup := av[k]; !dup {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			x, inA := av[k]
			y, inB := bv[k]
			p := path + "/" + escape(k)
			switch {
			case !inB:
				*ops = append(*ops, Operation{Op: "remove", Path: p})
			case !inA:
				*ops = append(*ops, Operation{Op: "add", Path: p, Value: y})
			default:
				diff(p, x, y, ops)
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok || len(bv) < len(av) {
			break
		}
		for i := range av {
			diff(path+"/"+strconv.Itoa(i), av[i], bv[i], ops)
		}
		for _, y := range bv[len(av):] {
			*ops = append(*ops, Operation{Op: "add", Path: path + "/-", Value: y})
		}
		return
	}
	*ops = append(*ops, Operation{Op: "replace", Path: path, Value: b})
}

// ApplyPatch applies a JSON patch (RFC 6902, the subset Operation
// documents) to the JSON document doc and returns the patched document.
func ApplyPatch(doc, patch []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("jsonpatch: document: %w", err)
	}
	var ops []Operation
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("jsonpatch: patch: %w", err)
	}
	v, err := Apply(v, ops)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Apply applies ops to the decoded JSON value v in order and returns the
// result; v's maps may be modified in place (copy v if it is retained).
// The first failing operation aborts with an error naming it.
func Apply(v any, ops []Operation) (any, error) {
	for i, op := range ops {
		toks, err := pointer(op.Path)
		if err != nil {
			return nil, fmt.Errorf("jsonpatch: op %d: %w", i, err)
		}
		if op.Op == "test" {
			got, err := get(v, toks)
			if err != nil {
				return nil, fmt.Errorf("jsonpatch: op %d test %s: %w", i, op.Path, err)
			}
			if !jsonEqual(got, op.Value) {
				return nil, fmt.Errorf("jsonpatch: op %d test %s: value differs", i, op.Path)
			}
			continue
		}
		if v, err = set(v, toks, op); err != nil {
			return nil, fmt.Errorf("jsonpatch: op %d %s %s: %w", i, op.Op, op.Path, err)
		}
	}
	return v, nil
}

// pointer splits an RFC 6901 JSON pointer into unescaped tokens.
func pointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("pointer %q does not start with /", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
	}
	return toks, nil
}

func escape(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}

func get(v any, toks []string) (any, error) {
	for _, t := range toks {
		switch n := v.(type) {
		case map[string]any:
			x, ok := n[t]
			if !ok {
				return nil, fmt.Errorf("no member %q", t)
			}
			v = x
		case []any:
			i, err := index(t, len(n)-1)
			if err != nil {
				return nil, err
			}
			v = n[i]
		default:
			return nil, fmt.Errorf("%q: not a container", t)
		}
	}
	return v, nil
}

// set performs add, remove or replace at toks under node and returns the
// new node (arrays may be reallocated, so parents store the result).
func set(node any, toks []string, op Operation) (any, error) {
	if len(toks) == 0 {
		switch op.Op {
		case "add", "replace":
			return normalize(op.Value), nil
		}
		return nil, fmt.Errorf("cannot %s the whole document", op.Op)
	}
	t, rest := toks[0], toks[1:]
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[t]
		if len(rest) > 0 {
			if !ok {
				return nil, fmt.Errorf("no member %q", t)
			}
			c, err := set(child, rest, op)
			n[t] = c
			return n, err
		}
		switch op.Op {
		case "add":
			n[t] = normalize(op.Value)
		case "replace", "remove":
			if !ok {
				return nil, fmt.Errorf("no member %q", t)
			}
			if op.Op == "remove" {
				delete(n, t)
			} else {
				n[t] = normalize(op.Value)
			}
		default:
			return nil, fmt.Errorf("unsupported op %q", op.Op)
		}
		return n, nil
	case []any:
		return setIndex(n, t, rest, op)
	}
	return nil, fmt.Errorf("%q: parent is not an object or array", t)
}

func setIndex(n []any, t string, rest []string, op Operation) (any, error) {
	if len(rest) > 0 {
		i, err := index(t, len(n)-1)
		if err != nil {
			return nil, err
		}
		n[i], err = set(n[i], rest, op)
		return n, err
	}
	switch op.Op {
	case "add":
		if t == "-" {
			return append(n, normalize(op.Value)), nil
		}
		i, err := index(t, len(n))
		if err != nil {
			return nil, err
		}
		return slices.Insert(n, i, normalize(op.Value)), nil
	case "replace", "remove":
		i, err := index(t, len(n)-1)
		if err != nil {
			return nil, err
		}
		if op.Op == "remove" {
			return slices.Delete(n, i, i+1), nil
		}
		n[i] = normalize(op.Value)
		return n, nil
	}
	return nil, fmt.Errorf("unsupported op %q", op.Op)
}

// index parses an array index token no greater than max.
func index(t string, max int) (int, error) {
	i, err := strconv.Atoi(t)
	if err != nil || i < 0 || i > max || (len(t) > 1 && t[0] == '0') {
		return 0, fmt.Errorf("bad array index %q", t)
	}
	return i, nil
}

// normalize turns a value from Go code into its decoded-JSON shape, so a
// patched document holds only maps, slices and JSON scalars.
func normalize(v any) any {
	switch v.(type) {
	case nil, bool, string, float64, map[string]any, []any:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

func jsonEqual(a, b any) bool { return reflect.DeepEqual(normalize(a), normalize(b)) }
