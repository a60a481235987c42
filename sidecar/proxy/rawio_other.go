//go:build !unix

package proxy

import (
	"net"
	"syscall"
)

// connWriter is the io.Writer under a connection's bufio.Writer.
type connWriter struct {
	net.Conn
	early int // unused here
}

func newConnWriter(nc net.Conn) *connWriter { return &connWriter{Conn: nc} }

// rawConn is nil here: reads and writes use the plain net.Conn path.
func rawConn(net.Conn) syscall.RawConn { return nil }

// flushAndFill writes the buffered request and reads the first bytes of
// the answer into br (see rawio_unix.go).
func (uc *upConn) flushAndFill() (werr, rerr error) {
	if err := uc.bw.Flush(); err != nil {
		return err, nil
	}
	return nil, uc.br.fill(len(uc.br.buf))
}

func (uc *upConn) onReadable(uintptr) bool { return true }

// serveRaw is never called here (c.rc is nil).
func (c *conn) serveRaw(bool) rawStep { return rawDone }

func (c *conn) onClientReadable(uintptr) bool { return true }
