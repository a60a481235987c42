package metric

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRegister(t *testing.T) {
	t.Run("refuses a family name that is taken", func(t *testing.T) {
		reg := NewRegistry()
		reg.MustRegister(NewCounter(CounterOpts{Name: "a_total", Help: "A."}))
		err := reg.Register(NewCounterVec(CounterOpts{Name: "a_total", Help: "Other."}, []string{"x"}))
		if !errors.Is(err, ErrAlreadyRegistered) {
			t.Errorf("Register(same name) = %v, want ErrAlreadyRegistered", err)
		}
	})
	t.Run("refuses the same collector twice", func(t *testing.T) {
		reg := NewRegistry()
		g := NewGoCollector()
		reg.MustRegister(g)
		if err := reg.Register(g); !errors.Is(err, ErrAlreadyRegistered) {
			t.Errorf("second Register = %v, want ErrAlreadyRegistered", err)
		}
	})
	t.Run("refuses a vector's child", func(t *testing.T) {
		cv := NewCounterVec(CounterOpts{Name: "b_total", Help: "B."}, []string{"x"})
		if err := NewRegistry().Register(cv.WithLabelValues("1")); err == nil {
			t.Error("Register(child) = nil, want an error")
		}
	})
	t.Run("frees the names on Unregister", func(t *testing.T) {
		reg := NewRegistry()
		c := NewCounter(CounterOpts{Name: "c_total", Help: "C."})
		reg.MustRegister(c)
		if !reg.Unregister(c) || reg.Unregister(c) {
			t.Error("Unregister: want true, then false")
		}
		if err := reg.Register(NewCounter(CounterOpts{Name: "c_total", Help: "C."})); err != nil {
			t.Errorf("Register after Unregister: %v", err)
		}
	})
	t.Run("panics on invalid names", func(t *testing.T) {
		for _, f := range []func(){
			func() { NewCounter(CounterOpts{Name: "bad-name"}) },
			func() { NewCounterVec(CounterOpts{Name: "ok"}, []string{"__reserved"}) },
			func() { NewGaugeVec(GaugeOpts{Name: "ok"}, []string{"a", "a"}) },
			func() { NewHistogramVec(HistogramOpts{Name: "ok", Buckets: []float64{1}}, []string{"le"}) },
			func() { NewHistogram(HistogramOpts{Name: "ok", Buckets: []float64{2, 1}}) },
			func() { NewHistogram(HistogramOpts{Name: "ok"}) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Error("no panic")
					}
				}()
				f()
			}()
		}
	})
}

func TestDeleteLabelValuesRemovesTheSeries(t *testing.T) {
	reg := NewRegistry()
	cv := NewCounterVec(CounterOpts{Name: "up_total", Help: "Up."}, []string{"cluster", "endpoint"})
	reg.MustRegister(cv)
	cv.WithLabelValues("web", "10.0.0.1:80").Inc()
	cv.WithLabelValues("web", "10.0.0.2:80").Inc()
	if !cv.DeleteLabelValues("web", "10.0.0.1:80") || cv.DeleteLabelValues("web", "10.0.0.1:80") {
		t.Error("DeleteLabelValues: want true, then false")
	}
	fams := parse(t, AppendText(nil, reg.Gather()))
	ms := fams["up_total"].GetMetric()
	if len(ms) != 1 || labels(ms[0])["endpoint"] != "10.0.0.2:80" {
		t.Errorf("series after delete = %v, want only 10.0.0.2:80", ms)
	}
	if got := cv.WithLabelValues("web", "10.0.0.1:80").Value(); got != 0 {
		t.Errorf("re-created series = %v, want a fresh 0", got)
	}
}

func TestEmptyVectorIsNotWritten(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(NewCounterVec(CounterOpts{Name: "none_total", Help: "None."}, []string{"x"}))
	if got := string(AppendText(nil, reg.Gather())); got != "" {
		t.Errorf("exposition = %q, want empty (client_golang leaves out families without series)", got)
	}
	if d := reg.Describe(); len(d) != 1 || d[0].Name != "none_total" || d[0].LabelNames[0] != "x" {
		t.Errorf("Describe = %+v, want none_total{x}", d)
	}
}

func TestInvalidUTF8LabelValueIsOneValidSeries(t *testing.T) {
	reg := NewRegistry()
	cv := NewCounterVec(CounterOpts{Name: "u_total", Help: "U."}, []string{"x"})
	reg.MustRegister(cv)
	cv.WithLabelValues("a\xffb").Inc()
	cv.WithLabelValues("a\xffb").Inc()
	ms := parse(t, AppendText(nil, reg.Gather()))["u_total"].GetMetric()
	if len(ms) != 1 || ms[0].GetCounter().GetValue() != 2 || labels(ms[0])["x"] != "a\uFFFDb" {
		t.Errorf("series = %v, want one a\\uFFFDb = 2", ms)
	}
}

