package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/registry"
)

// TokensPrefix holds one key per join token, TokensPrefix + <hash of the
// secret>, attached to a lease that ends with the token. The secret itself
// is never stored.
const TokensPrefix = registry.Prefix + "tokens/"

// Token limits.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 30 * 24 * time.Hour
	MaxTokenUses    = 100000
)

// Token errors; the service maps them to status codes.
var (
	ErrTokenUnknown = errors.New("identity: join token unknown, expired or used up")
)

// tokenRecord is the stored form of a token.
type tokenRecord struct {
	SPIFFEID  string    `json:"spiffe_id"`
	UsesLeft  int       `json:"uses_left"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenStore keeps hashed join tokens in etcd. Safe for concurrent use;
// several control planes may share one etcd.
type TokenStore struct {
	cli *clientv3.Client
	now func() time.Time
}

// NewTokenStore returns a store over cli.
func NewTokenStore(cli *clientv3.Client) *TokenStore {
	return &TokenStore{cli: cli, now: time.Now}
}

// Create stores a new token bound to id for ttl and uses, returning the
// token (whose root fingerprint is root's).
func (s *TokenStore) Create(ctx context.Context, ca *CA, id spiffeid.ID, ttl time.Duration, uses int) (identity.Token, time.Time, error) {
	switch {
	case ttl < time.Second || ttl > MaxTokenTTL:
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: ttl %s is outside 1s-%s", ttl, MaxTokenTTL)
	case uses < 1 || uses > MaxTokenUses:
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: uses %d is outside 1-%d", uses, MaxTokenUses)
	}
	tok := identity.NewToken(ca.Root())
	exp := s.now().Add(ttl).Truncate(time.Second)
	rec, _ := json.Marshal(tokenRecord{SPIFFEID: id.String(), UsesLeft: uses, ExpiresAt: exp})
	lease, err := s.cli.Grant(ctx, int64(ttl/time.Second)+1)
	if err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: token lease: %w", err)
	}
	if _, err := s.cli.Put(ctx, TokensPrefix+tok.Hash(), string(rec), clientv3.WithLease(lease.ID)); err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("identity: store token: %w", err)
	}
	return tok, exp, nil
}

// Lookup returns the identity tok is bound to without using it;
// ErrTokenUnknown when it expired, is used up or was never made.
func (s *TokenStore) Lookup(ctx context.Context, tok identity.Token) (spiffeid.ID, error) {
	id, _, _, err := s.read(ctx, TokensPrefix+tok.Hash())
	return id, err
}

// read returns the live token record at key, its etcd key-value and the
// identity it is bound to; ErrTokenUnknown when it expired, is used up or
// is not there.
func (s *TokenStore) read(ctx context.Context, key string) (spiffeid.ID, tokenRecord, *mvccpb.KeyValue, error) {
	var rec tokenRecord
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return spiffeid.ID{}, rec, nil, fmt.Errorf("identity: read token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return spiffeid.ID{}, rec, nil, ErrTokenUnknown
	}
	kv := resp.Kvs[0]
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return spiffeid.ID{}, rec, nil, fmt.Errorf("identity: token record %s: %w", key, err)
	}
	if !s.now().Before(rec.ExpiresAt) || rec.UsesLeft < 1 {
		return spiffeid.ID{}, rec, nil, ErrTokenUnknown
	}
	id, err := spiffeid.FromString(rec.SPIFFEID)
	if err != nil {
		return spiffeid.ID{}, rec, nil, fmt.Errorf("identity: token record %s: %w", key, err)
	}
	return id, rec, kv, nil
}

// Redeem uses the token once and returns the identity it is bound to. A
// token whose uses are spent, that expired or that was never made gives
// ErrTokenUnknown. Concurrent redemptions of the last use race on the
// key's revision: exactly one wins.
func (s *TokenStore) Redeem(ctx context.Context, tok identity.Token) (spiffeid.ID, error) {
	key := TokensPrefix + tok.Hash()
	for {
		id, rec, kv, err := s.read(ctx, key)
		if err != nil {
			return spiffeid.ID{}, err
		}
		var op clientv3.Op
		if rec.UsesLeft == 1 {
			op = clientv3.OpDelete(key)
		} else {
			rec.UsesLeft--
			b, _ := json.Marshal(rec)
			op = clientv3.OpPut(key, string(b), clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		}
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).Then(op).Commit()
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("identity: use token: %w", err)
		}
		if tx.Succeeded {
			return id, nil
		}
	}
}
