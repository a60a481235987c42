'use strict';

// @shoal-mesh/node: register a Node.js service in the shoal mesh.
// See README.md; the etcd key and value follow ARCHITECTURE.md,
// "Contract: etcd keys".

const { normalize, defaultID, KEY_PREFIX } = require('./lib/options');
const { Handle } = require('./lib/handle');
const { EtcdError, UnavailableError } = require('./lib/etcd');
const { LoadReporter } = require('./lib/load');
const { ControlPlaneError } = require('./lib/controlplane');

/**
 * register validates opts, writes this process's instance key to etcd under a
 * lease and keeps it alive. It resolves to a Handle once the key is written;
 * it rejects with a TypeError or RangeError naming the field for bad options
 * (nothing is written), or with the last etcd error if etcd refuses or stays
 * unreachable for opts.startTimeout.
 */
async function register(opts) {
  const handle = new Handle(normalize(opts));
  return handle.start();
}

/**
 * reportLoad adds the ORCA load report (endpoint-load-metrics) to every
 * response of server without registering: for an app whose sidecar
 * registers it. register() with a server does it already. Call stop() on
 * the result to remove it.
 */
function reportLoad(server) {
  if (server === null || typeof server !== 'object' || typeof server.prependListener !== 'function') {
    const err = new TypeError('shoal: invalid option server: must be an http.Server');
    err.field = 'server';
    throw err;
  }
  const r = new LoadReporter();
  r.watch(server);
  return { stop: () => r.stop() };
}

module.exports = { register, reportLoad, defaultID, KEY_PREFIX, Handle, EtcdError, EtcdUnavailableError: UnavailableError, ControlPlaneError };
// `import shoal from '@shoal-mesh/node'` and `require('@shoal-mesh/node').default` both work.
module.exports.default = module.exports;
