package main

import (
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveGRPC serves the gRPC health service (grpc.health.v1.Health: Check
// is the benchmark's unary call, Watch a server stream) on lis with
// grpc-go until lis is closed: the upstream of the h2c/gRPC benchmark
// (sidebyside --h2).
func serveGRPC(lis net.Listener) error {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	return srv.Serve(lis)
}
