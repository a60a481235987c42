'use strict';

// A real Node.js service (examples/node-service) as a child process: it shows
// up in `shoal instances`, leaves at once on SIGTERM, and within TTL + 1 s
// after kill -9.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Etcd, startExample, waitFor } = require('../test-support/etcd');

let etcd;
const children = [];
before(async () => {
  etcd = await Etcd.start();
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await etcd?.close();
});

async function example(env) {
  const ex = await startExample({ SERVICE: 'web', SHOAL_ETCD: `127.0.0.1:${etcd.port}`, ...env });
  children.push(ex.child);
  return ex;
}

test('the example service registers, answers with its id, and leaves at once on SIGTERM', async () => {
  const ex = await example({ INSTANCE_ID: 'web-1', SHOAL_TTL: '30' });
  // `shoal instances -o json` omits empty metadata.
  assert.deepEqual(await etcd.instances('web'), [
    { id: 'web-1', service: 'web', address: '127.0.0.1', port: ex.port, protocol: 'http', zone: 'local', weight: 1 },
  ]);
  const res = await fetch(`http://127.0.0.1:${ex.port}/`);
  assert.deepEqual(await res.json(), { instance: 'web-1', service: 'web' });
  assert.equal((await fetch(`http://127.0.0.1:${ex.port}/healthz`)).status, 200);

  const killedAt = Date.now();
  ex.child.kill('SIGTERM');
  // The lease has 30 s to live, so only the deregistration can remove it this fast.
  await waitFor(async () => (await etcd.instances('web')).length === 0, { timeoutMs: 1000, what: 'web-1 to leave' });
  assert.ok(Date.now() - killedAt < 1000);
  assert.deepEqual(await ex.exited, { code: 0, signal: null }, ex.output());
});

test('after kill -9 the instance disappears within TTL + 1 s', async () => {
  const ex = await example({ INSTANCE_ID: 'web-2', SHOAL_TTL: '2' });
  const kv = await etcd.get('/shoal/v1/instances/web/web-2');
  const { grantedTTL } = await etcd.timeToLive(kv.lease);
  assert.ok(grantedTTL >= 2 && grantedTTL <= 3, `etcd granted ${grantedTTL}s`);
  assert.deepEqual((await etcd.instances('web')).map((i) => i.id), ['web-2']);

  const killedAt = Date.now();
  ex.child.kill('SIGKILL');
  await waitFor(async () => (await etcd.get('/shoal/v1/instances/web/web-2')) === null, {
    timeoutMs: (grantedTTL + 1) * 1000,
    what: 'the lease to expire',
  });
  const gone = Date.now() - killedAt;
  assert.ok(gone <= (grantedTTL + 1) * 1000, `gone after ${gone} ms`);
  assert.deepEqual(await etcd.instances('web'), []);
  assert.equal((await ex.exited).signal, 'SIGKILL');
});

/** runScript runs a CommonJS snippet with the package as `shoal` and resolves with its exit. */
function runScript(source, env) {
  const { spawn } = require('node:child_process');
  const path = require('node:path');
  const child = spawn(process.execPath, ['-e', `const shoal = require(${JSON.stringify(path.join(__dirname, '..'))});\n${source}`], {
    env: { ...process.env, SHOAL_ETCD: etcd.endpoint, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, output })));
  return { child, exited, output: () => output };
}

test('the package never keeps a process alive by itself', async () => {
  const started = Date.now();
  const run = runScript(`shoal.register({ service: 'batch', port: 9, id: 'batch-1', ttl: 30 }).then(() => console.log('registered'));`);
  const { code, output } = await run.exited;
  assert.equal(code, 0, output);
  assert.match(output, /registered/);
  assert.ok(Date.now() - started < 5000);
  // Nobody deregistered it: the key stays until its lease expires.
  assert.ok(await etcd.get('/shoal/v1/instances/batch/batch-1'));
});

test('with its own SIGTERM listener the app decides when to exit', async () => {
  const run = runScript(`
    const http = require('node:http');
    const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
      const h = await shoal.register({ service: 'owned', port: server.address().port, id: 'owned-1', ttl: 30, server });
      process.on('SIGTERM', async () => {
        await h.drain();           // the same drain shoal started
        console.log('drained');
        setTimeout(() => process.exit(7), 10);
      });
      console.log('ready');
    });`);
  await waitFor(() => run.output().includes('ready'), { timeoutMs: 10000, what: 'the script to register' });
  assert.ok(await etcd.get('/shoal/v1/instances/owned/owned-1'));
  run.child.kill('SIGTERM');
  const { code, output } = await run.exited;
  assert.equal(code, 7, output);
  assert.match(output, /drained/);
  assert.equal(await etcd.get('/shoal/v1/instances/owned/owned-1'), null);
});
