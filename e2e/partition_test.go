//go:build linux

package e2e

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 8, "Done when": partition one member with a network namespace. Two
// fresh namespaces joined by a veth pair: A holds the control plane and a
// sidecar, B one sidecar whose only seed is the control plane. The veth is
// taken down: the A side must declare B dead within 10 s (and B the A
// side); after the link is up again B must be alive in the control plane's
// and the A sidecar's view, and both of them in B's, within 30 s (B's
// periodic re-join of its seed, hashicorp/memberlist#222). Not parallel:
// it measures timing.
func TestGossipPartitionNetns(t *testing.T) {
	if why := harness.NetnsUnavailable(); why != "" {
		harness.Unavailable(t, "network namespace partition test: "+why)
	}
	p := harness.StartNetPair(t)
	// Fixed ports are safe: nothing else lives in these namespaces.
	const (
		cpXDS, cpAPI, cpAdmin, cpGossip = "18000", "18001", "18002", "7946"
		scAdmin, scGossip               = "127.0.0.1:15000", "7947"
	)
	cp := p.A.Start(t, "controlplane", "--data-dir", t.TempDir(),
		"--etcd-listen", "127.0.0.1:2379", "--etcd-peer-listen", "127.0.0.1:2380",
		"--xds-listen", net.JoinHostPort(p.AddrA, cpXDS), "--api-listen", "127.0.0.1:"+cpAPI,
		"--admin-listen", "127.0.0.1:"+cpAdmin, "--gossip-listen", net.JoinHostPort(p.AddrA, cpGossip),
		// A gossip test: the sidecars have no identity, so xDS and gossip
		// beyond loopback stay plain here (secure by default refuses that
		// without --insecure; TestAuthOffLoopback and
		// TestGossipAuthRogueClaimsChangeNothing cover it).
		"--xds-auth=off", "--gossip-auth=off", "--insecure")
	waitNetnsReady(t, p.A, cp, "127.0.0.1:"+cpAdmin)
	seed := net.JoinHostPort(p.AddrA, cpGossip)
	sidecar := func(ns *harness.Netns, id, addr string) *harness.Proc {
		proc := ns.Start(t, "sidecar", "--service", "part", "--instance-id", id, "--app-port", "8080",
			"--no-register", "--xds", net.JoinHostPort(p.AddrA, cpXDS), "--admin-listen", scAdmin,
			"--state-dir", t.TempDir(), "--outbound", "",
			"--gossip-listen", net.JoinHostPort(addr, scGossip), "--gossip-join", seed)
		waitNetnsReady(t, ns, proc, scAdmin)
		return proc
	}
	sidecar(p.A, "part-a", p.AddrA)
	sidecar(p.B, "part-b", p.AddrB)

	views := partitionViews{p: p}
	cpName := views.waitConverged(t, harness.DefaultTimeout)

	cutAt := time.Now()
	p.Cut(t)
	dead := views.waitFor(t, 30*time.Second, cutAt,
		check{"control plane", func(v views3) bool { return v.cp["part-b"] == "dead" }},
		check{"A sidecar", func(v views3) bool { return v.a["part-b"] == "dead" }},
		check{"B sidecar", func(v views3) bool { return v.b[cpName] == "dead" && v.b["part-a"] == "dead" }})
	healAt := time.Now()
	p.Heal(t)
	merged := views.waitFor(t, 45*time.Second, healAt,
		check{"control plane", func(v views3) bool { return v.cp["part-b"] == "alive" }},
		check{"A sidecar", func(v views3) bool { return v.a["part-b"] == "alive" }},
		check{"B sidecar", func(v views3) bool { return v.b[cpName] == "alive" && v.b["part-a"] == "alive" }})
	t.Logf("veth partition of 1 of 3 members: dead on both sides %s after the cut %v; alive again everywhere %s after healing %v",
		dead["all"].Round(time.Millisecond), roundAll(dead), merged["all"].Round(time.Millisecond), roundAll(merged))
	if dead["all"] > 10*time.Second {
		t.Errorf("partitioned member declared dead after %s, want <= 10s", dead["all"])
	}
	if merged["all"] > 30*time.Second {
		t.Errorf("re-merged %s after healing, want <= 30s", merged["all"])
	}
}

