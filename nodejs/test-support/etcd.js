'use strict';

// Test helpers: a real etcd (the one embedded in `shoal controlplane`), read
// through the same JSON gateway and the `shoal instances` CLI, and the example
// service as a child process. Kept outside test/ because `node --test test/`
// runs every file under test/ as a test.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const execFileP = promisify(execFile);
const REPO = path.resolve(__dirname, '..', '..');
const EXAMPLE = path.join(REPO, 'examples', 'node-service', 'server.js');

let built = null; // promise of the binary path, built at most once per process

/** shoalBin returns $SHOAL_BIN or builds ./cmd/shoal once into a temp dir. */
function shoalBin() {
  if (process.env.SHOAL_BIN) return Promise.resolve(process.env.SHOAL_BIN);
  if (!built) {
    built = (async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bin-'));
      process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
      const bin = path.join(dir, 'shoal');
      await execFileP('go', ['build', '-o', bin, './cmd/shoal'], { cwd: REPO, timeout: 10 * 60e3 });
      return bin;
    })();
  }
  return built;
}

/**
 * freePort returns a loopback port that is free now, picked at random below
 * the kernel's ephemeral range (read from /proc, else 32768): the kernel
 * never hands those out for outgoing connections or port-0 listeners, so
 * the port stays free until the process it is meant for binds it (a port
 * from listen(0) could be taken in between). Never the same port twice in
 * one process.
 */
