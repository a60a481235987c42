'use strict';

// The drain gate: after deregistering, ask the local sidecar's admin port
// (`shoal sidecar --admin-listen`, default 127.0.0.1:15000) to wait until
// every proxy subscribed to the service has ACKed an endpoint list without
// this instance. The sidecar asks the control plane, which tracks what each
// xDS client ACKed; plain HTTP/JSON keeps this package free of dependencies.
//
//   POST /drain/wait {"service","instance_id","address","port","timeout_ms"}
//   200 {"converged":bool,"waited_ms":n,"pending":["<node id>",...]}

const http = require('node:http');
const https = require('node:https');

const WAIT_PATH = '/drain/wait';
// The answer may take the whole bound; allow this much more for the round trip.
const SLACK_MS = 1000;

/**
 * waitGate resolves with the gate's answer, or rejects on a network error,
 * a non-200 answer or a reply that is not the expected JSON. The request
 * never outlives timeoutMs + 1 s.
 */
function waitGate(gate, { service, id, address, port, timeoutMs }) {
  const url = new URL(WAIT_PATH, gate);
  const body = JSON.stringify({ service, instance_id: id, address, port, timeout_ms: Math.max(0, Math.floor(timeoutMs)) });
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.setTimeout(timeoutMs + SLACK_MS, () => req.destroy(new Error(`${url}: no answer within ${timeoutMs + SLACK_MS} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}: ${text.trim().slice(0, 200)}`));
        try {
          const ans = JSON.parse(text);
          if (typeof ans.converged !== 'boolean') throw new Error('no "converged" field');
          resolve({ converged: ans.converged, waitedMs: Number(ans.waited_ms ?? 0), pending: ans.pending ?? [] });
        } catch (err) {
          reject(new Error(`${url}: not a drain answer: ${err.message}`));
        }
      });
    });
    req.end(body);
  });
}

module.exports = { waitGate, WAIT_PATH };
