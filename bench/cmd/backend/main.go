// Command backend is the benchmark's upstream: a minimal HTTP/1.1
// keep-alive server that answers every request with a short fixed body and
// its id in the X-Backend header, fast enough that it is never the
// bottleneck of a proxy benchmark.
//
// It prints "listening ADDR" on stdout once it accepts connections, so a
// harness can start it on port 0 and read the port. GET /__count on any
// backend answers "REQUESTS CONNECTIONS": its request count and accepted
// connections so far. The harness reads it directly, not through a proxy,
// to check how a proxy spread the load and whether it reuses upstream
// connections.
//
// With -grpc it serves the gRPC health service with grpc-go instead (h2c
// prior knowledge), the upstream of the h2c/gRPC benchmark.
//
// Usage:
//
//	backend -listen 127.0.0.1:0 -id b1 [-grpc]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	id := flag.String("id", "b1", "backend id, sent in the X-Backend header")
	grpcMode := flag.Bool("grpc", false, "serve the gRPC health service with grpc-go (h2c) instead of HTTP/1.1")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	if *grpcMode {
		fmt.Printf("listening %s\n", lis.Addr())
		go func() {
			<-ctx.Done()
			lis.Close()
		}()
		if err := serveGRPC(lis); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}
	srv := NewServer(*id)
	fmt.Printf("listening %s\n", lis.Addr())
	go func() {
		<-ctx.Done()
		lis.Close()
	}()
	if err := srv.Serve(lis); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	srv.Close()
}
