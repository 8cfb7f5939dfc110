// Sockets inside another network namespace, handed to Node as plain fds.
//
// Only socket() depends on the calling thread's netns: bind/listen/connect act in the socket's
// own netns. So the socket is created by that netns's long-lived worker thread (netns_worker.h),
// usually taken ready-made from its pool; the event loop thread never leaves its own netns.
// Connects are non-blocking and completed by a uv_poll on the event loop (nothing blocks it); a
// connect whose socket must wait for the worker continues when the worker hands it over (uv_async).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "netns_worker.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef SIOCGSKNS
#define SIOCGSKNS 0x894C
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

namespace nm {
namespace {

struct Addr {
  sockaddr_storage ss;
  socklen_t len = 0;
  int family = 0;
};

bool ParseAddr(const std::string& host, uint32_t port, Addr* out) {
  std::memset(&out->ss, 0, sizeof out->ss);
  auto* a4 = reinterpret_cast<sockaddr_in*>(&out->ss);
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(sockaddr_in);
    out->family = AF_INET;
    return true;
  }
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(sockaddr_in6);
    out->family = AF_INET6;
    return true;
  }
  return false;
}

// A non-blocking TCP socket created inside the netns at netns_path by that netns's worker thread
// (netns_worker.h), waiting for it if its pool is empty. Returns fd or -errno; *step names what
// failed.
int SocketInNetns(const std::string& netns_path, int family, const char** step) {
  return NetnsSocketSync(netns_path, family, step);
}

struct SockOpts {
  bool transparent = false;
  bool freebind = false;
  bool reuseaddr = true;
  bool reuseport = false;
  bool nodelay = false;  // TCP_NODELAY (a listener's accepted sockets inherit it)
  int64_t mark = -1;
};

SockOpts ReadOpts(Napi::Object o) {
  SockOpts s;
  auto flag = [&](const char* k, bool dflt) {
    Napi::Value v = o.Get(k);
    return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt;
  };
  s.transparent = flag("transparent", false);
  s.freebind = flag("freebind", false);
  s.reuseaddr = flag("reuseAddress", true);
  s.reuseport = flag("reusePort", false);
  s.nodelay = flag("noDelay", false);
  Napi::Value m = o.Get("mark");
  if (m.IsNumber()) s.mark = m.As<Napi::Number>().Int64Value();
  return s;
}

// Applies socket options; returns 0 or -errno with *step set.
int ApplyOpts(int fd, int family, const SockOpts& o, const char** step) {
  int one = 1;
  if (o.reuseaddr && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)) return *step = "set SO_REUSEADDR", -errno;
  if (o.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) return *step = "set SO_REUSEPORT", -errno;
  if (o.transparent) {
    int rc = family == AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                                : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
    if (rc) return *step = "set IP_TRANSPARENT", -errno;
  }
  if (o.freebind && setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one)) return *step = "set IP_FREEBIND", -errno;
  if (o.nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) return *step = "set TCP_NODELAY", -errno;
  if (o.mark >= 0) {
    uint32_t mark = static_cast<uint32_t>(o.mark);
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark)) return *step = "set SO_MARK", -errno;
  }
  return 0;
}

std::string Endpoint(const std::string& host, uint32_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// listenInNetns(netnsPath, host, port, backlog, opts) -> listening fd
Napi::Value ListenInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = info[0].As<Napi::String>();
  std::string host = info[1].As<Napi::String>();
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  int backlog = info[3].As<Napi::Number>().Int32Value();
  SockOpts opts = ReadOpts(info[4].As<Napi::Object>());
  std::string what = Endpoint(host, port) + " in netns " + ns;
  Addr addr;
  if (!ParseAddr(host, port, &addr)) throw Napi::TypeError::New(env, "listen on " + what + ": host must be an IP address");
  const char* step = "";
  int fd = SocketInNetns(ns, addr.family, &step);
  if (fd < 0) ThrowErrno(env, -fd, step, ns, -fd == EPERM ? "entering a netns needs root (CAP_SYS_ADMIN)" : "");
  int rc = ApplyOpts(fd, addr.family, opts, &step);
  if (!rc && bind(fd, reinterpret_cast<sockaddr*>(&addr.ss), addr.len)) rc = -errno, step = "bind";
  if (!rc && listen(fd, backlog)) rc = -errno, step = "listen";
  if (rc) {
    close(fd);
    std::string hint;
    if (-rc == EADDRINUSE) hint = "another socket in that netns already listens there";
    if (-rc == EADDRNOTAVAIL) hint = "the address is not configured in that netns (use freebind or transparent)";
    ThrowErrno(env, -rc, std::string(step) + " for", what, hint);
  }
  return Napi::Number::New(env, fd);
}

