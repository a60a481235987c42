'use strict';

// Validation and defaults for register() options. The rules mirror the Go
// registry (registry/instance.go) so that anything this package writes is an
// instance the control plane accepts: see ARCHITECTURE.md, "Contract: etcd keys".

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const pm2 = require('./pm2');

const KEY_PREFIX = '/shoal/v1/instances/';
const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'];
const MAX_WEIGHT = 10000;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const INSTANCE_ID = /^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$/;
const DEFAULT_ETCD = 'http://127.0.0.1:2379';

/**
 * fieldError builds the error thrown for a bad option. Its message names the
 * field first; `err.field` carries the field name for programs.
 */
function fieldError(Ctor, field, reason) {
  const err = new Ctor(`shoal: invalid option ${field}: ${reason}`);
  err.field = field;
  return err;
}

function validName(s) {
  return typeof s === 'string' && s.length <= 63 && DNS_LABEL.test(s);
}

function validID(s) {
  return typeof s === 'string' && s.length <= 253 && INSTANCE_ID.test(s);
}

function validAddress(s) {
  if (typeof s !== 'string' || s === '' || s.length > 253) return false;
  if (net.isIP(s)) return true;
  return s.split('.').every((l) => l !== '' && l.length <= 63 && INSTANCE_ID.test(l) && !l.includes(':'));
}

/** defaultID returns `<service>-<hostname>-<pid>` reduced to a valid instance id. */
function defaultID(service, hostname = os.hostname(), pid = process.pid) {
  let id = `${service}-${hostname}-${pid}`.replace(/[^A-Za-z0-9._:-]+/g, '-');
  id = id.slice(0, 253).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return id || `${service}-${pid}`;
}

