package metric

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// vec is a family of metrics of type T, one per combination of label
// values. Lookups hash the values (no allocation) and take a read lock;
// only a new combination takes the write lock and allocates.
type vec[T any] struct {
	d    *desc
	newT func() *T
	// mu guards children: by hash of the label values (in the caller's
	// order), the children with that hash.
	mu       sync.RWMutex
	children map[uint64][]*child[T]
}

// child is one series: its label values in the order of desc.labels.
type child[T any] struct {
	values []string
	m      *T
}

func newVec[T any](d *desc, newT func() *T) vec[T] {
	return vec[T]{d: d, newT: newT, children: make(map[uint64][]*child[T])}
}

// with returns the child for lvs, creating it on first use. It panics when
// the number of values does not match the label names, like client_golang:
// that is a bug of the call site, not of the data.
func (v *vec[T]) with(lvs []string) *T {
	if len(lvs) != len(v.d.labels) {
		panic(fmt.Sprintf("metric: %s: %d label values for %d label names", v.d.name, len(lvs), len(v.d.labels)))
	}
	lvs = validUTF8(lvs)
	h := hashValues(lvs)
	v.mu.RLock()
	c := v.find(h, lvs)
	v.mu.RUnlock()
	if c != nil {
		return c.m
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.find(h, lvs); c != nil {
		return c.m
	}
	values := make([]string, len(lvs))
	for i, pos := range v.d.order {
		values[i] = strings.Clone(lvs[pos])
	}
	c = &child[T]{values: values, m: v.newT()}
	v.children[h] = append(v.children[h], c)
	return c.m
}

// delete removes the child for lvs and reports whether it existed.
func (v *vec[T]) delete(lvs []string) bool {
	if len(lvs) != len(v.d.labels) {
		return false
	}
	lvs = validUTF8(lvs)
	h := hashValues(lvs)
	v.mu.Lock()
	defer v.mu.Unlock()
	cs := v.children[h]
	for i, c := range cs {
		if v.matches(c, lvs) {
			if len(cs) == 1 {
				delete(v.children, h)
			} else {
				v.children[h] = slices.Delete(cs, i, i+1)
			}
			return true
		}
	}
	return false
}

// find returns the child for lvs or nil; v.mu is held.
func (v *vec[T]) find(h uint64, lvs []string) *child[T] {
	for _, c := range v.children[h] {
		if v.matches(c, lvs) {
			return c
		}
	}
	return nil
}

func (v *vec[T]) matches(c *child[T], lvs []string) bool {
	for i, pos := range v.d.order {
		if c.values[i] != lvs[pos] {
			return false
		}
	}
	return true
}

// collect appends v's family with one sample per child, sorted by label
// values.
func (v *vec[T]) collect(dst []Family, sample func(*T) Sample) []Family {
	v.mu.RLock()
	cs := make([]*child[T], 0, len(v.children))
	for _, list := range v.children {
		cs = append(cs, list...)
	}
	v.mu.RUnlock()
	f := v.d.family()
	f.Samples = make([]Sample, len(cs))
	for i, c := range cs {
		f.Samples[i] = sample(c.m)
		f.Samples[i].LabelValues = c.values
	}
	sortSamples(f.Samples)
	return append(dst, f)
}

// sortSamples sorts by label values. It is not generic so that the
// vectors of every type share one sort.
func sortSamples(s []Sample) {
	slices.SortFunc(s, func(a, b Sample) int { return slices.Compare(a.LabelValues, b.LabelValues) })
}

// validUTF8 returns lvs, or a copy with invalid UTF-8 replaced: a series
// must be valid UTF-8 to be scraped at all.
func validUTF8(lvs []string) []string {
	for i, s := range lvs {
		if !utf8.ValidString(s) {
			out := slices.Clone(lvs)
			for j := i; j < len(out); j++ {
				out[j] = strings.ToValidUTF8(out[j], string(utf8.RuneError))
			}
			return out
		}
	}
	return lvs
}

// hashValues is FNV-1a over the values, each followed by a 0xff byte
// (which UTF-8 never contains) so that ("ab", "c") and ("a", "bc") differ.
func hashValues(lvs []string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, s := range lvs {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime
		}
		h ^= 0xff
		h *= prime
	}
	return h
}