// One connectInNetns call, from the JS call until its promise settles.
struct PendingConnect {
  uv_poll_t poll;
  uv_timer_t timer;
  int fd = -1;
  int handles = 0;  // libuv handles still open; the struct is freed when the last one closed
  bool settled = false;
  napi_env env;
  Napi::Promise::Deferred deferred;
  Napi::AsyncContext context;
  std::string what;
  Addr dst, src;
  bool has_local = false;
  SockOpts opts;
  uint64_t timeout_ms = 0;

  PendingConnect(Napi::Env e, std::string w)
      : env(e), deferred(Napi::Promise::Deferred::New(e)), context(e, "nodemesh.connectInNetns"), what(std::move(w)) {}
};

void OnHandleClosed(uv_handle_t* h) {
  auto* p = static_cast<PendingConnect*>(h->data);
  if (--p->handles == 0) delete p;
}

// Resolves with the fd (err 0) or rejects (closing the fd). from_loop: called from a libuv
// callback rather than from inside a JS call, so a callback scope is needed.
void Settle(PendingConnect* p, int err, const char* op = "connect to", bool from_loop = true) {
  if (p->settled) return;
  p->settled = true;
  if (p->handles) {
    uv_poll_stop(&p->poll);
    uv_timer_stop(&p->timer);
  }
  {
    Napi::Env env(p->env);
    Napi::HandleScope hs(env);
    std::unique_ptr<Napi::CallbackScope> cs;
    if (from_loop) cs.reset(new Napi::CallbackScope(env, p->context));
    if (err == 0) {
      p->deferred.Resolve(Napi::Number::New(env, p->fd));
    } else {
      if (p->fd >= 0) close(p->fd);
      std::string hint;
      if (err == ECONNREFUSED) hint = "nothing listens there";
      if (err == ETIMEDOUT) hint = "no answer in time";
      if (err == EPERM && std::strcmp(op, "enter netns") == 0) hint = "entering a netns needs root (CAP_SYS_ADMIN)";
      if (err == EADDRNOTAVAIL) hint = "the local address is not configured in that netns (use transparent)";
      p->deferred.Reject(MakeErrnoError(env, err, op, p->what, hint).Value());
    }
  }
  if (p->handles) {
    uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->timer), OnHandleClosed);
  } else {
    delete p;
  }
}

void OnWritable(uv_poll_t* h, int status, int events) {
  auto* p = static_cast<PendingConnect*>(h->data);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len)) err = errno;
  if (status < 0 && err == 0) err = -status;
  Settle(p, err);
}

void OnTimeout(uv_timer_t* h) { Settle(static_cast<PendingConnect*>(h->data), ETIMEDOUT); }

// With a socket from the netns: options, local bind, a non-blocking connect completed by uv_poll.
void StartConnect(PendingConnect* p, int fd, bool from_loop) {
  p->fd = fd;
  const char* step = "";
  int rc = ApplyOpts(fd, p->dst.family, p->opts, &step);
  if (!rc && p->has_local && bind(fd, reinterpret_cast<sockaddr*>(&p->src.ss), p->src.len)) rc = -errno, step = "bind local address";
  if (rc) {
    std::string op = std::string(step) + " to connect to";
    Settle(p, -rc, op.c_str(), from_loop);
    return;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&p->dst.ss), p->dst.len) == 0) {
    Settle(p, 0, "connect to", from_loop);
    return;
  }
  int err = errno;
  if (err != EINPROGRESS) {
    Settle(p, err, "connect to", from_loop);
    return;
  }
  // A connect to an app in the same netns (the node proxy's upstream) has usually finished its
  // handshake by the time connect(2) returns: the kernel delivered SYN, SYN-ACK and ACK on the
  // way. Settle it now instead of one event-loop turn (and a poll handle) later. Asking with a
  // second connect(2) takes one system call where poll(2) + getsockopt(SO_ERROR) took two: it
  // returns 0 once established, EALREADY while the handshake is under way, and the connection's
  // error (ECONNREFUSED, …) when it failed.
  if (connect(fd, reinterpret_cast<sockaddr*>(&p->dst.ss), p->dst.len) == 0 || errno == EISCONN) {
    Settle(p, 0, "connect to", from_loop);
    return;
  }
  err = errno;
  if (err != EALREADY && err != EINPROGRESS) {
    Settle(p, err, "connect to", from_loop);
    return;
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(p->env, &loop);
  uv_poll_init_socket(loop, &p->poll, fd);
  uv_timer_init(loop, &p->timer);
  p->handles = 2;
  p->poll.data = p;
  p->timer.data = p;
  uv_poll_start(&p->poll, UV_WRITABLE, OnWritable);
  // The loop's cached "now" dates from the start of this loop iteration; JS may have run for a
  // long time since (or a worker handed the socket over late), so the timeout would count from a
  // stale time and fire early. Refresh it first.
  uv_update_time(loop);
  uv_timer_start(&p->timer, OnTimeout, p->timeout_ms, 0);
}