// TestConcurrentCounting runs under -race in make test: increments,
// series creation, deletion and scrapes at once, and no increment is lost.
func TestConcurrentCounting(t *testing.T) {
	reg := NewRegistry()
	cv := NewCounterVec(CounterOpts{Name: "n_total", Help: "N."}, []string{"worker", "code"})
	c := NewCounter(CounterOpts{Name: "all_total", Help: "All."})
	g := NewGauge(GaugeOpts{Name: "g", Help: "G."})
	hv := NewHistogramVec(HistogramOpts{Name: "h_seconds", Help: "H.", Buckets: []float64{1, 2}}, []string{"worker"})
	reg.MustRegister(cv, c, g, hv)
	const workers, perWorker = 8, 2000
	codes := []string{"200", "404", "503"}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			name := string(rune('a' + w))
			for i := range perWorker {
				cv.WithLabelValues(name, codes[i%3]).Inc()
				cv.WithLabelValues("shared", "200").Inc()
				c.Inc()
				g.Inc()
				hv.WithLabelValues(name).Observe(float64(i % 3))
				cv.WithLabelValues(name, "gone").Inc()
				cv.DeleteLabelValues(name, "gone")
			}
		})
	}
	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				scraped <- nil
				return
			default:
			}
			if len(AppendText(nil, reg.Gather())) == 0 {
				scraped <- errors.New("empty scrape")
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-scraped; err != nil {
		t.Fatal(err)
	}
	fams := parse(t, AppendText(nil, reg.Gather()))
	var perName float64
	for _, m := range fams["n_total"].GetMetric() {
		l := labels(m)
		if l["code"] == "gone" {
			t.Errorf("deleted series %v still exposed", l)
		}
		if l["worker"] == "shared" {
			if v := m.GetCounter().GetValue(); v != workers*perWorker {
				t.Errorf("shared = %v, want %d", v, workers*perWorker)
			}
			continue
		}
		perName += m.GetCounter().GetValue()
	}
	if perName != workers*perWorker || c.Value() != workers*perWorker || g.Value() != workers*perWorker {
		t.Errorf("per worker sum, counter, gauge = %v, %v, %v; want %d each", perName, c.Value(), g.Value(), workers*perWorker)
	}
	for _, m := range fams["h_seconds"].GetMetric() {
		if n := m.GetHistogram().GetSampleCount(); n != perWorker {
			t.Errorf("histogram %v count = %d, want %d", labels(m), n, perWorker)
		}
	}
}

// TestServeHTTPGzip: a scraper that accepts gzip (Prometheus) gets the
// same exposition compressed; one that refuses it gets plain text.
func TestServeHTTPGzip(t *testing.T) {
	reg := NewRegistry()
	v := NewCounterVec(CounterOpts{Name: "upstream_requests_total", Help: "Upstream requests."}, []string{"endpoint"})
	reg.MustRegister(v)
	for i := range 200 {
		v.WithLabelValues(fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)).Inc()
	}
	want := AppendText(nil, reg.Gather())
	for _, tc := range []struct {
		ae       string
		wantGzip bool
	}{
		{"gzip", true},
		{"deflate, gzip;q=0.8", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"", false},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if tc.ae != "" {
			req.Header.Set("Accept-Encoding", tc.ae)
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		gotGzip := rec.Header().Get("Content-Encoding") == "gzip"
		if gotGzip != tc.wantGzip {
			t.Errorf("Accept-Encoding %q: gzip = %v, want %v", tc.ae, gotGzip, tc.wantGzip)
			continue
		}
		if gotGzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tc.ae, err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tc.ae, err)
			}
			if len(body)*4 > len(plain) {
				t.Errorf("gzip body %d bytes for %d of text, want at least 4x smaller", len(body), len(plain))
			}
			body = plain
		}
		if !bytes.Equal(body, want) {
			t.Errorf("Accept-Encoding %q: body differs from the text exposition", tc.ae)
		}
	}
}

func TestServeHTTP(t *testing.T) {
	reg := NewRegistry()
	c := NewCounter(CounterOpts{Name: "served_total", Help: "Served."})
	reg.MustRegister(c)
	c.Inc()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if want := "# HELP served_total Served.\n# TYPE served_total counter\nserved_total 1\n"; !strings.Contains(string(body), want) {
		t.Errorf("body = %q, want %q", body, want)
	}
}

func TestGaugeVecFuncEmitsSortedSamplesWhenCollected(t *testing.T) {
	reg := NewRegistry()
	limit := 7.0
	reg.MustRegister(NewGaugeVecFunc(GaugeOpts{Name: "x_limit", Help: "Limits."}, []string{"resource", "cluster"}, func(emit func(float64, ...string)) {
		emit(limit, "requests", "b")
		emit(3, "retries", "a")
	}))
	limit = 9
	text := string(AppendText(nil, reg.Gather()))
	want := "x_limit{cluster=\"a\",resource=\"retries\"} 3\nx_limit{cluster=\"b\",resource=\"requests\"} 9\n"
	if !strings.Contains(text, want) {
		t.Errorf("text = %q, want %q", text, want)
	}
}

func TestGaugeFuncIsComputedWhenCollected(t *testing.T) {
	reg := NewRegistry()
	n := 0.0
	reg.MustRegister(NewGaugeFunc(GaugeOpts{Name: "x_items", Help: "Items."}, func() float64 { n++; return n }))
	for want := 1.0; want <= 2; want++ {
		fams := reg.Gather()
		if len(fams) != 1 || len(fams[0].Samples) != 1 || fams[0].Samples[0].Value != want {
			t.Fatalf("Gather() = %+v, want one sample %v", fams, want)
		}
	}
	if got := ExponentialBuckets(0.5, 2, 3); !slices.Equal(got, []float64{0.5, 1, 2}) {
		t.Errorf("ExponentialBuckets = %v", got)
	}
}
