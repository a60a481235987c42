package gossip

import (
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"sync/atomic"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// memberlist's packet message types (net.go, messageType). They are part of
// memberlist's wire protocol, which must stay stable for clusters that mix
// library versions during a rolling upgrade, so reading them is safe in a
// way that reading memberlist's unexported state would not be.
const (
	wireSuspect  = 3
	wireAlive    = 4
	wireDead     = 5
	wireCompound = 7
	wireCompress = 9
	wireHasCRC   = 12
)

// AES-GCM framing of memberlist's security.go: [version][nonce][sealed].
const (
	encVersionSize = 1
	encNonceSize   = 12
	encMinLen      = encVersionSize + encNonceSize + 16 // + GCM tag
	lzwLitWidth    = 8
	maxInflate     = 1 << 20
)

// wireKind is the kind of a membership message observed on the wire.
type wireKind uint8

const (
	kindSuspect wireKind = iota + 1
	kindAlive
	kindDead
)

// wireMsg is the part of memberlist's suspect, alive and dead messages that
// the tap needs. Field names match memberlist's msgpack encoding.
type wireMsg struct {
	Kind        wireKind `codec:"-"`
	Incarnation uint32
	Node        string
	From        string
}

// wireCompress mirrors memberlist's compress message.
type wireCompressed struct {
	Algo int
	Buf  []byte
}

var errNoKey = errors.New("gossip: no installed key decrypts the packet")

// decodePacket returns the membership messages in one memberlist packet as
// it crosses the transport (label header, then encryption when keys are
// given). Packets that are not for this cluster's label, or that no key
// opens, yield nothing; memberlist drops those too.
func decodePacket(pkt []byte, label string, aeads []cipher.AEAD) ([]wireMsg, error) {
	buf, got, err := memberlist.RemoveLabelHeaderFromPacket(pkt)
	if err != nil || got != label {
		return nil, err
	}
	if len(aeads) > 0 {
		if buf, err = decrypt(aeads, buf, []byte(label)); err != nil {
			return nil, err
		}
	}
	if len(buf) >= 5 && buf[0] == wireHasCRC {
		if crc32.ChecksumIEEE(buf[5:]) != binary.BigEndian.Uint32(buf[1:5]) {
			return nil, errors.New("gossip: packet checksum mismatch")
		}
		buf = buf[5:]
	}
	var out []wireMsg
	return out, decodeMessage(buf, &out, 0)
}

// decodeMessage appends the membership messages in buf to out, descending
// into compound and compressed messages (at most two levels, as memberlist
// itself never nests deeper).
func decodeMessage(buf []byte, out *[]wireMsg, depth int) error {
	if len(buf) == 0 || depth > 2 {
		return nil
	}
	switch buf[0] {
	case wireSuspect, wireAlive, wireDead:
		m := wireMsg{Kind: wireKind(buf[0]-wireSuspect) + kindSuspect}
		if err := codec.NewDecoderBytes(buf[1:], &codec.MsgpackHandle{}).Decode(&m); err != nil {
			return err
		}
		*out = append(*out, m)
	case wireCompound:
		parts, err := splitCompound(buf[1:])
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := decodeMessage(p, out, depth+1); err != nil {
				return err
			}
		}
	case wireCompress:
		plain, err := inflate(buf[1:])
		if err != nil {
			return err
		}
		return decodeMessage(plain, out, depth+1)
	}
	return nil
}

// splitCompound splits memberlist's compound message:
// [count:u8][len:u16 big endian]*count [parts...].
func splitCompound(buf []byte) ([][]byte, error) {
	if len(buf) < 1 {
		return nil, errors.New("gossip: compound message truncated")
	}
	n := int(buf[0])
	buf = buf[1:]
	if len(buf) < 2*n {
		return nil, errors.New("gossip: compound lengths truncated")
	}
	parts := make([][]byte, 0, n)
	body := buf[2*n:]
	for i := range n {
		l := int(binary.BigEndian.Uint16(buf[2*i:]))
		if len(body) < l {
			break // memberlist also keeps the parts that arrived whole
		}
		parts = append(parts, body[:l])
		body = body[l:]
	}
	return parts, nil
}

func inflate(buf []byte) ([]byte, error) {
	var c wireCompressed
	if err := codec.NewDecoderBytes(buf, &codec.MsgpackHandle{}).Decode(&c); err != nil {
		return nil, err
	}
	if c.Algo != 0 { // lzwAlgo
		return nil, errors.New("gossip: unknown compression")
	}
	r := lzw.NewReader(bytes.NewReader(c.Buf), lzw.LSB, lzwLitWidth)
	defer r.Close()
	var b bytes.Buffer
	if _, err := io.CopyN(&b, r, maxInflate); err != nil && err != io.EOF {
		return nil, err
	}
	return b.Bytes(), nil
}

// decrypt opens an AES-GCM payload with the first key that works, as
// memberlist's decryptPayload does. Version 0 payloads carry PKCS#7 padding.
func decrypt(aeads []cipher.AEAD, msg, aad []byte) ([]byte, error) {
	if len(msg) < encMinLen || msg[0] > 1 {
		return nil, errNoKey
	}
	nonce := msg[encVersionSize : encVersionSize+encNonceSize]
	sealed := msg[encVersionSize+encNonceSize:]
	for _, gcm := range aeads {
		plain, err := gcm.Open(nil, nonce, sealed, aad)
		if err != nil {
			continue
		}
		if msg[0] == 0 && len(plain) > 0 {
			pad := int(plain[len(plain)-1])
			if pad <= len(plain) {
				plain = plain[:len(plain)-pad]
			}
		}
		return plain, nil
	}
	return nil, errNoKey
}

// aeadCache holds the AES-GCM AEAD of each installed key, so that a packet
// does not build its ciphers anew (aes.NewCipher and cipher.NewGCM per key
// per packet, as the tap did). Safe for concurrent use (the tap runs on
// the inbound goroutine and on memberlist's senders): the current set is
// immutable and swapped whole; GCM's Open keeps no state between calls.
type aeadCache struct {
	cur atomic.Pointer[aeadSet]
}

// aeadSet is the AEADs of one key ring, in its order.
type aeadSet struct {
	keys  []string
	aeads []cipher.AEAD
	// complete is false when a key was invalid (not 16, 24 or 32 bytes,
	// which the keyring refuses anyway): such a set is never reused.
	complete bool
}

// get returns the AEADs of keys, in order. While the keys are those of the
// current set it neither allocates nor builds; a key ring change builds
// only the AEADs of new keys.
func (c *aeadCache) get(keys [][]byte) []cipher.AEAD {
	cur := c.cur.Load()
	if cur.same(keys) {
		return cur.aeads
	}
	old := map[string]cipher.AEAD{}
	if cur != nil {
		for i, k := range cur.keys {
			old[k] = cur.aeads[i]
		}
	}
	next := &aeadSet{complete: true}
	for _, k := range keys {
		a, ok := old[string(k)]
		if !ok {
			block, err := aes.NewCipher(k)
			if err == nil {
				a, err = cipher.NewGCM(block)
			}
			if err != nil {
				next.complete = false
				continue
			}
		}
		next.keys = append(next.keys, string(k))
		next.aeads = append(next.aeads, a)
	}
	c.cur.Store(next)
	return next.aeads
}

func (s *aeadSet) same(keys [][]byte) bool {
	if s == nil || !s.complete || len(keys) != len(s.keys) {
		return false
	}
	for i, k := range keys {
		if string(k) != s.keys[i] {
			return false
		}
	}
	return true
}
