//go:build !unix

package proxy

// peerClosed cannot peek here; a stale connection is found on use.
func (uc *upConn) peerClosed() bool { return len(uc.br.buffered()) > 0 }
