package route

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/shoal-mesh/shoal/sidecar/authz"
)

// Config is the input of New. It is plain data; New copies what it keeps.
type Config struct {
	// Version is informational (the xDS version the table was built from).
	Version string
	// VirtualHosts are selected by domain; see Table.Match.
	VirtualHosts []VirtualHost
	// Clusters are the upstream clusters routes refer to by name.
	Clusters []ClusterConfig
	// Loads keeps in-flight counters across tables; pass the proxy's
	// (proxy.Proxy.Loads). Nil gives every table fresh counters.
	Loads *Loads
	// Authz is the authorization of the proxy's own service, enforced on
	// its inbound listener; nil allows every caller.
	Authz *authz.Policy
}

// VirtualHost is a set of domains and the routes that serve them.
type VirtualHost struct {
	// Name identifies the virtual host.
	Name string
	// Domains are exact host names ("orders", "api.example.com"), suffix
	// wildcards ("*.example.com"), prefix wildcards ("orders.*") or "*".
	// A domain may include a port ("orders:8080"). Case-insensitive.
	Domains []string
	// Routes are tried in order; the first match wins.
	Routes []Route
}

// Table is an immutable routing table. Safe for concurrent use.
type Table struct {
	// Version is Config.Version.
	Version string
	// Clusters are the compiled clusters in Config order. Read-only.
	Clusters []*Cluster
	// Authz is Config.Authz. Read-only.
	Authz *authz.Policy

	vhosts    []VirtualHost
	byName    map[string]*Cluster
	exact     map[string]int // lower-case domain -> vhost index
	suffixes  []wildcard     // "*.x": longest suffix first
	prefixes  []wildcard     // "x.*": longest prefix first
	catchAll  int            // vhost index of "*", or -1
	maxDomain int
}

type wildcard struct {
	part  string // the suffix (".example.com") or prefix ("orders.")
	vhost int
}

// New validates cfg and compiles it into a Table. Routes may name clusters
// that cfg does not define (xDS may deliver them later); such routes yield
// a nil cluster from PickCluster.
func New(cfg Config) (*Table, error) {
	t := &Table{Version: cfg.Version, Authz: cfg.Authz, byName: make(map[string]*Cluster), exact: make(map[string]int), catchAll: -1}
	for i, cc := range cfg.Clusters {
		c, err := compileCluster(cc, i, cfg.Loads)
		if err != nil {
			return nil, err
		}
		if _, dup := t.byName[c.Name]; dup {
			return nil, fmt.Errorf("route: duplicate cluster %q", c.Name)
		}
		t.byName[c.Name] = c
		t.Clusters = append(t.Clusters, c)
	}
	t.vhosts = make([]VirtualHost, len(cfg.VirtualHosts))
	for i, vh := range cfg.VirtualHosts {
		if err := t.addVirtualHost(i, vh); err != nil {
			return nil, fmt.Errorf("route: virtual host %q: %w", vh.Name, err)
		}
	}
	sort.SliceStable(t.suffixes, func(i, j int) bool { return len(t.suffixes[i].part) > len(t.suffixes[j].part) })
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].part) > len(t.prefixes[j].part) })
	return t, nil
}

func (t *Table) addVirtualHost(i int, vh VirtualHost) error {
	vh.Routes = append([]Route(nil), vh.Routes...)
	for j := range vh.Routes {
		if err := t.compileRoute(&vh.Routes[j]); err != nil {
			return fmt.Errorf("route %d (%q): %w", j, vh.Routes[j].Name, err)
		}
	}
	vh.Domains = append([]string(nil), vh.Domains...)
	t.vhosts[i] = vh
	for _, d := range vh.Domains {
		d = strings.ToLower(d)
		t.maxDomain = max(t.maxDomain, len(d))
		switch {
		case d == "*":
			t.catchAll = i
			continue
		case strings.HasPrefix(d, "*"):
			t.suffixes = append(t.suffixes, wildcard{part: d[1:], vhost: i})
			continue
		case strings.HasSuffix(d, "*"):
			t.prefixes = append(t.prefixes, wildcard{part: d[:len(d)-1], vhost: i})
			continue
		}
		if _, dup := t.exact[d]; dup {
			return fmt.Errorf("duplicate domain %q", d)
		}
		t.exact[d] = i
	}
	return nil
}

func (t *Table) compileRoute(r *Route) error {
	if err := r.Match.compile(); err != nil {
		return err
	}
	if len(r.Clusters) == 0 {
		return errors.New("no clusters")
	}
	r.Clusters = append([]WeightedCluster(nil), r.Clusters...)
	r.Hash = append([]HashPolicy(nil), r.Hash...)
	if r.Retry != nil {
		rp := *r.Retry
		r.Retry = &rp
	}
	var sum uint64
	for _, wc := range r.Clusters {
		sum += uint64(wc.Weight)
		r.clusters = append(r.clusters, t.byName[wc.Name])
		r.cumWeights = append(r.cumWeights, sum)
	}
	return nil
}

// Cluster returns the named cluster or nil. It does not allocate when name
// is a conversion of a byte slice at the call site.
func (t *Table) Cluster(name string) *Cluster { return t.byName[name] }

// VirtualHosts returns the compiled virtual hosts. Read-only.
func (t *Table) VirtualHosts() []VirtualHost { return t.vhosts }

// Match returns the first route of the virtual host selected by r.Host that
// matches r, or nil. The virtual host is chosen as Envoy does: the exact
// domain (tried with the port, then without), then the longest suffix
// wildcard, the longest prefix wildcard, then "*". Match does not allocate
// for hosts up to 255 bytes.
func (t *Table) Match(r *Request) *Route {
	vi := t.virtualHost(r.Host)
	if vi < 0 {
		return nil
	}
	routes := t.vhosts[vi].Routes
	for i := range routes {
		if routes[i].Match.matches(r) {
			return &routes[i]
		}
	}
	return nil
}

// HasHost reports whether a virtual host serves host (a service's name or
// a route's host), so a request that matched no route can be told "no such
// service" apart from "no route for this path".
func (t *Table) HasHost(host []byte) bool { return t.virtualHost(host) >= 0 }

func (t *Table) virtualHost(host []byte) int {
	var buf [256]byte
	if len(host) > len(buf) {
		return t.catchAll
	}
	h := buf[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h[i] = c
	}
	if vi, ok := t.exact[string(h)]; ok {
		return vi
	}
	h = stripPort(h)
	if vi, ok := t.exact[string(h)]; ok {
		return vi
	}
	for _, w := range t.suffixes {
		if len(h) > len(w.part) && string(h[len(h)-len(w.part):]) == w.part {
			return w.vhost
		}
	}
	for _, w := range t.prefixes {
		if len(h) > len(w.part) && string(h[:len(w.part)]) == w.part {
			return w.vhost
		}
	}
	return t.catchAll
}

// stripPort removes a trailing ":port" from a host, keeping IPv6 brackets.
func stripPort(h []byte) []byte {
	for i := len(h) - 1; i >= 0; i-- {
		c := h[i]
		switch {
		case c == ':':
			return h[:i]
		case c < '0' || c > '9':
			return h
		}
	}
	return h
}

func errOneOf(what string) error { return fmt.Errorf("at most one of %s may be set", what) }