/** parseEndpoints turns "a:2379,http://b:2379" or an array into base URLs. */
function parseEndpoints(value) {
  const list = Array.isArray(value) ? value : String(value).split(',');
  const out = [];
  for (const raw of list) {
    const s = String(raw).trim();
    if (s === '') continue;
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `http://${s}`;
    let url;
    try {
      url = new URL(withScheme);
    } catch {
      throw fieldError(TypeError, 'etcd', `${JSON.stringify(s)} is not an endpoint (host:port or http(s)://host:port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw fieldError(TypeError, 'etcd', `${JSON.stringify(s)} must use http or https`);
    }
    out.push(url.origin);
  }
  if (out.length === 0) throw fieldError(TypeError, 'etcd', 'no endpoint given');
  return out;
}

function checkInteger(field, v, min, max) {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw fieldError(TypeError, field, `${JSON.stringify(v)} is not an integer`);
  }
  if (v < min || v > max) throw fieldError(RangeError, field, `${v} is outside ${min}-${max}`);
}

function checkMetadata(md) {
  if (md === undefined || md === null) return {};
  if (typeof md !== 'object' || Array.isArray(md)) {
    throw fieldError(TypeError, 'metadata', 'must be an object of string values');
  }
  const out = {};
  for (const [k, v] of Object.entries(md)) {
    if (k === '' || k.length > 253) throw fieldError(TypeError, 'metadata', `key ${JSON.stringify(k)} must be 1-253 characters`);
    if (typeof v !== 'string') throw fieldError(TypeError, `metadata.${k}`, `${JSON.stringify(v)} is not a string`);
    out[k] = v;
  }
  return out;
}

function checkZone(zone) {
  if (typeof zone !== 'string' || zone === '' || zone.length > 128 || /[/\s]/.test(zone)) {
    throw fieldError(TypeError, 'zone', `${JSON.stringify(zone)} must be 1-128 characters without '/' or spaces`);
  }
}

function checkDuration(field, v) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw fieldError(TypeError, field, `${JSON.stringify(v)} is not a non-negative number of milliseconds`);
  }
}

/**
 * normalize validates the options of register() and fills the documented
 * defaults. It throws a TypeError (wrong type or format) or a RangeError
 * (number out of range) whose message and `field` name the offending option.
 */
function normalize(opts, env = process.env) {
  if (opts === null || typeof opts !== 'object') throw new TypeError('shoal: register() needs an options object');
  const { service } = opts;
  if (!validName(service)) {
    throw fieldError(TypeError, 'service', `${JSON.stringify(service)} is not a lowercase DNS label of at most 63 characters`);
  }
  const server = opts.server ?? null;
  if (server !== null && (typeof server.close !== 'function' || typeof server.on !== 'function')) {
    throw fieldError(TypeError, 'server', 'must be an http.Server (or anything with close() and on())');
  }
  // port 0 (or no port with a server): the package listens on a free port.
  const port = opts.port ?? (server ? 0 : undefined);
  if (port === 0 && (server === null || typeof server.listen !== 'function')) {
    throw fieldError(RangeError, 'port', '0 (a free port) needs the server option: the package listens on it for you');
  }
  checkInteger('port', port, server ? 0 : 1, 65535);
  const underPM2 = pm2.detect(env);
  const id = opts.id ?? (underPM2 ? defaultID(service, os.hostname(), underPM2.pmID) : defaultID(service));
  if (!validID(id)) {
    throw fieldError(TypeError, 'id', `${JSON.stringify(id)} must be 1-253 characters of [A-Za-z0-9._:-], starting and ending alphanumeric`);
  }
  const address = opts.address ?? (env.SHOAL_ADDRESS || '127.0.0.1');
  if (!validAddress(address)) throw fieldError(TypeError, 'address', `${JSON.stringify(address)} is not an IP address or host name`);
  const protocol = opts.protocol ?? 'http';
  if (!PROTOCOLS.includes(protocol)) {
    throw fieldError(TypeError, 'protocol', `${JSON.stringify(protocol)} is not one of ${PROTOCOLS.join(', ')}`);
  }
  const weight = opts.weight ?? 1;
  checkInteger('weight', weight, 1, MAX_WEIGHT);
  const zone = opts.zone ?? 'local';
  checkZone(zone);
  const metadata = checkMetadata(opts.metadata);
  const ttl = opts.ttl ?? 10;
  checkInteger('ttl', ttl, 1, 9e9);
  const controlPlane = controlPlaneOptions(opts, env);
  const etcd = controlPlane ? null : parseEndpoints(opts.etcd ?? (env.SHOAL_ETCD || DEFAULT_ETCD));
  const drainTimeout = opts.drainTimeout ?? 10000;
  checkDuration('drainTimeout', drainTimeout);
  const drainDelay = opts.drainDelay ?? 0;
  checkDuration('drainDelay', drainDelay);
  const requestTimeout = opts.requestTimeout ?? 5000;
  checkDuration('requestTimeout', requestTimeout);
  const startTimeout = opts.startTimeout ?? 10000;
  checkDuration('startTimeout', startTimeout);
  const host = opts.host ?? (net.isIP(address) ? address : undefined);
  if (host !== undefined && (typeof host !== 'string' || host === '')) throw fieldError(TypeError, 'host', `${JSON.stringify(host)} is not an address to listen on`);
  const ready = opts.ready ?? underPM2 !== null;
  if (typeof ready !== 'boolean') throw fieldError(TypeError, 'ready', `${JSON.stringify(ready)} is not a boolean`);
  const shutdownTimeout = opts.shutdownTimeout ?? (underPM2 ? pm2.shutdownBudget(underPM2.killTimeout) : null);
  if (shutdownTimeout !== null) checkDuration('shutdownTimeout', shutdownTimeout);
  const drainGate = opts.drainGate ?? (env.SHOAL_DRAIN_GATE || null);
  if (drainGate !== null) checkGate(drainGate);
  const loadReports = opts.loadReports ?? true;
  if (typeof loadReports !== 'boolean') throw fieldError(TypeError, 'loadReports', `${JSON.stringify(loadReports)} is not a boolean`);
  const drainGateTimeout = opts.drainGateTimeout ?? 5000;
  checkDuration('drainGateTimeout', drainGateTimeout);
  // Field order is the contract's, so every writer produces the same bytes.
  // port is 0 until the package has listened (Handle.start fills it in).
  const instance = { id, service, address, port, protocol, zone, weight, metadata };
  return {
    instance,
    key: `${KEY_PREFIX}${service}/${id}`,
    etcd,
    controlPlane,
    ttl,
    server,
    host,
    ready,
    pm2: underPM2,
    shutdownTimeout,
    drainGate: drainGate === null ? null : new URL(drainGate).origin,
    drainGateTimeout,
    drainTimeout,
    drainDelay,
    requestTimeout,
    startTimeout,
    handleSignals: opts.handleSignals ?? true,
    loadReports,
    logger: normalizeLogger(opts.logger),
  };
}

/**
 * controlPlaneOptions returns how to register through the control plane
 * ({endpoints, tokenFile, certDir, caFile}), or null to register in etcd.
 * The options win over $SHOAL_CONTROL_PLANE, $SHOAL_TOKEN_FILE,
 * $SHOAL_CERT_DIR and $SHOAL_CA_FILE; an explicit etcd option means etcd.
 */
function controlPlaneOptions(opts, env) {
  if (opts.controlPlane !== undefined && opts.etcd !== undefined) {
    throw fieldError(TypeError, 'controlPlane', 'give etcd or controlPlane, not both');
  }
  const raw = opts.controlPlane ?? (opts.etcd === undefined ? env.SHOAL_CONTROL_PLANE || undefined : undefined);
  for (const f of ['tokenFile', 'certDir', 'caFile']) {
    if (raw === undefined && opts[f] !== undefined) throw fieldError(TypeError, f, 'needs controlPlane (registering in etcd takes no credentials)');
  }
  if (raw === undefined) return null;
  const list = Array.isArray(raw) ? raw : String(raw).split(',');
  const endpoints = [];
  for (const item of list) {
    const s = String(item).trim();
    if (s === '') continue;
    let url;
    try {
      url = new URL(s);
    } catch {
      throw fieldError(TypeError, 'controlPlane', `${JSON.stringify(s)} is not a URL (https://host:18001, the control plane's API port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fieldError(TypeError, 'controlPlane', `${JSON.stringify(s)} must use https (or http on loopback)`);
    endpoints.push(url.origin);
  }
  if (endpoints.length === 0) throw fieldError(TypeError, 'controlPlane', 'no URL given');
  const pick = (field, envName) => {
    const v = opts[field] ?? (env[envName] || undefined);
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw fieldError(TypeError, field, `${JSON.stringify(v)} is not a path`);
    return v ?? null;
  };
  const tokenFile = pick('tokenFile', 'SHOAL_TOKEN_FILE');
  const certDir = pick('certDir', 'SHOAL_CERT_DIR');
  const caFile = pick('caFile', 'SHOAL_CA_FILE');
  const secure = endpoints.every((e) => e.startsWith('https:'));
  if (!secure && endpoints.some((e) => e.startsWith('https:'))) throw fieldError(TypeError, 'controlPlane', 'mixes http and https URLs');
  if (secure) {
    if (tokenFile === null && certDir === null) {
      throw fieldError(TypeError, 'controlPlane', 'https needs credentials: tokenFile (the service\'s join token) or certDir (from `shoal identity fetch --out DIR`)');
    }
    if (certDir === null && caFile === null) throw fieldError(TypeError, 'caFile', 'required with tokenFile over https: the CA bundle that verifies the control plane (ca.pem)');
  } else if (tokenFile !== null || certDir !== null) {
    throw fieldError(TypeError, tokenFile !== null ? 'tokenFile' : 'certDir', 'needs an https controlPlane: over http it would travel in clear');
  }
  for (const [field, p] of [['tokenFile', tokenFile], ['caFile', caFile]]) {
    if (p !== null && !fs.existsSync(p)) throw fieldError(TypeError, field, `${JSON.stringify(p)} does not exist`);
  }
  if (certDir !== null) {
    for (const f of ['cert.pem', 'key.pem', 'ca.pem']) {
      if (!fs.existsSync(path.join(certDir, f))) throw fieldError(TypeError, 'certDir', `${JSON.stringify(certDir)} has no ${f} (written by \`shoal identity fetch --out DIR\`)`);
    }
  }
  return { endpoints, tokenFile, certDir, caFile };
}

function checkGate(v) {
  let url;
  try {
    url = new URL(String(v));
  } catch {
    throw fieldError(TypeError, 'drainGate', `${JSON.stringify(v)} is not a URL (e.g. http://127.0.0.1:15000, the sidecar's admin port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw fieldError(TypeError, 'drainGate', `${JSON.stringify(v)} must use http or https`);
  }
}

const noop = () => {};

/**
 * normalizeLogger accepts a console-like object. The default stays silent at
 * debug/info and writes warn/error to stderr; `false` or `null` silences all.
 */
function normalizeLogger(logger) {
  if (logger === false || logger === null) return { debug: noop, info: noop, warn: noop, error: noop };
  if (logger === undefined) {
    return {
      debug: noop,
      info: noop,
      warn: (...a) => console.warn('shoal:', ...a),
      error: (...a) => console.error('shoal:', ...a),
    };
  }
  if (typeof logger !== 'object') throw fieldError(TypeError, 'logger', 'must be a console-like object or false');
  const pick = (m) => (typeof logger[m] === 'function' ? logger[m].bind(logger) : noop);
  return { debug: pick('debug'), info: pick('info'), warn: pick('warn'), error: pick('error') };
}

module.exports = { normalize, defaultID, parseEndpoints, validName, KEY_PREFIX, PROTOCOLS, MAX_WEIGHT };
