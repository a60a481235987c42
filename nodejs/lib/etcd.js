'use strict';

// A minimal client for etcd's v3 HTTP/JSON gateway (grpc-gateway), enough to
// hold a lease and write one key: https://etcd.io/docs/v3.5/dev-guide/api_grpc_gateway/
// Keys and values travel base64-encoded; int64 fields (lease IDs, TTLs) are
// JSON strings.

const http = require('node:http');
const https = require('node:https');
const { postJSON } = require('./post');

// gRPC status codes the gateway reports in {"code": N, "message": ...}.
const GRPC_NOT_FOUND = 5;
const GRPC_UNAVAILABLE = 14;

/** EtcdError is an answer from etcd refusing a request (not a network failure). */
class EtcdError extends Error {
  constructor(message, { code, status, endpoint }) {
    super(message);
    this.name = 'EtcdError';
    this.code = code; // gRPC status code
    this.status = status; // HTTP status
    this.endpoint = endpoint;
  }
}

/** UnavailableError means no endpoint could be reached or answered "unavailable". */
class UnavailableError extends Error {
  constructor(message, cause) {
    super(message, { cause });
    this.name = 'EtcdUnavailableError';
  }
}

const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');

/**
 * Client sends gateway requests to one endpoint at a time and fails over to
 * the next on network errors or "unavailable". Calls may run concurrently.
 */
class Client {
  constructor({ endpoints, requestTimeout }) {
    this.endpoints = endpoints;
    this.requestTimeout = requestTimeout;
    this.current = 0; // index of the endpoint that answered last
    this.agents = {
      'http:': new http.Agent({ keepAlive: true, maxSockets: 4 }),
      'https:': new https.Agent({ keepAlive: true, maxSockets: 4 }),
    };
  }

  /**
   * call POSTs body to path and returns the parsed JSON answer. With
   * background set, the request does not keep the process alive.
   */
  async call(path, body, { background = false } = {}) {
    let lastErr;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      const endpoint = this.endpoints[idx];
      try {
        const res = await this.post(endpoint, path, body, background);
        this.current = idx;
        return res;
      } catch (err) {
        if (err instanceof EtcdError && err.code !== GRPC_UNAVAILABLE) throw err;
        lastErr = err;
      }
    }
    this.current = (this.current + 1) % this.endpoints.length;
    throw new UnavailableError(`etcd unavailable at ${this.endpoints.join(',')}: ${lastErr.message}`, lastErr);
  }

  async post(endpoint, path, body, background) {
    const url = new URL(path, endpoint);
    const { status, text } = await postJSON(url, JSON.stringify(body), {
      agent: this.agents[url.protocol],
      timeoutMs: this.requestTimeout,
      timeoutMessage: `${path}: timed out after ${this.requestTimeout} ms`,
      background,
    });
    return parseAnswer(endpoint, path, status, text);
  }

  grant(ttl, opts) {
    return this.call('/v3/lease/grant', { TTL: ttl }, opts);
  }

  put(key, value, lease, opts) {
    return this.call('/v3/kv/put', { key: b64(key), value: b64(value), lease }, opts);
  }

  /** keepAlive returns the remaining TTL in seconds; 0 means the lease is gone. */
  async keepAlive(id, opts) {
    const res = await this.call('/v3/lease/keepalive', { ID: id }, opts);
    if (res.error) {
      const e = res.error;
      throw new EtcdError(`/v3/lease/keepalive: ${e.message}`, { code: e.grpc_code ?? e.code, status: e.http_code });
    }
    return Number((res.result ?? res).TTL ?? 0);
  }

  /** revoke revokes the lease; a lease that is already gone is not an error. */
  async revoke(id, opts) {
    try {
      await this.call('/v3/lease/revoke', { ID: id }, opts);
    } catch (err) {
      if (!(err instanceof EtcdError && err.code === GRPC_NOT_FOUND)) throw err;
    }
  }

  close() {
    for (const a of Object.values(this.agents)) a.destroy();
  }
}

function parseAnswer(endpoint, path, status, text) {
  // Streaming RPCs (keepalive) answer one JSON object per line; we send one
  // request, so the first line is the answer.
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '{}';
  let json;
  try {
    json = JSON.parse(line);
  } catch {
    throw new UnavailableError(`${path}: HTTP ${status} from ${endpoint}: not JSON: ${line.slice(0, 200)}`);
  }
  if (status !== 200) {
    const code = json.code ?? (status === 503 ? GRPC_UNAVAILABLE : undefined);
    throw new EtcdError(`${path}: ${json.message ?? `HTTP ${status}`}`, { code, status, endpoint });
  }
  return json;
}

module.exports = { Client, EtcdError, UnavailableError, GRPC_NOT_FOUND, GRPC_UNAVAILABLE };
