package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The mTLS pairs' configurations are what their tools accept: nginx -t
// and haproxy -c check them with the bench CA's files, and each side
// requires TLS 1.3, the one suite and a client certificate.
func TestMTLSConfs(t *testing.T) {
	dir := t.TempDir()
	pki, err := writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	dirA, dirB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.MkdirAll(dirA, 0o755)
	os.MkdirAll(dirB, 0o755)
	na, nb := nginxMTLSConfs(dirA, dirB, "127.0.0.1:18080", "127.0.0.1:18443", "127.0.0.1:19001", pki)
	ha, hb := haproxyMTLSConfs("127.0.0.1:18080", "127.0.0.1:18443", "127.0.0.1:19001", pki)
	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{"nginx A", na, []string{"proxy_pass https://backend;", "proxy_ssl_certificate " + pki.ACert, "proxy_ssl_verify on;",
			"proxy_ssl_protocols TLSv1.3;", "Ciphersuites TLS_AES_128_GCM_SHA256", "server 127.0.0.1:18443;", "keepalive 256;"}},
		{"nginx B", nb, []string{"listen 127.0.0.1:18443 ssl;", "ssl_verify_client on;", "ssl_client_certificate " + pki.CA,
			"ssl_protocols TLSv1.3;", "server 127.0.0.1:19001;"}},
		{"haproxy A", ha, []string{"server b1 127.0.0.1:18443 ssl crt " + pki.APEM, "verify required", "ssl-min-ver TLSv1.3", "http-reuse always"}},
		{"haproxy B", hb, []string{"bind 127.0.0.1:18443 ssl crt " + pki.BPEM, "ca-file " + pki.CA + " verify required", "server b1 127.0.0.1:19001"}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.conf, w) {
				t.Errorf("%s lacks %q:\n%s", tc.name, w, tc.conf)
			}
		}
	}
	check := func(tool string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not installed: its check is skipped (bench/run.sh installs it)", tool)
			return
		}
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
		}
	}
	for _, side := range []struct{ dir, conf string }{{dirA, na}, {dirB, nb}} {
		f := filepath.Join(side.dir, "nginx.conf")
		os.WriteFile(f, []byte(side.conf), 0o644)
		check("nginx", "-t", "-q", "-p", side.dir, "-c", f, "-e", filepath.Join(side.dir, "nginx-error.log"))
	}
	for i, conf := range []string{ha, hb} {
		f := filepath.Join(dir, []string{"a.cfg", "b.cfg"}[i])
		os.WriteFile(f, []byte(conf), 0o644)
		check("haproxy", "-c", "-q", "-f", f)
	}
}

func TestParseConfigMTLS(t *testing.T) {
	c, err := parseConfig([]string{"-mtls"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.MTLS || len(c.Strategies) != 1 || c.Strategies[0] != "rr" {
		t.Errorf("-mtls: MTLS %v strategies %v, want round robin only", c.MTLS, c.Strategies)
	}
	if _, err := parseConfig([]string{"-mtls", "-h2"}); err == nil {
		t.Error("-mtls with -h2 accepted")
	}
	if _, err := parseConfig([]string{"-mtls", "-strategies", "hash"}); err == nil || !strings.Contains(err.Error(), "-strategies rr") {
		t.Errorf("-mtls -strategies hash: %v, want an error naming -strategies rr", err)
	}
}
