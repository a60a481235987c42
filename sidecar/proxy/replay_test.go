package proxy

import (
	"errors"
	"io"
	"testing"
)

type readResult struct {
	data string
	err  error
}

// readAsync reads once from r in a goroutine and delivers the result.
func readAsync(r io.Reader) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := r.Read(buf)
		ch <- readResult{string(buf[:n]), err}
	}()
	return ch
}

// waitReading waits until a reader of rb is blocked in the client body.
func waitReading(t *testing.T, rb *replayBody) {
	t.Helper()
	eventually(t, "a read of the client body", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return rb.reading
	})
}

func TestReplayBody(t *testing.T) {
	t.Run("the next attempt replays what the previous one read", func(t *testing.T) {
		rb := newReplayBody(io.MultiReader(stringsReader("abc"), stringsReader("def")), 16)
		first := rb.next()
		if got, err := io.ReadAll(first); string(got) != "abcdef" || err != nil {
			t.Fatalf("first attempt read %q, %v", got, err)
		}
		if !rb.replayable() || !rb.complete() {
			t.Fatal("a body within the limit is not replayable and complete")
		}
		second := rb.next()
		if _, err := first.Read(make([]byte, 1)); !errors.Is(err, errAttemptOver) {
			t.Errorf("abandoned reader: %v, want errAttemptOver", err)
		}
		if got, err := io.ReadAll(second); string(got) != "abcdef" || err != nil {
			t.Fatalf("second attempt read %q, %v", got, err)
		}
	})

	t.Run("a body over the limit streams and is not replayable", func(t *testing.T) {
		rb := newReplayBody(io.MultiReader(stringsReader("abc"), stringsReader("defgh")), 4)
		if got, err := io.ReadAll(rb.next()); string(got) != "abcdefgh" || err != nil {
			t.Fatalf("read %q, %v", got, err)
		}
		if rb.replayable() {
			t.Error("a body over the limit is replayable")
		}
		if rb.buf != nil {
			t.Errorf("%d bytes kept after the limit was passed", len(rb.buf))
		}
	})

	// A transport may still read an abandoned attempt's body: what that
	// read returns belongs to the current attempt, even past the limit.
	t.Run("bytes read by an abandoned attempt go to the current one", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pr.Close()
		rb := newReplayBody(pr, 4)
		first := rb.next()
		go pw.Write([]byte("abc"))
		if got := <-readAsync(first); got.data != "abc" || got.err != nil {
			t.Fatalf("first read = %q, %v", got.data, got.err)
		}
		blocked := readAsync(first)
		waitReading(t, rb)
		second := rb.next()
		go func() {
			pw.Write([]byte("defgh"))
			pw.Close()
		}()
		if got := <-blocked; !errors.Is(got.err, errAttemptOver) || got.data != "" {
			t.Errorf("abandoned read = %q, %v; want errAttemptOver", got.data, got.err)
		}
		if got, err := io.ReadAll(second); string(got) != "abcdefgh" || err != nil {
			t.Fatalf("second attempt read %q, %v; want the whole body", got, err)
		}
		if rb.replayable() {
			t.Error("replayable after more than the limit was read")
		}
	})

	t.Run("a failed client body is not replayable", func(t *testing.T) {
		pr, pw := io.Pipe()
		rb := newReplayBody(pr, 16)
		pw.CloseWithError(io.ErrUnexpectedEOF)
		if _, err := io.ReadAll(rb.next()); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read error %v, want the client's", err)
		}
		if rb.replayable() || !rb.failed() || rb.complete() {
			t.Error("a failed body counts as replayable or complete")
		}
	})

	t.Run("closing an attempt wakes its waiting reader", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pr.Close()
		rb := newReplayBody(pr, 16)
		first := rb.next()
		blocked := readAsync(first)
		waitReading(t, rb)
		second := rb.next()
		waiting := readAsync(second) // waits for first's read of the pipe
		second.Close()
		go pw.Write([]byte("x"))
		for _, ch := range []<-chan readResult{blocked, waiting} {
			if got := <-ch; !errors.Is(got.err, errAttemptOver) {
				t.Errorf("read = %q, %v; want errAttemptOver", got.data, got.err)
			}
		}
	})
}

func stringsReader(s string) io.Reader { return &onceReader{s: s} }

// onceReader returns its string in one Read, then EOF, so that tests
// control how the body arrives.
type onceReader struct{ s string }

func (o *onceReader) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	n := copy(p, o.s)
	o.s = o.s[n:]
	return n, nil
}
