package gossip

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
)

// SetLocalHealth publishes the app health of an instance this member
// fronts, adding the instance if it is new. The change goes out at once as
// an alive message with the new metadata (memberlist UpdateNode) and is
// visible through this member's own Health and events immediately.
//
// It blocks until the update reached one peer or for at most one second;
// a timeout is not an error (the update stays queued and push/pull also
// carries it). If the metadata would exceed 512 bytes it returns
// ErrMetaTooLarge and the previous metadata stays published. Safe for
// concurrent use; concurrent calls publish in some order, each complete.
func (m *Member) SetLocalHealth(key InstanceKey, healthy bool) error {
	return m.editLocal(func(in []InstanceHealth) []InstanceHealth {
		i := slices.IndexFunc(in, func(h InstanceHealth) bool { return h.InstanceKey == key })
		if i < 0 {
			return append(in, InstanceHealth{InstanceKey: key, Healthy: healthy})
		}
		in[i].Healthy = healthy
		return in
	})
}

// RemoveLocalInstance stops publishing an instance (it deregistered).
// Peers then report it as unknown. Same contract as SetLocalHealth.
func (m *Member) RemoveLocalInstance(key InstanceKey) error {
	return m.editLocal(func(in []InstanceHealth) []InstanceHealth {
		return slices.DeleteFunc(in, func(h InstanceHealth) bool { return h.InstanceKey == key })
	})
}

// LocalInstances returns a copy of the instances this member publishes.
func (m *Member) LocalInstances() []InstanceHealth {
	m.localMu.Lock()
	defer m.localMu.Unlock()
	return slices.Clone(m.local)
}

// SetTicket replaces the ticket this member publishes (a renewed one from
// the control plane) and sends the new metadata like SetLocalHealth.
func (m *Member) SetTicket(ticket []byte) error {
	return m.publish(func() ([]InstanceHealth, []byte) { return slices.Clone(m.local), slices.Clone(ticket) })
}

// SetTicketKeys replaces the keys other members' tickets must be signed
// by (Config.TicketKeys). It applies to metadata received from now on.
// The caller must not modify keys afterwards.
func (m *Member) SetTicketKeys(keys []crypto.PublicKey) {
	if len(keys) == 0 {
		m.view.ticketKeys.Store(nil)
		return
	}
	m.view.ticketKeys.Store(&keys)
}

func (m *Member) editLocal(edit func([]InstanceHealth) []InstanceHealth) error {
	return m.publish(func() ([]InstanceHealth, []byte) { return edit(slices.Clone(m.local)), m.ticket })
}

// publish encodes the instances and ticket next returns (called with
// localMu held) and sends them.
func (m *Member) publish(next func() ([]InstanceHealth, []byte)) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.localMu.Lock()
	local, ticket := next()
	b, err := encodeMeta(nodeMeta{Role: m.cfg.Role, Instances: local, Ticket: ticket})
	if err == nil {
		m.local, m.ticket = local, ticket
		m.meta.Store(&b)
	}
	m.localMu.Unlock()
	if err != nil {
		return err
	}
	// Outside localMu: UpdateNode may wait for the network. It reads the
	// newest meta, so racing calls converge on the latest edit.
	if err := m.ml.UpdateNode(updateTimeout); err != nil {
		m.log.Debug("gossip: metadata update not yet sent", "err", err)
	}
	return nil
}

// InstallKey adds a 32-byte key to this member's keyring; it decrypts with
// it from now on but still encrypts with the primary key. See the package
// documentation for the rotation procedure.
func (m *Member) InstallKey(key []byte) error {
	return m.keyOp("install", key, func(r keyring) error { return r.AddKey(key) })
}

// UseKey makes an installed key the primary (encrypting) key.
func (m *Member) UseKey(key []byte) error {
	return m.keyOp("use", key, func(r keyring) error { return r.UseKey(key) })
}

// RemoveKey removes a key that is not the primary.
func (m *Member) RemoveKey(key []byte) error {
	return m.keyOp("remove", key, func(r keyring) error { return r.RemoveKey(key) })
}

// Keys returns copies of the installed keys, the primary first. Nil
// without encryption.
func (m *Member) Keys() [][]byte {
	if m.ring == nil {
		return nil
	}
	return m.ring.GetKeys()
}

// ErrNoEncryption is returned by key operations on a member started
// without Keys: encryption cannot be turned on at runtime.
var ErrNoEncryption = errors.New("gossip: encryption is off (no Keys at start)")

type keyring interface {
	AddKey([]byte) error
	UseKey([]byte) error
	RemoveKey([]byte) error
}

func (m *Member) keyOp(op string, key []byte, f func(keyring) error) error {
	if m.ring == nil {
		return ErrNoEncryption
	}
	if len(key) != 32 {
		return fmt.Errorf("gossip: %s key: want 32 bytes, got %d", op, len(key))
	}
	if err := f(m.ring); err != nil {
		return fmt.Errorf("gossip: %s key: %w", op, err)
	}
	return nil
}
