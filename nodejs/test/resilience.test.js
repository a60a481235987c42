'use strict';

// The registration survives what happens to etcd behind its back: a revoked
// lease, an etcd restart, and an etcd that comes back without its data.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const { Etcd, waitFor, within } = require('../test-support/etcd');
const { register } = require('..');

let etcd;
// The handle's timers and background requests are unref()ed, so an idle test
// process would exit while waiting for its events; an app's server keeps its
// process alive the same way this interval does.
let appAlive;
before(async () => {
  appAlive = setInterval(() => {}, 1000);
  etcd = await Etcd.start();
});
after(async () => {
  clearInterval(appAlive);
  await etcd?.close();
});

const TTL = 3; // keepalive every second

async function registerQuiet(t, id) {
  const h = await register({ service: 'resilient', port: 3000, id, etcd: etcd.endpoint, ttl: TTL, logger: false, handleSignals: false });
  t.after(() => h.deregister().catch(() => {}));
  h.on('error', () => {}); // expected while etcd is down
  return h;
}

/** liveKey resolves once key is present under a live lease that is not oldLease. */
function liveKey(key, { notLease, timeoutMs }) {
  return waitFor(
    async () => {
      const kv = await etcd.get(key);
      if (!kv || kv.lease === notLease) return null;
      return (await etcd.timeToLive(kv.lease)).ttl > 0 ? kv : null;
    },
    { timeoutMs, what: `${key} registered again` },
  );
}

test('a lease revoked behind its back is registered again under a new lease', async (t) => {
  const h = await registerQuiet(t, 'revoked-1');
  const oldLease = h.leaseId;
  const lost = once(h, 'lost');
  await etcd.revoke(oldLease);
  assert.equal(await etcd.get(h.key), null, 'revoking the lease deletes the key');
  const kv = await liveKey(h.key, { notLease: oldLease, timeoutMs: TTL * 1000 });
  assert.equal(kv.lease, h.leaseId);
  assert.deepEqual((await lost)[0], { id: 'revoked-1', key: h.key, leaseId: oldLease, reason: 'lease not found (expired or revoked)' });
});

test('after an etcd restart on the same data dir the instance is registered and kept alive', async (t) => {
  const h = await registerQuiet(t, 'restart-1');
  const failed = once(h, 'error');
  await etcd.stop();
  const [err] = await failed; // the handle noticed the outage
  assert.equal(err.name, 'EtcdUnavailableError');
  // Not events.once: it rejects on the 'error' events the handle keeps
  // emitting until etcd is back, before anything awaits it.
  const registered = new Promise((resolve) => h.once('registered', (...args) => resolve(args)));
  await etcd.restart();
  // etcd keeps leases across restarts, so the key may never have left; what
  // matters is that the handle writes it again and keeps its lease alive.
  const [{ leaseId }] = await within(registered, 5000, 'registered again');
  const kv = await etcd.get(h.key);
  assert.equal(kv.lease, leaseId);
  assert.ok((await etcd.timeToLive(leaseId)).ttl > 0);
  assert.ok(h.registered);
});

test('after etcd comes back without its data the instance is registered again', async (t) => {
  const h = await registerQuiet(t, 'wiped-1');
  const oldLease = h.leaseId;
  const lost = once(h, 'lost');
  await etcd.restart({ wipe: true });
  await liveKey(h.key, { notLease: oldLease, timeoutMs: 5000 });
  await lost;
});
