package routes

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

// maxWriteAttempts bounds how often a write is retried when another route
// changed between the conflict check and the write.
const maxWriteAttempts = 5

// Key returns the etcd key of the route named name.
func Key(name string) string { return registry.RoutesPrefix + name }

// Store reads and writes routes in etcd, one key per route holding its
// protobuf JSON (without version). Every write validates the route first
// (Validate and CheckConflicts against the stored routes) and is a single
// etcd transaction guarded by revisions, so that concurrent writers cannot
// lose updates or store conflicting routes. A route's Version is the etcd
// ModRevision of its key, as a decimal string.
//
// Store is safe for concurrent use. Routes passed in are not modified or
// retained; routes returned belong to the caller.
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
	return &Store{cli: cli, log: logger.With("component", "routes")}
}

// Get returns the route named name, or ErrNotFound. A stored value that
// fails validation (written around the Store; Watch refuses it) is
// returned as it is stored, with its Version, so that it can be inspected
// and replaced with Update; one that is not route JSON, or names another
// route, comes back as just its Name and Version.
func (s *Store) Get(ctx context.Context, name string) (*shoalv1.Route, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, Key(name))
	if err != nil {
		return nil, fmt.Errorf("routes: get %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	kv := resp.Kvs[0]
	if r, err := decode(string(kv.Key), kv.Value, kv.ModRevision); err == nil {
		return r, nil
	}
	r := &shoalv1.Route{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(kv.Value, r); err != nil || r.GetName() != name {
		r = &shoalv1.Route{Name: name}
	}
	r.Version = strconv.FormatInt(kv.ModRevision, 10)
	return r, nil
}

// List returns every route ordered by name and the etcd revision read.
// Stored values that are malformed or invalid are logged and skipped.
func (s *Store) List(ctx context.Context) ([]*shoalv1.Route, int64, error) {
	resp, err := s.cli.Get(ctx, registry.RoutesPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("routes: list: %w", err)
	}
	out := make([]*shoalv1.Route, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := decode(string(kv.Key), kv.Value, kv.ModRevision)
		if err != nil {
			s.log.Warn("skipping malformed route", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, resp.Header.Revision, nil
}

// Create stores r, which must not exist yet (ErrAlreadyExists). Its
// Version is ignored. It returns the stored route with its new Version.
func (s *Store) Create(ctx context.Context, r *shoalv1.Route) (*shoalv1.Route, error) {
	return s.write(ctx, r, true)
}

// Update replaces the route named r.Name (ErrNotFound if there is none).
// With a non-empty r.Version it succeeds only if that is still the route's
// version (ErrVersionMismatch). It returns the route with its new Version.
func (s *Store) Update(ctx context.Context, r *shoalv1.Route) (*shoalv1.Route, error) {
	return s.write(ctx, r, false)
}

// Delete removes the route named name (ErrNotFound if there is none). With
// a non-empty version it succeeds only if that is still the route's
// version (ErrVersionMismatch).
func (s *Store) Delete(ctx context.Context, name, version string) error {
	if err := validName(name); err != nil {
		return err
	}
	rev, err := parseVersion(name, version)
	if err != nil {
		return err
	}
	key := Key(name)
	cond := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	if rev > 0 {
		cond = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	resp, err := s.cli.Txn(ctx).If(cond).Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("routes: delete %q: %w", name, err)
	}
	if resp.Succeeded {
		return nil
	}
	if len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
		return ErrNotFound
	}
	return ErrVersionMismatch
}

func (s *Store) write(ctx context.Context, r *shoalv1.Route, create bool) (*shoalv1.Route, error) {
	if err := Validate(r); err != nil {
		return nil, err
	}
	var rev int64
	if !create {
		var err error
		if rev, err = parseVersion(r.GetName(), r.GetVersion()); err != nil {
			return nil, err
		}
	}
	val, err := encode(r)
	if err != nil {
		return nil, err
	}
	for range maxWriteAttempts {
		out, retry, err := s.tryWrite(ctx, r, val, create, rev)
		if !retry {
			return out, err
		}
	}
	return nil, fmt.Errorf("routes: write %q: other routes kept changing; try again", r.GetName())
}

// tryWrite checks r against the stored routes and writes it if neither the
// key's expected state nor any route changed since. retry is true when
// only another route changed, so the conflict check must be redone.
func (s *Store) tryWrite(ctx context.Context, r *shoalv1.Route, val []byte, create bool, rev int64) (out *shoalv1.Route, retry bool, err error) {
	others, listRev, err := s.List(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := CheckConflicts(r, others); err != nil {
		return nil, false, err
	}
	if err := CheckTotalSize(r, others); err != nil {
		return nil, false, err
	}
	key := Key(r.GetName())
	var cond clientv3.Cmp
	switch {
	case create:
		cond = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	case rev > 0:
		cond = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	default:
		cond = clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	unchanged := clientv3.Compare(clientv3.ModRevision(registry.RoutesPrefix), "<", listRev+1).WithPrefix()
	resp, err := s.cli.Txn(ctx).If(cond, unchanged).Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("routes: write %q: %w", r.GetName(), err)
	}
	if resp.Succeeded {
		out := proto.CloneOf(r)
		out.Version = strconv.FormatInt(resp.Header.Revision, 10)
		return out, false, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	switch {
	case create && len(kvs) > 0:
		return nil, false, ErrAlreadyExists
	case !create && len(kvs) == 0:
		return nil, false, ErrNotFound
	case rev > 0 && kvs[0].ModRevision != rev:
		return nil, false, ErrVersionMismatch
	}
	return nil, true, nil
}

func validName(name string) error {
	if !registry.ValidName(name) {
		return &FieldError{Route: name, Field: "name", Reason: fmt.Sprintf("%q is not a lowercase DNS label of at most 63 characters", name)}
	}
	return nil
}

// parseVersion parses a route version; "" means none (0).
func parseVersion(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	rev, err := strconv.ParseInt(v, 10, 64)
	if err != nil || rev <= 0 {
		return 0, &FieldError{Route: name, Field: "version", Reason: fmt.Sprintf("%q is not a version this server returned", v)}
	}
	return rev, nil
}

// encode is the stored form of r: protobuf JSON without the version, which
// etcd keeps as the key's ModRevision.
func encode(r *shoalv1.Route) ([]byte, error) {
	c := proto.CloneOf(r)
	c.Version = ""
	b, err := protojson.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("routes: encode %q: %w", r.GetName(), err)
	}
	return b, nil
}

// decode parses a stored route and checks that it is valid and sits under
// its own key. Unknown fields are dropped so that an older control plane can
// read what a newer one wrote.
func decode(key string, value []byte, modRev int64) (*shoalv1.Route, error) {
	r, err := checkStored(key, value)
	if err != nil {
		// %v: a stored route that fails validation is not the caller's
		// invalid argument.
		return nil, fmt.Errorf("routes: decode %q: %v", key, err)
	}
	r.Version = strconv.FormatInt(modRev, 10)
	return r, nil
}

// checkStored is decode without the version and the error prefix: a
// *FieldError for an invalid route, a plain error otherwise.
func checkStored(key string, value []byte) (*shoalv1.Route, error) {
	r := &shoalv1.Route{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(value, r); err != nil {
		return nil, fmt.Errorf("not route JSON: %w", err)
	}
	if name := strings.TrimPrefix(key, registry.RoutesPrefix); r.GetName() != name {
		return nil, fmt.Errorf("value names route %q, not %q", r.GetName(), name)
	}
	if err := Validate(r); err != nil {
		return nil, err
	}
	return r, nil
}
