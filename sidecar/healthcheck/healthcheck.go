// Package healthcheck checks the sidecar's local app: an HTTP GET of a path
// (2xx/3xx is healthy) or a TCP connect, at an interval, with rise and fall
// thresholds so a single slow answer does not flap the app's health.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Config configures a Checker. Address is required.
type Config struct {
	// Address is the app's host:port.
	Address string
	// Path is the HTTP path to GET; empty means a TCP connect check.
	Path string
	// Interval between checks; zero means 250ms.
	Interval time.Duration
	// Timeout of one check; zero means Interval (at most 1s).
	Timeout time.Duration
	// Rise is how many consecutive passes make an unhealthy app healthy;
	// zero means 1 (come back fast).
	Rise int
	// Fall is how many consecutive failures make a healthy app unhealthy;
	// zero means 2.
	Fall int
	// OnChange is called serially from Run's goroutine whenever the health
	// changes, and once with the first verdict. It must not block for long.
	OnChange func(healthy bool, reason string)
}

// Checker runs checks. Its Healthy method is safe for concurrent use.
type Checker struct {
	cfg     Config
	client  *http.Client
	healthy atomic.Bool
}

// New validates cfg and fills defaults.
func New(cfg Config) (*Checker, error) {
	if cfg.Address == "" {
		return nil, errors.New("healthcheck: Config.Address is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(cfg.Interval, time.Second)
	}
	if cfg.Rise <= 0 {
		cfg.Rise = 1
	}
	if cfg.Fall <= 0 {
		cfg.Fall = 2
	}
	tr := &http.Transport{MaxIdleConns: 1, IdleConnTimeout: 10 * cfg.Interval, DisableCompression: true}
	return &Checker{cfg: cfg, client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Healthy reports the last verdict (false before the first one).
func (c *Checker) Healthy() bool { return c.healthy.Load() }

// Run checks until ctx is done and returns ctx.Err().
func (c *Checker) Run(ctx context.Context) error {
	defer c.client.CloseIdleConnections()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	var known bool
	var passes, fails int
	for {
		err := c.check(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			passes, fails = passes+1, 0
		} else {
			passes, fails = 0, fails+1
		}
		switch {
		case !known:
			known = true
			c.set(err == nil, err)
		case err == nil && !c.Healthy() && passes >= c.cfg.Rise:
			c.set(true, nil)
		case err != nil && c.Healthy() && fails >= c.cfg.Fall:
			c.set(false, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Checker) set(healthy bool, err error) {
	c.healthy.Store(healthy)
	reason := "passing"
	if err != nil {
		reason = err.Error()
	}
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(healthy, reason)
	}
}

func (c *Checker) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if c.cfg.Path == "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.cfg.Address)
		if err != nil {
			return fmt.Errorf("tcp connect: %w", err)
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.cfg.Address+c.cfg.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "shoal-healthcheck")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("http check: %s answered %d", c.cfg.Path, resp.StatusCode)
	}
	return nil
}
