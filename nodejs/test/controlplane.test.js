'use strict';

// Registration through the control plane (issue 14): a real `shoal
// controlplane` with management API authentication on (loopback, forced
// with --api-auth required), identities from `shoal identity fetch` and join
// tokens from `shoal tokens create`; the package speaks HTTPS/JSON to the
// API port and never touches etcd, which the test reads to check.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const { Etcd, startExample, waitFor } = require('../test-support/etcd');
const { register, ControlPlaneError } = require('..');

const execFileP = promisify(execFile);
const quiet = { logger: false, handleSignals: false };

let cp;
let dir;
let api;
const creds = {}; // service -> { certDir, tokenFile }

async function shoal(...args) {
  const { stdout } = await execFileP(cp.bin, args, { timeout: 30000 });
  return stdout;
}

before(async () => {
  cp = await Etcd.start({ args: ['--api-auth', 'required'] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cpreg-'));
  api = `https://127.0.0.1:${cp.apiPort}`;
  const admin = path.join(dir, 'admin');
  await shoal('ca', 'issue-admin', '--ca-dir', path.join(cp.dataDir, 'ca'), '--out', admin);
  const adminFlags = ['--api', `127.0.0.1:${cp.apiPort}`, '--ca-bundle', path.join(admin, 'ca.pem'), '--cert', path.join(admin, 'cert.pem'), '--key', path.join(admin, 'key.pem')];
  for (const service of ['web', 'orders']) {
    const tokenFile = path.join(dir, `${service}.token`);
    fs.writeFileSync(tokenFile, await shoal('tokens', 'create', ...adminFlags, '--service', service, '--uses', '5'), { mode: 0o600 });
    const certDir = path.join(dir, `${service}-identity`);
    await shoal('identity', 'fetch', '--xds', `127.0.0.1:${cp.xdsPort}`, '--join-token-file', tokenFile, '--out', certDir, '--once');
    creds[service] = { tokenFile, certDir };
  }
});
after(async () => {
  await cp?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('certDir: registers through the control plane (the contract key under its lease), deregister deletes it', async (t) => {
  const h = await register({ ...quiet, service: 'web', id: 'web-1', port: 3001, controlPlane: api, certDir: creds.web.certDir, metadata: { version: 'v1' } });
  t.after(() => h.deregister());
  const kv = await cp.get('/shoal/v1/instances/web/web-1');
  assert.deepEqual(JSON.parse(kv.value), {
    id: 'web-1', service: 'web', address: '127.0.0.1', port: 3001, protocol: 'http', zone: 'local', weight: 1, metadata: { version: 'v1' },
  });
  assert.equal(kv.lease, h.leaseId);
  assert.equal(h.ttl, 10);
  await h.deregister();
  assert.equal(await cp.get('/shoal/v1/instances/web/web-1'), null);
});

test('a service cannot register an instance of another: permission_denied, nothing written', async () => {
  for (const [what, c] of [['certDir', { certDir: creds.web.certDir }], ['tokenFile', { tokenFile: creds.web.tokenFile, caFile: path.join(creds.web.certDir, 'ca.pem') }]]) {
    const rev = await cp.revision();
    await assert.rejects(
      register({ ...quiet, service: 'orders', id: 'orders-evil', port: 6666, controlPlane: api, ...c }),
      (err) => err instanceof ControlPlaneError && err.code === 'permission_denied' && err.status === 403 && /orders/.test(err.message),
      `web's ${what} registering orders`,
    );
    assert.equal(await cp.revision(), rev, `etcd revision after the refused registration with web's ${what}`);
  }
  assert.deepEqual(await cp.keys('/shoal/v1/instances/orders/'), []);
});

test('tokenFile: the join token registers its own service and keepalives hold it past its TTL', async (t) => {
  const h = await register({
    ...quiet, service: 'orders', id: 'orders-1', port: 3002, ttl: 2,
    controlPlane: api, tokenFile: creds.orders.tokenFile, caFile: path.join(creds.orders.certDir, 'ca.pem'),
  });
  t.after(() => h.deregister());
  const lease = h.leaseId;
  const until = Date.now() + 3 * 2000; // three TTLs
  while (Date.now() < until) {
    const kv = await cp.get('/shoal/v1/instances/orders/orders-1');
    assert.equal(kv?.lease, lease, 'the key stays on its first lease');
    await new Promise((r) => setTimeout(r, 250)); // sampling, not synchronising
  }
});

test('bad options name the field', async () => {
  await assert.rejects(register({ service: 'web', port: 1, controlPlane: api }), /invalid option controlPlane: https needs credentials/);
  await assert.rejects(register({ service: 'web', port: 1, controlPlane: api, tokenFile: creds.web.tokenFile }), /invalid option caFile/);
  await assert.rejects(register({ service: 'web', port: 1, controlPlane: api, etcd: cp.endpoint }), /give etcd or controlPlane, not both/);
  await assert.rejects(register({ service: 'web', port: 1, controlPlane: 'http://127.0.0.1:1', certDir: creds.web.certDir }), /invalid option certDir: needs an https controlPlane/);
  await assert.rejects(register({ service: 'web', port: 1, controlPlane: api, certDir: dir }), /invalid option certDir: .* has no cert.pem/);
});

test('SIGTERM: the example service deregisters through the control plane and exits', async () => {
  const ex = await startExample({
    SERVICE: 'web', INSTANCE_ID: 'web-sig', SHOAL_ETCD: '', SHOAL_CONTROL_PLANE: api, SHOAL_CERT_DIR: creds.web.certDir,
  });
  const key = '/shoal/v1/instances/web/web-sig';
  assert.equal(JSON.parse((await cp.get(key)).value).port, ex.port);
  ex.child.kill('SIGTERM');
  const { code } = await ex.exited;
  assert.equal(code, 0, ex.output());
  assert.equal(await cp.get(key), null, 'the instance is gone once the process exited');
});
