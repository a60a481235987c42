package etcdlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/grpc"

	pb "github.com/shoal-mesh/shoal/internal/etcdlite/internal/etcdpb/etcdserverpb"
	"github.com/shoal-mesh/shoal/internal/etcdlite/internal/etcdpb/mvccpb"
)

var watchDesc = grpc.StreamDesc{StreamName: "Watch", ServerStreams: true, ClientStreams: true}

// errWatchCanceled is etcd cancelling a watch for good (e.g. permission
// denied); the reason follows it in the error.
var errWatchCanceled = errors.New("etcdlite: watch canceled by etcd")

// WaitDeleted blocks until key is deleted at a revision after rev (e.g.
// the revision of the Put that wrote it, so that no deletion is missed),
// and returns nil then. Otherwise it returns ctx's error, ErrClosed, or
// the reason etcd cancelled the watch for good. A broken stream is resumed
// after RetryWait from rev; when etcd compacted the history since rev away,
// WaitDeleted checks that key still exists and watches on from there.
func (c *Client) WaitDeleted(ctx context.Context, key string, rev int64) error {
	next := rev + 1
	for {
		deleted, compacted, err := c.watchDeletion(ctx, key, next)
		switch {
		case deleted:
			return nil
		case c.ctx.Err() != nil:
			return ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errWatchCanceled):
			return err
		case compacted:
			exists, at, err := c.Exists(ctx, key)
			if err == nil && !exists {
				return nil
			}
			if err == nil {
				next = at + 1
				continue
			}
		}
		sleep(ctx, c.retryWait)
	}
}

// watchDeletion runs one watch stream on key from start until a deletion,
// a compaction of the history it needs, or an error.
func (c *Client) watchDeletion(ctx context.Context, key string, start int64) (deleted, compacted bool, err error) {
	sctx, cancel := c.callCtx(ctx)
	defer cancel()
	stream, err := c.conn.NewStream(sctx, &watchDesc, methodWatch)
	if err != nil {
		return false, false, c.wrap(err)
	}
	// NOPUT: deletions only.
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(key), StartRevision: start, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT},
	}}}
	err = stream.SendMsg(req)
	for err == nil || errors.Is(err, io.EOF) { // io.EOF: RecvMsg has the stream's status
		var r pb.WatchResponse
		if err = stream.RecvMsg(&r); err != nil {
			break
		}
		switch {
		case slices.ContainsFunc(r.GetEvents(), func(e *mvccpb.Event) bool { return e.GetType() == mvccpb.Event_DELETE }):
			return true, false, nil
		case r.GetCompactRevision() != 0:
			return false, true, nil
		case r.GetCanceled():
			return false, false, fmt.Errorf("%w: watch %q: %s", errWatchCanceled, key, r.GetCancelReason())
		}
	}
	return false, false, c.wrap(err)
}
