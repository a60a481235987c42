package policies

import (
	"context"
	"strings"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

// Batch is a set of policy changes in revision order; a nil Policy is a
// delete of Name.
type Batch struct {
	Changes []Change
	// Initial is true on the first batch, which holds every policy.
	Initial bool
}

// Change is one policy after a put (Policy set) or a delete (Policy nil).
// Policy is shared and must not be modified.
type Change struct {
	Name   string
	Policy *shoalv1.AuthorizationPolicy
}

// Watch follows every policy until ctx is done, calling handle serially
// from its own goroutine (it must not block for long). It runs on kvwatch,
// as the route watch does: it resumes from revisions and re-lists after
// compaction. A stored value that is malformed or invalid (written around
// the Store) is logged and ignored: the policy keeps its last good version.
// Watch returns ctx.Err().
func (s *Store) Watch(ctx context.Context, handle func(Batch)) error {
	return kvwatch.Run(ctx, kvwatch.Config{
		Client: s.cli,
		Prefix: registry.PoliciesPrefix,
		Logger: s.log,
		Handle: func(b kvwatch.Batch) {
			out := Batch{Initial: b.Initial}
			for _, ev := range b.Events {
				name := strings.TrimPrefix(ev.Key, registry.PoliciesPrefix)
				if ev.Type != kvwatch.Put {
					out.Changes = append(out.Changes, Change{Name: name})
					continue
				}
				p, err := decode(ev.Key, ev.Value, ev.ModRevision)
				if err != nil {
					s.log.Warn("refusing invalid stored policy; keeping its last good version", "key", ev.Key, "err", err)
					continue
				}
				out.Changes = append(out.Changes, Change{Name: name, Policy: p})
			}
			if len(out.Changes) > 0 || out.Initial {
				handle(out)
			}
		},
	})
}
