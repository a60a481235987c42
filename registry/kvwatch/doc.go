// Package kvwatch keeps a consumer in step with every key under an etcd
// prefix: it lists the prefix, watches from the listed revision, and when the
// watch cannot resume (the revision was compacted, the leader was lost, the
// stream broke) it lists again and delivers only the difference, so the
// consumer never holds a stale or lost key.
//
// It is the one watch loop of shoal: the instance registry and the route
// store are both built on it.
//
//	err := kvwatch.Run(ctx, kvwatch.Config{
//		Client: cli,
//		Prefix: "/shoal/v1/instances/",
//		Handle: func(b kvwatch.Batch) { ... },
//	})
package kvwatch
