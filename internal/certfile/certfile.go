// Package certfile serves a TLS key pair from PEM files that are replaced
// while the process runs (a renewed Kubernetes Secret, cert-manager): the
// pair is read again when either file's modification time changes, and
// the last good pair is kept while the files are briefly missing or
// mismatched (a Secret update writes them one after the other).
package certfile

import (
	"crypto/tls"
	"os"
	"sync"
)

// KeyPair is a certificate and key read from CertFile and KeyFile. Get is
// safe for concurrent use.
type KeyPair struct {
	CertFile, KeyFile string

	// mu guards loaded and stamp.
	mu     sync.Mutex
	loaded *tls.Certificate
	stamp  string
}

// Get returns the current pair, reading the files again when they
// changed. An error is returned only while no pair has been read yet.
func (k *KeyPair) Get() (*tls.Certificate, error) {
	stamp := ""
	for _, p := range []string{k.CertFile, k.KeyFile} {
		st, err := os.Stat(p)
		if err != nil {
			return k.last(err)
		}
		stamp += st.ModTime().String() + ";"
	}
	k.mu.Lock()
	last, fresh := k.loaded, k.loaded != nil && stamp == k.stamp
	k.mu.Unlock()
	if fresh {
		return last, nil
	}
	c, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
	if err != nil {
		return k.last(err)
	}
	k.mu.Lock()
	k.loaded, k.stamp = &c, stamp
	k.mu.Unlock()
	return &c, nil
}

// last is the last good pair, or err when there is none.
func (k *KeyPair) last(err error) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.loaded != nil {
		return k.loaded, nil
	}
	return nil, err
}
