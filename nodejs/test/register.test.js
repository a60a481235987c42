'use strict';

// register(), validation, deregister() and the health handler, in-process
// against a real etcd.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Etcd, waitFor } = require('../test-support/etcd');
const { register, defaultID } = require('..');

let etcd;
before(async () => {
  etcd = await Etcd.start();
});
after(async () => {
  await etcd?.close();
});

const quiet = { logger: false, handleSignals: false };

test('register writes exactly the contract JSON under a lease', async (t) => {
  const h = await register({
    ...quiet,
    service: 'orders',
    port: 3001,
    id: 'orders-1',
    etcd: etcd.endpoint,
    zone: 'eu-1a',
    weight: 5,
    metadata: { version: 'v1' },
    ttl: 30,
  });
  t.after(() => h.deregister());
  assert.equal(h.key, '/shoal/v1/instances/orders/orders-1');
  const kv = await etcd.get(h.key);
  assert.equal(
    kv.value,
    '{"id":"orders-1","service":"orders","address":"127.0.0.1","port":3001,"protocol":"http","zone":"eu-1a","weight":5,"metadata":{"version":"v1"}}',
  );
  assert.equal(kv.lease, h.leaseId);
  const lease = await etcd.timeToLive(kv.lease);
  assert.equal(lease.grantedTTL, 30);
  assert.ok(lease.ttl > 0, `lease TTL ${lease.ttl}`);
  assert.deepEqual(lease.keys, [h.key]);
  // The Go side reads it back as the same instance.
  assert.deepEqual(await etcd.instances('orders'), [
    { id: 'orders-1', service: 'orders', address: '127.0.0.1', port: 3001, protocol: 'http', zone: 'eu-1a', weight: 5, metadata: { version: 'v1' } },
  ]);
});

test('register fills the documented defaults', async (t) => {
  const h = await register({ ...quiet, service: 'web', port: 8080, etcd: `127.0.0.1:${etcd.port}` });
  t.after(() => h.deregister());
  assert.equal(h.id, defaultID('web'));
  assert.match(h.id, new RegExp(`^web-.+-${process.pid}$`));
  assert.equal(h.ttl, 10);
  assert.deepEqual(JSON.parse((await etcd.get(h.key)).value), {
    id: h.id,
    service: 'web',
    address: '127.0.0.1',
    port: 8080,
    protocol: 'http',
    zone: 'local',
    weight: 1,
    metadata: {},
  });
});

test('default ids are sanitized host names', () => {
  assert.equal(defaultID('web', 'My Host_01.example.com', 42), 'web-My-Host_01.example.com-42');
  assert.equal(defaultID('web', '~~~', 7), 'web---7');
});

test('SHOAL_ETCD lists endpoints and register fails over past dead ones', async (t) => {
  const saved = process.env.SHOAL_ETCD;
  process.env.SHOAL_ETCD = `127.0.0.1:1,${etcd.endpoint}`; // port 1: connection refused
  t.after(() => (saved === undefined ? delete process.env.SHOAL_ETCD : (process.env.SHOAL_ETCD = saved)));
  const h = await register({ ...quiet, service: 'failover', port: 1234, id: 'f-1', ttl: 30 });
  t.after(() => h.deregister());
  assert.ok(await etcd.get(h.key));
});

