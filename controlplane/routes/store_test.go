package routes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/controlplane/routes/routestest"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

const defaultTestTimeout = 20 * time.Second

func newStore(t *testing.T) (*routes.Store, *clientv3.Client, *etcdtest.Etcd) {
	t.Helper()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	return routes.NewStore(cli, slog.New(slog.DiscardHandler)), cli, e
}

func revision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), "revision-probe")
	if err != nil {
		t.Fatalf("get revision: %v", err)
	}
	return resp.Header.Revision
}

func TestStoreCRUD(t *testing.T) {
	st, cli, _ := newStore(t)
	ctx := t.Context()

	created, err := st.Create(ctx, routestest.Valid("web"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.GetVersion() == "" {
		t.Fatal("Create returned no version")
	}
	got, err := st.Get(ctx, "web")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(created, got, protocmp.Transform()); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if _, err := st.Create(ctx, routestest.Valid("web")); !errors.Is(err, routes.ErrAlreadyExists) {
		t.Errorf("second Create = %v, want ErrAlreadyExists", err)
	}

	next := proto.CloneOf(got)
	next.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RANDOM
	updated, err := st.Update(ctx, next)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.GetVersion() == got.GetVersion() {
		t.Error("Update kept the version")
	}
	if _, err := st.Update(ctx, next); !errors.Is(err, routes.ErrVersionMismatch) {
		t.Errorf("Update with a stale version = %v, want ErrVersionMismatch", err)
	}
	if err := st.Delete(ctx, "web", got.GetVersion()); !errors.Is(err, routes.ErrVersionMismatch) {
		t.Errorf("Delete with a stale version = %v, want ErrVersionMismatch", err)
	}
	rev := revision(t, cli)
	if _, err := st.Update(ctx, routestest.Valid("nope")); !errors.Is(err, routes.ErrNotFound) {
		t.Errorf("Update of a missing route = %v, want ErrNotFound", err)
	}
	if got := revision(t, cli); got != rev {
		t.Errorf("failed Update wrote: revision %d -> %d", rev, got)
	}

	all, _, err := st.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff([]*shoalv1.Route{updated}, all, protocmp.Transform()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := st.Delete(ctx, "web", updated.GetVersion()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(ctx, "web"); !errors.Is(err, routes.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "web", ""); !errors.Is(err, routes.ErrNotFound) {
		t.Errorf("Delete of a missing route = %v, want ErrNotFound", err)
	}
}

func TestStoreRejectsConflictsWithoutWriting(t *testing.T) {
	st, cli, _ := newStore(t)
	first, second, field := routestest.Conflict("web", "web-canary")
	if _, err := st.Create(t.Context(), first); err != nil {
		t.Fatalf("Create: %v", err)
	}
	rev := revision(t, cli)
	_, err := st.Create(t.Context(), second)
	var fe *routes.FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("Create(conflicting) = %v, want FieldError on %s", err, field)
	}
	if got := revision(t, cli); got != rev {
		t.Errorf("revision %d -> %d", rev, got)
	}
}

func TestStoreSkipsMalformedValues(t *testing.T) {
	st, cli, _ := newStore(t)
	ctx := t.Context()
	if _, err := st.Create(ctx, routestest.Valid("web")); err != nil {
		t.Fatal(err)
	}
	for key, val := range map[string]string{
		routes.Key("junk"):     "{not json",
		routes.Key("misnamed"): `{"name":"other","hosts":["x"],"rules":[{"destinations":[{"service":"x"}]}]}`,
		routes.Key("invalid"):  `{"name":"invalid","hosts":[]}`,
	} {
		if _, err := cli.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	all, _, err := st.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(all) != 1 || all[0].GetName() != "web" {
		t.Errorf("List = %v, want only web", all)
	}
	// Get returns what is stored, with its version, so that it can be
	// replaced.
	for _, name := range []string{"junk", "misnamed", "invalid"} {
		r, err := st.Get(ctx, name)
		if err != nil || r.GetName() != name || r.GetVersion() == "" {
			t.Errorf("Get(%s) = %v, %v; want the name and a version", name, r, err)
			continue
		}
		fixed := routestest.Valid(name)
		fixed.Version = r.GetVersion()
		if _, err := st.Update(ctx, fixed); err != nil {
			t.Errorf("Update(%s) over the stored value = %v", name, err)
		}
	}
}

// watcher collects route batches from Store.Watch.
type watcher struct {
	batches chan routes.Batch
	// rejected is Batch.Rejected of the last batch waitFor applied.
	rejected []routes.Rejection
}

func startWatch(t *testing.T, st *routes.Store) *watcher {
	t.Helper()
	w := &watcher{batches: make(chan routes.Batch, 256)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- st.Watch(ctx, func(b routes.Batch) { w.batches <- b })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// waitFor applies batches to view until cond holds.
func (w *watcher) waitFor(t *testing.T, view map[string]*shoalv1.Route, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for !cond() {
		select {
		case b := <-w.batches:
			w.rejected = b.Rejected
			for _, ev := range b.Events {
				if ev.Type == kvwatch.Put {
					view[ev.Name] = ev.Route
				} else {
					delete(view, ev.Name)
				}
			}
		case <-ctx.Done():
			t.Fatalf("timed out; view has %d routes", len(view))
		}
	}
}

func TestStoreWatch(t *testing.T) {
	st, cli, _ := newStore(t)
	ctx := t.Context()
	web, err := st.Create(ctx, routestest.Valid("web"))
	if err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, st)
	view := map[string]*shoalv1.Route{}
	w.waitFor(t, view, func() bool { return view["web"] != nil })
	if diff := cmp.Diff(web, view["web"], protocmp.Transform()); diff != "" {
		t.Errorf("initial route (-want +got):\n%s", diff)
	}

	api, err := st.Create(ctx, routestest.Valid("api"))
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, view, func() bool { return view["api"] != nil })
	if diff := cmp.Diff(api, view["api"], protocmp.Transform()); diff != "" {
		t.Errorf("created route (-want +got):\n%s", diff)
	}

	// A value that becomes malformed is refused: the last good version
	// stays (tested in detail in TestStoreWatchKeepsLastGoodVersion).
	if _, err := cli.Put(ctx, routes.Key("web"), "garbage"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, view, func() bool { return len(w.rejected) == 1 })
	if view["web"] == nil {
		t.Error("a malformed value removed the route")
	}

	// Compaction and re-listing are kvwatch's, tested there.
	if err := st.Delete(ctx, "api", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, routestest.Valid("orders")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "web", ""); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, view, func() bool { return view["api"] == nil && view["web"] == nil && view["orders"] != nil })
	if len(w.rejected) != 0 {
		t.Errorf("Rejected = %v after the refused route was deleted, want none", w.rejected)
	}
	if diff := cmp.Diff([]string{"orders"}, keys(view)); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}
}

// TestStoreWatchKeepsLastGoodVersion writes invalid values around the store
// (issue 6): the watch keeps delivering the last good version, lists the
// refusal with its revision and field path, and a later valid write clears
// it.
func TestStoreWatchKeepsLastGoodVersion(t *testing.T) {
	st, cli, _ := newStore(t)
	ctx := t.Context()
	good, err := st.Create(ctx, routestest.Valid("web"))
	if err != nil {
		t.Fatal(err)
	}
	// A route never valid: refused from the first batch, never delivered.
	if _, err := cli.Put(ctx, routes.Key("never"), `{"name":"never","hosts":[]}`); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, st)
	view := map[string]*shoalv1.Route{}
	w.waitFor(t, view, func() bool { return view["web"] != nil && len(w.rejected) == 1 })
	if r := w.rejected[0]; r.Name != "never" || !strings.Contains(r.Error(), "hosts: at least one host is required") {
		t.Errorf("Rejected = %v, want never with hosts: ...", r)
	}
	if view["never"] != nil {
		t.Error("an invalid route was delivered")
	}

	bad := proto.CloneOf(good)
	bad.Rules[0].Destinations[0].Weight = -5
	val, err := protojson.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	put, err := cli.Put(ctx, routes.Key("web"), string(val))
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, view, func() bool { return len(w.rejected) == 2 })
	rej := w.rejected[1] // sorted by name: never, web
	wantPrefix := fmt.Sprintf("rejected version %d: rules[0].destinations[0].weight: ", put.Header.Revision)
	if rej.Name != "web" || rej.Revision != put.Header.Revision || !strings.HasPrefix(rej.Error(), wantPrefix) {
		t.Errorf("Rejected[1] = {%s %d %q}, want web at %d with %q...", rej.Name, rej.Revision, rej.Error(), put.Header.Revision, wantPrefix)
	}
	if !errors.As(rej, new(*routes.FieldError)) {
		t.Errorf("Rejection %v does not wrap the *FieldError", rej)
	}
	if diff := cmp.Diff(good, view["web"], protocmp.Transform()); diff != "" {
		t.Errorf("route after the refused write (-want last good +got):\n%s", diff)
	}

	fixed := proto.CloneOf(good)
	fixed.Version = ""
	fixed.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RANDOM
	next, err := st.Update(ctx, fixed)
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, view, func() bool { return view["web"].GetVersion() == next.GetVersion() })
	if len(w.rejected) != 1 || w.rejected[0].Name != "never" {
		t.Errorf("Rejected = %v after a valid write of web, want only never", w.rejected)
	}
}

