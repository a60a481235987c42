// Type declarations for @shoal-mesh/node (hand-written; the package has no build step).

import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export type Protocol = 'http' | 'http2' | 'grpc' | 'tcp';

/** A console-like logger. Pass `false` to silence the package. */
export interface Logger {
  debug?(...args: unknown[]): void;
  info?(...args: unknown[]): void;
  warn?(...args: unknown[]): void;
  error?(...args: unknown[]): void;
}

export interface RegisterOptions {
  /** Service name: a lowercase DNS label, at most 63 characters. */
  service: string;
  /**
   * Port the instance serves on, 1-65535; or 0 (the default with `server`): the package
   * listens `server` on a free port of `host` (unless it listens already) and registers that port.
   */
  port?: number;
  /** Address to listen on for port 0 (default: `address` when it is an IP, else all interfaces). */
  host?: string;
  /** etcd endpoints: "host:port", "http(s)://host:port", comma-separated or an array. Default $SHOAL_ETCD or http://127.0.0.1:2379. */
  etcd?: string | string[];
  /**
   * Register through the control plane instead of etcd (workloads need no access to etcd): the
   * control plane's management API URL(s), e.g. "https://shoal-controlplane:18001", comma-separated
   * or an array (tried in order). Default $SHOAL_CONTROL_PLANE; not with `etcd`. The control plane
   * writes the same etcd key under a lease of its own, only for the caller's own service. https
   * needs `certDir` or `tokenFile`; http (a control plane on loopback without authentication) takes
   * neither.
   */
  controlPlane?: string | string[];
  /**
   * With `controlPlane`: a directory with cert.pem, key.pem and ca.pem of the service's identity, as
   * `shoal identity fetch --join-token-file F --out DIR` keeps them fresh (re-read when they change).
   * Default $SHOAL_CERT_DIR.
   */
  certDir?: string;
  /**
   * With `controlPlane`: a file holding the service's join token (`shoal tokens create --service
   * NAME`; checked, not spent) or an admin API token, sent as a bearer token (re-read on every
   * request). Needs `caFile`. Default $SHOAL_TOKEN_FILE.
   */
  tokenFile?: string;
  /** With `controlPlane` and `tokenFile`: the CA bundle (PEM) that verifies the control plane. Default $SHOAL_CA_FILE, else certDir's ca.pem. */
  caFile?: string;
  /** Lease TTL in seconds (default 10). etcd may grant more than asked; see Handle.ttl. */
  ttl?: number;
  /** Free-form string labels, e.g. { version: 'v1' }. */
  metadata?: Record<string, string>;
  /** Zone (default "local"). */
  zone?: string;
  /** Load-balancing weight, 1-10000 (default 1). */
  weight?: number;
  /** Instance id (default `<service>-<hostname>-<pid>`, or `<service>-<hostname>-<pm_id>` under PM2; sanitized). */
  id?: string;
  /** Address others reach this instance on (default $SHOAL_ADDRESS or 127.0.0.1). */
  address?: string;
  /** Default "http". */
  protocol?: Protocol;
  /** Default: silent debug/info, warn/error to stderr. `false` silences everything. */
  logger?: Logger | false | null;
  /** Install SIGTERM/SIGINT handlers that drain and exit (default true). */
  handleSignals?: boolean;
  /** The server to drain on shutdown: stop accepting, finish in-flight requests, close keep-alive connections. */
  server?: Server;
  /**
   * With `server`: add an ORCA load report to every response, the header
   * `endpoint-load-metrics: TEXT application_utilization=…, cpu_utilization=…, rps_fractional=…,
   * named_metrics.eventloop_delay_p99_ms=…, named_metrics.requests_in_flight=…` (event-loop
   * utilization, CPU, requests per second, event-loop delay p99), which the mesh's
   * `least_loaded` strategy weighs instances by. Sidecars strip it before responses leave the
   * mesh. Default true.
   */
  loadReports?: boolean;
  /** Milliseconds to wait for in-flight requests before closing every connection (default 10000). */
  drainTimeout?: number;
  /** Milliseconds to keep serving after deregistering, before closing the server (default 0). */
  drainDelay?: number;
  /** Send PM2's `process.send('ready')` once registered (default: true under PM2). */
  ready?: boolean;
  /** Milliseconds the whole drain may take (default under PM2: kill_timeout less a fifth, at most 500 ms; else unbounded). */
  shutdownTimeout?: number;
  /** The local sidecar's (or the control plane's) admin URL (default $SHOAL_DRAIN_GATE): after deregistering, wait there until every proxy stopped sending to this instance. */
  drainGate?: string;
  /** Milliseconds to wait at the drain gate at most (default 5000; at most half of what is left of shutdownTimeout). */
  drainGateTimeout?: number;
  /** Milliseconds before one etcd request times out (default 5000). */
  requestTimeout?: number;
  /** Milliseconds register() keeps retrying an unreachable etcd before it rejects (default 10000). */
  startTimeout?: number;
}

