'use strict';
// The demo's Node.js service: answers with its instance id (body and
// x-instance header) and serves /healthz. Its sidecar registers it and
// terminates mTLS in front of it.
const http = require('node:http');
const id = process.env.INSTANCE_ID;
const delay = Number(process.env.DELAY_MS || 0);
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  const answer = () => {
    // x-caller: the caller's identity as the sidecar passed it on (XFCC).
    res.writeHead(200, { 'content-type': 'application/json', 'x-instance': id,
      'x-caller': req.headers['x-forwarded-client-cert'] || '' });
    res.end(JSON.stringify({ instance: id }) + '\n');
  };
  if (delay > 0) setTimeout(answer, delay);
  else answer();
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
