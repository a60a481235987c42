'use strict';

// Per-request cost of the ORCA load reports (lib/load.js): the request
// hook (two counters, a cached setHeader, a 'close' listener) on real
// http.ServerResponse objects, against the same loop without the hook.
// Run: node bench/load-overhead.js [requests]

const http = require('node:http');
const net = require('node:net');
const { LoadReporter } = require('../lib/load');

const N = Number(process.argv[2] ?? 300000);
const req = new http.IncomingMessage(new net.Socket());

function run(hook) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const res = new http.ServerResponse(req);
    hook(req, res);
    res.emit('close');
  }
  return Number(process.hrtime.bigint() - start) / N;
}

const r = new LoadReporter();
const none = () => {};
const rounds = [];
for (let round = 0; round < 7; round++) {
  const base = run(none);
  const withHook = run(r.onRequest);
  rounds.push(withHook - base);
}
r.stop();
rounds.sort((a, b) => a - b);
console.log(`load report overhead: ${rounds[3].toFixed(0)} ns/request (median of 7 rounds of ${N}; min ${rounds[0].toFixed(0)}, max ${rounds[6].toFixed(0)})`);
