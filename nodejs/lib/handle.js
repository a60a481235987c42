'use strict';

// Handle owns one registration: the lease, the keepalive loop, re-registration
// after lease loss or etcd restarts, deregistration and the graceful drain.
//
// One loop drives everything: a single unref()ed timer runs tick(), and at
// most one tick (or the first registration) is in flight at a time, so the
// lease state needs no locking.

const { EventEmitter } = require('node:events');
const { Client, EtcdError, UnavailableError, GRPC_NOT_FOUND } = require('./etcd');
const { Registrar } = require('./controlplane');
const { drainServer, installSignalHandlers, trackResponses } = require('./drain');
const { waitGate } = require('./gate');
const { LoadReporter } = require('./load');
const pm2 = require('./pm2');

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5000;
const MIN_KEEPALIVE_MS = 500;

/** jitter spreads retries of many instances over [d/2, d). */
const jitter = (d) => d / 2 + Math.random() * (d / 2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** bounded rejects when promise has not settled within ms (Infinity: never). */
function bounded(promise, ms, what) {
  if (!Number.isFinite(ms)) return promise;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms)} ms`)), ms).unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class Handle extends EventEmitter {
  /** @param {ReturnType<import('./options').normalize>} cfg */
  constructor(cfg) {
    super();
    this.cfg = cfg;
    this.setInstance(cfg.instance.port);
    this.id = cfg.instance.id;
    this.service = cfg.instance.service;
    this.key = cfg.key;
    this.leaseId = null; // string, the lease the key is attached to; null while lost
    this.ttl = null; // seconds etcd granted (it may raise a too small TTL)
    this.draining = false;
    this.log = cfg.logger;
    // Straight into etcd, or through the control plane (cfg.controlPlane).
    this.viaControlPlane = cfg.controlPlane !== null;
    this.client = this.viaControlPlane
      ? new Registrar({ ...cfg.controlPlane, requestTimeout: cfg.requestTimeout })
      : new Client({ endpoints: cfg.etcd, requestTimeout: cfg.requestTimeout });
    this.closed = false;
    this.timer = null;
    this.inflight = null; // promise of the running tick, awaited by deregister
    this.backoff = BACKOFF_MIN_MS;
    this.needPut = false; // re-put the key on the next successful keepalive
    this.failing = false; // logged the start of an outage already
    this.deregisterPromise = null;
    this.drainPromise = null;
    this.gateResult = null; // the drain gate's last answer
    this.responses = cfg.server ? trackResponses(cfg.server) : null;
    // ORCA load reports on every response, for least_loaded (issue 17).
    this.loadReporter = cfg.server && cfg.loadReports ? new LoadReporter() : null;
    this.loadReporter?.watch(cfg.server);
    this.removeSignals = cfg.handleSignals ? installSignalHandlers(this, { shutdownMessage: cfg.pm2 !== null }) : () => {};
  }

  get registered() {
    return this.leaseId !== null && !this.closed;
  }

  /** setInstance fixes the instance (and the value written to etcd) once its port is known. */
  setInstance(port) {
    const i = this.cfg.instance;
    this.instance = Object.freeze({ ...i, port, metadata: Object.freeze({ ...i.metadata }) });
    this.value = JSON.stringify(this.instance);
  }

  /**
   * listen resolves port 0: the server's port if it listens already, else
   * it listens on a free port of cfg.host first.
   */
  async listen() {
    if (this.instance.port !== 0) return;
    const server = this.cfg.server;
    if (!server.listening) {
      await new Promise((resolve, reject) => {
        const onError = (err) => reject(err);
        server.once('error', onError);
        server.listen(0, this.cfg.host, () => {
          server.removeListener('error', onError);
          resolve();
        });
      });
    }
    const addr = server.address();
    if (!addr || typeof addr !== 'object' || !addr.port) {
      throw new TypeError('shoal: invalid option server: it listens on no TCP port (a pipe?), so port 0 cannot be resolved');
    }
    this.setInstance(addr.port);
  }

  /** start registers for the first time, retrying unreachable etcd until startTimeout. */
  async start() {
    try {
      await this.listen();
    } catch (err) {
      this.shutdown();
      throw err;
    }
    const deadline = Date.now() + this.cfg.startTimeout;
    for (;;) {
      try {
        await this.registerOnce(false);
        break;
      } catch (err) {
        if (!(err instanceof UnavailableError) || Date.now() + this.backoff > deadline || this.closed) {
          this.shutdown();
          throw err;
        }
        this.log.debug(`register ${this.key}: ${err.message}; retrying`);
        await sleep(this.nextBackoff());
      }
    }
    this.backoff = BACKOFF_MIN_MS;
    this.schedule(this.keepAliveInterval());
    // PM2's wait_ready: tell it only now that the instance is in the mesh,
    // so `pm2 reload` moves to the next worker once this one takes traffic.
    if (this.cfg.ready && !this.closed && pm2.sendReady()) this.log.debug(`told PM2 ${this.key} is ready`);
    return this;
  }

  /** registerOnce grants a lease and writes the key under it. */
  async registerOnce(background) {
    if (this.viaControlPlane) return this.registerThroughControlPlane(background);
    const opts = { background };
    const grant = await this.client.grant(this.cfg.ttl, opts);
    const lease = String(grant.ID);
    if (this.closed) {
      await this.client.revoke(lease, opts).catch(() => {});
      return;
    }
    try {
      await this.client.put(this.key, this.value, lease, opts);
    } catch (err) {
      this.client.revoke(lease, opts).catch(() => {});
      throw err;
    }
    this.leaseId = lease;
    this.ttl = Number(grant.TTL);
    this.needPut = false;
    this.log.info(`registered ${this.key} with lease ${lease} (ttl ${this.ttl}s)`);
    this.emit('registered', { id: this.id, key: this.key, leaseId: lease, ttl: this.ttl });
  }

  /** registerThroughControlPlane has the control plane write the key under a lease of its own. */
  async registerThroughControlPlane(background) {
    const opts = { background };
    const { lease, ttl } = await this.client.register(this.instance, this.cfg.ttl, opts);
    if (this.closed) {
      await this.client.revoke(lease, this.instance, opts).catch(() => {});
      return;
    }
    this.leaseId = lease;
    this.ttl = ttl;
    this.log.info(`registered ${this.key} through the control plane with lease ${lease} (ttl ${this.ttl}s)`);
    this.emit('registered', { id: this.id, key: this.key, leaseId: lease, ttl: this.ttl });
  }

  keepAliveInterval() {
    return Math.max(MIN_KEEPALIVE_MS, (this.ttl * 1000) / 3);
  }

  nextBackoff() {
    const d = jitter(this.backoff);
    // Never wait longer than the keepalive interval while etcd is away:
    // when it comes back it re-arms leases for one TTL, and a retry that
    // lands later than that finds the lease expired and the key deleted
    // (a moment with the instance unregistered).
    const cap = this.ttl ? Math.min(BACKOFF_MAX_MS, this.keepAliveInterval()) : BACKOFF_MAX_MS;
    this.backoff = Math.min(this.backoff * 2, cap);
    return Math.min(d, cap);
  }

  schedule(ms) {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.inflight = this.tick().finally(() => {
        this.inflight = null;
      });
    }, ms);
    this.timer.unref();
  }

  /** tick renews the lease, or registers again if it is gone. It never rejects. */
  async tick() {
    try {
      if (this.leaseId === null) {
        await this.registerOnce(true);
      } else {
        const remaining = this.viaControlPlane
          ? await this.client.keepAlive(this.leaseId, this.instance, { background: true })
          : await this.client.keepAlive(this.leaseId, { background: true });
        if (this.closed) return;
        if (remaining <= 0) {
          this.lose('lease not found (expired or revoked)');
          await this.registerOnce(true);
        } else if (this.needPut) {
          // etcd came back: the lease survived, but write the key again in
          // case it was deleted or etcd lost its data.
          await this.client.put(this.key, this.value, this.leaseId, { background: true });
          this.needPut = false;
          this.emit('registered', { id: this.id, key: this.key, leaseId: this.leaseId, ttl: this.ttl });
        }
      }
      if (this.failing) this.log.info(`${this.viaControlPlane ? 'the control plane' : 'etcd'} reachable again; ${this.key} is registered`);
      this.failing = false;
      this.backoff = BACKOFF_MIN_MS;
      this.schedule(this.keepAliveInterval());
    } catch (err) {
      if (this.closed) return;
      if (err instanceof EtcdError && err.code === GRPC_NOT_FOUND && this.leaseId !== null) {
        // Some etcd versions answer a keepalive or put for an unknown lease
        // with "requested lease not found" instead of TTL 0.
        this.lose(err.message);
        this.schedule(0);
        return;
      }
      // Through the control plane, KeepAlive itself checks that the key is
      // still there (NotFound otherwise).
      this.needPut = !this.viaControlPlane;
      this.fail(err);
      this.schedule(this.nextBackoff());
    }
  }

  lose(reason) {
    const leaseId = this.leaseId;
    this.leaseId = null;
    this.log.warn(`registration ${this.key} lost: ${reason}; registering again`);
    this.emit('lost', { id: this.id, key: this.key, leaseId, reason });
  }

  fail(err) {
    if (!this.failing) this.log.warn(`keeping ${this.key} registered: ${err.message}; retrying with backoff`);
    else this.log.debug(`keeping ${this.key} registered: ${err.message}`);
    this.failing = true;
    // An 'error' event without a listener would throw; report it only to
    // those who asked.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * deregister revokes the lease (etcd deletes the key at once) and stops the
   * keepalive. Idempotent: every call returns the same promise.
   */
  deregister() {
    if (!this.deregisterPromise) this.deregisterPromise = this.doDeregister();
    return this.deregisterPromise;
  }

  async doDeregister() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.inflight) await this.inflight;
    const lease = this.leaseId;
    this.leaseId = null;
    try {
      if (lease !== null) await (this.viaControlPlane ? this.client.revoke(lease, this.instance) : this.client.revoke(lease));
      this.log.info(`deregistered ${this.key}`);
      this.emit('deregistered', { id: this.id, key: this.key, leaseId: lease });
    } finally {
      this.loadReporter?.stop();
      this.client.close();
    }
  }

  /**
   * drain deregisters, waits for the drain gate (when configured) and
   * drainDelay, then (with a server) stops accepting, waits up to
   * drainTimeout for in-flight requests and closes idle keep-alive
   * connections. With shutdownTimeout (under PM2: kill_timeout less a
   * margin) every step is cut short so the whole drain ends within it.
   * Idempotent; it never rejects.
   */
  drain() {
    if (!this.drainPromise) this.drainPromise = this.doDrain();
    return this.drainPromise;
  }

  async doDrain() {
    const started = Date.now();
    const budget = this.cfg.shutdownTimeout;
    const left = () => (budget === null ? Infinity : Math.max(0, budget - (Date.now() - started)));
    this.draining = true;
    this.emit('draining', { id: this.id, key: this.key });
    try {
      await bounded(this.deregister(), left(), 'deregistration');
    } catch (err) {
      this.log.warn(`deregister ${this.key}: ${err.message} (the lease expires in ${this.ttl}s)`);
    }
    // The gate gets at most half of what is left: the rest is for the
    // requests already in flight.
    if (this.cfg.drainGate) await this.waitGate(Math.min(this.cfg.drainGateTimeout, left() / 2));
    if (this.cfg.drainDelay > 0) await sleep(Math.min(this.cfg.drainDelay, left()));
    if (this.cfg.server) await drainServer(this.cfg.server, this.responses, Math.min(this.cfg.drainTimeout, left()));
    this.log.info(`drained ${this.key} in ${Date.now() - started} ms`);
    this.removeSignals();
  }

  /** waitGate waits until every proxy ACKed endpoints without this instance, or timeoutMs. It never rejects. */
  async waitGate(timeoutMs) {
    const { id, service, address, port } = this.instance;
    try {
      const ans = await waitGate(this.cfg.drainGate, { service, id, address, port, timeoutMs });
      this.gateResult = ans;
      if (ans.converged) this.log.info(`drain gate: every proxy stopped sending to ${this.key} after ${ans.waitedMs} ms`);
      else this.log.warn(`drain gate: ${ans.pending.length} proxies had not ACKed the removal of ${this.key} after ${ans.waitedMs} ms: ${ans.pending.join(', ')}`);
      this.emit('gate', ans);
    } catch (err) {
      this.log.warn(`drain gate ${this.cfg.drainGate}: ${err.message}; draining without it`);
    }
  }

  /** healthHandler returns an http request listener: 200 while serving, 503 while draining. */
  healthHandler() {
    return (req, res) => {
      const status = this.draining ? 503 : 200;
      const body = JSON.stringify({ status: this.draining ? 'draining' : 'serving', service: this.service, instance: this.id });
      const headers = { 'content-type': 'application/json', 'cache-control': 'no-store' };
      if (this.draining) headers.connection = 'close';
      res.writeHead(status, headers);
      res.end(body);
    };
  }

  /** shutdown stops everything without talking to etcd (a failed start). */
  shutdown() {
    this.closed = true;
    clearTimeout(this.timer);
    this.removeSignals();
    this.responses?.stop();
    this.loadReporter?.stop();
    this.client.close();
  }
}

module.exports = { Handle };
