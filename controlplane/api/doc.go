// Package api is the control plane's gRPC management API: RouteService
// (routes in etcd, through controlplane/routes), RegistryService (the
// instance registry view with health) and MeshService (xDS client status).
// It is the only place where errors become gRPC status codes.
//
//	gs := api.NewGRPCServer(nil) // limits, keepalive policy, health, reflection
//	srv, err := api.New(api.Config{Routes: routes.NewStore(cli, logger)})
//	if err != nil { ... }
//	srv.Register(gs)
//	go gs.Serve(lis)
//	...
//	srv.Close() // ends Watch streams so that GracefulStop can finish
//	gs.GracefulStop()
package api
