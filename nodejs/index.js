'use strict';

// @shoal-mesh/node: register a Node.js service in the shoal mesh.
// See README.md; the etcd key and value follow ARCHITECTURE.md,
// "Contract: etcd keys".

const { normalize, defaultID, KEY_PREFIX } = require('./lib/options');
const { Handle } = require('./lib/handle');
const { EtcdError, UnavailableError } = require('./lib/etcd');

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

module.exports = { register, defaultID, KEY_PREFIX, Handle, EtcdError, EtcdUnavailableError: UnavailableError };
// `import shoal from '@shoal-mesh/node'` and `require('@shoal-mesh/node').default` both work.
module.exports.default = module.exports;