// Hands sockets made by netns workers back to the event loop of the JS environment that asked.
// One per environment (main thread, each worker_thread); lives until the environment ends.
struct Completer {
  std::mutex mu;
  std::vector<std::pair<PendingConnect*, std::pair<int, const char*>>> done;
  bool closed = false;
  uv_async_t async;
  size_t outstanding = 0;  // queued requests (event loop thread only); the async is ref'ed while > 0

  static void OnAsync(uv_async_t* h) {
    auto* c = static_cast<std::shared_ptr<Completer>*>(h->data)->get();
    std::vector<std::pair<PendingConnect*, std::pair<int, const char*>>> batch;
    {
      std::lock_guard<std::mutex> g(c->mu);
      batch.swap(c->done);
    }
    c->outstanding -= batch.size();
    if (c->outstanding == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&c->async));
    for (auto& d : batch) {
      PendingConnect* p = d.first;
      int fd = d.second.first;
      if (fd < 0) {
        Settle(p, -fd, d.second.second);
      } else {
        Napi::Env env(p->env);
        Napi::HandleScope hs(env);
        Napi::CallbackScope cs(env, p->context);
        StartConnect(p, fd, false);
      }
    }
  }
};

// The environment ends: workers still holding a request close its socket instead.
void EndCompleter(Napi::Env, std::shared_ptr<Completer>* h) {
  {
    std::lock_guard<std::mutex> g((*h)->mu);
    (*h)->closed = true;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&(*h)->async), [](uv_handle_t* a) { delete static_cast<std::shared_ptr<Completer>*>(a->data); });
}

std::shared_ptr<Completer> CompleterOf(Napi::Env env) {
  auto* holder = env.GetInstanceData<std::shared_ptr<Completer>>();
  if (holder) return *holder;
  auto c = std::make_shared<Completer>();
  holder = new std::shared_ptr<Completer>(c);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_async_init(loop, &c->async, Completer::OnAsync);
  c->async.data = holder;
  uv_unref(reinterpret_cast<uv_handle_t*>(&c->async));
  env.SetInstanceData<std::shared_ptr<Completer>, EndCompleter>(holder);
  return c;
}

