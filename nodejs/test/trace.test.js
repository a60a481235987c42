'use strict';

// The trace preload, in a real child process started with
// `node -r ./trace.js`: the trace headers of the request being served reach
// the outgoing http.get, http.request and fetch calls it makes, concurrent
// requests never mix, and a header the app sets itself wins.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');

let echo; // records the headers of every request it gets
let app;
let appPort;
const seen = [];

const APP = `
const http = require('node:http');
const upstream = process.env.UPSTREAM;
http.createServer(async (req, res) => {
  const id = req.url.slice(1);
  // Cross an await and a timer, so the context must follow async work.
  await new Promise((r) => setTimeout(r, 20));
  await new Promise((resolve) => http.get(upstream + '/get/' + id, (r) => { r.resume(); r.on('end', resolve); }));
  await new Promise((resolve) => {
    const q = http.request(upstream + '/request/' + id, { method: 'POST', headers: { 'x-request-id': 'set-by-app' } }, (r) => { r.resume(); r.on('end', resolve); });
    q.end('body');
  });
  await (await fetch(upstream + '/fetch/' + id)).text();
  res.end('ok');
}).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n'); });
`;

before(async () => {
  echo = http.createServer((req, res) => {
    seen.push({ url: req.url, traceparent: req.headers.traceparent, tracestate: req.headers.tracestate, requestId: req.headers['x-request-id'] });
    req.resume();
    req.on('end', () => res.end());
  });
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));
  app = spawn(process.execPath, ['-r', path.join(__dirname, '..', 'trace.js'), '-e', APP], {
    env: { ...process.env, UPSTREAM: `http://127.0.0.1:${echo.address().port}` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  appPort = await new Promise((resolve, reject) => {
    app.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    app.once('exit', (code) => reject(new Error(`app exited with ${code}`)));
  });
});

after(async () => {
  app?.kill('SIGKILL');
  await new Promise((r) => echo?.close(r));
});

function call(id, headers) {
  return fetch(`http://127.0.0.1:${appPort}/${id}`, { headers }).then((r) => r.text());
}

test('forwards each request\'s trace headers to its own outgoing calls, concurrently', async () => {
  const ids = ['a', 'b', 'c', 'd'];
  const tp = (id) => `00-${id.repeat(32)}-${'1'.repeat(16)}-01`;
  await Promise.all(ids.map((id) => call(id, { traceparent: tp(id), tracestate: `shoal=${id}`, 'x-request-id': `req-${id}` })));
  for (const id of ids) {
    for (const kind of ['get', 'request', 'fetch']) {
      const got = seen.find((s) => s.url === `/${kind}/${id}`);
      assert.ok(got, `no ${kind} call for ${id}`);
      assert.equal(got.traceparent, tp(id), `${kind} ${id} traceparent`);
      assert.equal(got.tracestate, `shoal=${id}`, `${kind} ${id} tracestate`);
      // The app's own x-request-id wins over the forwarded one.
      assert.equal(got.requestId, kind === 'request' ? 'set-by-app' : `req-${id}`, `${kind} ${id} x-request-id`);
    }
  }
});

test('adds nothing to calls made while serving a request without trace headers', async () => {
  await call('plain', {});
  for (const kind of ['get', 'request', 'fetch']) {
    const got = seen.find((s) => s.url === `/${kind}/plain`);
    assert.ok(got, `no ${kind} call`);
    assert.equal(got.traceparent, undefined);
  }
});
