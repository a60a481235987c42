package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
)

// session is the state of one ADS stream. It is owned by the Run
// goroutine; only recvLoop runs elsewhere, and it talks over channels.
type session struct {
	c    *Client
	v    variant
	mode Mode
	// got is set by the first response: the stream is healthy.
	got bool
	// lastNACK is the last NACK sent per type, to spot repeats.
	lastNACK map[string]nackKey
	// pendingNACK holds repeat NACKs delayed by Config.NACKRetryDelay;
	// nackTimer sends them. A newer response of the type replaces it.
	pendingNACK map[string]*response
	nackTimer   timer
}

type nackKey struct{ version, err string }

// errServerClosed reports a stream the server ended with an OK status.
var errServerClosed = errors.New("xdsclient: stream closed by server")

// runStream runs one ADS stream until it fails or ctx is done, and reports
// whether it received any response. The stream's receive goroutine has
// exited when runStream returns.
func (c *Client) runStream(ctx context.Context, conn *grpc.ClientConn, mode Mode) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: defers run last-in first-out
	defer cancel()
	v, err := openVariant(ctx, conn, mode, c.cfg.Node)
	if err != nil {
		return false, err
	}
	s := &session{c: c, v: v, mode: mode, lastNACK: map[string]nackKey{}, pendingNACK: map[string]*response{}}
	defer s.nackTimer.stop()
	// respCh carries decoded responses from recvLoop; errCh its final error.
	respCh := make(chan *response)
	errCh := make(chan error, 1)
	wg.Go(func() { recvLoop(ctx, v, respCh, errCh) })
	err = s.syncSubscriptions()
	if err == nil {
		err = s.loop(ctx, respCh, errCh)
	}
	return s.got, streamErr(ctx, err, errCh)
}

// recvLoop turns the blocking Recv into a channel. It exits on a stream
// error (sent on errCh, capacity 1) or when ctx is done.
func recvLoop(ctx context.Context, v variant, respCh chan<- *response, errCh chan<- error) {
	for {
		r, err := v.recv()
		if errors.Is(err, io.EOF) {
			// Not io.EOF, which streamErr reads as "ask Recv".
			err = errServerClosed
		}
		if err != nil {
			errCh <- err
			return
		}
		select {
		case respCh <- r:
		case <-ctx.Done():
			return
		}
	}
}

// streamErr returns the stream's status for a failed Send: io.EOF means
// the server ended the stream and Recv reports why.
func streamErr(ctx context.Context, err error, errCh <-chan error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	select {
	case e := <-errCh:
		return e
	case <-ctx.Done():
		return err
	}
}

// loop is the stream's select loop; each case calls a named method.
func (s *session) loop(ctx context.Context, respCh <-chan *response, errCh <-chan error) error {
	c := s.c
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err = <-errCh:
			return err
		case r := <-respCh:
			err = s.handle(r)
		case <-s.nackTimer.C():
			err = s.flushNACKs()
		case <-c.settle.C():
			c.settleExpired()
		case <-c.initial.C():
			c.deliverSaved()
		}
		if err != nil {
			return err
		}
	}
}

// handle validates r, then NACKs it or applies and ACKs it, updates the
// RDS/EDS subscriptions and publishes a snapshot if one is ready.
func (s *session) handle(r *response) error {
	c := s.c
	if !s.got {
		s.got = true
		c.setConnected(true, s.mode)
	}
	delete(s.pendingNACK, r.typeURL)
	if r.err == nil {
		r.err = c.check(r.u)
	}
	if r.err != nil {
		return s.reject(r)
	}
	c.st.apply(r.u)
	c.st.types[r.typeURL].synced = true
	delete(s.lastNACK, r.typeURL)
	if err := s.v.ack(r); err != nil {
		return err
	}
	c.recordACK(r.typeURL, r.version)
	if err := s.syncSubscriptions(); err != nil {
		return err
	}
	c.publish()
	return nil
}

// check drops resources of r that were not subscribed to (the protocol lets
// a client ignore them), then runs the consumer's Validate hook.
func (c *Client) check(u *update) error {
	if u.typeURL == RouteType || u.typeURL == EndpointType {
		want := c.st.wanted(u.typeURL)
		for name := range u.upserts {
			if !want[name] {
				delete(u.upserts, name)
			}
		}
	}
	if c.cfg.Validate == nil {
		return nil
	}
	if err := c.cfg.Validate(u.typeURL, u.upserts); err != nil {
		return fmt.Errorf("rejected by sidecar: %w", err)
	}
	return nil
}

// reject NACKs r, keeping the type's last good resources. A NACK repeating
// the previous one (same version and reason) is delayed, because a server
// may re-send a rejected SotW response immediately.
func (s *session) reject(r *response) error {
	key := nackKey{version: r.version, err: r.err.Error()}
	if s.lastNACK[r.typeURL] == key {
		s.pendingNACK[r.typeURL] = r
		s.nackTimer.arm(s.c.cfg.NACKRetryDelay)
		return nil
	}
	s.lastNACK[r.typeURL] = key
	s.c.log.Warn("xds: rejected resources", "type", typeLabel(r.typeURL), "version", r.version, "err", r.err)
	return s.sendNACK(r)
}

func (s *session) sendNACK(r *response) error {
	s.c.recordNACK(r.typeURL, r.err)
	return s.v.nack(r, r.err)
}

// flushNACKs sends the delayed NACKs.
func (s *session) flushNACKs() error {
	s.nackTimer.stop()
	for t, r := range s.pendingNACK {
		delete(s.pendingNACK, t)
		if err := s.sendNACK(r); err != nil {
			return err
		}
	}
	return nil
}

// syncSubscriptions brings every type's subscription in step with what
// the held listeners and clusters reference, dropping what is no longer
// referenced.
func (s *session) syncSubscriptions() error {
	st := s.c.st
	for _, t := range subscribedTypes {
		want := st.wanted(t)
		st.prune(t, want)
		if err := s.v.subscribe(t, want, st.held(t, want)); err != nil {
			return err
		}
	}
	return nil
}
