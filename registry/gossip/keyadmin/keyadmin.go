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
// Keys never leave the member: GET lists fingerprints only.
package keyadmin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
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

// post applies one rotation step. Malformed requests are 400; a step the
// keyring refuses (use of a key not installed, removal of the primary, no
// encryption) is 409 with the keyring unchanged.
func post(w http.ResponseWriter, r *http.Request, kr Keyring, log *slog.Logger) {
	var req Request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
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
