package main

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"strings"
)

// identityFlags are the workload identity flags of `shoal sidecar`,
// `shoal gateway` and `shoal identity fetch`.
type identityFlags struct {
	tokenFile, caBundle, mtls string
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tokenFile, "join-token-file", "", "`FILE` with a join token from shoal tokens create (or $SHOAL_JOIN_TOKEN): gives this proxy a workload identity, mTLS on --listen and to mTLS upstreams")
	fs.StringVar(&f.caBundle, "ca-bundle", "", "PEM file of the mesh root CA to verify the control plane with (default: the root fingerprint in the join token)")
}

// registerMTLS adds --mtls, the proxies' upstream mTLS mode.
func (f *identityFlags) registerMTLS(fs *flag.FlagSet) {
	fs.StringVar(&f.mtls, "mtls", "auto", "with an identity: auto (mTLS to endpoints registered as mTLS, plain to the others) or strict (mTLS to every upstream; plain ones are refused)")
}

// resolve reads the token (the file wins over $SHOAL_JOIN_TOKEN) and the
// CA bundle.
func (f *identityFlags) resolve() (token string, bundle []*x509.Certificate, err error) {
	token = os.Getenv("SHOAL_JOIN_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", nil, fmt.Errorf("--join-token-file: %w", err)
		}
		token = string(b)
	}
	token = strings.TrimSpace(token)
	if f.caBundle != "" {
		if bundle, err = readCertsPEM(f.caBundle); err != nil {
			return "", nil, fmt.Errorf("--ca-bundle: %w", err)
		}
	}
	return token, bundle, nil
}

func readCertsPEM(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return out, nil
}
