package route

import (
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

func testTable(t *testing.T) *Table {
	t.Helper()
	wc := func(n string) []WeightedCluster { return []WeightedCluster{{Name: n, Weight: 1}} }
	tbl, err := New(Config{
		VirtualHosts: []VirtualHost{
			{Name: "orders", Domains: []string{"orders", "Orders.svc:8080"}, Routes: []Route{
				{Name: "v2", Match: Match{PathPrefix: "/", Headers: []HeaderMatch{{Name: "X-Version", Exact: "v2"}}}, Clusters: wc("orders-v2")},
				{Name: "exact", Match: Match{Path: "/healthz", Methods: []string{"GET"}}, Clusters: wc("orders")},
				{Name: "regex", Match: Match{PathRegex: "/items/[0-9]+"}, Clusters: wc("orders")},
				{Name: "nodebug", Match: Match{PathPrefix: "/api", Headers: []HeaderMatch{{Name: "x-debug", Invert: true}}}, Clusters: wc("orders")},
			}},
			{Name: "wild", Domains: []string{"*.example.com"}, Routes: []Route{{Name: "w", Clusters: wc("orders")}}},
			{Name: "longer", Domains: []string{"*.api.example.com"}, Routes: []Route{{Name: "l", Clusters: wc("orders")}}},
			{Name: "prefix", Domains: []string{"orders.*"}, Routes: []Route{{Name: "p", Clusters: wc("orders")}}},
			{Name: "any", Domains: []string{"*"}, Routes: []Route{{Name: "any", Match: Match{PathPrefix: "/any"}, Clusters: wc("orders")}}},
		},
		Clusters: []ClusterConfig{
			{Name: "orders", Endpoints: []Endpoint{{Address: "127.0.0.1:1", Healthy: true}}},
			{Name: "orders-v2"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestMatch(t *testing.T) {
	tbl := testTable(t)
	tests := []struct {
		name    string
		host    string
		method  string
		path    string
		headers []HeaderField
		want    string
	}{
		{name: "header selects v2", host: "orders", path: "/x", headers: []HeaderField{{Name: []byte("x-version"), Value: []byte("v2")}}, want: "v2"},
		{name: "exact path and method", host: "ORDERS:80", method: "GET", path: "/healthz", want: "exact"},
		{name: "method mismatch falls through", host: "orders", method: "POST", path: "/healthz", want: ""},
		{name: "regex is anchored", host: "orders", path: "/items/12", want: "regex"},
		{name: "regex rejects suffix", host: "orders", path: "/items/12/x", want: ""},
		{name: "inverted header absent matches", host: "orders", path: "/api/x", want: "nodebug"},
		{name: "inverted header present fails", host: "orders", path: "/api/x", headers: []HeaderField{{Name: []byte("X-Debug"), Value: []byte("1")}}, want: ""},
		{name: "exact domain with port", host: "orders.svc:8080", path: "/healthz", method: "GET", want: "exact"},
		{name: "longest suffix wins", host: "a.api.example.com", want: "l"},
		{name: "suffix wildcard", host: "www.example.com:443", want: "w"},
		{name: "prefix wildcard", host: "orders.local", want: "p"},
		{name: "catch all", host: "unknown", path: "/any/thing", want: "any"},
		{name: "catch all no route", host: "unknown", path: "/other", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tbl.Match(&Request{Host: []byte(tc.host), Method: []byte(tc.method), Path: []byte(tc.path), Headers: tc.headers})
			got := ""
			if r != nil {
				got = r.Name
			}
			if got != tc.want {
				t.Errorf("Match = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := testTable(t)
	req := &Request{Host: []byte("Orders.svc:8080"), Method: []byte("GET"), Path: []byte("/items/42"),
		Headers: []HeaderField{{Name: []byte("Cookie"), Value: []byte("a=b; session=xyz")}}}
	allocs := testing.AllocsPerRun(100, func() {
		if tbl.Match(req) == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times", allocs)
	}
}

func TestPickClusterSplit(t *testing.T) {
	tbl, err := New(Config{
		VirtualHosts: []VirtualHost{{Domains: []string{"*"}, Routes: []Route{{Clusters: []WeightedCluster{{Name: "a", Weight: 80}, {Name: "b", Weight: 20}, {Name: "missing", Weight: 0}}}}}},
		Clusters:     []ClusterConfig{{Name: "a"}, {Name: "b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := tbl.Match(&Request{Host: []byte("x")})
	counts := map[string]int{}
	for range 10000 {
		counts[r.PickCluster().Name]++
	}
	if a := counts["a"]; a < 7500 || a > 8500 {
		t.Errorf("split = %v, want about 80/20", counts)
	}
}

func TestHashKey(t *testing.T) {
	r := &Route{Hash: []HashPolicy{{Kind: HashCookie, Name: "session", Terminal: true}, {Kind: HashSourceIP}}}
	req := &Request{SourceIP: []byte("10.0.0.1"), Headers: []HeaderField{{Name: []byte("cookie"), Value: []byte("a=b; session=\"xyz\"")}}}
	h, ok := r.HashKey(req)
	if !ok || h != lb.HashString("xyz") {
		t.Errorf("HashKey = %x, %v; want hash of cookie", h, ok)
	}
	req.Headers = nil
	if h, ok = r.HashKey(req); !ok || h != lb.HashString("10.0.0.1") {
		t.Errorf("HashKey without cookie = %x, %v; want hash of source IP", h, ok)
	}
}

func TestParseRetryOn(t *testing.T) {
	on, err := ParseRetryOn("5xx, connect-failure,retriable-status-codes")
	if err != nil || on != Retry5xx|RetryConnectFailure|RetryRetriableStatusCodes {
		t.Errorf("ParseRetryOn = %b, %v", on, err)
	}
	if _, err := ParseRetryOn("bogus"); err == nil {
		t.Error("ParseRetryOn(bogus) succeeded")
	}
	p := &RetryPolicy{On: RetryRetriableStatusCodes, StatusCodes: []int{409}}
	if !p.RetryStatus(409) || p.RetryStatus(500) {
		t.Error("RetryStatus does not follow StatusCodes")
	}
	if _, err := ParseRetryOn("http3-post-connect-failure"); err != nil {
		t.Errorf("Envoy's http3-post-connect-failure: %v", err)
	}
}

func TestRetryGRPCStatus(t *testing.T) {
	tests := []struct {
		on   string
		code int // google.golang.org/grpc/codes
	}{
		{"cancelled", 1},
		{"deadline-exceeded", 4},
		{"resource-exhausted", 8},
		{"internal", 13},
		{"unavailable", 14},
	}
	for _, tc := range tests {
		t.Run(tc.on, func(t *testing.T) {
			on, err := ParseRetryOn("5xx," + tc.on)
			if err != nil {
				t.Fatal(err)
			}
			p := &RetryPolicy{On: on}
			for code := 0; code <= 16; code++ {
				if got := p.RetryGRPCStatus(code); got != (code == tc.code) {
					t.Errorf("RetryGRPCStatus(%d) = %v", code, got)
				}
			}
			if p.RetryStatus(200) || !p.RetryStatus(503) {
				t.Error("a gRPC condition changed the HTTP status conditions")
			}
		})
	}
	var none *RetryPolicy
	if none.RetryGRPCStatus(14) {
		t.Error("a nil policy retries UNAVAILABLE")
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "duplicate cluster", cfg: Config{Clusters: []ClusterConfig{{Name: "a"}, {Name: "a"}}}},
		{name: "bad regex", cfg: Config{VirtualHosts: []VirtualHost{{Routes: []Route{{Match: Match{PathRegex: "("}, Clusters: []WeightedCluster{{Name: "a"}}}}}}}},
		// What the control plane's validation refuses (Envoy's
		// max_program_size) is refused from xDS too.
		{name: "regex program too large", cfg: Config{VirtualHosts: []VirtualHost{{Routes: []Route{{Match: Match{PathRegex: "/[a-z]*(a|b){1000}"}, Clusters: []WeightedCluster{{Name: "a"}}}}}}}},
		{name: "header regex program too large", cfg: Config{VirtualHosts: []VirtualHost{{Routes: []Route{{Match: Match{Headers: []HeaderMatch{{Name: "x-user", Regex: "[a-z]{200}"}}}, Clusters: []WeightedCluster{{Name: "a"}}}}}}}},
		{name: "two path matchers", cfg: Config{VirtualHosts: []VirtualHost{{Routes: []Route{{Match: Match{Path: "/a", PathPrefix: "/"}, Clusters: []WeightedCluster{{Name: "a"}}}}}}}},
		{name: "route without cluster", cfg: Config{VirtualHosts: []VirtualHost{{Routes: []Route{{}}}}}},
		{name: "endpoint without address", cfg: Config{Clusters: []ClusterConfig{{Name: "a", Endpoints: []Endpoint{{}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Error("New succeeded, want error")
			}
		})
	}
}
