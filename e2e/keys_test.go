package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/registry/gossip"
	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
)

// Issue 8, security: rotate the gossip key with `shoal gossip keys` (install
// on all, use on all, remove the old on all) on a mesh under traffic: no
// member is ever declared dead and no request fails. Then a node holding
// the removed key, and separately a node with the right key but another
// --gossip-label, never join.
func TestGossipKeyRotation(t *testing.T) {
	k1, k2 := newGossipKey(t), newGossipKey(t)
	key1 := []string{"--gossip-key", k1}
	m := harness.StartMesh(t, 3, harness.MeshOptions{ControlPlaneExtra: key1, SidecarExtra: key1, ClientExtra: key1})
	admins := meshAdmins(m)
	waitAllAlive(t, m.CP, len(admins))
	before := sumGossipCounter(t, admins, "shoal_gossip_dead_events_total")
	suspectBefore := sumGossipCounter(t, admins, "shoal_gossip_suspect_events_total")

	load := harness.StartLoad(t, harness.LoadOptions{URL: m.URL(), Duration: time.Minute, Concurrency: 2, Pace: 5 * time.Millisecond})
	// Without a key the members hold, nobody can change their keyring.
	evil := newGossipKey(t)
	if out, _, code := harness.Shoal(t, "gossip", "keys", "install", evil, "--admin", admins[0], "--auth-key", evil); code == 0 || !strings.Contains(out, "401") {
		t.Fatalf("install signed with a foreign key: exit %d, want a 401 from the member:\n%s", code, out)
	}
	for _, step := range []struct{ op, key string }{{"install", k2}, {"use", k2}, {"remove", k1}} {
		out, errOut, code := harness.Shoal(t, "gossip", "keys", step.op, step.key, "--admin", strings.Join(admins, ","), "--auth-key", k1)
		if code != 0 {
			t.Fatalf("shoal gossip keys %s: exit %d\n%s%s", step.op, code, out, errOut)
		}
		// The scenario: gossip runs on the new keyring for a few probe
		// rounds of every member before the next step.
		<-time.After(time.Second)
		t.Logf("shoal gossip keys %s (suspect events so far: %d):\n%s", step.op,
			sumGossipCounter(t, admins, "shoal_gossip_suspect_events_total")-suspectBefore, out)
	}
	// A suspicion raised by the rotation would become a death within the
	// suspicion timeout (4 s at this size); keep traffic and gossip going
	// past it.
	<-time.After(gossip.TimingLAN().SuspicionTimeout(len(admins)) + time.Second)
	res := load.Stop()

	dead := sumGossipCounter(t, admins, "shoal_gossip_dead_events_total") - before
	suspect := sumGossipCounter(t, admins, "shoal_gossip_suspect_events_total") - suspectBefore
	t.Logf("rotation under load on %d members: %s; dead events %d, suspect events %d", len(admins), res, dead, suspect)
	if dead != 0 {
		t.Errorf("%d dead events during the rotation, want 0", dead)
	}
	if res.Failures() != 0 || res.OK == 0 {
		t.Errorf("requests during the rotation: %d ok, %d failed (%v), want 0 failed", res.OK, res.Failures(), res.FirstFailures)
	}
	want := []keyadmin.Key{{Fingerprint: keyadmin.Fingerprint(mustKey(t, k2)), Primary: true}}
	out, errOut, code := harness.Shoal(t, "gossip", "keys", "list", "-o", "json", "--admin", strings.Join(admins, ","))
	if code != 0 {
		t.Fatalf("shoal gossip keys list: exit %d\n%s%s", code, out, errOut)
	}
	var listed []struct {
		Admin string
		Keys  []keyadmin.Key
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("shoal gossip keys list -o json: %v\n%s", err, out)
	}
	for _, l := range listed {
		if len(l.Keys) != 1 || l.Keys[0] != want[0] {
			t.Errorf("member %s keys = %+v, want only %+v", l.Admin, l.Keys, want)
		}
	}
	if strings.Contains(out, k1) || strings.Contains(out, k2) {
		t.Errorf("keys list reveals a key:\n%s", out)
	}
	waitAllAlive(t, m.CP, len(admins))

	t.Run("a node with the removed key never joins", func(t *testing.T) {
		assertNeverJoins(t, m, harness.SidecarOptions{GossipKey: k1})
	})
	t.Run("a node with another label never joins", func(t *testing.T) {
		assertNeverJoins(t, m, harness.SidecarOptions{GossipKey: k2, GossipLabel: "other-mesh"})
	})
}

