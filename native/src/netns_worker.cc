// Worker threads that create sockets inside a network namespace (see netns_worker.h).
#include "netns_worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <algorithm>
#include <utility>

namespace nm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPathCheck(1000);

std::atomic<uint32_t> g_idle_ms{5000};
std::atomic<uint32_t> g_pool{8};
std::atomic<uint32_t> g_max_queue{1024};

struct Request {
  int family;
  SocketDone done;
};

int FamilyIndex(int family) { return family == AF_INET6 ? 1 : 0; }

struct Worker {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
  int nsfd = -1;    // the target netns (owned by the thread once started)
  int homefd = -1;  // the process's netns, to return to before leaving

  std::mutex mu;
  std::condition_variable cv;         // work arrived / stop
  std::condition_variable exited_cv;  // the thread has left the netns
  std::deque<Request> queue;
  std::vector<int> pool[2];
  uint32_t want[2] = {0, 0};
  bool stop = false;
  bool exited = false;
  int fail_err = 0;
  const char* fail_step = nullptr;
  Clock::time_point last_use = Clock::now();
  uint64_t sockets = 0;
};

using Key = std::pair<dev_t, ino_t>;

// The registry outlives everything (never destroyed: detached threads may use it at exit).
std::mutex& RegMu() {
  static auto* mu = new std::mutex();
  return *mu;
}
std::map<Key, std::shared_ptr<Worker>>& Registry() {
  static auto* reg = new std::map<Key, std::shared_ptr<Worker>>();
  return *reg;
}

int MakeSocket(int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  return fd >= 0 ? fd : -errno;
}

void Unregister(const std::shared_ptr<Worker>& w) {
  std::lock_guard<std::mutex> g(RegMu());
  auto it = Registry().find(Key(w->dev, w->ino));
  if (it != Registry().end() && it->second == w) Registry().erase(it);
}

void Run(std::shared_ptr<Worker> w) {
  bool entered = setns(w->nsfd, CLONE_NEWNET) == 0;
  int setns_err = errno;
  std::unique_lock<std::mutex> lk(w->mu);
  if (!entered) {
    w->fail_err = setns_err;
    w->fail_step = "enter netns";
    w->stop = true;
  }
  while (!w->stop) {
    uint32_t refill[2];
    for (int f = 0; f < 2; f++) refill[f] = w->want[f] > w->pool[f].size() ? w->want[f] - w->pool[f].size() : 0;
    if (!w->queue.empty() || refill[0] || refill[1]) {
      std::deque<Request> batch;
      batch.swap(w->queue);
      lk.unlock();
      uint64_t made = 0;
      for (auto& r : batch) {
        int fd = MakeSocket(r.family);
        made += fd >= 0;
        r.done(fd, "create socket in netns");
      }
      std::vector<int> fresh[2];
      bool failed[2] = {false, false};
      for (int f = 0; f < 2; f++) {
        for (uint32_t i = 0; i < refill[f]; i++) {
          int fd = MakeSocket(f ? AF_INET6 : AF_INET);
          if (fd < 0) {
            failed[f] = true;  // e.g. EMFILE or no IPv6: stop refilling until asked again
            break;
          }
          fresh[f].push_back(fd);
        }
        made += fresh[f].size();
      }
      lk.lock();
      w->sockets += made;
      for (int f = 0; f < 2; f++) {
        w->pool[f].insert(w->pool[f].end(), fresh[f].begin(), fresh[f].end());
        if (failed[f]) w->want[f] = 0;
      }
      continue;
    }
    // Wake at the idle deadline, and at least every kPathCheck to see whether the path still names
    // this netns: after `ip netns del` (or the process behind /proc/<pid>/ns/net exiting) nobody can
    // reach this worker by that path any more, so it leaves rather than keep the netns alive.
    auto idle_at = w->last_use + std::chrono::milliseconds(g_idle_ms.load());
    auto wake = std::min(idle_at, Clock::now() + kPathCheck);
    if (w->cv.wait_until(lk, wake) == std::cv_status::timeout && !w->stop && w->queue.empty()) {
      if (Clock::now() >= w->last_use + std::chrono::milliseconds(g_idle_ms.load())) {
        w->stop = true;
      } else if (Clock::now() >= wake) {
        lk.unlock();
        struct stat st;
        bool same = stat(w->path.c_str(), &st) == 0 && st.st_dev == w->dev && st.st_ino == w->ino;
        lk.lock();
        if (!same) w->stop = true;
      }
    }
  }
  // Leaving: nothing new can be queued once stop is set (AcquireNetnsSocket checks it).
  std::deque<Request> left;
  left.swap(w->queue);
  std::vector<int> fds[2] = {std::move(w->pool[0]), std::move(w->pool[1])};
  w->pool[0].clear();
  w->pool[1].clear();
  int err = w->fail_err ? w->fail_err : ECANCELED;
  const char* step = w->fail_step ? w->fail_step : "create socket in netns (its worker was released)";
  lk.unlock();
  for (auto& r : left) r.done(-err, step);
  for (auto& v : fds)
    for (int fd : v) close(fd);
  // Return to the process's netns so this thread no longer holds the target netns.
  if (entered && w->homefd >= 0) setns(w->homefd, CLONE_NEWNET);
  close(w->nsfd);
  if (w->homefd >= 0) close(w->homefd);
  Unregister(w);
  lk.lock();
  w->exited = true;
  w->exited_cv.notify_all();
}

