package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	drainv1 "github.com/shoal-mesh/shoal/proto/shoal/drain/v1"
)

// fakeDrain is a DrainSource that records what it was asked.
type fakeDrain struct {
	service, address string
	port             uint32
	timeout          time.Duration
}

func (f *fakeDrain) WaitRemoved(_ context.Context, service, address string, port uint32, timeout time.Duration) (bool, time.Duration, []string, int) {
	f.service, f.address, f.port, f.timeout = service, address, port, timeout
	return false, timeout, []string{"sidecar-2"}, 3
}

func TestWaitRemovedValidatesAndAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     *drainv1.WaitRemovedRequest
		wantErr string
	}{
		{"rejects a bad service", &drainv1.WaitRemovedRequest{Service: "Web", Address: "127.0.0.1", Port: 80}, "service:"},
		{"rejects a missing address", &drainv1.WaitRemovedRequest{Service: "web", Port: 80}, "address:"},
		{"rejects port 0", &drainv1.WaitRemovedRequest{Service: "web", Address: "127.0.0.1"}, "port:"},
		{"rejects a negative timeout", &drainv1.WaitRemovedRequest{Service: "web", Address: "127.0.0.1", Port: 80, Timeout: durationpb.New(-time.Second)}, "timeout:"},
		{"passes a valid request on", &drainv1.WaitRemovedRequest{Service: "web", Address: "10.0.0.1", Port: 3001, Timeout: durationpb.New(2 * time.Second)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeDrain{}
			resp, err := (&drainService{src: src}).WaitRemoved(t.Context(), tc.req)
			if tc.wantErr != "" {
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want InvalidArgument naming %q", err, tc.wantErr)
				}
				if src.service != "" {
					t.Errorf("the source was asked despite the bad request")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src.service != "web" || src.address != "10.0.0.1" || src.port != 3001 || src.timeout != 2*time.Second {
				t.Errorf("source asked %+v", src)
			}
			if resp.GetConverged() || resp.GetClients() != 3 || len(resp.GetPending()) != 1 || resp.GetWaited().AsDuration() != 2*time.Second {
				t.Errorf("answer %v", resp)
			}
		})
	}
}
