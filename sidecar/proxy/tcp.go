package proxy

import (
	"io"
	"net"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// serveTCP proxies the client connection as raw bytes to an endpoint of a
// TCP cluster, retrying connect failures on other endpoints. Ring hash
// and Maglev clusters hash the client IP.
func (c *conn) serveTCP(b *binding, cl *route.Cluster) {
	cs, hosts := b.clusters[cl.Index], b.hosts[cl.Index]
	c.info = lb.PickInfo{}
	c.info.SetHash(lb.HashBytes(c.peerIP))
	a := attempt{cl: cl, cs: cs, hosts: hosts}
	var up net.Conn
	var e *lb.Endpoint
	for range 1 + c.p.cfg.ConnectRetries {
		var h *host
		e, h = c.pick(&a)
		if h == nil || c.triedHost(h) {
			break
		}
		c.markTried(h)
		h.countRequest(c.p.metrics)
		uc, err := c.p.dial(h, e, cl.ConnectTimeout, time.Time{})
		if err == nil {
			up = uc.nc
			h.onSuccess()
			break
		}
		h.onFailure(&cl.Outlier, len(hosts))
	}
	if up == nil {
		cs.codes.inc(502)
		return
	}
	e.Begin()
	defer e.End()
	c.nc.SetReadDeadline(time.Time{})
	pipe(c.nc, up)
	cs.codes.inc(200)
}

// pipe copies both ways, half-closing each direction when its source ends,
// and returns when both directions are done. The upstream-to-client copy
// runs in a goroutine owned and joined by pipe.
func pipe(client, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(client, up)
		closeWrite(client)
	}()
	if _, err := io.Copy(up, client); err != nil {
		up.Close()
		client.Close()
	}
	closeWrite(up)
	<-done
	up.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