// The live worker for the netns at path (whose stat is st), started if needed.
std::shared_ptr<Worker> FindOrStart(const std::string& path, const struct stat& st, int* err, const char** step) {
  Key key(st.st_dev, st.st_ino);
  {
    std::lock_guard<std::mutex> g(RegMu());
    auto it = Registry().find(key);
    if (it != Registry().end()) return it->second;
  }
  auto w = std::make_shared<Worker>();
  w->path = path;
  w->nsfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (w->nsfd < 0) {
    *err = errno;
    *step = "open netns";
    return nullptr;
  }
  struct stat st2;
  if (fstat(w->nsfd, &st2)) {
    *err = errno;
    *step = "open netns";
    close(w->nsfd);
    return nullptr;
  }
  w->dev = st2.st_dev;
  w->ino = st2.st_ino;
  w->homefd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  {
    std::lock_guard<std::mutex> g(RegMu());
    auto it = Registry().find(Key(w->dev, w->ino));
    if (it != Registry().end()) {  // another thread started one meanwhile
      close(w->nsfd);
      if (w->homefd >= 0) close(w->homefd);
      return it->second;
    }
    Registry()[Key(w->dev, w->ino)] = w;
  }
  try {
    std::thread(Run, w).detach();
  } catch (const std::system_error& e) {
    Unregister(w);
    close(w->nsfd);
    if (w->homefd >= 0) close(w->homefd);
    *err = e.code().value() ? e.code().value() : EAGAIN;
    *step = "start a worker thread for netns";
    return nullptr;
  }
  return w;
}

void StopAndWait(const std::shared_ptr<Worker>& w) {
  std::unique_lock<std::mutex> lk(w->mu);
  w->stop = true;
  w->cv.notify_all();
  w->exited_cv.wait_for(lk, std::chrono::seconds(2), [&] { return w->exited; });
}

}  // namespace

