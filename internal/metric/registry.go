package metric

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Collector is a source of metric families: the metrics and vectors of
// this package, NewGoCollector and NewProcessCollector.
type Collector interface {
	// describe appends the families the collector writes, without samples.
	describe(dst []Family) []Family
	// collect appends the families with their current samples.
	collect(dst []Family) []Family
}

// Registerer is what instrumented packages are given to register their
// metrics; *Registry implements it. Nil means "not exported".
type Registerer interface {
	// Register adds c; it fails when one of c's family names is taken.
	Register(c Collector) error
	// Unregister removes c and reports whether it was registered.
	Unregister(c Collector) bool
}

var _ Registerer = (*Registry)(nil)

// ErrAlreadyRegistered is returned (wrapped) by Register when a family name
// is already registered.
var ErrAlreadyRegistered = errors.New("metric: already registered")

// Registry holds collectors and exposes their families, sorted by name, in
// the Prometheus text format (ServeHTTP) or as snapshots (Gather). Safe for
// concurrent use.
type Registry struct {
	// mu guards collectors and names.
	mu         sync.Mutex
	collectors []Collector          // in registration order
	names      map[string]Collector // family name -> its collector
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{names: make(map[string]Collector)}
}

// Register adds c. It fails with ErrAlreadyRegistered when one of c's
// family names is taken (or c is registered), and fails for the child of a
// vector, which has no family of its own.
func (r *Registry) Register(c Collector) error {
	fams := c.describe(nil)
	if len(fams) == 0 {
		return errors.New("metric: register: the collector has no families (a vector's child?)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, f := range fams {
		if _, taken := r.names[f.Name]; taken || slices.ContainsFunc(fams[:i], func(g Family) bool { return g.Name == f.Name }) {
			return fmt.Errorf("%w: %s", ErrAlreadyRegistered, f.Name)
		}
	}
	for _, f := range fams {
		r.names[f.Name] = c
	}
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister registers each collector and panics on failure; for
// collectors created next to a new Registry.
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister removes c and reports whether it was registered.
func (r *Registry) Unregister(c Collector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.Index(r.collectors, c)
	if i < 0 {
		return false
	}
	r.collectors = slices.Delete(r.collectors, i, i+1)
	for name, owner := range r.names {
		if owner == c {
			delete(r.names, name)
		}
	}
	return true
}

// Describe returns the registered families without samples, sorted by
// name.
func (r *Registry) Describe() []Family {
	return r.families(Collector.describe)
}

// Gather returns the registered families with their current samples,
// sorted by name. A vector without series has no samples. The slices in
// the result must not be modified.
func (r *Registry) Gather() []Family {
	return r.families(Collector.collect)
}

func (r *Registry) families(get func(Collector, []Family) []Family) []Family {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	var fams []Family
	for _, c := range cs {
		fams = get(c, fams)
	}
	slices.SortFunc(fams, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return fams
}

// ContentType is the media type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// ServeHTTP writes the registry in the text exposition format, gzipped
// when the scraper accepts it (Prometheus does: a sidecar's per-endpoint
// series compress about tenfold).
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b := AppendText(nil, r.Gather())
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(req.Header.Get("Accept-Encoding")) {
		w.Write(b)
		return
	}
	h.Set("Content-Encoding", "gzip")
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(w)
	zw.Write(b)
	zw.Close()
	zw.Reset(io.Discard)
	gzipWriters.Put(zw)
}

var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // a valid level never fails
	return zw
}}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (and
// does not refuse it with q=0).
func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// A Registry is also a Collector of its collectors' families: a
// component's own registry (gossip's, in the control plane) can be
// registered on the binary's and unregistered with it.
var _ Collector = (*Registry)(nil)

func (r *Registry) describe(dst []Family) []Family { return append(dst, r.Describe()...) }

func (r *Registry) collect(dst []Family) []Family { return append(dst, r.Gather()...) }
