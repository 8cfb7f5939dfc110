// Captured connections accepted in the addon: a listening socket made in a workload's netns
// (listenInNetns) is polled on the event loop (uv_poll), its connections accepted with accept4 and
// handed to JavaScript as bare fds with the client's address — and, when the capture map is given,
// the original destination connect4/connect6 recorded, taken (looked up and removed) here in one
// BPF_MAP_LOOKUP_AND_DELETE_ELEM. A captured connection that goes on to the native HBONE engine
// then never becomes a net.Socket (no libuv handle, epoll registration, getpeername, dup and close
// per connection, and no JavaScript encoding of the map key: docs/node-proxy.md, "Connection
// set-up").
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "addon.h"
#include "errors.h"

#ifndef ENOTSUPP
#define ENOTSUPP 524
#endif

namespace nm {
namespace {

// bpf/include/maps.h: struct nm_conn_key (key of nm_orig_dst) and struct nm_sockaddr (its value);
// native/layout.ts states the same sizes and offsets and its unit test checks them against the
// object's BTF.
struct ConnKey {
  uint64_t netns_cookie;
  uint8_t addr[16];  // IPv4-mapped for IPv4
  uint16_t port;     // network order
  uint16_t pad[3];
};
struct OrigDst {
  uint8_t addr[16];
  uint16_t port;  // network order
  uint16_t family;
};
static_assert(sizeof(ConnKey) == 32, "nm_conn_key is 32 bytes");
static_assert(sizeof(OrigDst) == 20, "nm_sockaddr is 20 bytes");

// Whether the kernel takes BPF_MAP_LOOKUP_AND_DELETE_ELEM on a hash map (Linux 5.14); until it
// refuses once, it is tried first. JS thread only.
bool g_lookup_and_delete = true;

// Looks up and removes the key: 0, -ENOENT (not recorded), or -errno.
int TakeOriginal(int map_fd, const ConnKey& k, OrigDst* v) {
  if (g_lookup_and_delete) {
    if (bpf_map_lookup_and_delete_elem(map_fd, &k, v) == 0) return 0;
    int err = errno;
    if (err == ENOENT) return -ENOENT;
    if (err != EINVAL && err != ENOTSUPP && err != EOPNOTSUPP) return -err;
    g_lookup_and_delete = false;
  }
  if (bpf_map_lookup_elem(map_fd, &k, v)) return -errno;
  bpf_map_delete_elem(map_fd, &k);
  return 0;
}

// '10.0.0.1' for an IPv4(-mapped) address, else the compressed IPv6 text (as native/layout.ts
// decodeAddr and Node's remoteAddress print them).
std::string AddrText(const uint8_t a[16]) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char buf[INET6_ADDRSTRLEN];
  if (std::memcmp(a, kMapped, 12) == 0) return inet_ntop(AF_INET, a + 12, buf, sizeof buf) ? buf : "";
  return inet_ntop(AF_INET6, a, buf, sizeof buf) ? buf : "";
}

// The capture map's fd, one duplicate per map shared by every listener that takes from it (keyed
// by the map's kernel id): a node proxy with 100 workloads held 200 duplicates of one fd, one per
// capture listener. The caller's fd may be closed meanwhile; the duplicate lives until the last
// listener using it is closed. Locked: listeners are made and closed on whichever JS thread (a
// worker's too) loaded the addon, never per connection.
struct SharedMapFd {
  int fd;
  int users;
};
std::mutex g_shared_mu;
std::unordered_map<uint32_t, SharedMapFd>& SharedMapFds() {
  static auto* shared = new std::unordered_map<uint32_t, SharedMapFd>();
  return *shared;
}

// The shared duplicate of map_fd (its map id in *id), or -errno.
int AcquireMapFd(int map_fd, uint32_t* id) {
  bpf_map_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len)) return -errno;
  std::lock_guard<std::mutex> lock(g_shared_mu);
  auto& shared = SharedMapFds();
  auto it = shared.find(info.id);
  if (it != shared.end()) {
    it->second.users++;
    *id = info.id;
    return it->second.fd;
  }
  int fd = fcntl(map_fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return -errno;
  shared.emplace(info.id, SharedMapFd{fd, 1});
  *id = info.id;
  return fd;
}

void ReleaseMapFd(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_shared_mu);
  auto& shared = SharedMapFds();
  auto it = shared.find(id);
  if (it == shared.end()) return;
  if (--it->second.users > 0) return;
  close(it->second.fd);
  shared.erase(it);
}

constexpr int kBatch = 64;          // accepts per readable event, then the loop moves on
constexpr uint64_t kBackoffMs = 100;  // after EMFILE and the like, before accepting again