test('invalid options are rejected naming the field, and nothing is written', async (t) => {
  const base = { ...quiet, service: 'bad', port: 3000, etcd: etcd.endpoint };
  const cases = [
    { name: 'service with capitals', opts: { service: 'Orders' }, type: TypeError, field: 'service' },
    { name: 'service too long', opts: { service: 'a'.repeat(64) }, type: TypeError, field: 'service' },
    { name: 'missing service', opts: { service: undefined }, type: TypeError, field: 'service' },
    { name: 'port 0', opts: { port: 0 }, type: RangeError, field: 'port' },
    { name: 'port 65536', opts: { port: 65536 }, type: RangeError, field: 'port' },
    { name: 'port as a string', opts: { port: '3000' }, type: TypeError, field: 'port' },
    { name: 'unknown protocol', opts: { protocol: 'udp' }, type: TypeError, field: 'protocol' },
    { name: 'weight 0', opts: { weight: 0 }, type: RangeError, field: 'weight' },
    { name: 'weight 10001', opts: { weight: 10001 }, type: RangeError, field: 'weight' },
    { name: 'id with a slash', opts: { id: 'a/b' }, type: TypeError, field: 'id' },
    { name: 'bad address', opts: { address: 'not an address' }, type: TypeError, field: 'address' },
    { name: 'zone with a slash', opts: { zone: 'eu/1' }, type: TypeError, field: 'zone' },
    { name: 'numeric metadata', opts: { metadata: { replicas: 3 } }, type: TypeError, field: 'metadata.replicas' },
    { name: 'ttl 0', opts: { ttl: 0 }, type: RangeError, field: 'ttl' },
    { name: 'etcd with a bad scheme', opts: { etcd: 'ftp://127.0.0.1:2379' }, type: TypeError, field: 'etcd' },
  ];
  const keysBefore = await etcd.keys('/shoal/v1/instances/');
  const leasesBefore = await etcd.leases();
  for (const c of cases) {
    await t.test(c.name, async () => {
      await assert.rejects(register({ ...base, ...c.opts }), (err) => {
        assert.ok(err instanceof c.type, `${err.name}: ${err.message}`);
        assert.equal(err.field, c.field);
        assert.match(err.message, new RegExp(`invalid option ${c.field.replace('.', '\\.')}:`));
        return true;
      });
    });
  }
  assert.deepEqual(await etcd.keys('/shoal/v1/instances/'), keysBefore);
  assert.deepEqual(await etcd.leases(), leasesBefore);
});

test('deregister removes the key at once and is idempotent', async () => {
  const h = await register({ ...quiet, service: 'billing', port: 4000, id: 'billing-1', etcd: etcd.endpoint, ttl: 60 });
  const lease = h.leaseId;
  assert.ok(await etcd.get(h.key));
  const events = [];
  h.on('deregistered', (e) => events.push(e));
  await Promise.all([h.deregister(), h.deregister()]);
  assert.equal(await etcd.get(h.key), null);
  assert.ok(!(await etcd.leases()).includes(lease), 'lease revoked');
  assert.equal(h.registered, false);
  await h.deregister();
  assert.equal(events.length, 1);
});

test('register rejects when etcd stays unreachable for startTimeout', async () => {
  const started = Date.now();
  await assert.rejects(
    register({ ...quiet, service: 'lonely', port: 1, etcd: '127.0.0.1:1', startTimeout: 300 }),
    (err) => err.name === 'EtcdUnavailableError' && /127\.0\.0\.1:1/.test(err.message),
  );
  assert.ok(Date.now() - started < 3000);
});

test('drain deregisters, lets in-flight requests finish, then closes the server; health turns 503', async (t) => {
  let handle;
  let release;
  const released = new Promise((r) => (release = r));
  const server = http.createServer(async (req, res) => {
    if (req.url === '/healthz') return handle.healthHandler()(req, res);
    await released;
    res.end('slow done');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  handle = await register({ ...quiet, service: 'health', port: server.address().port, id: 'health-1', etcd: etcd.endpoint, server, ttl: 60 });
  const base = `http://127.0.0.1:${server.address().port}`;
  const res = await fetch(`${base}/healthz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'serving', service: 'health', instance: 'health-1' });

  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  const slow = new Promise((resolve, reject) => {
    http.get(`${base}/slow`, { agent }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d)).on('end', () => resolve({ status: r.statusCode, connection: r.headers.connection, body }));
    }).on('error', reject);
  });
  await waitFor(() => new Promise((r) => server.getConnections((_, n) => r(n === 1))), { what: 'the slow request to arrive' });

  let drainedAt = 0;
  const drained = handle.drain().then(() => (drainedAt = Date.now()));
  assert.equal(handle.draining, true);
  const mock = { writeHead(status) { this.status = status; }, end() {} };
  handle.healthHandler()({}, mock);
  assert.equal(mock.status, 503);
  await waitFor(async () => !server.listening && (await etcd.get(handle.key)) === null, { what: 'deregistered and not accepting' });
  await assert.rejects(fetch(`${base}/healthz`), 'new connections are refused while draining');
  assert.equal(drainedAt, 0, 'drain waits for the in-flight request');

  const releasedAt = Date.now();
  release();
  assert.deepEqual(await slow, { status: 200, connection: 'close', body: 'slow done' });
  await drained;
  assert.ok(drainedAt >= releasedAt);
});

test('the ESM entry exports the same API', async () => {
  const esm = await import('../index.mjs');
  assert.equal(esm.register, register);
  assert.equal(esm.default.register, register);
});
