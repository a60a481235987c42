'use strict';

// Port 0, PM2 workers (instance id from pm_id, wait_ready, kill_timeout,
// the 'shutdown' message) and the drain gate's fallback, against a real etcd.
// examples/pm2 under a real PM2 is covered by e2e/pm2_test.go.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Etcd, waitFor } = require('../test-support/etcd');
const { register, defaultID } = require('..');

let etcd;
const children = [];
before(async () => {
  etcd = await Etcd.start();
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await etcd?.close();
});

const quiet = { logger: false, handleSignals: false };

test('port 0 listens on a free port and registers that port', async (t) => {
  const server = http.createServer((req, res) => res.end('hi'));
  t.after(() => server.close());
  const h = await register({ ...quiet, service: 'free', id: 'free-1', server, port: 0, etcd: etcd.endpoint });
  t.after(() => h.deregister());
  assert.ok(server.listening);
  const { port, address } = server.address();
  assert.equal(address, '127.0.0.1'); // the registered address, so nothing listens beyond it
  assert.equal(h.instance.port, port);
  assert.equal(JSON.parse((await etcd.get(h.key)).value).port, port);
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hi');
});

test('without a port, a listening server registers the port it listens on', async (t) => {
  const server = http.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const h = await register({ ...quiet, service: 'free', id: 'free-2', server, etcd: etcd.endpoint });
  t.after(() => h.deregister());
  assert.equal(JSON.parse((await etcd.get(h.key)).value).port, server.address().port);
});

test('bad options name their field and write nothing', async () => {
  const cases = [
    [{ service: 'x', port: 0 }, 'port', RangeError],
    [{ service: 'x', port: 1, drainGate: 'ftp://127.0.0.1:15000' }, 'drainGate', TypeError],
    [{ service: 'x', port: 1, drainGate: 'not a url' }, 'drainGate', TypeError],
    [{ service: 'x', port: 1, ready: 'yes' }, 'ready', TypeError],
    [{ service: 'x', port: 1, shutdownTimeout: -1 }, 'shutdownTimeout', TypeError],
  ];
  for (const [opts, field, Ctor] of cases) {
    await assert.rejects(register({ ...quiet, etcd: etcd.endpoint, ...opts }), (err) => {
      assert.ok(err instanceof Ctor, `${field}: ${err}`);
      assert.equal(err.field, field);
      assert.match(err.message, new RegExp(`^shoal: invalid option ${field}:`));
      return true;
    });
  }
  assert.deepEqual(await etcd.keys('/shoal/v1/instances/x/'), []);
});

/** pm2Env is what PM2 puts in a fork-mode worker's environment (lib/God/ForkMode.js). */
function pm2Env(pmID, extra = {}) {
  return {
    pm_id: String(pmID),
    pm_exec_path: '/srv/app.js',
    name: 'app',
    exec_mode: 'fork_mode',
    instance_var: 'NODE_APP_INSTANCE',
    NODE_APP_INSTANCE: '0',
    wait_ready: 'true',
    ...extra,
  };
}

/**
 * worker runs a CommonJS snippet the way PM2 runs a worker: with PM2's
 * environment and an IPC channel to the parent, whose messages it collects
 * (each with the time it arrived).
 */
function worker(source, env) {
  const child = spawn(process.execPath, ['-e', `const shoal = require(${JSON.stringify(path.join(__dirname, '..'))});\n${source}`], {
    env: { ...process.env, SHOAL_ETCD: etcd.endpoint, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.push(child);
  let output = '';
  const messages = [];
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  child.on('message', (m) => messages.push({ m, at: Date.now() }));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  return { child, exited, messages, output: () => output };
}

const SERVE = `
  const http = require('node:http');
  const server = http.createServer((req, res) => {
    if (req.url === '/hang') return; // a request that never finishes
    res.end('ok');
  });
  shoal.register({ service: 'app', server, port: 0, ttl: 30 }).then((h) => console.log('registered ' + h.id + ' ' + h.instance.port));
`;

test('a PM2 worker is <service>-<host>-<pm_id> and says ready only once registered', async () => {
  // increment_var is ignored: PM2 re-counts it from the workers alive at each start.
  const w = worker(SERVE, pm2Env(7, { NODE_APP_INSTANCE: '1', increment_var: 'PORT_INC', PORT_INC: '3' }));
  const id = defaultID('app', os.hostname(), 7);
  const key = `/shoal/v1/instances/app/${id}`;
  let keyAtReady;
  await waitFor(
    async () => {
      if (w.messages.length === 0) return false;
      keyAtReady ??= await etcd.get(key);
      return true;
    },
    { timeoutMs: 15000, what: "the worker's ready message" },
  );
  assert.deepEqual(
    w.messages.map((x) => x.m),
    ['ready'],
  );
  assert.ok(keyAtReady, `${key} was not in etcd when PM2 was told ready:\n${w.output()}`);
  // The IPC message may arrive before the worker's stdout does: wait for the line.
  await waitFor(async () => new RegExp(`registered ${id} \\d+`).test(w.output()), {
    timeoutMs: 15000,
    what: "the worker's 'registered' line",
  });
  w.child.kill('SIGKILL');
});

test('on SIGINT a PM2 worker deregisters and exits before kill_timeout, even with a request hanging', async () => {
  const killTimeout = 3000;
  // The drain gate points at a closed port: the worker drains without it.
  const w = worker(SERVE, pm2Env(8, { kill_timeout: String(killTimeout), SHOAL_DRAIN_GATE: 'http://127.0.0.1:9' }));
  const id = defaultID('app', os.hostname(), 8);
  const port = Number(
    await waitFor(() => /registered \S+ (\d+)/.exec(w.output())?.[1], { timeoutMs: 15000, what: 'the worker to register' }),
  );
  const hanging = fetch(`http://127.0.0.1:${port}/hang`).catch((err) => err);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`)).ok, { what: 'the worker to answer' });
  const sent = Date.now();
  w.child.kill('SIGINT');
  const { code, at } = await w.exited;
  assert.equal(code, 0, w.output());
  assert.ok(at - sent < killTimeout, `exited ${at - sent} ms after SIGINT; PM2 would have sent SIGKILL at ${killTimeout} ms`);
  assert.equal(await etcd.get(`/shoal/v1/instances/app/${id}`), null);
  assert.ok((await hanging) instanceof Error, 'the hanging request was cut when the budget ran out');
});

test("PM2's 'shutdown' message drains and exits like SIGINT", async () => {
  const w = worker(SERVE, pm2Env(9, { kill_timeout: '3000' }));
  const id = defaultID('app', os.hostname(), 9);
  await waitFor(() => w.messages.length > 0, { timeoutMs: 15000, what: 'the worker to be ready' });
  assert.ok(await etcd.get(`/shoal/v1/instances/app/${id}`));
  w.child.send('shutdown');
  const { code } = await w.exited;
  assert.equal(code, 0, w.output());
  assert.equal(await etcd.get(`/shoal/v1/instances/app/${id}`), null);
});

test('outside PM2 nothing is sent and the id stays <service>-<host>-<pid>', async () => {
  const w = worker(SERVE, { pm_id: '', pm_exec_path: '' });
  await waitFor(() => /registered/.test(w.output()), { timeoutMs: 15000, what: 'the script to register' });
  assert.match(w.output(), new RegExp(`registered ${defaultID('app', os.hostname(), w.child.pid)} `));
  assert.deepEqual(w.messages, []);
  w.child.kill('SIGKILL');
});
