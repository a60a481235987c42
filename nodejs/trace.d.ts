// Type declarations for @shoal-mesh/node/trace.

/** The trace headers forwarded from incoming to outgoing requests, lowercase. */
export const HEADERS: readonly string[];
/** Patches node:http, node:https and fetch (idempotent); the preload calls it. */
export function install(): void;
/** The trace headers of the request being served, or undefined outside one. */
export function current(): Record<string, string> | undefined;
/** Runs fn with the trace headers of `headers` as the current context. */
export function run<T>(headers: Record<string, string | string[] | undefined>, fn: () => T): T;