int AcquireNetnsSocket(const std::string& path, int family, bool pooled, SocketDone done, const char** step) {
  struct stat st;
  if (stat(path.c_str(), &st)) {
    *step = "open netns";
    return -errno;
  }
  for (int attempt = 0; attempt < 3; attempt++) {
    int err = 0;
    std::shared_ptr<Worker> w = FindOrStart(path, st, &err, step);
    if (!w) return -err;
    std::unique_lock<std::mutex> lk(w->mu);
    if (w->fail_err) {
      *step = w->fail_step;
      return -w->fail_err;
    }
    if (w->stop) {  // leaving (idle or released) right now: start a new one
      lk.unlock();
      Unregister(w);
      continue;
    }
    int f = FamilyIndex(family);
    w->last_use = Clock::now();
    if (pooled && w->want[f] == 0 && g_pool.load() > 0) {
      w->want[f] = g_pool.load();
      w->cv.notify_one();
    }
    auto& pool = w->pool[f];
    if (!pool.empty()) {
      int fd = pool.back();
      pool.pop_back();
      if (pool.size() <= w->want[f] / 2) w->cv.notify_one();  // refill in one batch
      return fd;
    }
    if (w->queue.size() >= g_max_queue.load()) {
      *step = "queue a socket request for netns (too many waiting)";
      return -EAGAIN;
    }
    w->queue.push_back(Request{family, std::move(done)});
    w->cv.notify_one();
    return kSocketQueued;
  }
  *step = "start a worker thread for netns";
  return -EAGAIN;
}

int NetnsSocketSync(const std::string& path, int family, const char** step) {
  auto result = std::make_shared<std::promise<std::pair<int, const char*>>>();
  std::future<std::pair<int, const char*>> future = result->get_future();
  int rc = AcquireNetnsSocket(
      path, family, false, [result](int fd, const char* s) { result->set_value({fd, s}); }, step);
  if (rc != kSocketQueued) return rc;
  auto got = future.get();
  if (got.first < 0) *step = got.second;
  return got.first;
}

NetnsWorkerConfig GetNetnsWorkerConfig() { return NetnsWorkerConfig{g_idle_ms.load(), g_pool.load(), g_max_queue.load()}; }

void SetNetnsWorkerConfig(const NetnsWorkerConfig& c) {
  g_idle_ms = c.idle_ms;
  g_pool = c.pool;
  g_max_queue = c.max_queue;
  // wake every worker so a shorter idle time or a smaller pool applies now
  std::lock_guard<std::mutex> g(RegMu());
  for (auto& kv : Registry()) {
    std::lock_guard<std::mutex> wl(kv.second->mu);
    for (int f = 0; f < 2; f++) {
      if (kv.second->want[f] > c.pool) kv.second->want[f] = c.pool;
      while (kv.second->pool[f].size() > c.pool) {
        close(kv.second->pool[f].back());
        kv.second->pool[f].pop_back();
      }
    }
    kv.second->cv.notify_one();
  }
}

std::vector<NetnsWorkerStat> NetnsWorkerStats() {
  std::vector<NetnsWorkerStat> out;
  std::lock_guard<std::mutex> g(RegMu());
  for (auto& kv : Registry()) {
    Worker& w = *kv.second;
    std::lock_guard<std::mutex> wl(w.mu);
    if (w.stop) continue;
    out.push_back(NetnsWorkerStat{w.path, static_cast<uint64_t>(w.ino), static_cast<uint32_t>(w.pool[0].size() + w.pool[1].size()),
                                  static_cast<uint32_t>(w.queue.size()), w.sockets});
  }
  return out;
}

int ReleaseNetnsWorkers(const std::string& path) {
  struct stat st;
  bool have_key = stat(path.c_str(), &st) == 0;
  std::vector<std::shared_ptr<Worker>> victims;
  {
    std::lock_guard<std::mutex> g(RegMu());
    for (auto it = Registry().begin(); it != Registry().end();) {
      bool match = (have_key && it->first == Key(st.st_dev, st.st_ino)) || it->second->path == path;
      if (match) {
        victims.push_back(it->second);
        it = Registry().erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : victims) StopAndWait(w);
  return static_cast<int>(victims.size());
}

int CloseAllNetnsWorkers() {
  std::vector<std::shared_ptr<Worker>> victims;
  {
    std::lock_guard<std::mutex> g(RegMu());
    for (auto& kv : Registry()) victims.push_back(kv.second);
    Registry().clear();
  }
  for (auto& w : victims) StopAndWait(w);
  return static_cast<int>(victims.size());
}

}  // namespace nm
