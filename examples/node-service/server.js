'use strict';

// A tiny service registered in the shoal mesh. It answers every request with
// its identity and serves /healthz (200 while serving, 503 while draining).
//
//   SERVICE=web PORT=3000 INSTANCE_ID=web-1 SHOAL_ETCD=127.0.0.1:2379 node server.js
//
// PORT=0 picks a free port. SHOAL_TTL sets the lease TTL in seconds (default
// 10), SHOAL_ADDRESS the address registered (default 127.0.0.1), HOST the
// address listened on (default 127.0.0.1). SHOAL_REGISTER=0 leaves registration
// to a sidecar; DELAY_MS delays every answer (a slow instance); BUSY_MS burns
// that much CPU on the event loop per request (a busy instance: everything
// behind it waits); BLOCK_AFTER=N blocks the event loop for good after N
// answered requests (a stuck instance: it still accepts connections and
// answers nothing, not even /healthz). Every response carries the
// instance's load report (endpoint-load-metrics) for least_loaded;
// LOAD_REPORTS=0 turns it off.
//
// SIGTERM or SIGINT deregisters the instance (its etcd key is gone at once),
// lets in-flight requests finish and exits with code 0.

const http = require('node:http');
const { register, reportLoad } = require('../../nodejs');

const service = process.env.SERVICE || 'web';
const port = Number(process.env.PORT || 3000);
const ttl = process.env.SHOAL_TTL ? Number(process.env.SHOAL_TTL) : undefined;
// SHOAL_REGISTER=0: the app does not register itself (a sidecar does it).
const selfRegister = process.env.SHOAL_REGISTER !== '0';
// DELAY_MS makes every answer slow (to watch least-connections at work).
const delayMs = Number(process.env.DELAY_MS || 0);
const busyMs = Number(process.env.BUSY_MS || 0);
const loadReports = process.env.LOAD_REPORTS !== '0';
// BLOCK_AFTER=N: after N answers (/healthz not counted), while(true){}.
const blockAfter = Number(process.env.BLOCK_AFTER || 0);
let answered = 0;
let draining = false;

let shoal; // the registration handle, set once registered
let health = (req, res) => res.writeHead(503).end(); // not registered yet

async function main() {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') return health(req, res);
    for (const end = performance.now() + busyMs; performance.now() < end; ); // BUSY_MS
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-instance': shoal?.id ?? process.env.INSTANCE_ID ?? '' });
      res.end(JSON.stringify({ instance: shoal?.id ?? process.env.INSTANCE_ID, service }));
      if (blockAfter > 0 && ++answered === blockAfter) {
        console.log(`blocking the event loop after ${answered} requests`);
        setImmediate(() => {
          for (;;) {} // eslint-disable-line no-empty
        });
      }
    };
    const upstream = process.env.UPSTREAM_URL; // optional: call another service first
    if (upstream) {
      // Through the local sidecar; run with `node -r @shoal-mesh/node/trace` to keep the trace.
      fetch(upstream).then((r) => r.text()).then(answer, () => { res.writeHead(502).end(); });
      return;
    }
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, process.env.HOST || '127.0.0.1', resolve));

  if (!selfRegister) {
    health = (req, res) => res.writeHead(draining ? 503 : 200).end(draining ? 'draining' : 'ok');
    if (loadReports) reportLoad(server);
    const stop = () => {
      draining = true;
      server.close(() => process.exit(0));
      server.closeIdleConnections();
      setTimeout(() => process.exit(0), 10000).unref();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    console.log(`${service} instance ${process.env.INSTANCE_ID} listening on ${server.address().port} (registered by its sidecar)`);
    return;
  }

  // etcd endpoints come from SHOAL_ETCD, the address from SHOAL_ADDRESS.
  shoal = await register({ service, port: server.address().port, id: process.env.INSTANCE_ID || undefined, ttl, server, loadReports });
  health = shoal.healthHandler();
  shoal.on('lost', ({ reason }) => console.error(`registration lost (${reason}), registering again`));
  console.log(`${service} instance ${shoal.id} listening on ${server.address().port}, registered at ${shoal.key}`);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
