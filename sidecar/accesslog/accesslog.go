// Package accesslog writes one line per proxied request, in Envoy's
// default access log format or as JSON, the way nginx users expect to find
// what happened to a request:
//
//	[2026-12-07T05:40:12.345Z] "GET /api/orders HTTP/1.1" 200 - 0 512 3 - "10.0.0.7" "curl/8.5.0" "5f2c…" "orders" "127.0.0.1:3001"
//
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#default-format-string).
// %RESPONSE_FLAGS% say why a proxy answered as it did: UF upstream connect
// failure, UH no healthy upstream, UO overflow (circuit breaker), UC
// upstream connection termination, UT upstream request timeout, NR no
// route, URX retry limit exceeded, DC downstream connection termination,
// SI stream idle timeout.
//
// Off the critical path: Log formats the line into a shared buffer (no
// allocation, no system call), and a background goroutine (Run) writes the
// buffer every FlushInterval or when it fills. When the writer cannot keep
// up and the buffer reaches MaxBuffer, lines are dropped and counted
// (Dropped), never blocking a request.
package accesslog

import (
	"context"
	"encoding/binary"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Format is a line format.
type Format uint8

const (
	// Text is Envoy's default format.
	Text Format = iota
	// JSON is one JSON object per line with Envoy's command operator
	// names in snake case (start_time, method, path, protocol,
	// response_code, response_flags, bytes_received, bytes_sent, duration,
	// upstream_service_time, x_forwarded_for, user_agent, request_id,
	// authority, upstream_host, upstream_cluster, and grpc_status for a
	// gRPC response).
	JSON
)

// ParseFormat parses "text" or "json".
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "text", "":
		return Text, true
	case "json":
		return JSON, true
	}
	return 0, false
}

// Flags are Envoy's response flags.
type Flags uint16

const (
	UpstreamConnectionFailure       Flags = 1 << iota // UF
	NoHealthyUpstream                                 // UH
	UpstreamOverflow                                  // UO
	UpstreamConnectionTermination                     // UC
	UpstreamRequestTimeout                            // UT
	NoRouteFound                                      // NR
	UpstreamRetryLimitExceeded                        // URX
	DownstreamConnectionTermination                   // DC
	StreamIdleTimeout                                 // SI
	// UpstreamStalled is not Envoy's: the endpoint was marked stalled
	// (requests in flight, none answered for the stall threshold) while
	// the request waited on it.
	UpstreamStalled // UST
)

var flagNames = [...]string{"UF", "UH", "UO", "UC", "UT", "NR", "URX", "DC", "SI", "UST"}

// AppendFlags appends f as Envoy prints it: comma-separated short names,
// or "-" for none.
func AppendFlags(dst []byte, f Flags) []byte {
	if f == 0 {
		return append(dst, '-')
	}
	first := true
	for i, name := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, name...)
		first = false
	}
	return dst
}

// Entry is one request. The byte slices may alias the request's buffers:
// Log copies what it needs before returning.
type Entry struct {
	Start                           time.Time
	Method, Path, Protocol          []byte
	Code                            int
	Flags                           Flags
	BytesReceived, BytesSent        int64 // -1: unknown
	Duration                        time.Duration
	UpstreamServiceTime             time.Duration // -1: none
	XForwardedFor, UserAgent, ReqID []byte
	Authority                       []byte
	UpstreamHost, UpstreamCluster   string
	// GRPCStatus is a gRPC response's grpc-status (nil: none; Envoy's
	// %GRPC_STATUS_NUMBER%), in the JSON format only: the text format
	// stays Envoy's default.
	GRPCStatus []byte
}

// Config configures a Logger.
type Config struct {
	// W receives the lines; writes happen on Run's goroutine only.
	W      io.Writer
	Format Format
	// FlushInterval is how long a line may wait in the buffer; zero means
	// 100ms.
	FlushInterval time.Duration
	// MaxBuffer bounds the buffered bytes; zero means 1 MiB.
	MaxBuffer int
	// WriteBytes is how much is buffered before Run writes without
	// waiting for the interval; zero means 128 KiB. Writes of that size
	// keep the two buffers in the CPU's cache (with 512 KiB writes,
	// appending a line cost a cache miss), and there are few of them:
	// each write is a system call that wakes the Go runtime's monitor
	// thread when it was idle, which then polls every 20 µs for a while
	// (about ten wakeups, each a context switch on the proxy's CPU).
	WriteBytes int
}

