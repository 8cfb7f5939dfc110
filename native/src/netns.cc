// Sockets inside another network namespace, handed to Node as plain fds.
//
// Only socket() depends on the calling thread's netns: bind/listen/connect act in the socket's
// own netns. So the socket is created on a short-lived helper thread that enters the target
// netns and then exits; the event loop thread never leaves its own netns. Connects are
// non-blocking and completed by a uv_poll on the event loop (nothing blocks it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "addon.h"
#include "errors.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
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

// A non-blocking TCP socket created inside the netns at netns_path. Returns fd or -errno;
// *step names what failed.
int SocketInNetns(const std::string& netns_path, int family, const char** step) {
  int nsfd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    *step = "open netns";
    return -errno;
  }
  int result = 0;
  const char* failed = nullptr;
  std::thread helper([&]() {
    if (setns(nsfd, CLONE_NEWNET)) {
      result = -errno;
      failed = "enter netns";
      return;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
      result = -errno;
      failed = "create socket in netns";
      return;
    }
    result = fd;
  });
  helper.join();
  close(nsfd);
  if (failed) *step = failed;
  return result;
}

struct SockOpts {
  bool transparent = false;
  bool freebind = false;
  bool reuseaddr = true;
  bool reuseport = false;
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

struct PendingConnect {
  uv_poll_t poll;
  uv_timer_t timer;
  int fd;
  int handles = 2;
  bool settled = false;
  napi_env env;
  Napi::Promise::Deferred deferred;
  Napi::AsyncContext context;
  std::string what;

  PendingConnect(Napi::Env e, int f, std::string w)
      : fd(f), env(e), deferred(Napi::Promise::Deferred::New(e)), context(e, "nodemesh.connectInNetns"), what(std::move(w)) {}
};

void OnHandleClosed(uv_handle_t* h) {
  auto* p = static_cast<PendingConnect*>(h->data);
  if (--p->handles == 0) delete p;
}

void Settle(PendingConnect* p, int err) {
  if (p->settled) return;
  p->settled = true;
  uv_poll_stop(&p->poll);
  uv_timer_stop(&p->timer);
  {
    Napi::Env env(p->env);
    Napi::HandleScope hs(env);
    Napi::CallbackScope cs(env, p->context);
    if (err == 0) {
      p->deferred.Resolve(Napi::Number::New(env, p->fd));
    } else {
      close(p->fd);
      std::string hint;
      if (err == ECONNREFUSED) hint = "nothing listens there";
      if (err == ETIMEDOUT) hint = "no answer in time";
      p->deferred.Reject(MakeErrnoError(env, err, "connect to", p->what, hint).Value());
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->timer), OnHandleClosed);
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

  const char* step = "";
  int fd = SocketInNetns(ns, dst.family, &step);
  if (fd < 0) ThrowErrno(env, -fd, step, ns, -fd == EPERM ? "entering a netns needs root (CAP_SYS_ADMIN)" : "");
  int rc = ApplyOpts(fd, dst.family, opts, &step);
  if (!rc && has_local && bind(fd, reinterpret_cast<sockaddr*>(&src.ss), src.len))
    rc = -errno, step = "bind local address";
  if (rc) {
    close(fd);
    ThrowErrno(env, -rc, std::string(step) + " to connect to", what,
               -rc == EADDRNOTAVAIL ? "the local address is not configured in that netns (use transparent)" : "");
  }

  auto* p = new PendingConnect(env, fd, what);
  Napi::Promise promise = p->deferred.Promise();
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst.ss), dst.len) == 0) {
    p->deferred.Resolve(Napi::Number::New(env, fd));
    delete p;
    return promise;
  }
  int err = errno;
  if (err != EINPROGRESS) {
    close(fd);
    p->deferred.Reject(MakeErrnoError(env, err, "connect to", what, err == ECONNREFUSED ? "nothing listens there" : "").Value());
    delete p;
    return promise;
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init_socket(loop, &p->poll, fd);
  uv_timer_init(loop, &p->timer);
  p->poll.data = p;
  p->timer.data = p;
  uv_poll_start(&p->poll, UV_WRITABLE, OnWritable);
  uv_timer_start(&p->timer, OnTimeout, timeout_ms, 0);
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

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("listenInNetns", Napi::Function::New(env, ListenInNetns));
  exports.Set("connectInNetns", Napi::Function::New(env, ConnectInNetns));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie));
}

}  // namespace nm
