// How the waypoint's Node process is started, wherever it runs: the lab's waypoint controller, the
// Kubernetes waypoint Deployment (control/kubernetes/waypoints/render.ts, through NODE_OPTIONS),
// the tests that start the real CLI and bench/waypoint. Workers (`--workers N`) inherit them: node
// forks them with the primary's flags and environment. Why these, and what they cost, is measured
// in docs/waypoint.md ("Memory").
//
// - The young generation: V8 grows it to 2 x 16 MiB semi-spaces under load and keeps them
//   committed (and Buffers of socket reads live until a scavenge frees them, so fewer scavenges
//   hold more of them). 8 MiB semi-spaces: at 1,000 req/s 2 MiB cost only 1-4 % more CPU, but
//   with many requests in flight (h2c, 100 streams) what they hold outlives 2 MiB semi-spaces'
//   scavenges and is copied and promoted: 2 MiB cost 1.59x the CPU per h2c request of 8 MiB and
//   1.11x per HTTP/1.1 request at 2,000 req/s, for ~40 MiB less RSS (docs/waypoint.md, "Memory").
// - 1 V8 platform thread (concurrent marking, compilation) instead of 4: the waypoint is one
//   process per core (`--workers`), each thread holds a stack and its own allocation caches.
// - libuv's 4 pool threads (file I/O, key generation): 2.
export const WAYPOINT_MAX_SEMI_SPACE_MIB = 8;

export const WAYPOINT_NODE_FLAGS: readonly string[] = [`--max-semi-space-size=${WAYPOINT_MAX_SEMI_SPACE_MIB}`, '--v8-pool-size=1'];

/** The environment the waypoint's process gets on top of its own. */
export const WAYPOINT_ENV: Readonly<Record<string, string>> = { UV_THREADPOOL_SIZE: '2' };

/** NODE_OPTIONS carrying the flags, for a process started through an image's entrypoint. */
export const WAYPOINT_NODE_OPTIONS = WAYPOINT_NODE_FLAGS.join(' ');
