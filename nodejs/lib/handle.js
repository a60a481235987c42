'use strict';

// Handle owns one registration: the lease, the keepalive loop, re-registration
// after lease loss or etcd restarts, deregistration and the graceful drain.
//
// One loop drives everything: a single unref()ed timer runs tick(), and at
// most one tick (or the first registration) is in flight at a time, so the
// lease state needs no locking.

const { EventEmitter } = require('node:events');
const { Client, EtcdError, UnavailableError, GRPC_NOT_FOUND } = require('./etcd');
const { drainServer, installSignalHandlers, trackResponses } = require('./drain');

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5000;
const MIN_KEEPALIVE_MS = 500;

/** jitter spreads retries of many instances over [d/2, d). */
const jitter = (d) => d / 2 + Math.random() * (d / 2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms).unref());

class Handle extends EventEmitter {
  /** @param {ReturnType<import('./options').normalize>} cfg */
  constructor(cfg) {
    super();
    this.cfg = cfg;
    this.instance = Object.freeze({ ...cfg.instance, metadata: Object.freeze({ ...cfg.instance.metadata }) });
    this.id = cfg.instance.id;
    this.service = cfg.instance.service;
    this.key = cfg.key;
    this.leaseId = null; // string, the lease the key is attached to; null while lost
    this.ttl = null; // seconds etcd granted (it may raise a too small TTL)
    this.draining = false;
    this.log = cfg.logger;
    this.client = new Client({ endpoints: cfg.etcd, requestTimeout: cfg.requestTimeout });
    this.value = JSON.stringify(cfg.instance);
    this.closed = false;
    this.timer = null;
    this.inflight = null; // promise of the running tick, awaited by deregister
    this.backoff = BACKOFF_MIN_MS;
    this.needPut = false; // re-put the key on the next successful keepalive
    this.failing = false; // logged the start of an outage already
    this.deregisterPromise = null;
    this.drainPromise = null;
    this.responses = cfg.server ? trackResponses(cfg.server) : null;
    this.removeSignals = cfg.handleSignals ? installSignalHandlers(this) : () => {};
  }

  get registered() {
    return this.leaseId !== null && !this.closed;
  }

  /** start registers for the first time, retrying unreachable etcd until startTimeout. */
  async start() {
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
    return this;
  }

  /** registerOnce grants a lease and writes the key under it. */
  async registerOnce(background) {
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
        const remaining = await this.client.keepAlive(this.leaseId, { background: true });
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
      if (this.failing) this.log.info(`etcd reachable again; ${this.key} is registered`);
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
      this.needPut = true;
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
      if (lease !== null) await this.client.revoke(lease);
      this.log.info(`deregistered ${this.key}`);
      this.emit('deregistered', { id: this.id, key: this.key, leaseId: lease });
    } finally {
      this.client.close();
    }
  }

  /**
   * drain deregisters, waits drainDelay, then (with a server) stops accepting,
   * waits up to drainTimeout for in-flight requests and closes idle
   * keep-alive connections. Idempotent; it never rejects.
   */
  drain() {
    if (!this.drainPromise) this.drainPromise = this.doDrain();
    return this.drainPromise;
  }

  async doDrain() {
    this.draining = true;
    this.emit('draining', { id: this.id, key: this.key });
    try {
      await this.deregister();
    } catch (err) {
      this.log.warn(`deregister ${this.key}: ${err.message} (the lease expires in ${this.ttl}s)`);
    }
    if (this.cfg.drainDelay > 0) await sleep(this.cfg.drainDelay);
    if (this.cfg.server) await drainServer(this.cfg.server, this.responses, this.cfg.drainTimeout);
    this.removeSignals();
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
    this.client.close();
  }
}

module.exports = { Handle };