func roundAll(m map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range m {
		out[k] = v.Round(10 * time.Millisecond)
	}
	return out
}

// waitNetnsReady waits until the process's admin /ready (inside ns)
// answers 200, failing fast if it exits.
func waitNetnsReady(t *testing.T, ns *harness.Netns, proc *harness.Proc, admin string) {
	t.Helper()
	client := ns.HTTPClient()
	harness.Eventually(t, harness.DefaultTimeout, admin+" in "+ns.Name+" ready", func() bool {
		if proc.Exited() {
			t.Fatalf("process in %s exited:\n%s", ns.Name, proc.Output())
		}
		resp, err := client.Get("http://" + admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// partitionViews reads the three members' views: the control plane's
// through `shoal status` and each sidecar's admin /members.
type partitionViews struct{ p *harness.NetPair }

// views3 maps member name to state, as each side sees it (nil when the
// side did not answer).
type views3 struct{ cp, a, b map[string]string }

// check is one side's verdict to wait for.
type check struct {
	side string
	ok   func(views3) bool
}

func (pv partitionViews) read(t *testing.T) views3 {
	var v views3
	if out, _, code := pv.p.A.Shoal(t, "status", "--api", "127.0.0.1:18001", "-o", "json", "--timeout", "2s"); code == 0 {
		var st harness.Status
		if json.Unmarshal([]byte(out), &st) == nil {
			v.cp = map[string]string{}
			for _, m := range st.Members {
				v.cp[m.Name] = m.State
			}
		}
	}
	v.a = sidecarView(pv.p.A)
	v.b = sidecarView(pv.p.B)
	return v
}

func sidecarView(ns *harness.Netns) map[string]string {
	resp, err := ns.HTTPClient().Get("http://127.0.0.1:15000/members")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var peers []memberPeer
	if json.NewDecoder(resp.Body).Decode(&peers) != nil {
		return nil
	}
	out := map[string]string{}
	for _, p := range peers {
		out[p.Name] = p.State
	}
	return out
}

// waitConverged waits until every side sees all three members alive and
// returns the control plane's member name.
func (pv partitionViews) waitConverged(t *testing.T, limit time.Duration) string {
	t.Helper()
	var name string
	pv.waitFor(t, limit, time.Now(), check{"all three", func(v views3) bool {
		name = ""
		for n, s := range v.cp {
			if n != "part-a" && n != "part-b" && s == "alive" {
				name = n
			}
		}
		return name != "" && len(v.cp) == 3 && v.cp["part-a"] == "alive" && v.cp["part-b"] == "alive" &&
			v.b[name] == "alive" && v.b["part-a"] == "alive" && v.a["part-b"] == "alive"
	}})
	return name
}

// waitFor polls the views until every check holds at once and returns,
// from since, when each check first held and when all did ("all"). It
// fails the test after limit.
func (pv partitionViews) waitFor(t *testing.T, limit time.Duration, since time.Time, checks ...check) map[string]time.Duration {
	t.Helper()
	first := map[string]time.Duration{}
	for {
		v := pv.read(t)
		el := time.Since(since)
		all := true
		for _, c := range checks {
			if !c.ok(v) {
				all = false
			} else if _, seen := first[c.side]; !seen {
				first[c.side] = el
			}
		}
		if all {
			first["all"] = el
			return first
		}
		if el > limit {
			t.Fatalf("not within %s (first held: %v); last views: control plane %v, A sidecar %v, B sidecar %v", limit, first, v.cp, v.a, v.b)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
}
