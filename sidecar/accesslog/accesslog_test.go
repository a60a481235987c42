package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func entry() *Entry {
	return &Entry{
		Start:  time.Date(2026, 12, 7, 5, 40, 12, 345e6, time.UTC),
		Method: []byte("GET"), Path: []byte("/api/orders?id=7"), Protocol: []byte("HTTP/1.1"),
		Code: 503, Flags: NoHealthyUpstream | UpstreamRetryLimitExceeded,
		BytesReceived: 0, BytesSent: 19, Duration: 3 * time.Millisecond, UpstreamServiceTime: -1,
		XForwardedFor: []byte("10.0.0.7"), UserAgent: []byte("curl/8.5.0"), ReqID: []byte("abc"),
		Authority: []byte("orders"), UpstreamHost: "127.0.0.1:3001", UpstreamCluster: "orders",
	}
}

func TestTextIsEnvoysDefaultFormat(t *testing.T) {
	got := string(appendText(nil, entry(), New(Config{}).timestamp(entry().Start)))
	want := `[2026-12-07T05:40:12.345Z] "GET /api/orders?id=7 HTTP/1.1" 503 UH,URX 0 19 3 - "10.0.0.7" "curl/8.5.0" "abc" "orders" "127.0.0.1:3001"` + "\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestFieldsCannotForgeALine(t *testing.T) {
	e := entry()
	e.UserAgent = []byte("evil\"\n[2026-01-01] \"GET / HTTP/1.1\" 200\xff")
	e.Path = nil
	got := string(appendText(nil, e, New(Config{}).timestamp(e.Start)))
	if strings.Count(got, "\n") != 1 {
		t.Fatalf("one entry made several lines: %q", got)
	}
	if !strings.Contains(got, `"evil\"\u000a[2026-01-01] \"GET / HTTP/1.1\" 200\ufffd"`) || !strings.Contains(got, `"GET - HTTP/1.1"`) {
		t.Errorf("escaping: %q", got)
	}
}

func TestJSONParses(t *testing.T) {
	e := entry()
	e.UserAgent = []byte("a \"quoted\" agent\t")
	line := appendJSON(nil, e, New(Config{}).timestamp(e.Start))
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	for k, want := range map[string]any{
		"method": "GET", "response_code": 503.0, "response_flags": "UH,URX", "bytes_sent": 19.0,
		"upstream_service_time": nil, "user_agent": "a \"quoted\" agent\t", "upstream_cluster": "orders",
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestRunWritesAndDropsWhenFull(t *testing.T) {
	var out syncBuffer
	l := New(Config{W: &out, FlushInterval: time.Hour, MaxBuffer: 1000})
	for range 20 { // ~150 bytes each: the buffer holds 7, the rest are dropped
		l.Log(entry())
	}
	if l.Dropped() == 0 {
		t.Error("nothing dropped past MaxBuffer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	// WriteBytes (here half of MaxBuffer) buffered: Run writes without
	// waiting for the interval.
	deadline := time.Now().Add(10 * time.Second)
	for out.String() == "" && time.Now().Before(deadline) {
		l.Log(entry())
		time.Sleep(5 * time.Millisecond) // pacing the writes until Run flushes (deadline above)
	}
	if out.String() == "" {
		t.Fatal("nothing written")
	}
	cancel()
	<-done
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for _, ln := range lines {
		if !strings.HasPrefix(ln, "[2026-12-07T05:40:12.345Z] ") {
			t.Fatalf("torn line %q", ln)
		}
	}
}

func TestLogDoesNotAllocate(t *testing.T) {
	l := New(Config{W: &bytes.Buffer{}, MaxBuffer: 1 << 30})
	e := entry()
	if n := testing.AllocsPerRun(1000, func() { l.Log(e) }); n > 0 {
		t.Errorf("Log allocates %v times per line", n)
	}
}

func BenchmarkLog(b *testing.B) {
	l := New(Config{W: &bytes.Buffer{}, MaxBuffer: 1 << 30})
	e := entry()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
		if len(l.buf) > 1<<20 {
			l.buf = l.buf[:0]
		}
	}
}

func TestTimestampCacheFollowsTheSecond(t *testing.T) {
	l := New(Config{})
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 12, 7, 5, 40, 12, 5e6, time.UTC), "2026-12-07T05:40:12.005Z"},
		{time.Date(2026, 12, 7, 5, 40, 12, 999e6, time.UTC), "2026-12-07T05:40:12.999Z"},
		{time.Date(2026, 12, 7, 5, 40, 13, 0, time.UTC), "2026-12-07T05:40:13.000Z"},
		{time.Date(2026, 12, 7, 6, 40, 13, 120e6, time.FixedZone("CET", 3600)), "2026-12-07T05:40:13.120Z"},
	} {
		if got := string(appendTime(nil, l.timestamp(tc.t))); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.t, got, tc.want)
		}
	}
}

// escapeOneByOne is the escaping rule applied a byte (or rune) at a time,
// the reference appendEscaped's run-at-a-time fast path must match.
func escapeOneByOne(b []byte) string {
	var out []byte
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c < 0x20 || c == 0x7f:
				out = append(out, fmt.Sprintf(`\u%04x`, c)...)
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			out = append(out, `\ufffd`...)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return string(out)
}

func TestEscapingMatchesTheByteRule(t *testing.T) {
	for _, s := range []string{
		"", "plain", "curl/8.5.0", `a"b\c`, "tab\there", "\x00\x1f\x7f", "caf\u00e9 \u65e5\u672c",
		"bad \xff\xfe utf8", "\xe2\x82", "trailing\\", `"`, "mixed\"\x01\u00e9\xffend",
	} {
		if got, want := string(appendEscaped([]byte("x"), []byte(s))), "x"+escapeOneByOne([]byte(s)); got != want {
			t.Errorf("escape %q = %q, want %q", s, got, want)
		}
	}
}

func FuzzEscaping(f *testing.F) {
	f.Add([]byte("curl/8.5.0"))
	f.Add([]byte("a\"\\\x00\xff\u00e9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := appendEscaped(nil, b)
		if want := escapeOneByOne(b); string(got) != want {
			t.Fatalf("escape %q = %q, want %q", b, got, want)
		}
		if bytes.ContainsAny(got, "\n\r") || !utf8.Valid(got) {
			t.Fatalf("escape %q = %q: a newline or invalid UTF-8", b, got)
		}
	})
}

// BenchmarkEscape is the escaping of a line's typical fields: a UUID
// request id, a browser's User-Agent, an authority and a path.
func BenchmarkEscape(b *testing.B) {
	fields := [][]byte{
		[]byte("7a19157c-8053-4700-b718-9e0dc680c155"),
		[]byte("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
		[]byte("orders.shop.svc:8080"), []byte("/api/v1/orders?id=12345&expand=items"),
	}
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		dst = dst[:0]
		for _, f := range fields {
			dst = appendEscaped(dst, f)
		}
	}
}
