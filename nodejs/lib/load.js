'use strict';

// Load reports for the mesh's least_loaded strategy (issue 17). Every
// response carries an ORCA load report in the header Envoy and gRPC read
// (endpoint-load-metrics, the TEXT format):
//
//   endpoint-load-metrics: TEXT application_utilization=0.42, cpu_utilization=0.30, rps_fractional=118.5, named_metrics.eventloop_delay_p99_ms=12.6, named_metrics.requests_in_flight=3
//
// application_utilization is the utilization of whichever of the two
// resources a Node.js process's capacity depends on is scarcer: the event
// loop (performance.eventLoopUtilization, the share of time the loop was
// busy) or the CPU it may use (cpu_utilization). The second matters under a
// CPU quota: a process limited to half a CPU (a container's cpu limit, a
// cgroup's cpu.max) has half the capacity for the same event-loop
// utilization per request, and its loop looks idle while the kernel
// throttles it. cpu_utilization is the process's CPU time over the CPUs it
// may use: the machine's cores, or fewer under a cgroup quota on its cgroup
// or an ancestor (read once, at start). rps_fractional is the requests per
// second it started. Callers' sidecars weigh instances by
// rps / utilization (gRFC A58) and strip the header before the response
// leaves the mesh.
//
// The report is computed once per interval from deltas (a timer, unref'd),
// so a request costs a counter, a cached setHeader and a 'close' listener.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance, monitorEventLoopDelay } = require('node:perf_hooks');

const HEADER = 'endpoint-load-metrics';
const DEFAULT_INTERVAL_MS = 500;
// Utilization, CPU and rps are averaged over the last window, recomputed
// every interval. A window shorter than the period of a recurring stall
// aliases: an instance whose loop blocks 150 ms every second showed
// alternately 0.15 more and no more utilization in 500 ms reports, and a
// caller re-reading the weight every second at a fixed phase could see only
// the clean half (measured with bench/run.sh --lb).
const DEFAULT_WINDOW_MS = 2000;
// The delay histogram's sampling resolution: fine enough for a p99 in
// milliseconds, coarse enough to cost nothing.
const DELAY_RESOLUTION_MS = 10;

function fixed(x, digits) {
  return Number.isFinite(x) && x > 0 ? Number(x.toFixed(digits)).toString() : '0';
}

/** readQuota returns the CPUs a quota file pair allows, or Infinity. */
function readQuota(dir, v2) {
  try {
    if (v2) {
      // cpu.max: "<quota|max> <period>" in µs.
      const [quota, period] = fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim().split(/\s+/);
      return quota === 'max' ? Infinity : Number(quota) / Number(period);
    }
    const quota = Number(fs.readFileSync(path.join(dir, 'cpu.cfs_quota_us'), 'utf8'));
    const period = Number(fs.readFileSync(path.join(dir, 'cpu.cfs_period_us'), 'utf8'));
    return quota > 0 && period > 0 ? quota / period : Infinity;
  } catch {
    return Infinity; // no such file at this level
  }
}

/**
 * cpuQuota returns the CPUs the process may use under cgroup CPU quotas
 * (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us) on its
 * cgroup and every ancestor, the smallest one; Infinity without a quota.
 * root and selfCgroup are parameters for tests.
 */
function cpuQuota(root = '/sys/fs/cgroup', selfCgroup = '/proc/self/cgroup') {
  let lines;
  try {
    lines = fs.readFileSync(selfCgroup, 'utf8').split('\n');
  } catch {
    return Infinity;
  }
  let limit = Infinity;
  for (const line of lines) {
    const [, controllers, rel] = line.split(':');
    if (rel === undefined) continue;
    const v2 = controllers === '';
    let bases;
    if (v2) bases = [root];
    else if (controllers.split(',').includes('cpu')) bases = [path.join(root, controllers), path.join(root, 'cpu')];
    else continue;
    for (const base of bases) {
      for (let p = rel; ; p = path.dirname(p)) {
        limit = Math.min(limit, readQuota(path.join(base, p), v2));
        if (p === '/' || p === '.' || p === '') break;
      }
    }
  }
  return limit;
}

