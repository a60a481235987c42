// Package gossip is shoal's membership layer over hashicorp/memberlist:
// sidecars, gateways and control planes are members; each member publishes
// the instances it fronts and their app health in its node metadata; every
// member keeps a view of who is alive, suspect, dead or left, and answers
// "may I route to this instance?" without waiting for etcd or xDS.
//
//	m, err := gossip.New(gossip.Config{Name: "sidecar-orders-1", Role: gossip.RoleSidecar,
//		Instances: []gossip.InstanceHealth{{InstanceKey: key, Healthy: true}},
//		Keys: [][]byte{key32}, Seeds: seeds})
//	defer m.Close()
//	m.Join(seeds)                        // the first member of a cluster may get an error
//	m.SetLocalHealth(key, false)         // the app failed its check: published at once
//	s, known := m.Health(other)          // !known: routable on etcd's word
//	cancel := m.Subscribe(func(ev gossip.Event) { ... }) // serial, coalesced per member
//
// # Seeing suspicion
//
// memberlist's EventDelegate reports join, update and leave (dead or left)
// but never suspicion nor its refutation, and Node.State is not maintained
// (hashicorp/memberlist#266). Waiting for "dead" would keep a crashed
// instance in rotation for the whole suspicion timeout. The PingDelegate
// only reports successful probes of this member's own targets; the
// AliveDelegate sees alive messages but not suspect ones. So the member
// wraps memberlist's NetTransport (transport.go) and reads suspect, alive
// and dead messages off the wire, both directions, decrypting with the same
// keyring (wire.go). The wire protocol is memberlist's compatibility
// contract between library versions, so this is sturdier than reading
// unexported state. The view applies memberlist's incarnation rules: a
// suspect message makes an alive member suspect; an alive message with a
// higher incarnation (a refutation) makes it alive again. memberlist's
// EventDelegate stays authoritative for join, metadata and dead; a dead
// message sent by a member about itself marks the coming leave as "left".
// A suspicion that outlives memberlist's suspicion timeout without a death
// (its refutation came by TCP push/pull, which the tap does not read)
// expires back to alive.
//
// Refutation nudge: a member that suspected a peer while cut off spent its
// suspect broadcasts on a network that dropped them, and Lifeguard then
// slows its probes up to 8×, so the healthy peer may never hear it is
// suspected and is declared dead. A member holding a suspicion for 10 probe
// intervals therefore sends the suspect a one-line TCP user message; the
// suspect refutes with UpdateNode (alive, higher incarnation). See nudge.go.
//
// # Timing (TimingLAN, the default; Lifeguard on)
//
// memberlist probes one peer per ProbeInterval (100 ms), round robin over a
// shuffled list, waits ProbeTimeout (50 ms) for the ack, then asks
// IndirectChecks (3) peers and tries TCP until the interval ends. A failed
// probe makes the target suspect; the suspicion is gossiped every
// GossipInterval (50 ms) to GossipNodes (4) peers. The suspect is declared
// dead after SuspicionMult × max(1, log10 n) × ProbeInterval = 40 × 1 ×
// 100 ms = 4 s for n ≤ 10 (memberlist uses this minimum when fewer than
// SuspicionMult-2 confirmations are possible, i.e. n < 40; above that the
// timeout starts at SuspicionMaxTimeoutMult (3) × minimum and falls towards
// it as peers confirm). For 10 members:
//
//   - first probe of a crashed member by any of 9 peers: uniform over each
//     peer's 9-slot round, so p50 ≈ 0.07 s, p99 ≈ 0.36 s; + 0.1 s for the
//     probe to fail; + 2–3 gossip rounds (≈ 0.1–0.15 s) to reach everyone.
//     Expected crash → suspect everywhere: p50 ≈ 0.25 s, p99 ≈ 0.6 s.
//     Measured (TestSoakFailureDetection, 20 runs, loopback, shared
//     2-core machine): p50 0.19 s, p99 0.44 s.
//   - suspect → dead: 4 s; crash → dead everywhere measured p50 4.2 s,
//     p99 4.4 s. A partitioned member is dead on both sides in ≈ 4.2 s.
//   - a member paused for 2 s is suspected after ≈ 0.2 s and must refute
//     within the remaining ≈ 3.8 s: it does, by its own refutation or the
//     nudge; 10 pauses of 2 s on 10 members gave 0 dead events.
//   - a metadata (health) change reaches all members in ≈ 50 ms.
//
// TimingMemberlistLAN is memberlist's default (1 s probes), for fleets
// that prefer less traffic over fast reaction.
//
// # Metadata
//
// A compact binary blob (meta.go): role, then each instance's service, id
// and health, about 25 bytes per instance; 25 instances with 20-byte keys
// fit in memberlist's 512-byte limit. SetLocalHealth refuses an edit that
// would overflow (ErrMetaTooLarge) and the previous metadata stays
// published; a member fronting that many instances should split them
// across members.
//
// # Security
//
// Keys are 32-byte AES-256-GCM keys in memberlist's keyring; Label binds
// every packet and stream to one mesh. A member with another key, no key,
// or another label never joins. Rotation, run by the operator (or a
// control-plane job) against every member:
//
//  1. InstallKey(new) on every member (each can now decrypt both);
//  2. UseKey(new) on every member (each now encrypts with new);
//  3. RemoveKey(old) on every member.
//
// Each step must finish on all members before the next starts; then no
// packet is ever unreadable, and rotation costs no suspicion.
//
// The key keeps strangers out but every key holder looks alike. Tickets
// (ticket.go) bind a member's name to the service of its identity: a
// member with TicketKeys counts another member's health claims only for
// instances of the service its ticket names, so one compromised member
// cannot take other services out of rotation (issue 14).
//
// # Partitions
//
// Halves of a partition declare each other dead and may not re-merge on
// their own (hashicorp/memberlist#222). Every RejoinInterval a member
// re-joins the seeds (Config.Seeds plus SeedSource, e.g. members' gossip
// addresses in etcd) that are not alive in its view, or one random seed
// when all are, which also repairs a lopsided heal.
//
// # Concurrency
//
// Every Member method is safe for concurrent use. memberlist delegates and
// the tap only take the view's short lock and queue events; each
// subscriber's callback runs on its own goroutine, serially, with at most
// one pending event per member (newer replaces older, counted in
// shoal_gossip_events_coalesced_total). Close waits for every goroutine
// the member started.
package gossip