/** The value stored at /shoal/v1/instances/<service>/<id> (ARCHITECTURE.md, "Contract: etcd keys"). */
export interface Instance {
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly zone: string;
  readonly weight: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface RegisteredEvent {
  id: string;
  key: string;
  leaseId: string;
  ttl: number;
}

export interface LostEvent {
  id: string;
  key: string;
  /** The lease that is gone. */
  leaseId: string | null;
  reason: string;
}

export interface HandleEvents {
  /** The key was written: first registration, after a lost lease, or after etcd came back. */
  registered: [RegisteredEvent];
  /** The lease was found gone (expired or revoked); the handle registers again. */
  lost: [LostEvent];
  /** An attempt to reach etcd failed; the handle retries with backoff. Only emitted when listened to. */
  error: [Error];
  /** drain() started (a signal, or called directly). */
  draining: [{ id: string; key: string }];
  /** The drain gate answered: whether every proxy ACKed the removal, how long it waited, who had not. */
  gate: [{ converged: boolean; waitedMs: number; pending: string[] }];
  /** The lease was revoked by deregister(). */
  deregistered: [{ id: string; key: string; leaseId: string | null }];
}

export declare class Handle extends EventEmitter<HandleEvents> {
  /** The instance as written to etcd. */
  readonly instance: Instance;
  readonly id: string;
  readonly service: string;
  /** `/shoal/v1/instances/<service>/<id>` */
  readonly key: string;
  /** The current lease (a decimal string), or null while the registration is lost. */
  readonly leaseId: string | null;
  /** The TTL in seconds etcd granted. */
  readonly ttl: number | null;
  /** True while the key is believed to be in etcd and deregister() has not been called. */
  readonly registered: boolean;
  /** True once drain() has started. */
  readonly draining: boolean;
  /** Revokes the lease (the key is deleted at once) and stops the keepalive. Idempotent. */
  deregister(): Promise<void>;
  /** Deregisters, waits drainDelay, then drains the server option if given. Idempotent; never rejects. */
  drain(): Promise<void>;
  /** An http request listener: 200 {"status":"serving"} while serving, 503 {"status":"draining"} while draining. */
  healthHandler(): (req: IncomingMessage, res: ServerResponse) => void;
}

/**
 * Registers this process in etcd and keeps it registered. Rejects with a
 * TypeError or RangeError naming the field (`err.field`) for bad options,
 * or with an etcd error if etcd refuses or stays unreachable for startTimeout.
 */
export declare function register(opts: RegisterOptions): Promise<Handle>;

/** The default instance id: `<service>-<hostname>-<pid>` reduced to [A-Za-z0-9._:-]. */
export declare function defaultID(service: string, hostname?: string, pid?: number): string;

/** "/shoal/v1/instances/" */
export declare const KEY_PREFIX: string;

/** etcd answered and refused the request. `code` is the gRPC status code. */
export declare class EtcdError extends Error {
  readonly code: number | undefined;
  readonly status: number | undefined;
  readonly endpoint: string | undefined;
}

/** No etcd endpoint (with `controlPlane`: no control plane) could be reached, or all answered "unavailable". */
export declare class EtcdUnavailableError extends Error {}

/** A refusal from the control plane (with `controlPlane`): code is e.g. "permission_denied", status the HTTP status. */
export declare class ControlPlaneError extends Error {
  readonly code: string;
  readonly status: number;
  readonly endpoint: string;
}

declare const shoal: {
  register: typeof register;
  defaultID: typeof defaultID;
  KEY_PREFIX: typeof KEY_PREFIX;
  Handle: typeof Handle;
  EtcdError: typeof EtcdError;
  EtcdUnavailableError: typeof EtcdUnavailableError;
  ControlPlaneError: typeof ControlPlaneError;
};
export default shoal;

/**
 * Add the ORCA load report (`endpoint-load-metrics`) to every response of `server` without
 * registering (for an app its sidecar registers); `register()` with `server` does it already.
 */
export function reportLoad(server: Server): { stop(): void };
