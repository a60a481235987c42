package xdsclient

// Snapshot completeness (the sidecar must never apply a half-updated
// table): a snapshot is delivered once listeners and clusters have been
// received and every route configuration a listener references (HCM
// rds.route_config_name) and every assignment an EDS cluster references
// (eds_cluster_config.service_name, else the cluster name) is held. While
// something is missing the snapshot is held back for at most
// Config.SettleTimeout (timed from the first incomplete state), then
// delivered anyway with MissingRoutes/MissingEndpoints set, so a CLA the
// server never sends cannot block updates forever.

// publish delivers the store if it changed since the last delivery and is
// complete, or arms the settle timer if it is incomplete.
func (c *Client) publish() {
	if !c.st.synced() {
		return
	}
	if c.delivered && c.st.gen == c.deliveredGen {
		c.settle.stop()
		return
	}
	if routes, eps := c.st.missing(); len(routes)+len(eps) > 0 {
		c.settle.arm(c.cfg.SettleTimeout)
		return
	}
	c.deliver()
}

// settleExpired delivers a pending incomplete snapshot.
func (c *Client) settleExpired() {
	c.settle.stop()
	if !c.st.synced() || (c.delivered && c.st.gen == c.deliveredGen) {
		return
	}
	routes, eps := c.st.missing()
	c.log.Warn("xds: delivering incomplete snapshot after settle timeout",
		"missing_routes", routes, "missing_endpoints", eps)
	c.deliver()
}

// deliver queues the store's current state for OnUpdate.
func (c *Client) deliver() {
	c.settle.stop()
	c.initial.stop()
	c.delivered, c.deliveredGen, c.saved = true, c.st.gen, nil
	c.notify.push(newSnapshot(c.st))
}

// deliverSaved queues the snapshot loaded from StateDir if nothing has
// been delivered yet: the server is unreachable or slow (static stability).
func (c *Client) deliverSaved() {
	c.initial.stop()
	if c.delivered || c.saved == nil {
		return
	}
	c.log.Info("xds: control plane not synced, starting from saved state", "dir", c.cfg.StateDir)
	c.delivered, c.deliveredGen = true, c.savedGen
	c.notify.push(c.saved)
	c.saved = nil
}

// deliverNow runs on the notifier goroutine: it calls OnUpdate, then
// persists the snapshot the sidecar has applied.
func (c *Client) deliverNow(s *Snapshot) {
	c.m.delivered.Inc()
	c.cfg.OnUpdate(s)
	if c.cfg.StateDir == "" || s.FromState {
		return
	}
	if err := saveState(c.cfg.StateDir, c.cfg.Node.GetId(), s); err != nil {
		c.m.stateWrite.WithLabelValues("error").Inc()
		c.log.Warn("xds: saving state", "err", err)
		return
	}
	c.m.stateWrite.WithLabelValues("ok").Inc()
}
