'use strict';

// PM2 support: what a worker started by PM2 (https://pm2.keymetrics.io/)
// learns from its environment, and the two messages it exchanges with PM2.
//
// PM2 copies every scalar field of the app's pm2_env into the worker's
// environment (lib/God/ForkMode.js, and cluster.fork likewise), so a worker
// sees `pm_id`, `pm_exec_path`, `NODE_APP_INSTANCE` (or the app's
// `instance_var`), `kill_timeout` and `wait_ready` as plain variables.

const PM2_DEFAULT_KILL_TIMEOUT_MS = 1600; // PM2's constants.js KILL_TIMEOUT
const MAX_MARGIN_MS = 500;

/**
 * detect returns what PM2 told this process, or null when PM2 did not start
 * it. The instance number is pm_id: unique among every app of one PM2
 * daemon and kept across `pm2 restart` and `pm2 reload` (a reloaded worker
 * takes over its predecessor's pm_id), so `<service>-<host>-<pm_id>` names
 * the same mesh instance across reloads. NODE_APP_INSTANCE only numbers
 * the workers of one app, and `increment_var` is re-counted from the
 * workers alive at each start, so neither names a worker for good.
 */
function detect(env = process.env) {
  if (typeof env.pm_id !== 'string' || !/^\d+$/.test(env.pm_id) || !env.pm_exec_path) return null;
  const killTimeout = Number(env.kill_timeout);
  return {
    pmID: env.pm_id,
    appInstance: env[env.instance_var || 'NODE_APP_INSTANCE'],
    name: env.name,
    killTimeout: Number.isFinite(killTimeout) && killTimeout > 0 ? killTimeout : PM2_DEFAULT_KILL_TIMEOUT_MS,
    waitReady: env.wait_ready === 'true',
  };
}

/**
 * shutdownBudget is how long a drain may take before PM2 sends SIGKILL:
 * kill_timeout less a margin (a fifth of it, at most 500 ms) for the exit
 * itself and a busy machine.
 */
function shutdownBudget(killTimeout) {
  return Math.max(0, killTimeout - Math.min(MAX_MARGIN_MS, Math.floor(killTimeout / 5)));
}

/**
 * sendReady answers PM2's wait_ready: PM2 waits for the raw message 'ready'
 * (lib/God.js) before it counts the worker as started, and during
 * `pm2 reload` before it moves on to the next worker. No-op without an IPC
 * channel.
 */
function sendReady(proc = process) {
  if (typeof proc.send !== 'function' || !proc.connected) return false;
  proc.send('ready');
  return true;
}

module.exports = { detect, shutdownBudget, sendReady, PM2_DEFAULT_KILL_TIMEOUT_MS };