// connectInNetns(netnsPath, host, port, localHost|undefined, localPort, timeoutMs, opts)
//   -> Promise<fd of a connected socket>
Napi::Value ConnectInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = info[0].As<Napi::String>();
  std::string host = info[1].As<Napi::String>();
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  bool has_local = info[3].IsString();
  std::string local_host = has_local ? std::string(info[3].As<Napi::String>()) : "";
  uint32_t local_port = info[4].IsNumber() ? info[4].As<Napi::Number>().Uint32Value() : 0;
  uint64_t timeout_ms = info[5].As<Napi::Number>().Int64Value();
  SockOpts opts = ReadOpts(info[6].As<Napi::Object>());
  opts.reuseaddr = has_local && local_port != 0;
  std::string what = Endpoint(host, port) + " from netns " + ns;

  Addr dst, src;
  if (!ParseAddr(host, port, &dst)) throw Napi::TypeError::New(env, "connect to " + what + ": host must be an IP address");
  if (has_local && !ParseAddr(local_host, local_port, &src))
    throw Napi::TypeError::New(env, "connect to " + what + ": localAddress must be an IP address");
  if (has_local && src.family != dst.family)
    throw Napi::TypeError::New(env, "connect to " + what + ": localAddress " + local_host + " is not of the destination's family");

  auto* p = new PendingConnect(env, what);
  p->dst = dst;
  p->src = src;
  p->has_local = has_local;
  p->opts = opts;
  p->timeout_ms = timeout_ms;
  Napi::Promise promise = p->deferred.Promise();

  std::shared_ptr<Completer> c = CompleterOf(env);
  const char* step = "";
  int fd = AcquireNetnsSocket(
      ns, dst.family, true,
      [c, p](int fd, const char* s) {
        std::lock_guard<std::mutex> g(c->mu);
        if (c->closed) {  // the environment is gone: nobody waits for this promise
          if (fd >= 0) close(fd);
          return;
        }
        c->done.push_back({p, {fd, s}});
        uv_async_send(&c->async);
      },
      &step);
  if (fd == kSocketQueued) {
    if (c->outstanding++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&c->async));
  } else if (fd < 0) {
    p->what = ns;  // the netns itself failed: name it
    Settle(p, -fd, step, false);
  } else {
    StartConnect(p, fd, false);
  }
  return promise;
}

// netnsCookie(netnsPath) -> bigint: the cookie BPF programs see for that netns.
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = info[0].As<Napi::String>();
  const char* step = "";
  int fd = SocketInNetns(ns, AF_INET, &step);
  if (fd < 0) ThrowErrno(env, -fd, step, ns, -fd == EPERM ? "entering a netns needs root (CAP_SYS_ADMIN)" : "");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  int rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int err = errno;
  close(fd);
  if (rc) ThrowErrno(env, err, "read SO_NETNS_COOKIE in netns", ns, err == ENOPROTOOPT ? "needs Linux >= 5.14" : "");
  return Napi::BigInt::New(env, cookie);
}

// bindProbeInNetns(netnsPath, host, port) -> bigint: makes a TCP socket inside the netns, binds it
// to host:port (the outcome does not matter: a cgroup/bind4 or bind6 program sees the attempt) and
// returns the socket's cookie (SO_COOKIE), then closes it. The fallback for netns cookies on
// kernels without SO_NETNS_COOKIE (native/netns-cookie.ts).
Napi::Value BindProbeInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = info[0].As<Napi::String>();
  std::string host = info[1].As<Napi::String>();
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  Addr addr;
  if (!ParseAddr(host, port, &addr)) throw Napi::TypeError::New(env, "bind probe in netns " + ns + ": host must be an IP address");
  const char* step = "";
  int fd = SocketInNetns(ns, addr.family, &step);
  if (fd < 0) ThrowErrno(env, -fd, step, ns, -fd == EPERM ? "entering a netns needs root (CAP_SYS_ADMIN)" : "");
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr.ss), addr.len);
  (void)rc;  // refused by the probe program (EPERM), or not: either way it ran
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  rc = getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
  int err = errno;
  close(fd);
  if (rc) ThrowErrno(env, err, "read SO_COOKIE of a probe socket in netns", ns);
  return Napi::BigInt::New(env, cookie);
}

// A TCP socket made inside the netns nsfd refers to, by a thread of its own that exists only for
// this call (so no netns worker is started, reused or keyed by a transient /proc/self/fd path).
// Returns fd or -errno with *step set.
int SocketInNetnsFd(int nsfd, int family, const char** step) {
  int result = 0;
  const char* failed = nullptr;
  try {
    std::thread t([&] {
      if (setns(nsfd, CLONE_NEWNET)) {
        result = -errno;
        failed = "enter netns";
        return;
      }
      result = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
      if (result < 0) result = -errno, failed = "create socket in netns";
      // the thread ends here, and with it its hold on the netns
    });
    t.join();
  } catch (const std::system_error& e) {
    result = -(e.code().value() ? e.code().value() : EAGAIN);
    failed = "start a thread for netns";
  }
  if (failed) *step = failed;
  return result;
}

