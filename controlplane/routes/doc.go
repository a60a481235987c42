// Package routes is the route model of the control plane: validation (the
// one place that decides whether a route is acceptable), parsing of route
// files, and the etcd route store at /shoal/v1/routes/<name>.
//
//	rs, err := routes.Parse(data) // YAML or JSON, one or several routes
//	if err != nil { ... }
//	st := routes.NewStore(cli, logger)
//	for _, r := range rs {
//		if _, err := st.Create(ctx, r); err != nil { ... } // validates first
//	}
//
// Errors are plain Go errors: *FieldError for an invalid route (it names
// the field path, e.g. rules[1].destinations[0].weight), and ErrNotFound,
// ErrAlreadyExists and ErrVersionMismatch from the store. Only
// controlplane/api turns them into gRPC status codes.
package routes
