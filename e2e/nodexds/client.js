// A proxyless @grpc/grpc-js-xds client for e2e/xds_node_test.go.
//
// It dials the target given as argv[2] (xds:///<service>) with the bootstrap
// in GRPC_XDS_BOOTSTRAP_CONFIG, then reads commands from stdin, one a line:
//
//   call N [USER]   make N sequential UnaryCalls (with header x-user: USER)
//
// and answers each with one JSON line: {"ids": [...], "errors": [...]}.
'use strict';

const path = require('path');
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
require('@grpc/grpc-js-xds').register();

const def = protoLoader.loadSync(path.join(__dirname, 'echo.proto'));
const { TestService } = grpc.loadPackageDefinition(def).grpc.testing;
const client = new TestService(process.argv[2], grpc.credentials.createInsecure());

function unary(user) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    if (user) md.set('x-user', user);
    const deadline = new Date(Date.now() + 10000);
    client.UnaryCall({}, md, { deadline, waitForReady: true }, (err, resp) => {
      resolve(err ? { error: `${err.code}: ${err.details}` } : { id: resp.hostname });
    });
  });
}

async function run(n, user) {
  const out = { ids: [], errors: [] };
  for (let i = 0; i < n; i++) {
    const r = await unary(user);
    if (r.error) out.errors.push(r.error);
    else out.ids.push(r.id);
  }
  return out;
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (line) => {
  const [cmd, n, user] = line.trim().split(/\s+/);
  if (cmd !== 'call') return;
  queue = queue.then(async () => {
    process.stdout.write(JSON.stringify(await run(Number(n), user)) + '\n');
  });
});
rl.on('close', () => queue.then(() => { client.close(); process.exit(0); }));
