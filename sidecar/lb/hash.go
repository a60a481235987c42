package lb

import "github.com/cespare/xxhash/v2"

// HashString returns the 64-bit hash of a request hash key (a source IP, a
// header or cookie value) for PickInfo.Hash. It is xxHash64 with seed 0, the
// function Envoy uses for its hash policies, and does not allocate.
func HashString(s string) uint64 { return xxhash.Sum64String(s) }

// HashBytes is HashString for a byte slice; HashBytes(b) ==
// HashString(string(b)). It does not allocate or retain b.
func HashBytes(b []byte) uint64 { return xxhash.Sum64(b) }
