'use strict';

// Load reports for the mesh's least_loaded strategy (issue 17). Every
// response carries an ORCA load report in the header Envoy and gRPC read
// (endpoint-load-metrics, the TEXT format):
//
//   endpoint-load-metrics: TEXT application_utilization=0.42, cpu_utilization=0.30, rps_fractional=118.5, named_metrics.eventloop_delay_p99_ms=12.6, named_metrics.requests_in_flight=3
//
// application_utilization is the event loop's utilization
// (performance.eventLoopUtilization: the share of time the loop was busy),
// the number a Node.js process's capacity depends on; cpu_utilization is the
// process's CPU time over the machine's cores; rps_fractional the requests
// per second it started. Callers' sidecars weigh instances by
// rps / utilization (gRFC A58) and strip the header before the response
// leaves the mesh.
//
// The report is computed once per interval from deltas (a timer, unref'd),
// so a request costs a counter, a cached setHeader and a 'close' listener.

const os = require('node:os');
const { performance, monitorEventLoopDelay } = require('node:perf_hooks');

const HEADER = 'endpoint-load-metrics';
const DEFAULT_INTERVAL_MS = 500;
// The delay histogram's sampling resolution: fine enough for a p99 in
// milliseconds, coarse enough to cost nothing.
const DELAY_RESOLUTION_MS = 10;

function fixed(x, digits) {
  return Number.isFinite(x) && x > 0 ? Number(x.toFixed(digits)).toString() : '0';
}

/** formatReport renders one ORCA TEXT report. */
function formatReport({ elu, cpu, rps, delayP99Ms, inFlight }) {
  return (
    `TEXT application_utilization=${fixed(elu, 4)}, cpu_utilization=${fixed(cpu, 4)}, ` +
    `rps_fractional=${fixed(rps, 2)}, named_metrics.eventloop_delay_p99_ms=${fixed(delayP99Ms, 2)}, ` +
    `named_metrics.requests_in_flight=${inFlight}`
  );
}

/**
 * LoadReporter measures the process's load and adds the ORCA header to
 * every response of the servers it watches.
 */
class LoadReporter {
  constructor({ intervalMs = DEFAULT_INTERVAL_MS, cores = os.availableParallelism?.() ?? os.cpus().length } = {}) {
    this.intervalMs = intervalMs;
    this.cores = Math.max(1, cores);
    this.inFlight = 0;
    this.started = 0; // requests started since the last update
    this.servers = [];
    this.delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
    this.delay.enable();
    this.lastELU = performance.eventLoopUtilization();
    this.lastCPU = process.cpuUsage();
    this.lastAt = performance.now();
    this.report = { elu: 0, cpu: 0, rps: 0, delayP99Ms: 0, inFlight: 0 };
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

  /** update recomputes the report from the deltas since the last update. */
  update() {
    const now = performance.now();
    const elu = performance.eventLoopUtilization(this.lastELU);
    this.lastELU = performance.eventLoopUtilization();
    const cpu = process.cpuUsage(this.lastCPU);
    this.lastCPU = process.cpuUsage();
    const wallMs = Math.max(now - this.lastAt, 1);
    this.lastAt = now;
    this.report = {
      elu: elu.utilization,
      cpu: (cpu.user + cpu.system) / 1000 / wallMs / this.cores,
      rps: (this.started * 1000) / wallMs,
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

module.exports = { LoadReporter, formatReport, HEADER };
