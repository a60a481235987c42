'use strict';

// Trace context forwarding: the headers of the request a handler is serving
// (W3C traceparent/tracestate, baggage, x-request-id, B3) are added to every
// outgoing request it makes — http.request/get, https.request/get and
// fetch — unless the caller set them itself. The shoal sidecars make the
// spans; the app only has to pass the context along so that the spans of
// one request join into one trace across services.
//
// The context follows the request through callbacks and promises with
// AsyncLocalStorage (node:async_hooks), so concurrent requests never mix.

const { AsyncLocalStorage } = require('node:async_hooks');
const http = require('node:http');
const https = require('node:https');

/** HEADERS are forwarded, lowercase, in this order. */
const HEADERS = ['traceparent', 'tracestate', 'baggage', 'x-request-id', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

const storage = new AsyncLocalStorage();
let installed = false;

/** contextOf picks the trace headers of an incoming request; null when it has none. */
function contextOf(headers) {
  let ctx = null;
  for (const name of HEADERS) {
    const v = headers[name];
    if (typeof v === 'string' && v !== '') (ctx ||= {})[name] = v;
  }
  return ctx;
}

/** current returns the trace headers of the request being served, or undefined. */
function current() {
  return storage.getStore();
}

function wrapEmit(proto) {
  const emit = proto.emit;
  proto.emit = function shoalTraceEmit(event, req, ...rest) {
    if (event === 'request' && req && req.headers) {
      const ctx = contextOf(req.headers);
      if (ctx) return storage.run(ctx, () => emit.call(this, event, req, ...rest));
    }
    return emit.call(this, event, req, ...rest);
  };
}

function wrapRequest(mod) {
  const orig = mod.request;
  mod.request = function shoalTraceRequest(...args) {
    const ctx = storage.getStore();
    const req = orig.apply(this, args);
    if (ctx) {
      for (const [name, value] of Object.entries(ctx)) {
        // Headers can be set until the request's head is written (on the
        // first write or end(), never inside request()).
        if (!req.headersSent && req.getHeader(name) === undefined) req.setHeader(name, value);
      }
    }
    return req;
  };
  // get() calls end() synchronously, before the wrapper above can add
  // headers: route it through request() so they are set first.
  mod.get = function shoalTraceGet(...args) {
    const req = mod.request(...args);
    req.end();
    return req;
  };
}

function wrapFetch() {
  const orig = globalThis.fetch;
  if (typeof orig !== 'function') return;
  globalThis.fetch = function shoalTraceFetch(input, init) {
    const ctx = storage.getStore();
    if (!ctx) return orig.call(this, input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    for (const [name, value] of Object.entries(ctx)) if (!headers.has(name)) headers.set(name, value);
    return orig.call(this, input, { ...init, headers });
  };
}

/**
 * install patches node:http, node:https and fetch once per process. It is
 * what `node -r @shoal-mesh/node/trace app.js` runs.
 */
function install() {
  if (installed) return;
  installed = true;
  wrapEmit(http.Server.prototype);
  wrapEmit(https.Server.prototype);
  wrapRequest(http);
  wrapRequest(https);
  wrapFetch();
}

/** run calls fn with headers as the current trace context (for non-HTTP work such as queue consumers). */
function run(headers, fn) {
  return storage.run(contextOf(headers) ?? {}, fn);
}

module.exports = { install, current, run, HEADERS };