// TestWatchStartedAfterABadWrite is a control plane that starts (or
// restarts) after a route was overwritten with invalid values around the
// API: it serves the route's last good version from etcd's history, as the
// control planes that saw the good version do, and never an older one.
// Without a valid earlier version (created invalid, deleted before the bad
// write, history compacted) the route stays absent.
func TestWatchStartedAfterABadWrite(t *testing.T) {
	st, cli, e := newStore(t)
	ctx := t.Context()
	putRaw := func(name string, r *shoalv1.Route) {
		t.Helper()
		val, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, routes.Key(name), string(val)); err != nil {
			t.Fatal(err)
		}
	}
	invalid := func(name string) *shoalv1.Route {
		r := routestest.Valid(name)
		r.Rules[0].Destinations[0].Weight = -5
		return r
	}

	// web: two good versions, then two bad ones in a row.
	v1, err := st.Create(ctx, routestest.Valid("web"))
	if err != nil {
		t.Fatal(err)
	}
	upd := proto.CloneOf(v1)
	upd.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RANDOM
	v2, err := st.Update(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	putRaw("web", invalid("web"))
	if _, err := cli.Put(ctx, routes.Key("web"), "garbage"); err != nil {
		t.Fatal(err)
	}
	// gone: valid, deleted, then re-created invalid.
	if _, err := st.Create(ctx, routestest.Valid("gone")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "gone", ""); err != nil {
		t.Fatal(err)
	}
	putRaw("gone", invalid("gone"))
	// never: invalid from the start.
	putRaw("never", invalid("never"))

	w := startWatch(t, st)
	view := map[string]*shoalv1.Route{}
	w.waitFor(t, view, func() bool { return len(w.rejected) == 3 })
	if diff := cmp.Diff(v2, view["web"], protocmp.Transform()); diff != "" {
		t.Errorf("web served after two bad writes (-want last good +got):\n%s", diff)
	}
	for _, name := range []string{"gone", "never"} {
		if view[name] != nil {
			t.Errorf("%s delivered (version %s), want absent: it has no valid version since it was created", name, view[name].GetVersion())
		}
	}
	var names []string
	for _, r := range w.rejected {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"gone", "never", "web"}, names); diff != "" {
		t.Errorf("Rejected names (-want +got):\n%s", diff)
	}

	// After compaction the good version is no longer in etcd: a control
	// plane started now cannot serve it and says so (the route is rejected,
	// absent), rather than serving something older or failing.
	orders, err := st.Create(ctx, routestest.Valid("orders"))
	if err != nil {
		t.Fatal(err)
	}
	putRaw("orders", invalid("orders"))
	e.Compact(t, cli)
	w2 := startWatch(t, st)
	view2 := map[string]*shoalv1.Route{}
	w2.waitFor(t, view2, func() bool { return len(w2.rejected) == 4 })
	if view2["orders"] != nil {
		t.Errorf("orders served at version %s after its history was compacted, want absent", view2["orders"].GetVersion())
	}
	// The watch that delivered orders' good version keeps it.
	w.waitFor(t, view, func() bool { return len(w.rejected) == 4 })
	if diff := cmp.Diff(orders, view["orders"], protocmp.Transform()); diff != "" {
		t.Errorf("orders on the earlier watch (-want last good +got):\n%s", diff)
	}
}

func keys(m map[string]*shoalv1.Route) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRacingUpdatesOneWins(t *testing.T) {
	st, _, _ := newStore(t)
	base, err := st.Create(t.Context(), routestest.Valid("web"))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for _, s := range []shoalv1.Strategy{shoalv1.Strategy_STRATEGY_RANDOM, shoalv1.Strategy_STRATEGY_ROUND_ROBIN} {
		r := proto.CloneOf(base)
		r.Rules[0].Strategy = s
		go func() {
			_, err := st.Update(context.Background(), r)
			errs <- err
		}()
	}
	var ok, aborted int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, routes.ErrVersionMismatch):
			aborted++
		default:
			t.Errorf("Update = %v", err)
		}
	}
	if ok != 1 || aborted != 1 {
		t.Errorf("%d succeeded and %d got ErrVersionMismatch, want 1 and 1", ok, aborted)
	}
}
