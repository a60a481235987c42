package keyadmin_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"

	"github.com/shoal-mesh/shoal/registry/gossip"
	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
)

// fakeRing adapts memberlist's own keyring (the one gossip.Member uses).
type fakeRing struct{ r *memberlist.Keyring }

func (f fakeRing) InstallKey(k []byte) error { return f.r.AddKey(k) }
func (f fakeRing) UseKey(k []byte) error     { return f.r.UseKey(k) }
func (f fakeRing) RemoveKey(k []byte) error  { return f.r.RemoveKey(k) }
func (f fakeRing) Keys() [][]byte            { return f.r.GetKeys() }

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func TestHandler(t *testing.T) {
	k1, k2 := key(1), key(2)
	f1, f2 := keyadmin.Fingerprint(k1), keyadmin.Fingerprint(k2)
	// Steps run in order against one keyring: a rotation and its mistakes.
	steps := []struct {
		name     string
		method   string
		body     string
		wantCode int
		want     []keyadmin.Key
		wantErr  string
	}{
		{"lists the primary key by fingerprint", "GET", "", 200, []keyadmin.Key{{Fingerprint: f1, Primary: true}}, ""},
		{"refuses to use a key not installed", "POST", `{"op":"use","key":"` + b64(k2) + `"}`, 409,
			[]keyadmin.Key{{Fingerprint: f1, Primary: true}}, "not in the keyring"},
		{"installs a second key", "POST", `{"op":"install","key":"` + b64(k2) + `"}`, 200,
			[]keyadmin.Key{{Fingerprint: f1, Primary: true}, {Fingerprint: f2}}, ""},
		{"installing again is a no-op", "POST", `{"op":"install","key":"` + b64(k2) + `"}`, 200,
			[]keyadmin.Key{{Fingerprint: f1, Primary: true}, {Fingerprint: f2}}, ""},
		{"makes it primary", "POST", `{"op":"use","key":"` + b64(k2) + `"}`, 200,
			[]keyadmin.Key{{Fingerprint: f2, Primary: true}, {Fingerprint: f1}}, ""},
		{"refuses to remove the primary", "POST", `{"op":"remove","key":"` + b64(k2) + `"}`, 409,
			[]keyadmin.Key{{Fingerprint: f2, Primary: true}, {Fingerprint: f1}}, "primary"},
		{"removes the old key", "POST", `{"op":"remove","key":"` + b64(k1) + `"}`, 200,
			[]keyadmin.Key{{Fingerprint: f2, Primary: true}}, ""},
		{"rejects a short key", "POST", `{"op":"install","key":"` + b64(k1[:16]) + `"}`, 400, nil, "want 32"},
		{"rejects an unknown op", "POST", `{"op":"rotate","key":"` + b64(k1) + `"}`, 400, nil, "want install"},
		{"rejects malformed JSON", "POST", `{"op":`, 400, nil, "body"},
		{"rejects other methods", "DELETE", "", 405, nil, "want GET or POST"},
	}
	ring, err := memberlist.NewKeyring(nil, k1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(keyadmin.Handler(func() keyadmin.Keyring { return fakeRing{ring} }, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			// Signed like an operator would: with the current primary key.
			got, code := do(t, srv.URL, tc.method, tc.body, ring.GetPrimaryKey(), time.Now())
			if code != tc.wantCode {
				t.Fatalf("status = %d, want %d (%+v)", code, tc.wantCode, got)
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, got.Keys); diff != "" {
					t.Errorf("keys (-want +got):\n%s", diff)
				}
			}
			if !strings.Contains(got.Error, tc.wantErr) || (tc.wantErr == "") != (got.Error == "") {
				t.Errorf("error = %q, want it to contain %q", got.Error, tc.wantErr)
			}
		})
	}
}

func TestHandlerWithoutGossip(t *testing.T) {
	srv := httptest.NewServer(keyadmin.Handler(func() keyadmin.Keyring { return nil }, slog.Default()))
	defer srv.Close()
	if _, code := do(t, srv.URL, "GET", "", nil, time.Time{}); code != http.StatusNotFound {
		t.Errorf("status = %d, want 404", code)
	}
}

func TestResponsesNeverContainKeys(t *testing.T) {
	k1, k2 := key(7), key(8)
	ring, err := memberlist.NewKeyring([][]byte{k2}, k1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(keyadmin.Handler(func() keyadmin.Keyring { return fakeRing{ring} }, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, k := range [][]byte{k1, k2} {
		if bytes.Contains(body, []byte(b64(k))) || bytes.Contains(body, k) {
			t.Errorf("GET body reveals a key: %s", body)
		}
	}
}

// TestHandlerRefusesUnauthenticatedChanges: only a caller holding a key
// the member already has may change its keyring; anyone else gets 401 and
// the keyring stays as it was. Reading fingerprints needs no key.
func TestHandlerRefusesUnauthenticatedChanges(t *testing.T) {
	k1, k2, evil := key(1), key(2), key(9)
	ring, err := memberlist.NewKeyring([][]byte{k2}, k1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(keyadmin.Handler(func() keyadmin.Keyring { return fakeRing{ring} }, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	install := `{"op":"install","key":"` + b64(evil) + `"}`
	now := time.Now()
	for _, tc := range []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"signed with a key the member does not have", keyadmin.Sign(evil, []byte(install), now)},
		{"signed for another body", keyadmin.Sign(k1, []byte(`{"op":"install","key":"`+b64(k2)+`"}`), now)},
		{"signed too long ago (replay)", keyadmin.Sign(k1, []byte(install), now.Add(-keyadmin.MaxClockSkew-time.Minute))},
		{"garbage", "t=abc,mac=%%%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, code := doHeader(t, srv.URL, "POST", install, tc.header)
			if code != http.StatusUnauthorized || !strings.Contains(got.Error, keyadmin.AuthHeader) {
				t.Errorf("status = %d, error %q; want 401 naming %s", code, got.Error, keyadmin.AuthHeader)
			}
			if n := len(ring.GetKeys()); n != 2 {
				t.Errorf("keyring has %d keys after a refused POST, want 2", n)
			}
		})
	}
	// Any installed key signs, not only the primary one.
	if got, code := do(t, srv.URL, "POST", install, k2, now); code != http.StatusOK || len(got.Keys) != 3 {
		t.Errorf("POST signed with the secondary key: %d %+v, want 200 and 3 keys", code, got)
	}
	if _, code := do(t, srv.URL, "GET", "", nil, time.Time{}); code != http.StatusOK {
		t.Errorf("GET without a signature = %d, want 200", code)
	}
}

// do sends a request, signed with signKey at signAt when signKey is set.
func do(t *testing.T, url, method, body string, signKey []byte, signAt time.Time) (keyadmin.Response, int) {
	t.Helper()
	header := ""
	if signKey != nil {
		header = keyadmin.Sign(signKey, []byte(body), signAt)
	}
	return doHeader(t, url, method, body, header)
}

func doHeader(t *testing.T, url, method, body, auth string) (keyadmin.Response, int) {
	t.Helper()
	req, err := http.NewRequest(method, url+keyadmin.Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set(keyadmin.AuthHeader, auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out keyadmin.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out, resp.StatusCode
}

// Sidecars and the control plane mount Handler over a *gossip.Member.
var _ keyadmin.Keyring = (*gossip.Member)(nil)