// Logger buffers lines for Run to write. Log is safe for concurrent use.
type Logger struct {
	cfg Config
	// mu guards buf.
	mu    sync.Mutex
	buf   []byte
	spare []byte // Run's write buffer, swapped with buf
	// sec and secText cache the formatted start time's second (mu):
	// formatting a time costs more than the rest of a line.
	sec     int64
	secText []byte
	// flushAt is the buffered size that wakes Run before the interval:
	// WriteBytes, or half of MaxBuffer if that is smaller.
	flushAt int
	wake    chan struct{} // the buffer reached flushAt: write now
	dropped atomic.Uint64
	done    chan struct{} // closed when Run returns
}

// New returns a Logger; Run must be running for lines to be written.
func New(cfg Config) *Logger {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 1 << 20
	}
	if cfg.WriteBytes <= 0 {
		cfg.WriteBytes = 128 << 10
	}
	flushAt := min(cfg.WriteBytes, cfg.MaxBuffer/2)
	// Room for the lines that arrive while Run writes the other buffer.
	size := flushAt + flushAt/2
	return &Logger{cfg: cfg, buf: make([]byte, 0, size), spare: make([]byte, 0, size), flushAt: flushAt,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Dropped counts the lines dropped because the buffer was full.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Log formats e into the buffer. It never blocks on I/O.
func (l *Logger) Log(e *Entry) {
	l.mu.Lock()
	if len(l.buf) >= l.cfg.MaxBuffer {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	ts := l.timestamp(e.Start)
	if l.cfg.Format == JSON {
		l.buf = appendJSON(l.buf, e, ts)
	} else {
		l.buf = appendText(l.buf, e, ts)
	}
	full := len(l.buf) >= l.flushAt
	l.mu.Unlock()
	if full {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Run writes the buffered lines every FlushInterval (sooner when
// WriteBytes are buffered) until ctx is done, then writes what is left and returns.
func (l *Logger) Run(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return
		case <-t.C:
		case <-l.wake:
		}
		l.flush()
	}
}

func (l *Logger) flush() {
	l.mu.Lock()
	out := l.buf
	l.buf = l.spare[:0]
	l.mu.Unlock()
	if len(out) > 0 {
		l.cfg.W.Write(out) // a failing destination loses lines, never the proxy
	}
	l.spare = out[:0]
}

// timestamp returns t's second formatted (cached per second) and its
// milliseconds; l.mu is held.
func (l *Logger) timestamp(t time.Time) stamp {
	t = t.UTC()
	if sec := t.Unix(); sec != l.sec || l.secText == nil {
		l.sec = sec
		l.secText = t.AppendFormat(l.secText[:0], "2006-01-02T15:04:05.")
	}
	return stamp{second: l.secText, millis: t.Nanosecond() / 1e6}
}

// stamp is a start time ready to append.
type stamp struct {
	second []byte // "2006-01-02T15:04:05."
	millis int
}

func appendTime(dst []byte, ts stamp) []byte {
	dst = append(dst, ts.second...)
	m := ts.millis
	return append(dst, byte('0'+m/100), byte('0'+m/10%10), byte('0'+m%10), 'Z')
}

func appendDuration(dst []byte, d time.Duration) []byte {
	if d < 0 {
		return append(dst, '-')
	}
	return strconv.AppendInt(dst, d.Milliseconds(), 10)
}

func appendCount(dst []byte, n int64) []byte {
	if n < 0 {
		return append(dst, '-')
	}
	return strconv.AppendInt(dst, n, 10)
}

// appendField appends b, or "-" when empty; quotes and control bytes are
// escaped so a client cannot forge a line.
func appendField(dst, b []byte) []byte {
	if len(b) == 0 {
		return append(dst, '-')
	}
	return appendEscaped(dst, b)
}

func appendEscaped(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		// Fast path: a run of bytes that need no escaping (most fields
		// are plain ASCII) is appended at once.
		j := plainPrefix(b, i)
		dst = append(dst, b[i:j]...)
		if i = j; i == len(b) {
			break
		}
		c := b[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = append(dst, `\u00`...)
				dst = append(dst, hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, b[i:i+n]...)
		}
		i += n
	}
	return dst
}

// plainPrefix returns the end of the run of plain bytes starting at i,
// testing eight bytes at a time.
func plainPrefix(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if !plainWord(binary.LittleEndian.Uint64(b[i:])) {
			break
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasZero reports whether a byte of v is zero.
func hasZero(v uint64) bool { return (v-ones)&^v&highs != 0 }

// plainWord reports whether the eight bytes of w are all plain: none
// below 0x20, none with the high bit, none 0x7f, '"' or '\\'.
func plainWord(w uint64) bool {
	return w&highs == 0 && (w-0x20*ones)&^w&highs == 0 &&
		!hasZero(w^0x7f*ones) && !hasZero(w^'"'*ones) && !hasZero(w^'\\'*ones)
}

// plain marks the bytes appended as they are: printable ASCII other than
// '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hex = "0123456789abcdef"

// appendText appends Envoy's default format:
// [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
// %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
// %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
// "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
func appendText(dst []byte, e *Entry, ts stamp) []byte {
	dst = append(dst, '[')
	dst = appendTime(dst, ts)
	dst = append(dst, "] \""...)
	dst = appendField(dst, e.Method)
	dst = append(dst, ' ')
	dst = appendField(dst, e.Path)
	dst = append(dst, ' ')
	dst = appendField(dst, e.Protocol)
	dst = append(dst, "\" "...)
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	dst = append(dst, ' ')
	dst = AppendFlags(dst, e.Flags)
	dst = append(dst, ' ')
	dst = appendCount(dst, e.BytesReceived)
	dst = append(dst, ' ')
	dst = appendCount(dst, e.BytesSent)
	dst = append(dst, ' ')
	dst = appendDuration(dst, e.Duration)
	dst = append(dst, ' ')
	dst = appendDuration(dst, e.UpstreamServiceTime)
	for _, f := range [...][]byte{e.XForwardedFor, e.UserAgent, e.ReqID, e.Authority} {
		dst = append(dst, " \""...)
		dst = appendField(dst, f)
		dst = append(dst, '"')
	}
	dst = append(dst, " \""...)
	if e.UpstreamHost == "" {
		dst = append(dst, '-')
	} else {
		dst = append(dst, e.UpstreamHost...)
	}
	return append(dst, "\"\n"...)
}

func appendJSONString(dst []byte, key string, b []byte) []byte {
	dst = append(dst, ",\""...)
	dst = append(dst, key...)
	dst = append(dst, "\":"...)
	if b == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = appendEscaped(dst, b)
	return append(dst, '"')
}

func appendJSONInt(dst []byte, key string, n int64) []byte {
	dst = append(dst, ",\""...)
	dst = append(dst, key...)
	dst = append(dst, "\":"...)
	if n < 0 {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, n, 10)
}

func ms(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// appendJSON appends e as one JSON object (see JSON).
func appendJSON(dst []byte, e *Entry, ts stamp) []byte {
	dst = append(dst, `{"start_time":"`...)
	dst = appendTime(dst, ts)
	dst = append(dst, '"')
	dst = appendJSONString(dst, "method", e.Method)
	dst = appendJSONString(dst, "path", e.Path)
	dst = appendJSONString(dst, "protocol", e.Protocol)
	dst = appendJSONInt(dst, "response_code", int64(e.Code))
	dst = append(dst, `,"response_flags":"`...)
	dst = AppendFlags(dst, e.Flags)
	dst = append(dst, '"')
	dst = appendJSONInt(dst, "bytes_received", e.BytesReceived)
	dst = appendJSONInt(dst, "bytes_sent", e.BytesSent)
	dst = appendJSONInt(dst, "duration", ms(e.Duration))
	dst = appendJSONInt(dst, "upstream_service_time", ms(e.UpstreamServiceTime))
	dst = appendJSONString(dst, "x_forwarded_for", e.XForwardedFor)
	dst = appendJSONString(dst, "user_agent", e.UserAgent)
	dst = appendJSONString(dst, "request_id", e.ReqID)
	dst = appendJSONString(dst, "authority", e.Authority)
	dst = appendJSONString(dst, "upstream_host", strBytes(e.UpstreamHost))
	dst = appendJSONString(dst, "upstream_cluster", strBytes(e.UpstreamCluster))
	if e.GRPCStatus != nil {
		dst = appendJSONString(dst, "grpc_status", e.GRPCStatus)
	}
	return append(dst, "}\n"...)
}

// strBytes is s as bytes for appending, nil for "" (JSON null).
func strBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
