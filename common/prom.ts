// prom-client's Registry, Counter and Gauge, each loaded from its own file. The package's index
// also loads its push gateway (node:https), its default process metrics (node:perf_hooks, node:v8,
// @opentelemetry/api for exemplars), Histogram, Summary and the cluster aggregator: ~80 modules that
// cost a node proxy ~1 MiB of resident memory it never uses (docs/node-proxy.md, "Memory").
// These are the same classes the index exports (prom.unit.test.ts checks it), so a registry made
// here and one made through 'prom-client' mix freely. Import these three from here in code the node
// proxy loads; types may still come from 'prom-client'.
import type * as Prom from 'prom-client';

export type Registry = Prom.Registry;
export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;

// files of the package, which have no typings of their own: typed as the index's exports
export const Registry = require('prom-client/lib/registry') as typeof Prom.Registry;
export const Counter = require('prom-client/lib/counter') as typeof Prom.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
/** prom-client's global registry (`register`). */
export const register: Prom.Registry = (Registry as unknown as { globalRegistry: Prom.Registry }).globalRegistry;
