package gossip

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// TestAEADCacheReusesCiphers: the packet tap builds a key's cipher once,
// not per packet, and follows key ring changes.
func TestAEADCacheReusesCiphers(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	var c aeadCache
	first := c.get([][]byte{k1, k2})
	if len(first) != 2 {
		t.Fatalf("got %d AEADs, want 2", len(first))
	}
	if allocs := testing.AllocsPerRun(100, func() { c.get([][]byte{k1, k2}) }); allocs != 0 {
		t.Errorf("get with unchanged keys allocates %.0f times, want 0", allocs)
	}
	// A packet sealed with the second key opens (memberlist: first key that works).
	nonce := make([]byte, encNonceSize)
	rand.Read(nonce)
	sealed := first[1].Seal(nil, nonce, []byte("ping"), []byte("label"))
	msg := append(append([]byte{1}, nonce...), sealed...)
	plain, err := decrypt(first, msg, []byte("label"))
	if err != nil || string(plain) != "ping" {
		t.Fatalf("decrypt = %q, %v", plain, err)
	}
	// Rotation: k1 removed, k3 added; k2's cipher is kept.
	k3 := bytes.Repeat([]byte{3}, 24)
	next := c.get([][]byte{k2, k3})
	if len(next) != 2 || next[0] != first[1] {
		t.Errorf("after rotation: %d AEADs, k2's reused = %v", len(next), len(next) > 0 && next[0] == first[1])
	}
	if _, err := decrypt(next[1:], msg, []byte("label")); err == nil {
		t.Error("a packet sealed with k2 opened with k3 only")
	}
}
