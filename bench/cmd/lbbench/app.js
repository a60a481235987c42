'use strict';
// The benchmark's Node.js instance (bench/cmd/lbbench): an http server
// doing a fixed amount of CPU work per request, registered in the mesh with
// the real @shoal-mesh/node package, which adds the ORCA load report to
// every response (issue 17).
//
//   SHOAL_NODE_PKG  path of the package (nodejs/ in this repository)
//   INSTANCE_ID     the instance's id, also sent as X-Backend
//   WORK_ITERS      iterations of the work loop per request
//   STALL_MS        when set, the event loop blocks this long every second
//   STALL_CPU       when 1, the block burns CPU (a long JSON.parse); else it
//                   waits (a synchronous fs or child_process call)
//   SHOAL_ETCD      etcd to register in
//
// node app.js --calibrate prints the iterations that take about 1 ms of CPU.
const http = require('node:http');

// work is the per-request CPU cost: an xorshift loop the JIT cannot fold.
function work(iters) {
  let x = 2463534242;
  for (let i = 0; i < iters; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  return x >>> 0;
}

if (process.argv.includes('--calibrate')) {
  work(2e6); // warm the JIT up
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const before = process.cpuUsage();
    work(1e6);
    const d = process.cpuUsage(before);
    best = Math.min(best, d.user + d.system); // µs; the least-disturbed round
  }
  console.log(Math.max(1000, Math.round(1e6 * (1000 / Math.max(best, 1)))));
  process.exit(0);
}

const { register } = require(process.env.SHOAL_NODE_PKG);
const id = process.env.INSTANCE_ID;
const iters = Number(process.env.WORK_ITERS || 100000);
const stallMs = Number(process.env.STALL_MS || 0);
const stallCPU = process.env.STALL_CPU === '1';
let sink = 0;

const server = http.createServer((req, res) => {
  sink ^= work(iters);
  res.setHeader('x-backend', id);
  res.end('ok\n');
});
server.keepAliveTimeout = 60000;

// SIGUSR2 pauses the stall and resumes it (the harness's floor target).
let stalling = true;
process.on('SIGUSR2', () => {
  stalling = !stalling;
});

if (stallMs > 0) {
  // The event loop blocks stallMs every second: no request is answered
  // meanwhile, and the kernel still accepts connections. By default it
  // waits, as in a synchronous fs or child_process call: on this small
  // machine the instances share two cores, and a block that burns one
  // (a synchronous JSON.parse of a big body, a long regex) also slows the
  // other instances, which on their own machines it would not.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  setInterval(() => {
    if (!stalling) return;
    if (!stallCPU) {
      Atomics.wait(cell, 0, 0, stallMs);
      return;
    }
    const until = performance.now() + stallMs;
    while (performance.now() < until) sink ^= work(1000);
  }, 1000);
}

register({ service: 'backend', id, server, port: 0, host: '127.0.0.1', address: '127.0.0.1', ttl: 30 })
  .then(() => console.log(`listening 127.0.0.1:${server.address().port}`))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
