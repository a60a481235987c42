package inject

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

func TestApplyPatch(t *testing.T) {
	tests := []struct {
		name, doc, patch, want, wantErr string
	}{
		// RFC 6902 appendix A examples.
		{name: "adds an object member", doc: `{"foo":"bar"}`, patch: `[{"op":"add","path":"/baz","value":"qux"}]`, want: `{"baz":"qux","foo":"bar"}`},
		{name: "inserts into an array", doc: `{"foo":["bar","baz"]}`, patch: `[{"op":"add","path":"/foo/1","value":"qux"}]`, want: `{"foo":["bar","qux","baz"]}`},
		{name: "removes an object member", doc: `{"baz":"qux","foo":"bar"}`, patch: `[{"op":"remove","path":"/baz"}]`, want: `{"foo":"bar"}`},
		{name: "removes an array element", doc: `{"foo":["bar","qux","baz"]}`, patch: `[{"op":"remove","path":"/foo/1"}]`, want: `{"foo":["bar","baz"]}`},
		{name: "replaces a value", doc: `{"baz":"qux","foo":"bar"}`, patch: `[{"op":"replace","path":"/baz","value":"boo"}]`, want: `{"baz":"boo","foo":"bar"}`},
		{name: "appends with a dash", doc: `{"foo":["bar"]}`, patch: `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, want: `{"foo":["bar",["abc","def"]]}`},
		{name: "unescapes ~1 and ~0", doc: `{"a/b":{"m~n":1}}`, patch: `[{"op":"replace","path":"/a~1b/m~0n","value":2}]`, want: `{"a/b":{"m~n":2}}`},
		{name: "adds a null value", doc: `{}`, patch: `[{"op":"add","path":"/x","value":null}]`, want: `{"x":null}`},
		{name: "passes a test", doc: `{"a":[1,{"b":"c"}]}`, patch: `[{"op":"test","path":"/a/1","value":{"b":"c"}}]`, want: `{"a":[1,{"b":"c"}]}`},
		{name: "fails a test", doc: `{"a":1}`, patch: `[{"op":"test","path":"/a","value":2}]`, wantErr: "value differs"},
		{name: "refuses a missing parent", doc: `{}`, patch: `[{"op":"add","path":"/a/b","value":1}]`, wantErr: `no member "a"`},
		{name: "refuses an index past the end", doc: `{"a":[1]}`, patch: `[{"op":"add","path":"/a/2","value":1}]`, wantErr: `bad array index "2"`},
		{name: "refuses a leading zero index", doc: `{"a":[1,2]}`, patch: `[{"op":"remove","path":"/a/01"}]`, wantErr: `bad array index "01"`},
		{name: "refuses removing what is not there", doc: `{}`, patch: `[{"op":"remove","path":"/a"}]`, wantErr: `no member "a"`},
		{name: "refuses unsupported ops", doc: `{"a":1}`, patch: `[{"op":"move","path":"/b","from":"/a"}]`, wantErr: `unsupported op "move"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplyPatch([]byte(tc.doc), []byte(tc.patch))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(decode(t, tc.want), decode(t, string(got))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffThenApplyRoundTrips(t *testing.T) {
	tests := []struct{ name, a, b string }{
		{"appends to arrays", `{"c":[{"n":"app"}]}`, `{"c":[{"n":"app","l":{"p":1}},{"n":"side"}]}`},
		{"adds a missing array", `{"spec":{}}`, `{"spec":{"volumes":[{"name":"v"}]}}`},
		{"removes and replaces", `{"a":1,"b":{"c":[1,2,3]},"d":"x"}`, `{"b":{"c":[3]},"d":"y"}`},
		{"escapes keys", `{"annotations":{"shoal.dev/inject":"true"}}`, `{"annotations":{"shoal.dev/inject":"true","a~b/c":"d"}}`},
		{"changes types", `{"a":[1]}`, `{"a":{"b":1}}`},
		{"replaces the root", `[1]`, `"x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := decode(t, tc.a), decode(t, tc.b)
			patch, err := json.Marshal(Diff(a, b))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ApplyPatch([]byte(tc.a), patch)
			if err != nil {
				t.Fatalf("%v\npatch: %s", err, patch)
			}
			if diff := cmp.Diff(b, decode(t, string(got))); diff != "" {
				t.Errorf("patch %s (-want +got):\n%s", patch, diff)
			}
		})
	}
}

func TestDiffOfEqualValuesIsEmpty(t *testing.T) {
	v := decode(t, `{"a":[1,{"b":null}],"c":"d"}`)
	if ops := Diff(v, decode(t, `{"c":"d","a":[1,{"b":null}]}`)); len(ops) != 0 {
		t.Errorf("Diff = %+v, want none", ops)
	}
}
