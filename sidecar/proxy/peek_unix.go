//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// peerClosed reports whether an idle upstream connection can no longer
// carry a request: the upstream closed it (EOF or reset pending: a crashed
// or restarted app, or its keep-alive timeout) or sent something nobody
// asked for. It peeks without blocking, like nginx's keepalive cache
// checks its idle connections, so a request that cannot be replayed (a
// POST) is never written to a connection the app had already left, where
// its failure would look like a reset in flight.
func (uc *upConn) peerClosed() bool {
	if len(uc.br.buffered()) > 0 {
		return true
	}
	if uc.rc == nil {
		return false
	}
	closed := false
	var b [1]byte
	// Control, not Read: an idle connection's read deadline may have
	// passed (it is armed lazily, see upConn.armRead), which a raw Read
	// would report before calling back.
	err := uc.rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n > 0 || !errors.Is(err, syscall.EAGAIN)
	})
	return closed || err != nil
}
