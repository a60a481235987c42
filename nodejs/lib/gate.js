'use strict';

// The drain gate: after deregistering, ask the local sidecar's admin port
// (`shoal sidecar --admin-listen`, default 127.0.0.1:15000) to wait until
// every proxy subscribed to the service has ACKed an endpoint list without
// this instance. The sidecar asks the control plane, which tracks what each
// xDS client ACKed; plain HTTP/JSON keeps this package free of dependencies.
//
//   POST /drain/wait {"service","instance_id","address","port","timeout_ms"}
//   200 {"converged":bool,"waited_ms":n,"pending":["<node id>",...]}

const { postJSON } = require('./post');

const WAIT_PATH = '/drain/wait';
// The answer may take the whole bound; allow this much more for the round trip.
const SLACK_MS = 1000;

/**
 * waitGate resolves with the gate's answer, or rejects on a network error,
 * a non-200 answer or a reply that is not the expected JSON. The request
 * never outlives timeoutMs + 1 s.
 */
async function waitGate(gate, { service, id, address, port, timeoutMs }) {
  const url = new URL(WAIT_PATH, gate);
  const body = JSON.stringify({ service, instance_id: id, address, port, timeout_ms: Math.max(0, Math.floor(timeoutMs)) });
  const { status, text } = await postJSON(url, body, {
    agent: false,
    timeoutMs: timeoutMs + SLACK_MS,
    timeoutMessage: `${url}: no answer within ${timeoutMs + SLACK_MS} ms`,
  });
  if (status !== 200) throw new Error(`${url}: HTTP ${status}: ${text.trim().slice(0, 200)}`);
  try {
    const ans = JSON.parse(text);
    if (typeof ans.converged !== 'boolean') throw new Error('no "converged" field');
    return { converged: ans.converged, waitedMs: Number(ans.waited_ms ?? 0), pending: ans.pending ?? [] };
  } catch (err) {
    throw new Error(`${url}: not a drain answer: ${err.message}`);
  }
}

module.exports = { waitGate, WAIT_PATH };
