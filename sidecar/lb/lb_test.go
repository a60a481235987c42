package lb

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEligible(t *testing.T) {
	a := &Endpoint{Address: "a", Healthy: true}
	b := &Endpoint{Address: "b", Healthy: true}
	c := &Endpoint{Address: "c"}
	d := &Endpoint{Address: "d"}
	tests := []struct {
		name      string
		eps       []*Endpoint
		threshold float64
		want      []string
		wantPanic bool
	}{
		{name: "keeps healthy endpoints at exactly the threshold", eps: []*Endpoint{a, b, c, d}, threshold: 50, want: []string{"a", "b"}},
		{name: "takes all endpoints below the threshold", eps: []*Endpoint{a, c, d}, threshold: 50, want: []string{"a", "c", "d"}, wantPanic: true},
		{name: "never panics with threshold 0", eps: []*Endpoint{c, d}, threshold: 0, want: []string{}},
		{name: "returns nothing for no endpoints", threshold: 50, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, panicking := Eligible(tc.eps, tc.threshold)
			got := []string{}
			for _, e := range out {
				got = append(got, e.Address)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || panicking != tc.wantPanic {
				t.Errorf("Eligible panicking = %v, want %v; addresses (-want +got):\n%s", panicking, tc.wantPanic, diff)
			}
		})
	}
}

func TestPickInfoExclusions(t *testing.T) {
	var nilInfo *PickInfo
	if nilInfo.IsExcluded("a") || nilInfo.HasExclusions() {
		t.Error("nil PickInfo excludes something")
	}
	var pi PickInfo
	for _, addr := range []string{"a", "b", "c", "d", "e"} {
		pi.Exclude(addr)
	}
	got := map[string]bool{}
	for _, addr := range []string{"a", "b", "c", "d", "e", "f"} {
		got[addr] = pi.IsExcluded(addr)
	}
	// Remembers the MaxExcluded most recent: "a" was overwritten by "e".
	want := map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": true, "f": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IsExcluded (-want +got):\n%s", diff)
	}
}

func TestLoadStoreKeepsCountersAcrossRebuilds(t *testing.T) {
	s := NewLoadStore()
	first := []*Endpoint{{Address: "a"}, {Address: "b"}}
	s.Attach(first)
	first[0].Begin()
	first[1].BeginConnect()
	first[1].EndConnect()

	second := []*Endpoint{{Address: "a"}, {Address: "c"}}
	s.Attach(second)
	if got := second[0].InFlight(); got != 1 {
		t.Errorf("a in flight after rebuild = %d, want 1", got)
	}
	if got := s.Len(); got != 2 {
		t.Errorf("store holds %d addresses, want 2 (idle b forgotten)", got)
	}
	s.Attach([]*Endpoint{{Address: "c"}})
	if got := s.Len(); got != 2 {
		t.Errorf("store holds %d addresses, want 2 (busy a kept)", got)
	}
	first[0].End()
	s.Attach([]*Endpoint{{Address: "c"}})
	if got := s.Len(); got != 1 {
		t.Errorf("store holds %d addresses, want 1 (a forgotten once idle)", got)
	}
}

func TestUntrackedEndpointIsIdle(t *testing.T) {
	e := &Endpoint{Address: "a"}
	e.Begin()
	e.BeginConnect()
	if got := e.InFlight(); got != 0 {
		t.Errorf("InFlight of an endpoint without Load = %d, want 0", got)
	}
}

func TestEffectiveWeight(t *testing.T) {
	for w, want := range map[uint32]uint32{0: 1, 1: 1, 500: 500, 10000: 10000, 20000: 10000} {
		if got := (&Endpoint{Weight: w}).EffectiveWeight(); got != want {
			t.Errorf("EffectiveWeight(%d) = %d, want %d", w, got, want)
		}
	}
}

func TestHash(t *testing.T) {
	// xxHash64 reference values (seed 0).
	tests := []struct {
		in   string
		want uint64
	}{
		{in: "", want: 0xef46db3751d8e999},
		{in: "abc", want: 0x44bc2cf5ad770999},
	}
	for _, tc := range tests {
		if got := HashString(tc.in); got != tc.want {
			t.Errorf("HashString(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
		if got := HashBytes([]byte(tc.in)); got != tc.want {
			t.Errorf("HashBytes(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { HashString("10.1.2.3") }); n != 0 {
		t.Errorf("HashString allocates %v times, want 0", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{name: "accepts the defaults", mutate: func(*Config) {}},
		{name: "accepts the zero value", mutate: func(c *Config) { *c = Config{} }},
		{name: "rejects a threshold above 100", mutate: func(c *Config) { c.PanicThreshold = 101 }, wantErr: true},
		{name: "rejects min ring above max", mutate: func(c *Config) { c.RingHash.MinRingSize = 1 << 24 }, wantErr: true},
		{name: "rejects a bounded load factor below 1", mutate: func(c *Config) { c.RingHash.BoundedLoadFactor = 0.5 }, wantErr: true},
		{name: "rejects a non-prime maglev table", mutate: func(c *Config) { c.Maglev.TableSize = 65536 }, wantErr: true},
		{name: "rejects one choice", mutate: func(c *Config) { c.LeastRequest.ChoiceCount = 1 }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}
