'use strict';

// Graceful drain: signal handling and closing an http.Server.
//
// Signals are process-wide, so one listener per signal serves every handle
// that asked for signal handling; it drains them all in parallel and then
// decides whether to exit (see installSignalHandlers).

const os = require('node:os');

const SIGNALS = ['SIGTERM', 'SIGINT'];
const IDLE_SWEEP_MS = 100;

const handles = new Set(); // handles with handleSignals: true that have not drained yet
let draining = null; // promise of the drain started by the first signal

/** otherListeners reports whether anyone but shoal listens for sig. */
function otherListeners(sig) {
  return process.listeners(sig).some((l) => l !== onSignal);
}

function onSignal(sig) {
  const exitAfter = !otherListeners(sig);
  if (draining) {
    // A second signal while draining: the operator insists. Exit at once the
    // way Node's default handler would have, unless the app handles signals.
    if (exitAfter) process.exit(128 + (os.constants.signals[sig] ?? 15));
    return;
  }
  draining = Promise.all([...handles].map((h) => h.drain()));
  draining.then(() => {
    if (exitAfter) process.exit(0);
  });
}

/**
 * onMessage takes PM2's 'shutdown' message (sent instead of a signal with
 * shutdown_with_message, and by a cluster-mode reload) as a SIGINT.
 */
function onMessage(msg) {
  if (msg === 'shutdown') onSignal('SIGINT');
}
let listeningForMessages = false;

/**
 * installSignalHandlers makes SIGTERM and SIGINT (and, with shutdownMessage,
 * PM2's 'shutdown' message) drain handle. It returns a function that removes
 * handle again; the process listeners go away with the last handle, which
 * restores Node's default signal behaviour.
 */
function installSignalHandlers(handle, { shutdownMessage = false } = {}) {
  if (handles.size === 0) {
    for (const sig of SIGNALS) process.on(sig, onSignal);
  }
  if (shutdownMessage && !listeningForMessages && typeof process.send === 'function') {
    listeningForMessages = true;
    process.on('message', onMessage);
    // A 'message' listener refs the IPC channel; the package must never
    // keep a process alive by itself.
    process.channel?.unref();
  }
  handles.add(handle);
  return () => {
    if (!handles.delete(handle) || handles.size > 0 || draining) return;
    for (const sig of SIGNALS) process.removeListener(sig, onSignal);
    if (listeningForMessages) {
      listeningForMessages = false;
      process.removeListener('message', onMessage);
    }
  };
}

/**
 * trackResponses follows the responses server has in flight so a drain can
 * ask their clients to close the connection (Connection: close) instead of
 * keeping it alive for requests the server will no longer take.
 */
function trackResponses(server) {
  const open = new Set(); // responses whose headers may not be sent yet
  let closing = false;
  const onRequest = (req, res) => {
    if (closing) {
      res.shouldKeepAlive = false;
      return;
    }
    open.add(res);
    res.once('close', () => open.delete(res));
  };
  server.prependListener('request', onRequest);
  return {
    closeAfterResponse() {
      closing = true;
      for (const res of open) if (!res.headersSent) res.shouldKeepAlive = false;
      open.clear();
    },
    stop() {
      server.removeListener('request', onRequest);
    },
  };
}

/**
 * drainServer stops server from accepting connections, lets in-flight
 * requests finish (their responses say Connection: close), closes keep-alive
 * connections as soon as they are idle, and after timeoutMs closes whatever
 * is left. It resolves when the server has closed; it never rejects.
 */
function drainServer(server, tracker, timeoutMs) {
  return new Promise((resolve) => {
    tracker.closeAfterResponse();
    const sweepIdle = () => server.closeIdleConnections?.();
    const sweeper = setInterval(sweepIdle, IDLE_SWEEP_MS).unref();
    const deadline = setTimeout(() => {
      server.closeAllConnections?.();
      finish();
    }, timeoutMs).unref();
    let done = false;
    function finish() {
      if (done) return;
      done = true;
      clearInterval(sweeper);
      clearTimeout(deadline);
      tracker.stop();
      resolve();
    }
    server.close(() => finish()); // also called (with an error) when not listening
    sweepIdle();
  });
}

module.exports = { installSignalHandlers, drainServer, trackResponses };
