'use strict';

// ORCA load reports (endpoint-load-metrics) on every response, for the
// mesh's least_loaded strategy: a real http.Server, real requests.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { LoadReporter, HEADER } = require('../lib/load');
const { Etcd } = require('../test-support/etcd');
const { register } = require('..');

/** parse reads an ORCA TEXT report the way the sidecar does. */
function parse(v) {
  assert.ok(v?.startsWith('TEXT '), `report ${JSON.stringify(v)} is not in the TEXT format`);
  const out = {};
  for (const kv of v.slice(5).split(',')) {
    const [k, val] = kv.trim().split('=');
    assert.match(val, /^\d+(\.\d+)?$/, `${k}=${val} is not a non-negative number`);
    out[k] = Number(val);
  }
  return out;
}

async function listen(server) {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${server.address().port}/`;
}

async function get(url) {
  const res = await fetch(url);
  await res.text();
  return res.headers.get(HEADER);
}

/** burn keeps the event loop busy for ms. */
function burn(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test('every response carries a report with the standard fields', async (t) => {
  const server = http.createServer((req, res) => res.end('ok'));
  const r = new LoadReporter();
  r.watch(server);
  t.after(() => {
    r.stop();
    server.close();
  });
  const url = await listen(server);
  for (let i = 0; i < 5; i++) await get(url);
  r.update();
  const m = parse(await get(url));
  assert.deepEqual(Object.keys(m), [
    'application_utilization',
    'cpu_utilization',
    'rps_fractional',
    'named_metrics.eventloop_delay_p99_ms',
    'named_metrics.requests_in_flight',
  ]);
  assert.ok(m.rps_fractional > 0, `rps_fractional ${m.rps_fractional} after 5 requests`);
  assert.ok(m.application_utilization <= 1 && m.cpu_utilization >= 0);
});

test('a blocked event loop shows as utilization and delay', async (t) => {
  const server = http.createServer((req, res) => res.end('ok'));
  // The test updates the report itself, one interval per window: a
  // periodic update firing late, right after the block, would start a new
  // (idle) interval, and a longer window would hold the test's idle start.
  const r = new LoadReporter({ intervalMs: 3_600_000, windowMs: 3_600_000 });
  r.watch(server);
  t.after(() => {
    r.stop();
    server.close();
  });
  const url = await listen(server);
  await get(url);
  r.update();
  // After a reset the delay monitor skips its first sample: let it tick.
  await new Promise((res) => setTimeout(res, 30));
  burn(300); // the loop is busy: nothing else can run
  await new Promise((res) => setTimeout(res, 30)); // the delay monitor's timer fires late
  r.update();
  const m = parse(await get(url));
  assert.ok(m.application_utilization > 0.5, `application_utilization ${m.application_utilization} after a 300 ms block`);
  assert.ok(m['named_metrics.eventloop_delay_p99_ms'] > 100, `eventloop_delay_p99_ms ${m['named_metrics.eventloop_delay_p99_ms']} after a 300 ms block`);
});

test('requests in flight are counted until their response closes', async (t) => {
  let release;
  const held = new Promise((r) => (release = r));
  const server = http.createServer(async (req, res) => {
    if (req.url === '/hold') await held;
    res.end('ok');
  });
  const r = new LoadReporter();
  r.watch(server);
  t.after(() => {
    r.stop();
    server.close();
  });
  const url = await listen(server);
  const pending = [get(url + 'hold'), get(url + 'hold')];
  while (r.inFlight < 2) await new Promise((res) => setImmediate(res));
  r.update();
  assert.equal(parse(await get(url))['named_metrics.requests_in_flight'], 2);
  release();
  await Promise.all(pending);
  await new Promise((res) => setImmediate(res));
  assert.equal(r.inFlight, 0);
});

test('stop removes the header', async (t) => {
  const server = http.createServer((req, res) => res.end('ok'));
  const r = new LoadReporter();
  r.watch(server);
  t.after(() => server.close());
  const url = await listen(server);
  assert.ok(await get(url));
  r.stop();
  assert.equal(await get(url), null);
});

let etcd;
before(async () => {
  etcd = await Etcd.start();
});
after(async () => {
  await etcd?.close();
});

test('register with a server reports load unless loadReports is false', async (t) => {
  for (const loadReports of [undefined, false]) {
    const server = http.createServer((req, res) => res.end('ok'));
    const h = await register({ logger: false, handleSignals: false, service: 'orders', etcd: etcd.endpoint, server, loadReports });
    const url = `http://127.0.0.1:${h.instance.port}/`;
    const v = await get(url);
    await h.deregister();
    server.close();
    if (loadReports === false) assert.equal(v, null, 'loadReports: false still reports');
    else parse(v);
  }
  await assert.rejects(register({ service: 'orders', etcd: etcd.endpoint, server: http.createServer(), loadReports: 'yes' }), { name: 'TypeError', field: 'loadReports' });
});

