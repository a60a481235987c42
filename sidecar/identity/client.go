// Package identity is a workload's identity client: it generates an ECDSA
// P-256 key in-process, exchanges a join token for an X.509-SVID with the
// control plane's IdentityService (a CSR; the key never travels), keeps the
// SVID and trust bundle in --state-dir so a restart while the control
// plane is down comes back with them, and renews at half the lifetime with
// the current SVID (mTLS, no token). The Client is a go-spiffe x509svid
// and x509bundle Source, so tlsconfig builds TLS configs that follow
// rotation without restarting listeners.
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/metric"
)

// Config configures New.
type Config struct {
	// Server is the control plane's xDS address (host:port), which also
	// serves IdentityService over TLS. Required.
	Server string
	// Token is the join token; it may be empty when StateDir holds a valid
	// SVID (renewal needs no token).
	Token string
	// ID, if set, is the SPIFFE ID the CSR asks for; the control plane
	// refuses it (PermissionDenied) unless the token or SVID is for it.
	// Zero asks for whatever identity the token is bound to.
	ID string
	// Instance names the workload instance to the control plane (shown by
	// `shoal status`); optional.
	Instance string
	// CABundle optionally pins the control plane's roots (--ca-bundle);
	// without it the token's root fingerprint pins the root.
	CABundle []*x509.Certificate
	// StateDir keeps the key, SVID and bundle (key 0600) across restarts;
	// empty keeps them in memory only.
	StateDir string
	// Files names the files in StateDir; zero means StateFiles.
	Files Files
	// OnRotate, if set, is called (serially, from the goroutine that
	// obtained it) after a new SVID is in place. It must not block long.
	OnRotate func(*x509svid.SVID)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives shoal_identity_* metrics; nil means none.
	Registerer metric.Registerer
}

// Client holds a workload's current SVID and trust bundle. Create it with
// New, get the first SVID with Start, keep it fresh with Run. Its Source
// methods are safe for concurrent use and never block.
type Client struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	m   *metrics

	svid   atomic.Pointer[x509svid.SVID]
	bundle atomic.Pointer[x509bundle.Bundle]

	// signMu serialises sign calls (Start, Run).
	signMu sync.Mutex
}

var (
	_ x509svid.Source   = (*Client)(nil)
	_ x509bundle.Source = (*Client)(nil)
)

// New validates cfg and returns a Client without an SVID.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" {
		return nil, errors.New("identity: the control plane address (--xds) is required")
	}
	if cfg.Token != "" {
		if _, err := identity.ParseToken(cfg.Token); err != nil {
			return nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Files == (Files{}) {
		cfg.Files = StateFiles
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, log: cfg.Logger.With("component", "identity"), now: time.Now, m: m}, nil
}

// Start gets the first SVID: the one in StateDir while it is valid (the
// control plane may be down), else a new one for the join token, retried
// with backoff until ctx ends.
func (c *Client) Start(ctx context.Context) error {
	if c.cfg.StateDir != "" {
		svid, bundle, err := loadFiles(c.cfg.StateDir, c.cfg.Files)
		switch {
		case err == nil && c.now().Before(svid.Certificates[0].NotAfter):
			c.install(svid, bundle)
			c.log.Info("identity loaded from the state dir", "id", svid.ID.String(), "expires", svid.Certificates[0].NotAfter)
			return nil
		case err == nil:
			c.log.Info("the SVID in the state dir expired; asking for a new one", "expired", svid.Certificates[0].NotAfter)
		case !errors.Is(err, os.ErrNotExist):
			c.log.Warn("ignoring the identity in the state dir", "err", err)
		}
	}
	if c.cfg.Token == "" {
		return errors.New("identity: no valid SVID in the state dir and no join token (--join-token-file or $SHOAL_JOIN_TOKEN)")
	}
	delay := 250 * time.Millisecond
	for {
		err := c.renew(ctx)
		if err == nil {
			return nil
		}
		if isPermanent(err) {
			return err
		}
		c.log.Warn("getting an SVID failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("identity: no SVID: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// Run renews the SVID at half its lifetime (with jitter) until ctx ends;
// a failed renewal is retried sooner, while the SVID is still valid and
// after it expired. Start must have succeeded.
func (c *Client) Run(ctx context.Context) error {
	for {
		wait := c.nextRenewal()
		c.m.expiry.Set(float64(c.svid.Load().Certificates[0].NotAfter.Unix()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := c.renew(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("SVID renewal failed; will retry", "err", err, "expires", c.svid.Load().Certificates[0].NotAfter)
		}
	}
}

// nextRenewal is the wait until the next renewal attempt: half the
// lifetime (minus up to 10% jitter, so that a fleet started together does
// not renew together); after a failure, a tenth of what remains (at least
// a second).
func (c *Client) nextRenewal() time.Duration {
	leaf := c.svid.Load().Certificates[0]
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	half := leaf.NotBefore.Add(life / 2)
	now := c.now()
	if now.Before(half) {
		jitter := time.Duration(mrand.Int64N(int64(life/10) + 1))
		return max(half.Sub(now)-jitter, time.Second)
	}
	return max(leaf.NotAfter.Sub(now)/10, time.Second)
}

// Renew gets a new SVID now (Run does it at half the lifetime): with the
// current one over mTLS when it has one, else with the token.
func (c *Client) Renew(ctx context.Context) error { return c.renew(ctx) }

func (c *Client) renew(ctx context.Context) error {
	c.signMu.Lock()
	defer c.signMu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cur := c.svid.Load()
	if cur != nil && !c.now().Before(cur.Certificates[0].NotAfter) {
		cur = nil // an expired SVID cannot authenticate
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	svid, bundle, err := c.sign(sctx, key, cur)
	if err != nil {
		c.m.renewals.WithLabelValues("error").Inc()
		return err
	}
	c.m.renewals.WithLabelValues("ok").Inc()
	if c.cfg.StateDir != "" {
		if err := writeFiles(c.cfg.StateDir, c.cfg.Files, svid, bundle); err != nil {
			c.log.Warn("could not keep the SVID in the state dir", "err", err)
		}
	}
	c.install(svid, bundle)
	c.log.Info("SVID obtained", "id", svid.ID.String(), "serial", svid.Certificates[0].SerialNumber.Text(16),
		"expires", svid.Certificates[0].NotAfter)
	if c.cfg.OnRotate != nil {
		c.cfg.OnRotate(svid)
	}
	return nil
}

func (c *Client) install(svid *x509svid.SVID, bundle *x509bundle.Bundle) {
	c.bundle.Store(bundle)
	c.svid.Store(svid)
	c.m.expiry.Set(float64(svid.Certificates[0].NotAfter.Unix()))
}

// ID returns the workload's SPIFFE ID; zero before Start.
func (c *Client) ID() spiffeid.ID {
	if s := c.svid.Load(); s != nil {
		return s.ID
	}
	return spiffeid.ID{}
}

// Expiry returns the current SVID's NotAfter; zero before Start.
func (c *Client) Expiry() time.Time {
	if s := c.svid.Load(); s != nil {
		return s.Certificates[0].NotAfter
	}
	return time.Time{}
}

// GetX509SVID implements x509svid.Source: the current SVID.
func (c *Client) GetX509SVID() (*x509svid.SVID, error) {
	s := c.svid.Load()
	if s == nil {
		return nil, errors.New("identity: no SVID yet")
	}
	return s, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (c *Client) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b := c.bundle.Load()
	if b == nil || b.TrustDomain() != td {
		return nil, fmt.Errorf("identity: no trust bundle for %q", td)
	}
	return b, nil
}
