package routes

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// normalizeMessage checks a decoded JSON value against md before protojson
// sees it, so that errors name the field path (protojson names only a byte
// offset), and rewrites the friendly forms Parse accepts into protobuf JSON.
// Paths use proto field names whichever spelling the input used.
func normalizeMessage(v any, md protoreflect.MessageDescriptor, path string) (any, *FieldError) {
	if v == nil {
		return nil, nil
	}
	if md.FullName() == "google.protobuf.Duration" {
		return normalizeDuration(v, path)
	}
	if b, ok := v.(bool); ok && md.FullName() == (&shoalv1.StallDetection{}).ProtoReflect().Descriptor().FullName() {
		// stall_detection: off (YAML reads off as false) or on.
		if b {
			return map[string]any{}, nil
		}
		return map[string]any{"disabled": true}, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr(path, "want an object, got %s", jsonKind(v))
	}
	out := make(map[string]any, len(obj))
	oneofs := map[protoreflect.FullName]string{}
	for k, fv := range obj {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		if fd == nil {
			return nil, fieldErr(join(path, k), "unknown field")
		}
		fp := join(path, string(fd.Name()))
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && fv != nil {
			if other, dup := oneofs[od.FullName()]; dup {
				return nil, fieldErr(fp, "%s is set too; set only one of them", other)
			}
			oneofs[od.FullName()] = string(fd.Name())
		}
		nv, err := normalizeField(fv, fd, fp)
		if err != nil {
			return nil, err
		}
		out[string(fd.Name())] = nv
	}
	return out, nil
}

func normalizeField(v any, fd protoreflect.FieldDescriptor, path string) (any, *FieldError) {
	switch {
	case v == nil:
		return nil, nil
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fieldErr(path, "want an object, got %s", jsonKind(v))
		}
		out := make(map[string]any, len(obj))
		for k, ev := range obj {
			nv, err := normalizeValue(ev, fd.MapValue(), fmt.Sprintf("%s[%q]", path, k))
			if err != nil {
				return nil, err
			}
			out[k] = nv
		}
		return out, nil
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			return nil, fieldErr(path, "want a list, got %s", jsonKind(v))
		}
		out := make([]any, len(list))
		for i, ev := range list {
			nv, err := normalizeValue(ev, fd, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = nv
		}
		return out, nil
	}
	return normalizeValue(v, fd, path)
}

// normalizeValue checks one singular value (or list element) of fd's type.
func normalizeValue(v any, fd protoreflect.FieldDescriptor, path string) (any, *FieldError) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalizeMessage(v, fd.Message(), path)
	case protoreflect.EnumKind:
		return normalizeEnum(v, fd.Enum(), path)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return nil, fieldErr(path, "want true or false, got %s", jsonKind(v))
		}
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return nil, fieldErr(path, "want a string, got %s (quote it)", jsonKind(v))
		}
	default: // numbers; protobuf JSON also accepts them quoted
		switch x := v.(type) {
		case json.Number:
		case string:
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				return nil, fieldErr(path, "want a number, got %s", jsonKind(v))
			}
		default:
			return nil, fieldErr(path, "want a number, got %s", jsonKind(v))
		}
	}
	return v, nil
}

func normalizeEnum(v any, ed protoreflect.EnumDescriptor, path string) (any, *FieldError) {
	if ed.FullName() == shoalv1.Strategy(0).Descriptor().FullName() {
		if s, ok := v.(string); ok {
			st, err := ParseStrategy(s)
			if err != nil {
				return nil, fieldErr(path, "%v", err)
			}
			return st.String(), nil
		}
	}
	switch x := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(x)) == nil {
			return nil, fieldErr(path, "unknown value %q", x)
		}
	case json.Number:
	default:
		return nil, fieldErr(path, "want a name, got %s", jsonKind(v))
	}
	return v, nil
}

// strategyAliases maps friendly spellings (after upper-casing and turning
// '-' and ' ' into '_') to Strategy names without the STRATEGY_ prefix.
var strategyAliases = map[string]string{
	"RR":                "ROUND_ROBIN",
	"ROUNDROBIN":        "ROUND_ROBIN",
	"LEASTREQUEST":      "LEAST_REQUEST",
	"LEAST_REQUESTS":    "LEAST_REQUEST",
	"LEAST_CONN":        "LEAST_REQUEST",
	"LEASTCONN":         "LEAST_REQUEST",
	"LEAST_CONNECTION":  "LEAST_REQUEST",
	"LEAST_CONNECTIONS": "LEAST_REQUEST",
	"IPHASH":            "IP_HASH",
	"SOURCE_IP_HASH":    "IP_HASH",
	"SOURCE_IP":         "IP_HASH",
	"RINGHASH":          "RING_HASH",
	"CONSISTENT_HASH":   "RING_HASH",
	"LEASTLOADED":       "LEAST_LOADED",
}

// ParseStrategy returns the Strategy named by s: its enum name
// (STRATEGY_LEAST_REQUEST), the name without prefix in any case with '_' or
// '-' (least_request, Least-Request), or a common alias: round robin as rr
// or roundrobin; least request as least_connections or least_conn; IP hash
// as source_ip_hash; ring hash as consistent_hash; least loaded as
// leastloaded.
func ParseStrategy(s string) (shoalv1.Strategy, error) {
	n := strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToUpper(strings.TrimSpace(s)))
	n = strings.TrimPrefix(n, "STRATEGY_")
	if a, ok := strategyAliases[n]; ok {
		n = a
	}
	if v, ok := shoalv1.Strategy_value["STRATEGY_"+n]; ok {
		return shoalv1.Strategy(v), nil
	}
	return 0, fmt.Errorf("unknown strategy %q (want round_robin, least_request (least_connections), ip_hash, ring_hash, maglev, random or least_loaded)", s)
}

// normalizeDuration accepts protobuf JSON ("1.5s") and Go durations
// ("1m30s", "500ms") and returns protobuf JSON.
func normalizeDuration(v any, path string) (any, *FieldError) {
	s, ok := v.(string)
	if !ok {
		return nil, fieldErr(path, "want a duration such as \"1.5s\" or \"500ms\", got %s", jsonKind(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fieldErr(path, "%q is not a duration such as \"1.5s\" or \"500ms\"", s)
	}
	return formatDuration(d), nil
}

// formatDuration writes d in protobuf JSON form: seconds with up to nine
// fractional digits and an "s" suffix.
func formatDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	secs, nanos := d/time.Second, d%time.Second
	if nanos == 0 {
		return fmt.Sprintf("%s%ds", sign, secs)
	}
	frac := strings.TrimRight(fmt.Sprintf("%09d", nanos), "0")
	return fmt.Sprintf("%s%d.%ss", sign, secs, frac)
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return fmt.Sprintf("%t", x)
	}
	return "null"
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
