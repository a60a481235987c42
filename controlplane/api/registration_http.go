package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
)

// maxJSONBody bounds a registration request's body.
const maxJSONBody = 64 << 10

// RegistrationPathPrefix is where JSONHandler serves RegistryService: POST
// RegistrationPathPrefix + "Register" (or "KeepAlive", "Deregister").
const RegistrationPathPrefix = "/shoal.registry.v1.RegistryService/"

// JSONHandler serves RegistryService's unary methods as JSON over HTTP for
// clients without gRPC (the Node.js package, curl): POST
// /shoal.registry.v1.RegistryService/<Method> with Content-Type
// application/json and the request message in protobuf's JSON mapping
// (int64 lease ids are strings), as Connect's unary protocol does. The
// answer is the response message, or on error a status from gRPC's HTTP
// mapping with {"code":"permission_denied","message":"..."}. The caller is
// the request's verified client certificate or its "Authorization: Bearer"
// token, checked by authz (nil on a port without authentication), exactly
// as over gRPC.
func JSONHandler(reg *Registration, authz *Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, ok := strings.CutPrefix(r.URL.Path, RegistrationPathPrefix)
		if !ok {
			writeJSONError(w, status.Errorf(codes.NotFound, "no such path %q: POST %s{Register,KeepAlive,Deregister}", r.URL.Path, RegistrationPathPrefix))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
			return
		}
		var req, resp proto.Message
		var call func(context.Context) (proto.Message, error)
		switch method {
		case "Register":
			in := &registryv1.RegisterRequest{}
			req, call = in, func(ctx context.Context) (proto.Message, error) { return reg.Register(ctx, in) }
		case "KeepAlive":
			in := &registryv1.KeepAliveRequest{}
			req, call = in, func(ctx context.Context) (proto.Message, error) { return reg.KeepAlive(ctx, in) }
		case "Deregister":
			in := &registryv1.DeregisterRequest{}
			req, call = in, func(ctx context.Context) (proto.Message, error) { return reg.Deregister(ctx, in) }
		default:
			writeJSONError(w, status.Errorf(codes.Unimplemented, "unknown method %q", method))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
		if err != nil {
			writeJSONError(w, status.Errorf(codes.InvalidArgument, "read body: %v", err))
			return
		}
		if err := protojson.Unmarshal(body, req); err != nil {
			writeJSONError(w, status.Errorf(codes.InvalidArgument, "body is not a %s in JSON: %v", req.ProtoReflect().Descriptor().Name(), err))
			return
		}
		ctx := httpCallContext(r)
		if authz != nil {
			if ctx, err = authz.Authorize(ctx, RegistrationPathPrefix+method); err != nil {
				writeJSONError(w, err)
				return
			}
		}
		if resp, err = call(ctx); err != nil {
			writeJSONError(w, err)
			return
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
		if err != nil {
			writeJSONError(w, status.Errorf(codes.Internal, "encode: %v", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}

// httpCallContext is r's context as a gRPC handler would see it: the peer
// with its TLS state, and the Authorization header as metadata.
func httpCallContext(r *http.Request) context.Context {
	ctx := r.Context()
	p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	ctx = peer.NewContext(ctx, p)
	if auth := r.Header.Get("Authorization"); auth != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", auth))
	}
	return ctx
}

func remoteAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return &net.TCPAddr{}
	}
	return a
}

// writeJSONError writes err's status the way grpc-gateway maps codes to
// HTTP statuses, with a Connect-style body.
func writeJSONError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	if errors.Is(err, context.Canceled) {
		st = status.New(codes.Canceled, err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(st.Code()))
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{strings.ToLower(codeName(st.Code())), st.Message()})
	w.Write(b)
}

func codeName(c codes.Code) string {
	// codes.Code's String is "PermissionDenied"; Connect names it
	// "permission_denied".
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// httpStatus is grpc-gateway's HTTPStatusFromCode.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