// assertNeverJoins starts a sidecar with o's gossip settings, waits until
// its join attempt has failed, and checks over a few probe rounds that
// neither it nor the control plane lists the other.
func assertNeverJoins(t *testing.T, m *harness.Mesh, o harness.SidecarOptions) {
	id := "intruder-" + strconv.Itoa(harness.FreePort(t))
	o.CP, o.Service, o.InstanceID, o.AppPort, o.NoRegister = m.CP, "intruder", id, harness.FreePort(t), true
	s := harness.StartSidecar(t, o)
	harness.Eventually(t, harness.DefaultTimeout, id+" reports its failed join", func() bool {
		return strings.Contains(s.Output(), "gossip join failed")
	})
	// Negative check: the join was refused; give a would-be merge a few
	// gossip and push/pull rounds to show up anyway.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st, err := m.CP.Status(t)
		if err != nil {
			t.Fatal(err)
		}
		if mem := st.Member(id); mem != nil {
			t.Fatalf("the control plane lists %s (%s)", id, mem.State)
		}
		if peers := memberView(t, s.Admin); len(peers) != 1 {
			t.Fatalf("%s sees %d members, want only itself: %+v", id, len(peers), peers)
		}
	}
}

// newGossipKey returns a random base64 32-byte key.
func newGossipKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := keyadmin.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// meshAdmins returns the admin addresses of every gossip member of m.
func meshAdmins(m *harness.Mesh) []string {
	out := []string{m.CP.Admin}
	for _, s := range m.Sidecars {
		out = append(out, s.Admin)
	}
	for _, s := range m.Proxies() {
		out = append(out, s.Admin)
	}
	return out
}

// waitAllAlive waits until the control plane sees n members, all alive.
func waitAllAlive(t *testing.T, cp *harness.ControlPlane, n int) {
	t.Helper()
	harness.Eventually(t, harness.DefaultTimeout, fmt.Sprintf("control plane sees %d members alive", n), func() bool {
		st, err := cp.Status(t)
		if err != nil || len(st.Members) != n {
			return false
		}
		for _, mem := range st.Members {
			if mem.State != "alive" {
				return false
			}
		}
		return true
	})
}

// memberPeer is one entry of a sidecar's admin /members.
type memberPeer struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// memberView reads a sidecar's admin /members.
func memberView(t *testing.T, admin string) []memberPeer {
	t.Helper()
	var peers []memberPeer
	if err := json.Unmarshal(adminGet(t, http.DefaultClient, "http://"+admin+"/members"), &peers); err != nil {
		t.Fatalf("%s /members: %v", admin, err)
	}
	return peers
}

// sumGossipCounter sums an unlabelled counter over the members' /metrics.
func sumGossipCounter(t *testing.T, admins []string, name string) int {
	t.Helper()
	total := 0
	for _, a := range admins {
		total += int(metricValue(adminGet(t, http.DefaultClient, "http://"+a+"/metrics"), name))
	}
	return total
}

// metricValue returns the sum of name's samples (any labels) in a
// Prometheus text exposition.
func metricValue(body []byte, name string) float64 {
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// adminGet GETs url with a bounded wait and fails the test on any error.
func adminGet(t *testing.T, client *http.Client, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Close = true // no pooled connection outlives the test (goleak)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return body
}
