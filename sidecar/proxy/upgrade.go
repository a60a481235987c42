package proxy

import (
	"io"
	"net/http"
	"time"
)

// splice completes a protocol upgrade (WebSocket, RFC 6455): it relays the
// 101 response, then copies bytes both ways until either side closes or
// no byte could be written to the client for the write timeout. It always
// ends the client connection. The client-to-upstream copy runs in a
// goroutine owned by splice and joined before it returns.
func (c *conn) splice(res *http.Response) bool {
	up, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		return false
	}
	defer up.Close()
	c.bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	res.Header.Write(c.bw)
	c.bw.WriteString("\r\n")
	if c.bw.Flush() != nil {
		return false
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, &c.br)
		up.Close()
	}()
	// Through c.w: under the write timeout (this is the blocking path,
	// never inside a raw callback).
	io.Copy(c.w, up)
	c.nc.SetReadDeadline(time.Unix(1, 0)) // unblock the client reader
	<-done
	return false
}
