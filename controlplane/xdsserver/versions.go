package xdsserver

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// hashVersion is the version of a set of resources: a hash of their names
// and content hashes, in name order.
func hashVersion(names []string, versions map[string]string) string {
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(versions[n]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// sortByName sorts resources by their xDS name.
func sortByName(rs []types.Resource) {
	slices.SortFunc(rs, func(a, b types.Resource) int {
		return cmp.Compare(cache.GetResourceName(a), cache.GetResourceName(b))
	})
}

// compareBool orders true before false.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}
