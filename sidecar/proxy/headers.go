package proxy

import (
	"bufio"
	"bytes"
	"math/rand/v2"
)

// tchar per RFC 9110 5.6.2.
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar[c] {
			return false
		}
	}
	return true
}

// validValue accepts field-content: VCHAR, obs-text, SP and HTAB
// (RFC 9110 5.5); CR, LF, NUL and other controls are rejected.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validTarget rejects controls, spaces and non-ASCII in a request target.
func validTarget(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII string s,
// ignoring the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated list contains tok (lower case).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if t = trimOWS(t); equalFold(t, tok) {
			return true
		}
		if i := bytes.IndexByte(t, ';'); i >= 0 && equalFold(trimOWS(t[:i]), tok) {
			return true
		}
	}
	return false
}

// Header classes for forwarding.
const (
	hdrForward   = iota // copy as is
	hdrHop              // hop-by-hop: drop (RFC 9110 7.6.1)
	hdrFraming          // Content-Length / Transfer-Encoding: re-emitted by framing
	hdrXFF              // X-Forwarded-For
	hdrForwarded        // X-Forwarded-Proto, X-Forwarded-Host, Forwarded
	hdrHost
)

// classify sorts a header name for forwarding, switching on length first
// so that the common case costs one or two comparisons.
func classify(name []byte) int {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return hdrHop
		}
	case 4:
		if equalFold(name, "host") {
			return hdrHost
		}
	case 7:
		if equalFold(name, "upgrade") {
			return hdrHop
		}
	case 9:
		if equalFold(name, "forwarded") {
			return hdrForwarded
		}
	case 10:
		if equalFold(name, "connection") || equalFold(name, "keep-alive") {
			return hdrHop
		}
	case 14:
		if equalFold(name, "content-length") {
			return hdrFraming
		}
	case 15:
		if equalFold(name, "x-forwarded-for") {
			return hdrXFF
		}
	case 16:
		if equalFold(name, "proxy-connection") {
			return hdrHop
		}
		if equalFold(name, "x-forwarded-host") {
			return hdrForwarded
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return hdrFraming
		}
		if equalFold(name, "x-forwarded-proto") {
			return hdrForwarded
		}
	case 18:
		if equalFold(name, "proxy-authenticate") {
			return hdrHop
		}
	case 19:
		if equalFold(name, "proxy-authorization") {
			return hdrHop
		}
	}
	return hdrForward
}

// namedIn reports whether name is one of the Connection tokens.
func namedIn(name []byte, toks [][]byte) bool {
	for _, t := range toks {
		if len(t) == len(name) && bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendRequestID appends a random UUIDv4. math/rand/v2's global source
// is per-thread ChaCha8: cheap, lock-free and allocation-free.
func appendRequestID(b []byte) []byte {
	var u [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		u[i], u[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// appendInt appends the decimal form of a non-negative n.
func appendInt(b []byte, n int64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// writeInt writes the decimal form of a non-negative n. It writes byte by
// byte because a slice handed to bufio.Writer.Write escapes to the heap.
func writeInt(w *bufio.Writer, n int64) {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	for _, c := range tmp[i:] {
		w.WriteByte(c)
	}
}

// writeHex writes n in lower-case hex, like writeInt.
func writeHex(w *bufio.Writer, n uint64) {
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = hexDigits[n&0xf]
		n >>= 4
		if n == 0 {
			break
		}
	}
	for _, c := range tmp[i:] {
		w.WriteByte(c)
	}
}
