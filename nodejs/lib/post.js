'use strict';
// postJSON: one JSON POST over http or https and its whole answer, the
// round trip the etcd, control plane and drain-gate clients share.
const http = require('node:http');
const https = require('node:https');

/**
 * postJSON sends body (already JSON text) to url and resolves with
 * { status, text } once the answer is complete; it rejects on a network
 * error, and destroys the request with timeoutMessage after timeoutMs.
 * background unrefs the socket so that it does not keep the process alive.
 */
function postJSON(url, body, { agent, headers = {}, timeoutMs, timeoutMessage, background = false }) {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
    });
    if (background) req.on('socket', (s) => s.unref());
    req.setTimeout(timeoutMs, () => req.destroy(new Error(timeoutMessage)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end(body);
  });
}

module.exports = { postJSON };
