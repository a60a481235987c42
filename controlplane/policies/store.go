package policies

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Key returns the etcd key of the policy named name.
func Key(name string) string { return registry.PoliciesPrefix + name }

// Store reads and writes policies in etcd, one key per policy holding its
// protobuf JSON without version. Every write validates first and is one
// etcd transaction guarded by the key's revision, like the route store. A
// policy's Version is the etcd ModRevision of its key.
//
// Store is safe for concurrent use. Policies passed in are not modified or
// retained; policies returned belong to the caller.
type Store struct {
	cli *clientv3.Client
	log *slog.Logger
}

// NewStore returns a Store over cli; the caller owns cli. A nil logger
// means slog.Default().
func NewStore(cli *clientv3.Client, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{cli: cli, log: logger.With("component", "policies")}
}

// Get returns the policy named name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*shoalv1.AuthorizationPolicy, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, Key(name))
	if err != nil {
		return nil, fmt.Errorf("policies: get %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	kv := resp.Kvs[0]
	return decode(string(kv.Key), kv.Value, kv.ModRevision)
}

// List returns every policy ordered by name. Stored values that are
// malformed or invalid are logged and skipped.
func (s *Store) List(ctx context.Context) ([]*shoalv1.AuthorizationPolicy, error) {
	resp, err := s.cli.Get(ctx, registry.PoliciesPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("policies: list: %w", err)
	}
	out := make([]*shoalv1.AuthorizationPolicy, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		p, err := decode(string(kv.Key), kv.Value, kv.ModRevision)
		if err != nil {
			s.log.Warn("skipping malformed policy", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Create stores p, which must not exist yet (ErrAlreadyExists).
func (s *Store) Create(ctx context.Context, p *shoalv1.AuthorizationPolicy) (*shoalv1.AuthorizationPolicy, error) {
	return s.write(ctx, p, true)
}

// Update replaces the policy named p.Name (ErrNotFound if there is none);
// with a non-empty p.Version only if that is still current
// (ErrVersionMismatch).
func (s *Store) Update(ctx context.Context, p *shoalv1.AuthorizationPolicy) (*shoalv1.AuthorizationPolicy, error) {
	return s.write(ctx, p, false)
}

// Delete removes the policy named name (ErrNotFound if there is none);
// with a non-empty version only if that is still current.
func (s *Store) Delete(ctx context.Context, name, version string) error {
	if err := validName(name); err != nil {
		return err
	}
	rev, err := parseVersion(name, version)
	if err != nil {
		return err
	}
	key := Key(name)
	resp, err := s.cli.Txn(ctx).If(keyCond(key, false, rev)).Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("policies: delete %q: %w", name, err)
	}
	if resp.Succeeded {
		return nil
	}
	return failure(resp, false, rev)
}

func (s *Store) write(ctx context.Context, p *shoalv1.AuthorizationPolicy, create bool) (*shoalv1.AuthorizationPolicy, error) {
	if err := Validate(p); err != nil {
		return nil, err
	}
	var rev int64
	if !create {
		var err error
		if rev, err = parseVersion(p.GetName(), p.GetVersion()); err != nil {
			return nil, err
		}
	}
	c := proto.CloneOf(p)
	c.Version = ""
	val, err := protojson.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("policies: encode %q: %w", p.GetName(), err)
	}
	key := Key(p.GetName())
	resp, err := s.cli.Txn(ctx).If(keyCond(key, create, rev)).Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("policies: write %q: %w", p.GetName(), err)
	}
	if !resp.Succeeded {
		return nil, failure(resp, create, rev)
	}
	c.Version = strconv.FormatInt(resp.Header.Revision, 10)
	return c, nil
}

// keyCond is the transaction guard: the key is absent (create), at
// revision rev, or present.
func keyCond(key string, create bool, rev int64) clientv3.Cmp {
	switch {
	case create:
		return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	case rev > 0:
		return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	return clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
}

// failure explains a failed guarded transaction from its Else get.
func failure(resp *clientv3.TxnResponse, create bool, rev int64) error {
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	switch {
	case create && len(kvs) > 0:
		return ErrAlreadyExists
	case !create && len(kvs) == 0:
		return ErrNotFound
	}
	return ErrVersionMismatch
}

func validName(name string) error {
	if !registry.ValidName(name) {
		return &FieldError{Policy: name, Field: "name", Reason: fmt.Sprintf("%q is not a lowercase DNS label of at most 63 characters", name)}
	}
	return nil
}

func parseVersion(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	rev, err := strconv.ParseInt(v, 10, 64)
	if err != nil || rev <= 0 {
		return 0, &FieldError{Policy: name, Field: "version", Reason: fmt.Sprintf("%q is not a version this server returned", v)}
	}
	return rev, nil
}

// decode parses a stored policy and checks that it is valid and sits under
// its own key; unknown fields are dropped (a newer control plane wrote
// them).
func decode(key string, value []byte, modRev int64) (*shoalv1.AuthorizationPolicy, error) {
	p := &shoalv1.AuthorizationPolicy{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(value, p); err != nil {
		return nil, fmt.Errorf("policies: decode %q: not policy JSON: %v", key, err)
	}
	if name := strings.TrimPrefix(key, registry.PoliciesPrefix); p.GetName() != name {
		return nil, fmt.Errorf("policies: decode %q: value names policy %q", key, p.GetName())
	}
	if err := Validate(p); err != nil {
		return nil, fmt.Errorf("policies: decode %q: %v", key, err)
	}
	p.Version = strconv.FormatInt(modRev, 10)
	return p, nil
}
