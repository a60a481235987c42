package api_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/api"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestPolicyCRUD(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	pc := ts.policies
	valid := func() *shoalv1.AuthorizationPolicy {
		return &shoalv1.AuthorizationPolicy{Name: "orders", Service: "orders",
			Rules: []*shoalv1.AuthorizationRule{{Callers: []string{"ns/default/svc/web"}}}}
	}
	bad := valid()
	bad.Rules[0].Callers = append(bad.Rules[0].Callers, "web")
	_, err := pc.CreatePolicy(ctx, &shoalv1.CreatePolicyRequest{Policy: bad})
	wantCode(t, err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "rules[0].callers[1]") {
		t.Errorf("InvalidArgument %q does not name the field", msg)
	}
	if resp, _ := ts.etcd.Get(ctx, "/shoal/v1/policies/orders"); len(resp.Kvs) != 0 {
		t.Fatal("an invalid policy was written")
	}
	created, err := pc.CreatePolicy(ctx, &shoalv1.CreatePolicyRequest{Policy: valid()})
	if err != nil {
		t.Fatalf("CreatePolicy: %v", err)
	}
	_, err = pc.CreatePolicy(ctx, &shoalv1.CreatePolicyRequest{Policy: valid()})
	wantCode(t, err, codes.AlreadyExists)
	next := valid()
	next.Version = created.GetPolicy().GetVersion()
	next.Rules[0].Methods = []string{"GET"}
	if _, err := pc.UpdatePolicy(ctx, &shoalv1.UpdatePolicyRequest{Policy: next}); err != nil {
		t.Fatalf("UpdatePolicy: %v", err)
	}
	_, err = pc.UpdatePolicy(ctx, &shoalv1.UpdatePolicyRequest{Policy: next})
	wantCode(t, err, codes.Aborted)
	list, err := pc.ListPolicies(ctx, &shoalv1.ListPoliciesRequest{})
	if err != nil || len(list.GetPolicies()) != 1 || list.GetPolicies()[0].GetRules()[0].GetMethods()[0] != "GET" {
		t.Fatalf("ListPolicies = %v, %v", list, err)
	}
	if _, err := pc.DeletePolicy(ctx, &shoalv1.DeletePolicyRequest{Name: "orders"}); err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	_, err = pc.GetPolicy(ctx, &shoalv1.GetPolicyRequest{Name: "orders"})
	wantCode(t, err, codes.NotFound)
}
