package sidecar

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
)

// Gossip keys from the control plane (issue 14). A proxy with an identity
// asks the control plane's GossipService (xDS port, mTLS with its SVID)
// for the gossip keyring and a ticket binding its gossip name to its
// service, joins gossip with them, and then polls every
// gossipFollowInterval to follow key rotations and renew the ticket. The
// key never appears in argv or a manifest.

// gossipFollowInterval is how often a member with keys from the control
// plane re-reads them: a rotation step reaches every member within it.
const gossipFollowInterval = 10 * time.Second

// gossipKeysWait bounds how long Run waits for the first keys at start;
// then the keys kept in --state-dir from the last run are used, so a proxy
// restarted while the control plane is down rejoins gossip (static
// stability), as it comes back with its SVID.
const gossipKeysWait = 3 * time.Second

// gossipKeysFile is the file in --state-dir (mode 0600) holding the last
// GetGossipKeysResponse.
const gossipKeysFile = "gossip-keys.pb"

// errGossipNotAuthenticated means the control plane does not hand out
// gossip keys (its gossip is on loopback or --gossip-auth off).
var errGossipNotAuthenticated = errors.New("the control plane's gossip is not authenticated")

// gossipName is this proxy's gossip node name.
func (p *Proxy) gossipName() string {
	if p.cfg.Mode == ModeGateway {
		return "gateway-" + p.listeners[0].l.Addr().String()
	}
	return p.cfg.InstanceID
}

// fetchGossipKeys calls GetGossipKeys once.
func (p *Proxy) fetchGossipKeys(ctx context.Context) (*identityv1.GetGossipKeysResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := identityv1.NewGossipServiceClient(p.lrsConn).GetGossipKeys(ctx, &identityv1.GetGossipKeysRequest{MemberName: p.gossipName()})
	switch status.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition, codes.Unimplemented:
		return nil, errGossipNotAuthenticated
	default:
		return nil, err
	}
	if len(resp.GetKeys()) == 0 || len(resp.GetTicket()) == 0 {
		return nil, errors.New("the control plane sent no gossip keys or no ticket")
	}
	return resp, nil
}

// startGossipWithIdentity is startGossip for a proxy with an identity: the
// keyring and ticket come from the control plane when it offers them.
// Without an answer within gossipKeysWait it uses the keys of the last run
// (--state-dir), else starts as without an identity (--gossip-key or
// plain) and says so.
func (p *Proxy) startGossipWithIdentity(ctx context.Context) error {
	wait, cancel := context.WithTimeout(ctx, gossipKeysWait)
	defer cancel()
	var resp *identityv1.GetGossipKeysResponse
	var err error
	for {
		resp, err = p.fetchGossipKeys(wait)
		if err == nil || errors.Is(err, errGossipNotAuthenticated) || wait.Err() != nil {
			break
		}
		select {
		case <-wait.Done():
		case <-time.After(time.Second):
		}
	}
	switch {
	case errors.Is(err, errGossipNotAuthenticated):
		p.removeGossipKeys()
		return p.startGossip(nil)
	case err != nil:
		if resp = p.loadGossipKeys(); resp == nil {
			p.log.Warn("no gossip keys from the control plane and none kept in --state-dir; joining gossip as without an identity", "err", err)
			return p.startGossip(nil)
		}
		p.log.Warn("control plane unreachable: joining gossip with the keys of the last run; following rotations once it answers", "err", err)
	default:
		p.saveGossipKeys(resp)
	}
	if p.cfg.GossipKey != "" {
		p.log.Warn("--gossip-key ignored: the control plane hands out the gossip keyring")
	}
	if err := p.startGossip(resp); err != nil {
		return err
	}
	p.gossipTicketExp = resp.GetTicketExpiresAt().AsTime()
	return nil
}

func (p *Proxy) gossipKeysPath() string {
	if p.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(p.cfg.StateDir, gossipKeysFile)
}

// saveGossipKeys keeps resp for the next start; a failure only costs that.
func (p *Proxy) saveGossipKeys(resp *identityv1.GetGossipKeysResponse) {
	path := p.gossipKeysPath()
	if path == "" {
		return
	}
	b, err := proto.Marshal(resp)
	if err == nil {
		err = writeFile0600(path, b)
	}
	if err != nil {
		p.log.Warn("could not keep the gossip keys in --state-dir", "err", err)
	}
}

func (p *Proxy) loadGossipKeys() *identityv1.GetGossipKeysResponse {
	path := p.gossipKeysPath()
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var resp identityv1.GetGossipKeysResponse
	if proto.Unmarshal(b, &resp) != nil || len(resp.GetKeys()) == 0 {
		return nil
	}
	return &resp
}

func (p *Proxy) removeGossipKeys() {
	if path := p.gossipKeysPath(); path != "" {
		os.Remove(path)
	}
}

// writeFile0600 replaces path atomically with data, readable by the owner
// only (it holds the gossip keys).
func writeFile0600(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ticketKeys parses GetGossipKeysResponse.ticket_keys.
func ticketKeys(der [][]byte) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for _, d := range der {
		k, err := x509.ParsePKIXPublicKey(d)
		if err != nil {
			return nil, fmt.Errorf("sidecar: gossip ticket key: %w", err)
		}
		out = append(out, k)
	}
	return out, nil
}

// followGossipKeys polls the control plane until ctx ends, applying key
// rotations (install new keys, use the new primary, remove dropped ones)
// and renewing the ticket at half its lifetime.
func (p *Proxy) followGossipKeys(ctx context.Context) error {
	t := time.NewTicker(gossipFollowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		resp, err := p.fetchGossipKeys(ctx)
		if err != nil {
			p.log.Warn("gossip keys: could not reach the control plane; keeping the current keyring", "err", err)
			continue
		}
		if err := p.applyGossipKeys(resp); err != nil {
			p.log.Warn("gossip keys: applying the control plane's keyring", "err", err)
			continue
		}
		p.saveGossipKeys(resp)
	}
}

// applyGossipKeys makes the member's keyring, ticket and ticket keys the
// control plane's.
func (p *Proxy) applyGossipKeys(resp *identityv1.GetGossipKeysResponse) error {
	m, want := p.member, resp.GetKeys()
	have := m.Keys()
	for _, k := range want {
		if !slices.ContainsFunc(have, func(h []byte) bool { return bytes.Equal(h, k) }) {
			if err := m.InstallKey(k); err != nil {
				return err
			}
			p.log.Info("gossip key installed", "fingerprint", keyFingerprint(k))
		}
	}
	if len(have) == 0 || !bytes.Equal(have[0], want[0]) {
		if err := m.UseKey(want[0]); err != nil {
			return err
		}
		p.log.Info("gossip primary key changed", "fingerprint", keyFingerprint(want[0]))
	}
	for _, k := range have {
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, k) }) {
			if err := m.RemoveKey(k); err != nil {
				return err
			}
			p.log.Info("gossip key removed", "fingerprint", keyFingerprint(k))
		}
	}
	tk, err := ticketKeys(resp.GetTicketKeys())
	if err != nil {
		return err
	}
	m.SetTicketKeys(tk)
	// Renew at half the lifetime a fresh ticket has.
	if exp := resp.GetTicketExpiresAt().AsTime(); time.Until(p.gossipTicketExp) < time.Until(exp)/2 {
		if err := m.SetTicket(resp.GetTicket()); err != nil {
			return err
		}
		p.gossipTicketExp = exp
	}
	return nil
}

// keyFingerprint names a key in logs without revealing it.
func keyFingerprint(k []byte) string { return keyadmin.Fingerprint(k) }
