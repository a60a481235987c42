'use strict';

// Registration through the shoal control plane (issue 14) instead of etcd:
// the control plane's RegistryService, served as JSON over HTTP/1.1 on its
// management API port (POST /shoal.registry.v1.RegistryService/<Method>,
// protobuf's JSON mapping: int64 lease ids are strings, durations "10s").
// The control plane writes the same etcd key under a lease of its own and
// lets the caller write only instances of its own service: the caller is
// the client certificate from certDir (cert.pem/key.pem/ca.pem as
// `shoal identity fetch --out DIR` keeps them fresh; re-read when they
// change) or the bearer token in tokenFile (the service's join token, or
// an admin API token; re-read on every request). Workloads need no access
// to etcd. Zero dependencies: node:https.

const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { UnavailableError } = require('./etcd');
const { postJSON } = require('./post');

const PATH = '/shoal.registry.v1.RegistryService/';

/** ControlPlaneError is a refusal from the control plane (not a network failure). */
class ControlPlaneError extends Error {
  constructor(message, { code, status, endpoint }) {
    super(message);
    this.name = 'ControlPlaneError';
    this.code = code; // "permission_denied", "unauthenticated", "invalid_argument", ...
    this.status = status; // HTTP status
    this.endpoint = endpoint;
  }
}

/** readIfChanged caches a file's contents by mtime. */
class FileCache {
  constructor() {
    this.entries = new Map();
  }

  read(file) {
    const st = fs.statSync(file);
    const e = this.entries.get(file);
    if (e && e.mtimeMs === st.mtimeMs && e.size === st.size) return e.data;
    const data = fs.readFileSync(file);
    this.entries.set(file, { mtimeMs: st.mtimeMs, size: st.size, data });
    return data;
  }
}

/**
 * Registrar registers through one of the control planes (tried in order,
 * failing over on network errors and "unavailable"). The lease lives in
 * etcd, so any control plane of the mesh renews or revokes it.
 */
class Registrar {
  constructor({ endpoints, tokenFile, certDir, caFile, requestTimeout }) {
    this.endpoints = endpoints;
    this.tokenFile = tokenFile;
    this.certDir = certDir;
    this.caFile = caFile;
    this.requestTimeout = requestTimeout;
    this.current = 0;
    this.files = new FileCache();
    this.agent = null;
    this.agentKey = null;
  }

  /** tlsOptions are the https options of the current files; a new agent when they changed. */
  httpsAgent() {
    const opts = {};
    if (this.certDir) {
      opts.cert = this.files.read(path.join(this.certDir, 'cert.pem'));
      opts.key = this.files.read(path.join(this.certDir, 'key.pem'));
      opts.ca = this.files.read(path.join(this.certDir, 'ca.pem'));
    }
    if (this.caFile) opts.ca = this.files.read(this.caFile);
    if (!this.agent || this.agent.options.cert !== opts.cert || this.agent.options.ca !== opts.ca) {
      this.agent?.destroy();
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 4, minVersion: 'TLSv1.3', ...opts });
    }
    return this.agent;
  }

  async call(method, body, { background = false } = {}) {
    let lastErr;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      try {
        const res = await this.post(this.endpoints[idx], method, body, background);
        this.current = idx;
        return res;
      } catch (err) {
        if (err instanceof ControlPlaneError && err.code !== 'unavailable') throw err;
        lastErr = err;
      }
    }
    this.current = (this.current + 1) % this.endpoints.length;
    throw new UnavailableError(`control plane unavailable at ${this.endpoints.join(',')}: ${lastErr.message}`, lastErr);
  }

  async post(endpoint, method, body, background) {
    const url = new URL(PATH + method, endpoint);
    const headers = {};
    if (this.tokenFile) headers.authorization = `Bearer ${this.files.read(this.tokenFile).toString('utf8').trim()}`;
    const { status, text } = await postJSON(url, JSON.stringify(body), {
      agent: url.protocol === 'https:' ? this.httpsAgent() : undefined,
      headers,
      timeoutMs: this.requestTimeout,
      timeoutMessage: `${method}: timed out after ${this.requestTimeout} ms`,
      background,
    });
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new UnavailableError(`${method}: HTTP ${status} from ${endpoint}: not JSON: ${text.slice(0, 200)}`);
    }
    if (status !== 200) {
      const code = json.code ?? (status === 503 ? 'unavailable' : 'unknown');
      throw new ControlPlaneError(`${method} at ${endpoint}: ${code}: ${json.message ?? `HTTP ${status}`}`, { code, status, endpoint });
    }
    return json;
  }

  /** register writes instance under a new lease: {lease (string), ttl (seconds)}. */
  async register(instance, ttl, opts) {
    const res = await this.call('Register', { instance, ttl: `${ttl}s` }, opts);
    return { lease: String(res.lease_id), ttl: parseFloat(res.ttl) };
  }

  /** keepAlive renews the lease: the TTL in seconds, 0 when the registration is gone (register again). */
  async keepAlive(lease, instance, opts) {
    try {
      const res = await this.call('KeepAlive', { lease_id: lease, service: instance.service, instance_id: instance.id }, opts);
      return parseFloat(res.ttl);
    } catch (err) {
      if (err instanceof ControlPlaneError && err.code === 'not_found') return 0;
      throw err;
    }
  }

  /** revoke deregisters: the control plane revokes the lease, deleting the key. */
  async revoke(lease, instance, opts) {
    await this.call('Deregister', { lease_id: lease, service: instance.service, instance_id: instance.id }, opts);
  }

  close() {
    this.agent?.destroy();
  }
}

module.exports = { Registrar, ControlPlaneError };