/** formatReport renders one ORCA TEXT report. */
function formatReport({ app, cpu, rps, delayP99Ms, inFlight }) {
  return (
    `TEXT application_utilization=${fixed(app, 4)}, cpu_utilization=${fixed(cpu, 4)}, ` +
    `rps_fractional=${fixed(rps, 2)}, named_metrics.eventloop_delay_p99_ms=${fixed(delayP99Ms, 2)}, ` +
    `named_metrics.requests_in_flight=${inFlight}`
  );
}

/**
 * LoadReporter measures the process's load and adds the ORCA header to
 * every response of the servers it watches.
 */
class LoadReporter {
  constructor({
    intervalMs = DEFAULT_INTERVAL_MS,
    cores = os.availableParallelism?.() ?? os.cpus().length,
    windowMs = DEFAULT_WINDOW_MS,
    quota = cpuQuota(),
  } = {}) {
    this.intervalMs = intervalMs;
    // The last slots intervals' deltas: { active, idle, cpuUs, started, wallMs }.
    this.slots = Math.max(1, Math.round(windowMs / intervalMs));
    this.window = [];
    // The CPUs this process may use; a quota may be a fraction of one.
    this.cores = Math.min(Math.max(1, cores), quota > 0 ? quota : Infinity);
    this.inFlight = 0;
    this.started = 0; // requests started since the last update
    this.servers = [];
    this.delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
    this.delay.enable();
    this.lastELU = performance.eventLoopUtilization();
    this.lastCPU = process.cpuUsage();
    this.lastAt = performance.now();
    this.report = { app: 0, cpu: 0, rps: 0, delayP99Ms: 0, inFlight: 0 };
    this.header = formatReport(this.report);
    this.timer = setInterval(() => this.update(), intervalMs);
    this.timer.unref();
    const onClose = () => {
      this.inFlight--;
    };
    // One closure per reporter, none per request.
    this.onRequest = (req, res) => {
      this.inFlight++;
      this.started++;
      if (!res.headersSent) res.setHeader(HEADER, this.header);
      res.on('close', onClose); // emitted once; on() needs no wrapper
    };
  }

  /** watch adds the header to the responses of server (an http or http2 server). */
  watch(server) {
    server.prependListener('request', this.onRequest);
    this.servers.push(server);
  }

  /** update recomputes the report over the window, with the deltas since the last update. */
  update() {
    const now = performance.now();
    const elu = performance.eventLoopUtilization(this.lastELU);
    this.lastELU = performance.eventLoopUtilization();
    const cpu = process.cpuUsage(this.lastCPU);
    this.lastCPU = process.cpuUsage();
    this.window.push({
      active: elu.active,
      idle: elu.idle,
      cpuUs: cpu.user + cpu.system,
      started: this.started,
      wallMs: Math.max(now - this.lastAt, 1),
    });
    this.lastAt = now;
    if (this.window.length > this.slots) this.window.shift();
    const sum = { active: 0, idle: 0, cpuUs: 0, started: 0, wallMs: 0 };
    for (const d of this.window) for (const k in sum) sum[k] += d[k];
    const cpuUtil = sum.cpuUs / 1000 / sum.wallMs / this.cores;
    const eluUtil = sum.active + sum.idle > 0 ? sum.active / (sum.active + sum.idle) : 0;
    this.report = {
      app: Math.min(1, Math.max(eluUtil, cpuUtil)),
      cpu: cpuUtil,
      rps: (sum.started * 1000) / sum.wallMs,
      delayP99Ms: this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0,
      inFlight: this.inFlight,
    };
    this.started = 0;
    // A reset also drops the monitor's previous tick, so a block in the
    // first DELAY_RESOLUTION_MS after it counts in utilization only.
    this.delay.reset();
    this.header = formatReport(this.report);
  }

  /** stop removes the listeners and the timer. Idempotent. */
  stop() {
    clearInterval(this.timer);
    this.delay.disable();
    for (const s of this.servers) s.removeListener('request', this.onRequest);
    this.servers = [];
  }
}

module.exports = { LoadReporter, formatReport, cpuQuota, HEADER };
