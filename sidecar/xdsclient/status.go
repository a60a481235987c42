package xdsclient

import (
	"maps"
	"time"
)

// Status is the client's state for the admin endpoint.
type Status struct {
	// Connected is true while a stream is up and has received a response.
	Connected bool
	// Server is the ADS server in use, or being tried.
	Server string
	// Mode is the protocol variant in use: "delta" or "sotw".
	Mode string
	// LastError is the last stream error, empty if none yet.
	LastError string
	// Types holds per-type state by type URL.
	Types map[string]TypeStatus
}

// TypeStatus is the ACK/NACK state of one resource type.
type TypeStatus struct {
	// Version is the last ACKed version (version_info or, for delta,
	// system_version_info).
	Version string
	// ACKTime is when Version was accepted.
	ACKTime time.Time
	// LastNACK is the error_detail of the last NACK, kept after later
	// ACKs; compare NACKTime with ACKTime to see whether it is current.
	LastNACK string
	// NACKTime is when LastNACK was sent.
	NACKTime time.Time
}

// Status returns a copy of the client's current status. It is safe for
// concurrent use and does not block on I/O.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Types = maps.Clone(c.status.Types)
	return s
}

// updateStatus applies f to the status under c.mu.
func (c *Client) updateStatus(f func(s *Status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.status)
}

func (c *Client) setConnected(up bool, mode Mode) {
	c.updateStatus(func(s *Status) {
		s.Connected = up
		s.Mode = mode.String()
	})
	if up {
		c.m.connected.Set(1)
	} else {
		c.m.connected.Set(0)
	}
}

func (c *Client) recordACK(typeURL, version string) {
	c.m.responses.WithLabelValues(typeLabel(typeURL), "ack").Inc()
	c.updateStatus(func(s *Status) {
		ts := s.Types[typeURL]
		ts.Version, ts.ACKTime = version, time.Now()
		s.Types[typeURL] = ts
	})
}

func (c *Client) recordNACK(typeURL string, err error) {
	c.m.responses.WithLabelValues(typeLabel(typeURL), "nack").Inc()
	c.updateStatus(func(s *Status) {
		ts := s.Types[typeURL]
		ts.LastNACK, ts.NACKTime = err.Error(), time.Now()
		s.Types[typeURL] = ts
	})
}
