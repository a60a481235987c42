// Package keyadmin serves a gossip member's keyring on an admin HTTP server
// so that operators can rotate the mesh's gossip key without restarts:
// install the new key on every member, then use it on every member, then
// remove the old one (see package gossip, "Security"). `shoal gossip keys`
// is its client; sidecars, gateways and the control plane mount Handler at
// Path.
//
//	GET  /gossip/keys                                  → {"keys":[{"fingerprint":"sha256:…","primary":true}]}
//	POST /gossip/keys {"op":"install","key":"<base64>"} → the keys after the step
//
// Keys never leave the member: GET lists fingerprints only. A POST must
// prove that its sender already holds a key installed on the member (the
// same authority gossip itself trusts): its AuthHeader carries an
// HMAC-SHA256 of the body and a timestamp under such a key (see Sign).
// Without it anyone who can reach an admin port (0.0.0.0 in Kubernetes, for
// Prometheus) could install and use a key of their own, cutting the member
// off the mesh and reading its gossip. The body still carries the new key
// in the clear: reach admin ports over a trusted network.
package keyadmin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Path is where Handler is mounted on the admin mux.
const Path = "/gossip/keys"

// Ops accepted in Request.Op.
const (
	OpInstall = "install" // add a key: decrypt with it, still encrypt with the primary
	OpUse     = "use"     // make an installed key the primary (encrypting) key
	OpRemove  = "remove"  // drop a key that is not the primary
)

// Keyring is what Handler needs of a gossip member; *gossip.Member
// implements it. Its methods must be safe for concurrent use.
type Keyring interface {
	InstallKey(key []byte) error
	UseKey(key []byte) error
	RemoveKey(key []byte) error
	Keys() [][]byte // primary first; nil without encryption
}

// AuthHeader is the POST header that proves the sender holds a key already
// installed on the member: "t=<unix seconds>,mac=<base64url HMAC-SHA256>",
// made by Sign.
const AuthHeader = "Shoal-Keyring-Auth"

// MaxClockSkew is how far an AuthHeader's time may be from the member's
// clock: it bounds how long a captured request can be replayed.
const MaxClockSkew = 5 * time.Minute

// Sign returns the AuthHeader value for a POST of body signed with key (a
// key the members already have) at time now.
func Sign(key, body []byte, now time.Time) string {
	t := strconv.FormatInt(now.Unix(), 10)
	return "t=" + t + ",mac=" + base64.RawURLEncoding.EncodeToString(mac(key, t, body))
}

func mac(key []byte, t string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	io.WriteString(h, "shoal-keyring-v1\n"+t+"\n")
	h.Write(body)
	return h.Sum(nil)
}

var errNoAuth = errors.New("this POST needs a " + AuthHeader + " header signed with a gossip key the member already has (shoal gossip keys ... --auth-key)")

// verify checks an AuthHeader value against every installed key.
func verify(header string, body []byte, keys [][]byte, now time.Time) error {
	if header == "" {
		return errNoAuth
	}
	var t, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = v
		case "mac":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: bad or missing t=: %q", AuthHeader, t)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return fmt.Errorf("%s: signed at %s, more than %s from this member's clock", AuthHeader, time.Unix(sec, 0).UTC().Format(time.RFC3339), MaxClockSkew)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%s: bad or missing mac=", AuthHeader)
	}
	for _, k := range keys {
		if hmac.Equal(got, mac(k, t, body)) {
			return nil
		}
	}
	return fmt.Errorf("%s: not signed with any key installed on this member", AuthHeader)
}

// Request is the body of a POST.
type Request struct {
	Op  string `json:"op"`
	Key string `json:"key"` // base64 (standard encoding) of 32 bytes
}

// Key describes one installed key without revealing it.
type Key struct {
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// Response is the body of every answer: the keys after the request, or an
// error.
type Response struct {
	// Encrypted is false when the member runs without gossip encryption
	// (no --gossip-key at start); keys cannot be added at runtime then.
	Encrypted bool   `json:"encrypted"`
	Keys      []Key  `json:"keys"`
	Error     string `json:"error,omitempty"`
}

// Fingerprint identifies a key without revealing it: "sha256:" and the
// first 8 bytes of its SHA-256, in hex.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// ParseKey decodes a base64 32-byte key.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("keyadmin: key is not base64: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("keyadmin: key is %d bytes, want 32 (AES-256)", len(key))
	}
	return key, nil
}

// Handler serves GET and POST on Path. ring is called per request and
// returns nil while the member has no gossip (404), so the handler may be
// mounted before gossip starts. Every applied step is logged at Info with
// the key's fingerprint.
func Handler(ring func() Keyring, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kr := ring()
		if kr == nil {
			reply(w, http.StatusNotFound, Response{Error: "gossip is off on this member"})
			return
		}
		switch r.Method {
		case http.MethodGet:
			reply(w, http.StatusOK, describe(kr))
		case http.MethodPost:
			post(w, r, kr, log)
		default:
			w.Header().Set("Allow", "GET, POST")
			reply(w, http.StatusMethodNotAllowed, Response{Error: "want GET or POST"})
		}
	})
}

// post applies one rotation step. A POST without a valid AuthHeader is 401
// and changes nothing; malformed requests are 400; a step the keyring
// refuses (use of a key not installed, removal of the primary, no
// encryption) is 409 with the keyring unchanged.
func post(w http.ResponseWriter, r *http.Request, kr Keyring, log *slog.Logger) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		reply(w, http.StatusBadRequest, Response{Error: "body: " + err.Error()})
		return
	}
	// A member without encryption has no key to check against; it refuses
	// every step below anyway (409).
	if keys := kr.Keys(); len(keys) > 0 {
		if err := verify(r.Header.Get(AuthHeader), body, keys, time.Now()); err != nil {
			log.Warn("refused an unauthenticated gossip keyring change", "from", r.RemoteAddr, "err", err)
			w.Header().Set("WWW-Authenticate", AuthHeader)
			reply(w, http.StatusUnauthorized, Response{Error: err.Error()})
			return
		}
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		reply(w, http.StatusBadRequest, Response{Error: "body: " + err.Error()})
		return
	}
	key, err := ParseKey(req.Key)
	if err != nil {
		reply(w, http.StatusBadRequest, Response{Error: err.Error()})
		return
	}
	var op func([]byte) error
	switch req.Op {
	case OpInstall:
		op = kr.InstallKey
	case OpUse:
		op = kr.UseKey
	case OpRemove:
		op = kr.RemoveKey
	default:
		reply(w, http.StatusBadRequest, Response{Error: fmt.Sprintf("op %q: want install, use or remove", req.Op)})
		return
	}
	if err := op(key); err != nil {
		out := describe(kr)
		out.Error = err.Error()
		reply(w, http.StatusConflict, out)
		return
	}
	log.Info("gossip keyring changed", "op", req.Op, "key", Fingerprint(key), "from", r.RemoteAddr)
	reply(w, http.StatusOK, describe(kr))
}

func describe(kr Keyring) Response {
	keys := kr.Keys()
	out := Response{Encrypted: len(keys) > 0, Keys: []Key{}}
	for i, k := range keys {
		out.Keys = append(out.Keys, Key{Fingerprint: Fingerprint(k), Primary: i == 0})
	}
	return out
}

func reply(w http.ResponseWriter, code int, v Response) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
