// How the node proxy's Node process is started, wherever it runs (the lab's spawn, the Helm
// DaemonSet through NODE_OPTIONS). The node proxy holds little live JavaScript state (~10 MiB of
// heap with 100 workloads) but V8's defaults size a process for throughput:
// - a young generation of up to 2 x 16 MiB semi-spaces, which a burst of connections grows and
//   which stays committed; 1 MiB semi-spaces keep it at 2 MiB (more, cheaper scavenges: the cost
//   at 1,000 req/s is measured in docs/node-proxy.md);
// - 4 V8 platform threads (concurrent marking and compilation) on a node proxy that should not
//   take more than a core: 1 is enough, each thread holds a stack and its own allocation caches;
// - libuv's 4 pool threads (file I/O, key generation): 2.
export const NODE_PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--v8-pool-size=1'];

/** The environment the node proxy's process gets on top of its own. */
export const NODE_PROXY_ENV: Readonly<Record<string, string>> = { UV_THREADPOOL_SIZE: '2' };

/** NODE_OPTIONS carrying the flags, for a process started through an image's entrypoint. */
export const NODE_PROXY_NODE_OPTIONS = NODE_PROXY_NODE_FLAGS.join(' ');
