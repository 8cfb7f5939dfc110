// Long-lived worker threads, one per network namespace, that create sockets inside it.
//
// Only socket() depends on the calling thread's netns. A worker thread enters its netns once
// (setns) and then parks on a queue; it keeps a small pool of ready sockets per address family,
// so most requests take a socket from the pool on the caller's thread without any thread hop.
// Workers are keyed by the netns inode (not the path: a path can be re-bound to another netns);
// a worker leaves after an idle time, when its path no longer names its netns (checked every
// second: `ip netns del`, the process behind /proc/<pid>/ns/net gone), on releaseNetns /
// closeNetnsWorkers, and before leaving it
// closes its pool and returns to the process's own netns, so it no longer pins the netns.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nm {

// Completion of a queued request, called on the worker thread with a socket fd or -errno and
// the step that failed.
using SocketDone = std::function<void(int fd_or_err, const char* step)>;

constexpr int kSocketQueued = -100000;

// A non-blocking, close-on-exec TCP socket of `family` inside the netns at `path`.
// Returns an fd at once when the worker's pool has one; otherwise queues the request and
// returns kSocketQueued (`done` runs later on the worker thread); or -errno with *step set.
// `pooled` asks the worker to keep a pool for this family from now on.
int AcquireNetnsSocket(const std::string& path, int family, bool pooled, SocketDone done, const char** step);

// The same, waiting for the worker when its pool is empty (the wait is one socket() call on the
// worker thread). Returns fd or -errno with *step set.
int NetnsSocketSync(const std::string& path, int family, const char** step);

struct NetnsWorkerConfig {
  uint32_t idle_ms;
  uint32_t pool;
  uint32_t max_queue;
};
NetnsWorkerConfig GetNetnsWorkerConfig();
void SetNetnsWorkerConfig(const NetnsWorkerConfig& c);

struct NetnsWorkerStat {
  std::string path;
  uint64_t inode;
  uint32_t pooled;
  uint32_t queued;
  uint64_t sockets;  // sockets created since the worker started
};
std::vector<NetnsWorkerStat> NetnsWorkerStats();

// Stops the workers of the netns at `path` (matched by its inode, or by the path they were
// started with when the path is gone) and waits until they left the netns. Returns how many.
int ReleaseNetnsWorkers(const std::string& path);
// Stops every worker. Returns how many.
int CloseAllNetnsWorkers();

}  // namespace nm
