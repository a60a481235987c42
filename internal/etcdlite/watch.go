package etcdlite

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
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
	// WatchRequest: create_request = 1, a WatchCreateRequest: key = 1,
	// start_revision = 3, filters = 5 (packed; NOPUT = 0: deletions only).
	create := appendBytes(nil, 1, []byte(key))
	create = appendInt(create, 3, start)
	create = protowire.AppendTag(create, 5, protowire.BytesType)
	create = protowire.AppendBytes(create, []byte{0})
	req := appendBytes(nil, 1, create)
	err = stream.SendMsg(&req)
	for err == nil || errors.Is(err, io.EOF) { // io.EOF: RecvMsg has the stream's status
		var resp []byte
		if err = stream.RecvMsg(&resp); err != nil {
			break
		}
		var r watchResponse
		if r, err = decodeWatchResponse(resp); err != nil {
			return false, false, err
		}
		switch {
		case r.deleted:
			return true, false, nil
		case r.compactRevision != 0:
			return false, true, nil
		case r.canceled:
			return false, false, fmt.Errorf("%w: watch %q: %s", errWatchCanceled, key, r.cancelReason)
		}
	}
	return false, false, c.wrap(err)
}