test('a cgroup CPU quota on the process or an ancestor is found', async (t) => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const { cpuQuota } = require('../lib/load');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cgroup-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const write = (rel, body) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), body);
  };
  const self = path.join(root, 'self-cgroup');

  // cgroup v2: the quota is on the parent (a pod), the process's own is "max".
  write('pod/app/cpu.max', 'max 100000\n');
  write('pod/cpu.max', '150000 100000\n');
  write('self-cgroup', '0::/pod/app\n');
  assert.equal(cpuQuota(root, self), 1.5);

  // cgroup v1: cpu.cfs_quota_us over cpu.cfs_period_us; -1 means none.
  write('cpu,cpuacct/half/cpu.cfs_quota_us', '50000\n');
  write('cpu,cpuacct/half/cpu.cfs_period_us', '100000\n');
  write('cpu,cpuacct/cpu.cfs_quota_us', '-1\n');
  write('cpu,cpuacct/cpu.cfs_period_us', '100000\n');
  write('self-cgroup', '4:memory:/half\n3:cpu,cpuacct:/half\n0::/\n');
  assert.equal(cpuQuota(root, self), 0.5);

  // No quota anywhere, or no cgroup file at all.
  write('self-cgroup', '0::/\n');
  assert.equal(cpuQuota(root, self), Infinity);
  assert.equal(cpuQuota(root, path.join(root, 'missing')), Infinity);
});

test('under a CPU quota, utilization counts against the CPUs allowed', async (t) => {
  const server = http.createServer((req, res) => {
    burn(40); // CPU work the loop does per request
    res.end('ok');
  });
  // A tenth of a CPU: 40 ms of CPU per request is a large share of it.
  // One interval per window, updated by hand.
  const r = new LoadReporter({ quota: 0.1, intervalMs: 60_000, windowMs: 60_000 });
  r.watch(server);
  t.after(() => {
    r.stop();
    server.close();
  });
  const url = await listen(server);
  r.update();
  for (let i = 0; i < 5; i++) await get(url);
  r.update();
  const m = parse(await get(url));
  assert.ok(m.cpu_utilization > 0.5, `cpu_utilization ${m.cpu_utilization} with 200 ms of CPU against a 0.1 CPU quota`);
  assert.ok(m.application_utilization >= Math.min(1, m.cpu_utilization) - 1e-4,
    `application_utilization ${m.application_utilization} below cpu_utilization ${m.cpu_utilization}`);
});

test('a recurring stall shows in every report of the window', async (t) => {
  const server = http.createServer((req, res) => res.end('ok'));
  // Updates by hand (the timer's interval is a minute), four per window:
  // a 200 ms block stays in the next three reports, not just in its own.
  const r = new LoadReporter({ intervalMs: 60_000, windowMs: 240_000 });
  r.watch(server);
  t.after(() => {
    r.stop();
    server.close();
  });
  r.update();
  const start = performance.now();
  burn(200);
  r.update(); // the interval with the block
  for (let i = 0; i < 3; i++) {
    await new Promise((res) => setTimeout(res, 20)); // an idle interval
    r.update();
    const u = parse(r.header).application_utilization;
    // The window reaches back past the block: at least 200 ms busy of the
    // time since it began, however slow the timers were.
    const floor = 200 / (performance.now() - start);
    assert.ok(u >= 0.9 * floor, `application_utilization ${u} after ${i + 1} idle intervals, want ≥ ${floor.toFixed(3)}`);
  }
});
