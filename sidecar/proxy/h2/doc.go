// Package h2 is the sidecar's frame-level HTTP/2 data path for h2c and
// gRPC: a server side for downstream connections and a client side with
// pooled, multiplexed upstream connections, built on x/net/http2's Framer
// and hpack (the wire format) rather than its Server and Transport.
//
// Why not x/net/http2's Server and Transport: they cost a goroutine, an
// http.Request and an http.Response per stream and one write(2) per frame.
// Under a gRPC unary load the sidecar spent over half its CPU in the
// garbage collector (issue 19). Here each connection has one reader
// goroutine and one write loop that batches the frames of all its streams
// into one write(2); streams are small structs driven by callbacks on the
// reader goroutines, with no goroutine of their own.
//
// Flow control: a stream's receive window is only re-opened for bytes its
// consumer has passed on (Stream.Consumed), so a slow reader on one side
// holds the peer on the other side back instead of making the proxy buffer
// a body; the bytes in flight per stream are bounded by the window the
// proxy advertises.
//
// Conformance: the server side is tested with h2spec (RFC 7540/9113 and
// RFC 7541), see h2spec_test.go.
package h2
