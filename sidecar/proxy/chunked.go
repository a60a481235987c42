package proxy

import (
	"bufio"
	"io"
)

// Limits on chunked framing (request smuggling and resource abuse).
const (
	maxChunkLine     = 4096      // one chunk-size line with extensions
	maxChunkExtTotal = 16 << 10  // extension bytes per message
	maxTrailerBytes  = 60 << 10  // trailer section
	maxTrailers      = 100       // trailer fields
	maxChunkSize     = 1<<62 - 1 // 15 hex digits fit comfortably
)

// writeError marks a failure writing to the destination of a copy, so the
// caller can tell a broken upstream from a broken client.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// copyN copies exactly n bytes from src to dst. dst is flushed before every
// blocking read of src, so streamed bodies are not held back.
func copyN(dst *bufio.Writer, src *bufReader, n int64) error {
	for n > 0 {
		if len(src.buffered()) == 0 {
			if err := dst.Flush(); err != nil {
				return writeError{err}
			}
			if err := src.fill(len(src.buf)); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		b := src.buffered()
		if int64(len(b)) > n {
			b = b[:n]
		}
		if _, err := dst.Write(b); err != nil {
			return writeError{err}
		}
		src.discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// copyUntilEOF copies src to dst until EOF; with chunk set it encodes each
// piece as a chunk and ends with the last chunk (an until-close response
// relayed to an HTTP/1.1 client that keeps its connection).
func copyUntilEOF(dst *bufio.Writer, src *bufReader, chunk bool) error {
	for {
		if len(src.buffered()) == 0 {
			if err := dst.Flush(); err != nil {
				return writeError{err}
			}
			if err := src.fill(len(src.buf)); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
		}
		b := src.buffered()
		if err := writeChunk(dst, b, chunk); err != nil {
			return writeError{err}
		}
		src.discard(len(b))
	}
	if chunk {
		if _, err := dst.WriteString("0\r\n\r\n"); err != nil {
			return writeError{err}
		}
	}
	return nil
}

func writeChunk(dst *bufio.Writer, b []byte, chunk bool) error {
	if chunk {
		writeHex(dst, uint64(len(b)))
		dst.WriteString("\r\n")
	}
	dst.Write(b)
	if chunk {
		_, err := dst.WriteString("\r\n")
		return err
	}
	return nil
}

// copyChunked decodes a chunked body from src strictly (RFC 9112 7.1) and
// writes it to dst, re-encoded canonically (extensions dropped, trailers
// kept) when rechunk is set, or decoded otherwise. Malformed framing is
// errBadChunk; nothing after it is forwarded.
func copyChunked(dst *bufio.Writer, src *bufReader, rechunk bool) error {
	extTotal := 0
	for {
		line, err := src.readLine(maxChunkLine)
		if err == errLineTooLong {
			return errBadChunk
		} else if err != nil {
			return err
		}
		size, ext, ok := parseChunkLine(line)
		if extTotal += ext; !ok || extTotal > maxChunkExtTotal {
			return errBadChunk
		}
		if size == 0 {
			return copyTrailers(dst, src, rechunk)
		}
		if rechunk {
			writeHex(dst, uint64(size))
			dst.WriteString("\r\n")
		}
		if err := copyN(dst, src, size); err != nil {
			return err
		}
		if err := expectCRLF(src); err != nil {
			return err
		}
		if rechunk {
			if _, err := dst.WriteString("\r\n"); err != nil {
				return writeError{err}
			}
		}
	}
}

func expectCRLF(src *bufReader) error {
	line, err := src.readLine(2)
	if err == errLineTooLong || err == nil && string(line) != "\r\n" {
		return errBadChunk
	}
	return err
}

// parseChunkLine parses "hex-size [BWS ; ext...] CRLF". ext is the number
// of extension bytes, counted against a per-message budget.
func parseChunkLine(line []byte) (size int64, ext int, ok bool) {
	n := len(line)
	if n < 3 || line[n-2] != '\r' {
		return 0, 0, false // includes bare LF
	}
	l := line[:n-2]
	i := 0
	for ; i < len(l); i++ {
		v := unhex(l[i])
		if v < 0 {
			break
		}
		if i == 15 {
			return 0, 0, false
		}
		size = size<<4 | int64(v)
	}
	if i == 0 {
		return 0, 0, false
	}
	rest := trimOWS(l[i:])
	if len(rest) == 0 {
		return size, 0, len(l[i:]) == 0
	}
	if rest[0] != ';' || !validValue(rest) {
		return 0, 0, false
	}
	return size, len(rest), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// copyTrailers reads the trailer section after the last chunk, validating
// each field like a header, and forwards it when rechunk is set.
func copyTrailers(dst *bufio.Writer, src *bufReader, rechunk bool) error {
	if rechunk {
		dst.WriteString("0\r\n")
	}
	total := 0
	for n := 0; ; n++ {
		line, err := src.readLine(maxTrailerBytes)
		if err == errLineTooLong {
			return errBadChunk
		} else if err != nil {
			return err
		}
		if total += len(line); total > maxTrailerBytes || n > maxTrailers {
			return errBadChunk
		}
		if string(line) == "\r\n" {
			break
		}
		if !validFieldLine(line) {
			return errBadChunk
		}
		if rechunk {
			dst.Write(line)
		}
	}
	if rechunk {
		if _, err := dst.WriteString("\r\n"); err != nil {
			return writeError{err}
		}
	}
	return nil
}

// validFieldLine checks "name: value CRLF" as parseRequest would.
func validFieldLine(line []byte) bool {
	n := len(line)
	if n < 3 || line[n-2] != '\r' {
		return false
	}
	l := line[:n-2]
	if l[0] == ' ' || l[0] == '\t' {
		return false
	}
	for i, c := range l {
		if c == ':' {
			return i > 0 && isToken(l[:i]) && validValue(l[i+1:])
		}
	}
	return false
}