// bindProbeInNetnsFd(nsfd, host, port) -> bigint: bindProbeInNetns for a netns given as an open fd
// (from socketNetnsFd), through a one-off thread instead of that netns's shared worker.
Napi::Value BindProbeInNetnsFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int nsfd = info[0].As<Napi::Number>().Int32Value();
  std::string host = info[1].As<Napi::String>();
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  std::string what = "netns fd " + std::to_string(nsfd);
  Addr addr;
  if (!ParseAddr(host, port, &addr)) throw Napi::TypeError::New(env, "bind probe in " + what + ": host must be an IP address");
  const char* step = "";
  int fd = SocketInNetnsFd(nsfd, addr.family, &step);
  if (fd < 0) ThrowErrno(env, -fd, step, what, -fd == EPERM ? "entering a netns needs root (CAP_SYS_ADMIN)" : "");
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr.ss), addr.len);
  (void)rc;  // refused by the probe program (EPERM), or not: either way it ran
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  rc = getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
  int err = errno;
  close(fd);
  if (rc) ThrowErrno(env, err, "read SO_COOKIE of a probe socket in", what);
  return Napi::BigInt::New(env, cookie);
}

// socketNetnsFd(fd) -> an fd of the netns the socket lives in (SIOCGSKNS, Linux 4.9).
Napi::Value SocketNetnsFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int nsfd = ioctl(fd, SIOCGSKNS);
  if (nsfd < 0) ThrowErrno(env, errno, "get the netns of", "socket fd " + std::to_string(fd));
  return Napi::Number::New(env, nsfd);
}

// releaseNetns(netnsPath) -> number of workers stopped
Napi::Value ReleaseNetns(const Napi::CallbackInfo& info) {
  std::string ns = info[0].As<Napi::String>();
  return Napi::Number::New(info.Env(), ReleaseNetnsWorkers(ns));
}

// closeNetnsWorkers() -> number of workers stopped
Napi::Value CloseNetnsWorkers(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), CloseAllNetnsWorkers()); }

// configureNetnsWorkers({idleMs?, poolSize?, maxQueue?}) -> the configuration now in force
Napi::Value ConfigureNetnsWorkers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NetnsWorkerConfig c = GetNetnsWorkerConfig();
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k, uint32_t* out) {
      Napi::Value v = o.Get(k);
      if (v.IsNumber()) *out = v.As<Napi::Number>().Uint32Value();
    };
    num("idleMs", &c.idle_ms);
    num("poolSize", &c.pool);
    num("maxQueue", &c.max_queue);
    SetNetnsWorkerConfig(c);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("idleMs", c.idle_ms);
  r.Set("poolSize", c.pool);
  r.Set("maxQueue", c.max_queue);
  return r;
}

// netnsWorkers() -> [{path, inode, pooled, queued, sockets}]
Napi::Value NetnsWorkers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto stats = NetnsWorkerStats();
  Napi::Array a = Napi::Array::New(env, stats.size());
  for (size_t i = 0; i < stats.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", stats[i].path);
    o.Set("inode", Napi::Number::New(env, static_cast<double>(stats[i].inode)));
    o.Set("pooled", stats[i].pooled);
    o.Set("queued", stats[i].queued);
    o.Set("sockets", Napi::Number::New(env, static_cast<double>(stats[i].sockets)));
    a.Set(i, o);
  }
  return a;
}

}  // namespace

void InitNetnsAccept(Napi::Env env, Napi::Object exports);  // netns_accept.cc

void InitNetns(Napi::Env env, Napi::Object exports) {
  InitNetnsAccept(env, exports);
  exports.Set("listenInNetns", Napi::Function::New(env, ListenInNetns));
  exports.Set("connectInNetns", Napi::Function::New(env, ConnectInNetns));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie));
  exports.Set("bindProbeInNetns", Napi::Function::New(env, BindProbeInNetns));
  exports.Set("bindProbeInNetnsFd", Napi::Function::New(env, BindProbeInNetnsFd));
  exports.Set("socketNetnsFd", Napi::Function::New(env, SocketNetnsFd));
  exports.Set("releaseNetns", Napi::Function::New(env, ReleaseNetns));
  exports.Set("closeNetnsWorkers", Napi::Function::New(env, CloseNetnsWorkers));
  exports.Set("configureNetnsWorkers", Napi::Function::New(env, ConfigureNetnsWorkers));
  exports.Set("netnsWorkers", Napi::Function::New(env, NetnsWorkers));
}

}  // namespace nm
