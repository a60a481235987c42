package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/registry"
)

// APITokensPrefix holds one key per management API bearer token,
// APITokensPrefix + <hash of the secret>, attached to a lease that ends
// with the token. The secret itself is never stored.
const APITokensPrefix = registry.Prefix + "apitokens/"

// API roles of bearer tokens.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

type apiTokenRecord struct {
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateAPIToken stores a new bearer token with role for ttl.
func (s *TokenStore) CreateAPIToken(ctx context.Context, ca *CA, role string, ttl time.Duration) (identity.Token, time.Time, error) {
	switch {
	case role != RoleAdmin && role != RoleViewer:
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: role %q: want admin or viewer", role)
	case ttl < time.Second || ttl > MaxTokenTTL:
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: ttl %s is outside 1s-%s", ttl, MaxTokenTTL)
	}
	tok := identity.NewToken(ca.Root())
	exp := s.now().Add(ttl).Truncate(time.Second)
	rec, _ := json.Marshal(apiTokenRecord{Role: role, ExpiresAt: exp})
	lease, err := s.cli.Grant(ctx, int64(ttl/time.Second)+1)
	if err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: token lease: %w", err)
	}
	if _, err := s.cli.Put(ctx, APITokensPrefix+tok.Hash(), string(rec), clientv3.WithLease(lease.ID)); err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: store token: %w", err)
	}
	return tok, exp, nil
}

// APITokenRole returns the role of a bearer token, or ErrTokenUnknown for
// a token that is malformed, expired or was never made.
func (s *TokenStore) APITokenRole(ctx context.Context, token string) (string, error) {
	tok, err := identity.ParseToken(token)
	if err != nil {
		return "", ErrTokenUnknown
	}
	resp, err := s.cli.Get(ctx, APITokensPrefix+tok.Hash())
	if err != nil {
		return "", fmt.Errorf("identity: read token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrTokenUnknown
	}
	var rec apiTokenRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return "", fmt.Errorf("identity: token record: %w", err)
	}
	if !s.now().Before(rec.ExpiresAt) {
		return "", ErrTokenUnknown
	}
	return rec.Role, nil
}
