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
  // The test updates the report itself: a periodic update firing late,
  // right after the block, would start a new (idle) window before ours.
  const r = new LoadReporter({ intervalMs: 3_600_000 });
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
