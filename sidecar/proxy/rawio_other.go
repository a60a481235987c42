//go:build !unix

package proxy

import (
	"net"
	"syscall"
	"time"
)

// connWriter is the io.Writer under a connection's bufio.Writer: it
// waits for room under the write deadline wd arms (see rawio_unix.go).
type connWriter struct {
	nc    net.Conn
	early int // unused here
	wd    writeDeadline
}

func newConnWriter(nc net.Conn, writeTimeout time.Duration) *connWriter {
	w := &connWriter{}
	w.reset(nc, writeTimeout)
	return w
}

// reset makes w a fresh writer for nc (a pooled writer's next connection).
func (w *connWriter) reset(nc net.Conn, writeTimeout time.Duration) {
	*w = connWriter{nc: nc, wd: newWriteDeadline(writeTimeout)}
}

func (w *connWriter) Write(p []byte) (int, error) { return w.wd.write(w.nc, p) }

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

// fillMore goes on waiting for the first bytes of the answer after
// flushAndFill returned at a stall check's deadline.
func (uc *upConn) fillMore() error { return uc.br.fill(len(uc.br.buf)) }

func (uc *upConn) onReadable(uintptr) bool { return true }

// serveRaw is never called here (c.rc is nil).
func (c *conn) serveRaw(bool) rawStep { return rawDone }

func (c *conn) onClientReadable(uintptr) bool { return true }

// newTLSSock is nc here: upstream TLS reads use the plain path.
func newTLSSock(nc net.Conn) net.Conn { return nc }

// tlsSock is never made here.
type tlsSock struct {
	net.Conn
	short, probe, whole bool
	reads               int
}