const givenPorts = new Set();
function ephemeralStart() {
  try {
    const n = parseInt(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0], 10);
    if (n > 11000 && n <= 65535) return n;
  } catch {}
  return 32768;
}
async function freePort() {
  const lo = 10000;
  const hi = ephemeralStart();
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (givenPorts.has(port)) continue;
    const ok = await new Promise((resolve) => {
      const srv = net.createServer().once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) {
      givenPorts.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${lo}-${hi - 1}`);
}

/**
 * waitFor polls fn until it returns a truthy value (returned) or timeoutMs
 * passes (throws, with the last value or error in the message).
 */
async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** within resolves like promise, or rejects if it takes longer than timeoutMs. */
function within(promise, timeoutMs, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

const b64 = (s) => Buffer.from(s).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64').toString('utf8');

/** prefixEnd is etcd's range_end for "every key starting with prefix". */
function prefixEnd(prefix) {
  const b = Buffer.from(prefix);
  b[b.length - 1]++;
  return b.toString('base64');
}

/** Etcd is a `shoal controlplane` process serving embedded etcd on fixed loopback ports. */
class Etcd {
  /** start launches it; args are more `shoal controlplane` flags. */
  static async start({ args = [] } = {}) {
    const e = new Etcd();
    e.extraArgs = args;
    e.bin = await shoalBin();
    e.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-etcd-'));
    e.port = await freePort();
    e.peerPort = await freePort();
    e.apiPort = await freePort();
    e.xdsPort = await freePort();
    e.endpoint = `http://127.0.0.1:${e.port}`;
    await e.launch();
    return e;
  }

  async launch() {
    const args = [
      'controlplane',
      '--data-dir', this.dataDir,
      '--etcd-listen', `127.0.0.1:${this.port}`,
      '--etcd-peer-listen', `127.0.0.1:${this.peerPort}`,
      '--xds-listen', `127.0.0.1:${this.xdsPort}`,
      '--api-listen', `127.0.0.1:${this.apiPort}`,
      '--admin-listen', '127.0.0.1:0',
      '--gossip-listen', '127.0.0.1:0',
      '--log-level', 'warn',
      ...this.extraArgs,
    ];
    this.output = '';
    const child = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (this.output += d));
    child.stderr.on('data', (d) => (this.output += d));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child = child;
    const died = this.exited.then(({ code, signal }) => {
      throw new Error(`shoal controlplane exited (${code ?? signal}) before etcd was ready:\n${this.output}`);
    });
    died.catch(() => {}); // it rejects later, on a normal stop, too
    await Promise.race([died, waitFor(() => this.healthy(), { timeoutMs: 30000, what: `etcd on ${this.endpoint}` })]);
  }

  async healthy() {
    const res = await fetch(`${this.endpoint}/health`);
    return res.ok && (await res.json()).health === 'true';
  }

  /** stop sends SIGTERM and waits for the process to exit (SIGKILL after 10 s). */
  async stop() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(t);
  }

  /** restart stops etcd and starts it again on the same data dir and ports. */
  async restart({ wipe = false } = {}) {
    await this.stop();
    if (wipe) fs.rmSync(path.join(this.dataDir), { recursive: true, force: true });
    fs.mkdirSync(this.dataDir, { recursive: true });
    await this.launch();
  }

  async close() {
    await this.stop();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  async gw(p, body) {
    const res = await fetch(`${this.endpoint}${p}`, { method: 'POST', body: JSON.stringify(body) });
    const json = await res.json();
    if (!res.ok) throw new Error(`${p}: ${json.message}`);
    return json;
  }

  /** get returns {value (string), lease (string)} of key, or null. */
  async get(key) {
    const res = await this.gw('/v3/kv/range', { key: b64(key) });
    const kv = res.kvs?.[0];
    return kv ? { value: unb64(kv.value), lease: kv.lease ?? '0' } : null;
  }

  /** revision is etcd's current revision. */
  async revision() {
    const res = await this.gw('/v3/kv/range', { key: b64('/'), count_only: true });
    return res.header.revision;
  }

  /** keys lists the keys under prefix. */
  async keys(prefix) {
    const res = await this.gw('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix), keys_only: true });
    return (res.kvs ?? []).map((kv) => unb64(kv.key));
  }

  async leases() {
    const res = await this.gw('/v3/lease/leases', {});
    return (res.leases ?? []).map((l) => l.ID).sort();
  }

  async timeToLive(lease) {
    const res = await this.gw('/v3/lease/timetolive', { ID: lease, keys: true });
    return { ttl: Number(res.TTL ?? -1), grantedTTL: Number(res.grantedTTL ?? 0), keys: (res.keys ?? []).map(unb64) };
  }

  revoke(lease) {
    return this.gw('/v3/lease/revoke', { ID: lease });
  }

  /**
   * instances runs `shoal instances -o json SERVICE` (the control plane's
   * management API, whose view follows etcd through a watch) and returns the
   * parsed list, once that view has caught up with the keys in etcd.
   */
  async instances(service) {
    const prefix = `/shoal/v1/instances/${service}/`;
    let list;
    await waitFor(
      async () => {
        const want = (await this.keys(prefix)).map((k) => k.slice(prefix.length)).sort();
        try {
          const { stdout } = await execFileP(this.bin, ['instances', '--api', `127.0.0.1:${this.apiPort}`, '-o', 'json', service], { timeout: 10000 });
          list = JSON.parse(stdout).instances ?? [];
        } catch (err) {
          if (!/has no registered instances/.test(err.stderr ?? '')) throw err;
          list = [];
        }
        const got = list.map((i) => i.id).sort();
        return JSON.stringify(got) === JSON.stringify(want);
      },
      { timeoutMs: 10000, what: `the management API to list the ${service} instances in etcd` },
    );
    return list;
  }
}

/**
 * startExample spawns examples/node-service and resolves once it has
 * registered (it prints "listening ... registered").
 */
async function startExample(env) {
  const child = spawn(process.execPath, [EXAMPLE], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const died = exited.then((r) => {
    throw new Error(`example exited (${r.code ?? r.signal}):\n${output}`);
  });
  died.catch(() => {}); // it rejects later, on a normal exit, too
  const port = await Promise.race([
    waitFor(() => Number(/listening on (\d+)/.exec(output)?.[1]), { timeoutMs: 15000, what: 'the example to register' }),
    died,
  ]);
  return { child, port, exited, output: () => output };
}

module.exports = { Etcd, startExample, waitFor, within, freePort, shoalBin };
