'use strict';

// PM2 workers as shoal mesh instances: `pm2 start ecosystem.config.js`.
// See README.md beside this file. The values below are read when the PM2
// command line loads this file, so SHOAL_ETCD=... pm2 start ... overrides them.

module.exports = {
  apps: [
    {
      name: 'app',
      script: './app.js',
      cwd: __dirname,
      // fork mode: every worker is a plain process with a port of its own,
      // registered as its own instance. (cluster mode would share one port
      // and hand out connections round robin: that is what the sidecar
      // replaces with least request.)
      exec_mode: 'fork',
      instances: process.env.INSTANCES || 'max',
      // PM2 counts a worker as started when it sends 'ready', which
      // @shoal-mesh/node does once the instance is registered. A reload
      // moves to the next worker only then.
      wait_ready: true,
      // How long PM2 waits for 'ready' (register() retries an unreachable
      // etcd for 10 s by default).
      listen_timeout: 15000,
      // SIGINT, then SIGKILL after kill_timeout ms. The package drains
      // within it (deregister, drain gate, in-flight requests), keeping a
      // fifth (at most 500 ms) for the exit itself.
      kill_timeout: 5000,
      env: {
        SERVICE: process.env.SERVICE || 'app',
        SHOAL_ETCD: process.env.SHOAL_ETCD || 'http://127.0.0.1:2379',
        // The local sidecar's admin port: the drain waits there until every
        // proxy has stopped sending to the worker.
        SHOAL_DRAIN_GATE: process.env.SHOAL_DRAIN_GATE || 'http://127.0.0.1:15000',
      },
    },
  ],
};
