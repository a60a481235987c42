package xdsclient

import (
	"maps"
	"time"
)

// Status is the client's state for the admin endpoint (/config_dump
// xds_status, snake_case like the rest of it).
type Status struct {
	// Connected is true while a stream is up and has received a response.
	Connected bool `json:"connected"`
	// Server is the ADS server in use, or being tried.
	Server string `json:"server"`
	// Mode is the protocol variant in use: "delta" or "sotw".
	Mode string `json:"mode"`
	// LastError is the last stream error, empty if none yet.
	LastError string `json:"last_error,omitempty"`
	// Types holds per-type state by type URL.
	Types map[string]TypeStatus `json:"types"`
}

// TypeStatus is the ACK/NACK state of one resource type.
type TypeStatus struct {
	// Version is the last ACKed version (version_info or, for delta,
	// system_version_info).
	Version string `json:"version"`
	// ACKTime is when Version was accepted.
	ACKTime time.Time `json:"ack_time"`
	// LastNACK is the error_detail of the last NACK, kept after later
	// ACKs; compare NACKTime with ACKTime to see whether it is current.
	LastNACK string `json:"last_nack,omitempty"`
	// NACKTime is when LastNACK was sent.
	NACKTime time.Time `json:"nack_time,omitzero"`
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
