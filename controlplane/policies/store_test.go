package policies_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/controlplane/policies"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

func ordersPolicy() *shoalv1.AuthorizationPolicy {
	return &shoalv1.AuthorizationPolicy{Name: "orders", Service: "orders", Rules: []*shoalv1.AuthorizationRule{
		{Callers: []string{"spiffe://shoal.local/ns/default/svc/web", "ns/ops/*"}, Paths: []string{"/api/"}, Methods: []string{"GET"}},
	}}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field  string
		mutate func(*shoalv1.AuthorizationPolicy)
	}{
		{"name", func(p *shoalv1.AuthorizationPolicy) { p.Name = "Orders" }},
		{"service", func(p *shoalv1.AuthorizationPolicy) { p.Service = "" }},
		{"rules", func(p *shoalv1.AuthorizationPolicy) { p.Rules = nil }},
		{"rules[0].callers", func(p *shoalv1.AuthorizationPolicy) { p.Rules[0].Callers = nil }},
		{"rules[0].callers[1]", func(p *shoalv1.AuthorizationPolicy) { p.Rules[0].Callers[1] = "web" }},
		{"rules[0].callers[0]", func(p *shoalv1.AuthorizationPolicy) { p.Rules[0].Callers[0] = "ns/Bad/*" }},
		{"rules[0].paths[0]", func(p *shoalv1.AuthorizationPolicy) { p.Rules[0].Paths[0] = "api" }},
		{"rules[0].methods[0]", func(p *shoalv1.AuthorizationPolicy) { p.Rules[0].Methods[0] = "get" }},
	} {
		p := ordersPolicy()
		tc.mutate(p)
		var fe *policies.FieldError
		if err := policies.Validate(p); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Validate after breaking %s = %v, want a FieldError naming it", tc.field, err)
		}
	}
	for _, c := range []string{"*", "ns/default/*", "ns/default/svc/web", "spiffe://example.org/ns/a/svc/b"} {
		if err := policies.ValidateCaller(c); err != nil {
			t.Errorf("ValidateCaller(%q) = %v", c, err)
		}
	}
}

func TestStoreCRUDWithVersions(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	s := policies.NewStore(cli, slog.New(slog.DiscardHandler))
	ctx := t.Context()

	bad := ordersPolicy()
	bad.Rules[0].Callers[0] = "web"
	if _, err := s.Create(ctx, bad); err == nil {
		t.Fatal("Create accepted an invalid policy")
	}
	if resp, _ := cli.Get(ctx, policies.Key("orders")); len(resp.Kvs) != 0 {
		t.Fatal("an invalid policy was written")
	}
	created, err := s.Create(ctx, ordersPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, ordersPolicy()); !errors.Is(err, policies.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want ErrAlreadyExists", err)
	}
	upd := ordersPolicy()
	upd.Rules[0].Methods = nil
	upd.Version = created.GetVersion()
	updated, err := s.Update(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	upd.Version = created.GetVersion() // stale now
	if _, err := s.Update(ctx, upd); !errors.Is(err, policies.ErrVersionMismatch) {
		t.Fatalf("Update with a stale version = %v, want ErrVersionMismatch", err)
	}
	got, err := s.Get(ctx, "orders")
	if err != nil || got.GetVersion() != updated.GetVersion() || len(got.GetRules()[0].GetMethods()) != 0 {
		t.Fatalf("Get = %v, %v; want the update", got, err)
	}
	raw, _ := cli.Get(ctx, policies.Key("orders"))
	if v := string(raw.Kvs[0].Value); !strings.Contains(v, `"service":"orders"`) || strings.Contains(v, "version") {
		t.Fatalf("stored %s, want protobuf JSON without the version", v)
	}
	if err := s.Delete(ctx, "orders", created.GetVersion()); !errors.Is(err, policies.ErrVersionMismatch) {
		t.Fatalf("Delete with a stale version = %v", err)
	}
	if err := s.Delete(ctx, "orders", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "orders"); !errors.Is(err, policies.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
}

func TestWatchFollowsPolicies(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	s := policies.NewStore(cli, slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	view := map[string]*shoalv1.AuthorizationPolicy{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(b policies.Batch) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range b.Changes {
				if c.Policy == nil {
					delete(view, c.Name)
				} else {
					view[c.Name] = c.Policy
				}
			}
		})
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond) // poll interval of a loop with a deadline
		}
	}
	if _, err := s.Create(t.Context(), ordersPolicy()); err != nil {
		t.Fatal(err)
	}
	waitFor("the created policy", func() bool { return view["orders"] != nil })
	// A value written around the Store is refused; the last good one stays.
	if _, err := cli.Put(t.Context(), policies.Key("orders"), `{"name":"orders","service":"orders"}`); err != nil {
		t.Fatal(err)
	}
	later := ordersPolicy()
	later.Name = "later"
	if _, err := s.Create(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	waitFor("a policy written after the invalid value", func() bool { return view["later"] != nil })
	mu.Lock()
	kept := len(view["orders"].GetRules())
	mu.Unlock()
	if kept != 1 {
		t.Fatalf("after an invalid stored value, orders has %d rules, want its last good version", kept)
	}
	if err := s.Delete(t.Context(), "orders", ""); err != nil {
		t.Fatal(err)
	}
	waitFor("the delete", func() bool { return view["orders"] == nil })
}