class CaptureAcceptor : public Napi::ObjectWrap<CaptureAcceptor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CaptureAcceptor",
                       {InstanceMethod("close", &CaptureAcceptor::Close), InstanceMethod("fd", &CaptureAcceptor::Fd)});
  }

  // new CaptureAcceptor(listenFd, mapFd (-1: none), netnsCookie, onConnection, onError)
  //   onConnection(fd, clientAddress, clientPort, dstAddress | undefined, dstPort)
  //     dstAddress is undefined when no map was given or nothing was recorded for the client.
  //   onError(message, code): an accept or map lookup failed (the connection, if any, is closed).
  // Takes ownership of listenFd (closed by close()); mapFd is duplicated once per map, that
  // duplicate shared by every listener of the map (SharedMapFd).
  explicit CaptureAcceptor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CaptureAcceptor>(info) {
    Napi::Env env = info.Env();
    listen_fd_ = info[0].As<Napi::Number>().Int32Value();
    int map_fd = info[1].As<Napi::Number>().Int32Value();
    bool lossless = false;
    cookie_ = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
    on_connection_ = Napi::Persistent(info[3].As<Napi::Function>());
    on_error_ = Napi::Persistent(info[4].As<Napi::Function>());
    if (map_fd >= 0) {
      int rc = AcquireMapFd(map_fd, &map_id_);
      if (rc < 0) {
        ThrowErrno(env, -rc, "share the original-destination map fd", std::to_string(map_fd));
      }
      map_fd_ = rc;
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    timer_ = new uv_timer_t;
    int rc = uv_poll_init_socket(loop, poll_, listen_fd_);
    if (rc) {
      delete poll_;
      delete timer_;
      poll_ = nullptr;
      timer_ = nullptr;
      if (map_fd_ >= 0) ReleaseMapFd(map_id_);
      map_fd_ = -1;
      ThrowErrno(env, -rc, "poll the listening socket", "fd " + std::to_string(listen_fd_));
    }
    uv_timer_init(loop, timer_);
    poll_->data = this;
    timer_->data = this;
    context_ = std::make_unique<Napi::AsyncContext>(env, "nodemesh.captureAccept");
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    Ref();  // alive while polling: close() lets go
  }

  ~CaptureAcceptor() override { Shut(); }

 private:
  static void OnReadable(uv_poll_t* h, int status, int) {
    auto* self = static_cast<CaptureAcceptor*>(h->data);
    if (status < 0) return;  // a spurious error on the listening socket: accept tells the truth
    self->AcceptSome();
  }

  static void OnBackoff(uv_timer_t* t) {
    auto* self = static_cast<CaptureAcceptor*>(t->data);
    if (self->poll_) uv_poll_start(self->poll_, UV_READABLE, OnReadable);
  }

  void AcceptSome() {
    Napi::Env env = Env();
    Napi::HandleScope hs(env);
    Napi::CallbackScope cs(env, *context_);
    for (int i = 0; i < kBatch && listen_fd_ >= 0; i++) {
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
        // out of fds or memory: report, and stop accepting for a moment (the kernel queues meanwhile)
        ReportError(env, err, "accept a captured connection");
        uv_poll_stop(poll_);
        uv_timer_start(timer_, OnBackoff, kBackoffMs, 0);
        return;
      }
      ConnKey k;
      std::memset(&k, 0, sizeof k);
      k.netns_cookie = cookie_;
      if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        k.addr[10] = k.addr[11] = 0xff;
        std::memcpy(k.addr + 12, &a->sin_addr, 4);
        k.port = a->sin_port;
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        std::memcpy(k.addr, &a->sin6_addr, 16);
        k.port = a->sin6_port;
      }
      Napi::Value dst_addr = env.Undefined();
      uint16_t dst_port = 0;
      if (map_fd_ >= 0) {
        OrigDst v;
        int rc = TakeOriginal(map_fd_, k, &v);
        if (rc == 0) {
          dst_addr = Napi::String::New(env, AddrText(v.addr));
          dst_port = ntohs(v.port);
        } else if (rc != -ENOENT) {
          ReportError(env, -rc, "take the original destination from the capture map");
          close(fd);
          continue;
        }
      }
      try {
        on_connection_.Call({Napi::Number::New(env, fd), Napi::String::New(env, AddrText(k.addr)), Napi::Number::New(env, ntohs(k.port)),
                             dst_addr, Napi::Number::New(env, dst_port)});
      } catch (const Napi::Error& e) {
        // a handler that throws: an uncaught exception, as for any Node event handler
        napi_fatal_exception(env, e.Value());
        return;
      }
    }
  }

  void ReportError(Napi::Env env, int err, const char* op) {
    Napi::Error e = MakeErrnoError(env, err, op, "fd " + std::to_string(listen_fd_));
    try {
      on_error_.Call({e.Value()});
    } catch (const Napi::Error& thrown) {
      napi_fatal_exception(env, thrown.Value());
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool was_open = listen_fd_ >= 0;
    Shut();
    if (was_open) Unref();
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), listen_fd_); }

  void Shut() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_timer_stop(timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      poll_ = nullptr;
      timer_ = nullptr;
    }
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    if (map_fd_ >= 0) ReleaseMapFd(map_id_);
    map_fd_ = -1;
  }

  int listen_fd_ = -1;
  int map_fd_ = -1;  // the shared duplicate (SharedMapFds), not ours alone
  uint32_t map_id_ = 0;
  uint64_t cookie_ = 0;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  Napi::FunctionReference on_connection_;
  Napi::FunctionReference on_error_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

// resetFd(fd): closes a socket with a reset (SO_LINGER 0), as a refused captured connection is.
Napi::Value ResetFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) return info.Env().Undefined();
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  return info.Env().Undefined();
}

}  // namespace

void InitNetnsAccept(Napi::Env env, Napi::Object exports) {
  exports.Set("CaptureAcceptor", CaptureAcceptor::Define(env));
  exports.Set("resetFd", Napi::Function::New(env, ResetFd));
}

}  // namespace nm
