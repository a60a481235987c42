package etcdlite

import "testing"

// TestEveryUnaryRPCHasARetryPolicy: a unary RPC without an entry would be
// retried as repeatable (the zero value) by accident.
func TestEveryUnaryRPCHasARetryPolicy(t *testing.T) {
	for _, m := range []string{rpcRange.method, rpcPut.method, rpcDeleteRange.method, rpcLeaseGrant.method, rpcLeaseRevoke.method} {
		if _, ok := retryPolicies[m]; !ok {
			t.Errorf("%s has no retry policy", m)
		}
	}
	if retryPolicies[methodPut] != nonRepeatable || retryPolicies[methodDeleteRange] != nonRepeatable {
		t.Error("writes must not be retried")
	}
}
