package gossip

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A ticket binds a member's gossip name to the service of its identity
// (issue 14: "a member speaks only for itself"). The control plane signs it
// with the mesh CA's key after authenticating the member's SVID, and the
// member publishes it in its node metadata; members that require tickets
// (Config.TicketKeys) accept a member's health claims only about instances
// of the service its ticket names. memberlist's symmetric key keeps
// strangers out; tickets keep one authenticated member from speaking for
// another service: without them any key holder could claim every instance
// of `web` unhealthy and take it out of every rotation.
//
// Encoding (inside the metadata, see meta.go):
//
//	[len uvarint][service][expires unix seconds uvarint][len uvarint][ECDSA ASN.1 signature]
//
// The signature is over SHA-256 of ticketContext, the member name, the
// service and the expiry, so a ticket copied from one member's metadata is
// worthless under another name (and memberlist refuses a second member
// under a live member's name).
const ticketContext = "shoal gossip ticket v1\x00"

// Ticket is a decoded ticket. Sig is the CA's signature.
type Ticket struct {
	Service string
	Expires time.Time
	Sig     []byte
}

func ticketDigest(name, service string, expires int64) []byte {
	h := sha256.New()
	h.Write([]byte(ticketContext))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(service))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(expires)))
	return h.Sum(nil)
}

// SignTicket returns an encoded ticket for member name speaking for
// service until expires, signed by signer (an ECDSA key: the mesh CA's).
func SignTicket(signer crypto.Signer, name, service string, expires time.Time) ([]byte, error) {
	exp := expires.Unix()
	sig, err := signer.Sign(rand.Reader, ticketDigest(name, service, exp), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("gossip: sign ticket: %w", err)
	}
	b := appendString(nil, service)
	b = binary.AppendUvarint(b, uint64(exp))
	b = binary.AppendUvarint(b, uint64(len(sig)))
	return append(b, sig...), nil
}

// ParseTicket decodes an encoded ticket without verifying it.
func ParseTicket(b []byte) (Ticket, error) {
	r := metaReader{b: b}
	t := Ticket{Service: r.string()}
	exp := r.uvarint()
	sig := r.string()
	if r.bad || len(r.b) != 0 || t.Service == "" || len(sig) == 0 {
		return Ticket{}, errors.New("gossip: malformed ticket")
	}
	t.Expires, t.Sig = time.Unix(int64(exp), 0), []byte(sig)
	return t, nil
}

// Verification errors, for logs and tests.
var (
	ErrNoTicket      = errors.New("gossip: no ticket")
	ErrTicketExpired = errors.New("gossip: ticket expired")
	ErrTicketInvalid = errors.New("gossip: ticket not signed by a trusted key for this member name")
)

// VerifyTicket checks that b is a ticket for member name, unexpired at now
// and signed by one of keys (ECDSA public keys). It returns the service the
// member may speak for.
func VerifyTicket(keys []crypto.PublicKey, name string, b []byte, now time.Time) (string, error) {
	if len(b) == 0 {
		return "", ErrNoTicket
	}
	t, err := ParseTicket(b)
	if err != nil {
		return "", err
	}
	if !now.Before(t.Expires) {
		return "", ErrTicketExpired
	}
	d := ticketDigest(name, t.Service, t.Expires.Unix())
	for _, k := range keys {
		if pub, ok := k.(*ecdsa.PublicKey); ok && ecdsa.VerifyASN1(pub, d, t.Sig) {
			return t.Service, nil
		}
	}
	return "", ErrTicketInvalid
}
