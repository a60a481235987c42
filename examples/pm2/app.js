'use strict';

// One PM2 worker = one mesh instance. PM2 starts this file N times in fork
// mode (ecosystem.config.js); each worker listens on a free port of its own,
// registers it as instance `<service>-<host>-<pm_id>` and tells PM2 it is
// ready only once registered. A shoal sidecar in front spreads requests over
// the workers by least request, instead of PM2's cluster mode handing out
// whole connections round robin.
//
// GET or POST any path: 200 {"instance","pid"} (a POST body is read first and
// its length echoed). ?delay=MS answers after MS milliseconds.
//
// Environment (set in ecosystem.config.js): SERVICE (default "app"),
// SHOAL_ETCD (etcd endpoints), SHOAL_DRAIN_GATE (the sidecar's admin URL: on
// SIGINT the worker deregisters and waits there until every proxy stopped
// sending to it, then drains and exits before PM2's kill_timeout).

const http = require('node:http');
// In your app: require('@shoal-mesh/node').
const { register } = require('../../nodejs');

const service = process.env.SERVICE || 'app';
let id = '';

const server = http.createServer((req, res) => {
  let bytes = 0;
  req.on('data', (c) => (bytes += c.length));
  req.on('end', () => {
    const delay = Number(new URL(req.url, 'http://x').searchParams.get('delay') || 0);
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-instance': id });
      res.end(JSON.stringify({ instance: id, pid: process.pid, received: bytes }));
    };
    if (delay > 0) setTimeout(answer, Math.min(delay, 60000));
    else answer();
  });
});

// port 0: the package listens on a free port and registers that one.
register({ service, server, port: 0, logger: console })
  .then((shoal) => {
    id = shoal.id;
    console.log(`${service} worker ${id} (pid ${process.pid}) on port ${shoal.instance.port}, registered at ${shoal.key}`);
  })
  .catch((err) => {
    console.error(`${service}: ${err.message}`);
    process.exit(1);
  });
