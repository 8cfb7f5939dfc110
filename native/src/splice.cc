// In-kernel splicing of two connected TCP sockets: bytes go socket -> pipe -> socket with
// splice(2) and never enter user space. One thread runs an epoll loop for every spliced pair;
// the event loop only starts a pair, asks for its byte counts, or cuts it.
//
// Semantics are those of common/hbone/splice.ts: a clean end of one direction (EOF) half-closes
// the other side (shutdown SHUT_WR); an abnormal end of either side (error, reset) resets the
// other (SO_LINGER 0 + close -> RST); cut() resets both. When both directions are done the pair's
// fds are closed and the JS callback gets (id, bytesAtoB, bytesBtoA, clean, errorCode).
//
// The fds handed in are owned from then on (the caller passes dups and drops its own). Bytes the
// caller had already read from a side (`prefix`) are sent first, before that direction's splice.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "thread_hint.h"

namespace nm {
namespace {

// Each direction's pipe holds 256 KiB (64 slots): enough for a socket's worth of segments per
// splice(2), and small enough that many connections stay under the kernel's per-user pipe
// budget (fs.pipe-user-pages-soft, 64 MiB by default: with 1 MiB pipes only 32 connections fit
// before an unprivileged owner's new pipes shrink to one page). Emptied pipes of finished
// connections are reused (at most kPoolPipes kept): a new connection then costs no pipe2/fcntl.
constexpr int kPipeSize = 256 << 10;
constexpr size_t kChunk = kPipeSize;
constexpr size_t kPoolPipes = 64;

struct Dir {
  int in = -1;   // read side socket
  int out = -1;  // write side socket
  int pipe_r = -1, pipe_w = -1;
  size_t in_pipe = 0;
  std::string prefix;  // bytes to send before splicing
  size_t prefix_off = 0;
  bool eof = false;       // read side returned 0
  bool finished = false;  // eof seen and everything forwarded, out shut down
  std::atomic<uint64_t> bytes{0};
};

struct Pair {
  uint32_t id = 0;
  int fd[2] = {-1, -1};
  Dir dir[2];  // 0: fd[0] -> fd[1], 1: fd[1] -> fd[0]
  int err = 0;
  bool aborted = false;
  bool done = false;
};

struct Result {
  uint32_t id;
  double a_to_b, b_to_a;
  bool clean;
  int err;
};

class Engine {
 public:
  static Engine& Get() {
    static Engine* e = new Engine();  // lives for the process
    return *e;
  }

  // Called on the JS thread.
  void EnsureCallback(Napi::Env env, Napi::Function dispatch, uint32_t slice_us) {
    std::lock_guard<std::mutex> g(mu_);
    if (started_) return;
    slice_us_ = slice_us;
    tsfn_ = Napi::ThreadSafeFunction::New(env, dispatch, "nodemesh-splice", 0, 1);
    tsfn_.Unref(env);
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || evfd_ < 0) ThrowErrno(env, errno, "create the splice loop", "epoll/eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // 0: the wake-up eventfd
    epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev);
    started_ = true;
    std::thread([this] { Loop(); }).detach();
  }

  uint32_t Start(Napi::Env env, int a, int b, std::string prefix_a, std::string prefix_b) {
    auto p = std::make_shared<Pair>();
    p->fd[0] = a;
    p->fd[1] = b;
    for (int d = 0; d < 2; d++) {
      int fds[2];
      if (!TakePipe(fds)) {
        int e = errno;
        for (int k = 0; k < d; k++) close(p->dir[k].pipe_r), close(p->dir[k].pipe_w);
        ThrowErrno(env, e, "create a splice pipe", "pipe2");
      }
      p->dir[d].pipe_r = fds[0];
      p->dir[d].pipe_w = fds[1];
      p->dir[d].in = p->fd[d];
      p->dir[d].out = p->fd[1 - d];
    }
    p->dir[0].prefix = std::move(prefix_a);
    p->dir[1].prefix = std::move(prefix_b);
    for (int d = 0; d < 2; d++) {
      int fl = fcntl(p->fd[d], F_GETFL);  // most are non-blocking already (accept4, the in-netns connect)
      if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(p->fd[d], F_SETFL, fl | O_NONBLOCK);
    }
    bool wake;
    {
      std::lock_guard<std::mutex> g(mu_);
      p->id = ++next_id_;
      pairs_[p->id] = p;
      wake = commands_.empty();
      commands_.push_back({p->id, false});
    }
    if (wake) Wake();
    return p->id;
  }

  bool Cut(uint32_t id) {
    bool wake;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!pairs_.count(id)) return false;
      wake = commands_.empty();
      commands_.push_back({id, true});
    }
    if (wake) Wake();
    return true;
  }

  bool Bytes(uint32_t id, double* a_to_b, double* b_to_a) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = pairs_.find(id);
    if (it == pairs_.end()) return false;
    *a_to_b = static_cast<double>(it->second->dir[0].bytes.load());
    *b_to_a = static_cast<double>(it->second->dir[1].bytes.load());
    return true;
  }

  size_t Active() {
    std::lock_guard<std::mutex> g(mu_);
    return pairs_.size();
  }

  size_t PooledPipes() {
    std::lock_guard<std::mutex> g(pipes_mu_);
    return free_pipes_.size();
  }

 private:
  struct Command {
    uint32_t id;
    bool cut;
  };

  // An empty pipe from the pool, or a new one sized kPipeSize; false (errno set) when none can be made.
  bool TakePipe(int fds[2]) {
    {
      std::lock_guard<std::mutex> g(pipes_mu_);
      if (!free_pipes_.empty()) {
        fds[0] = free_pipes_.back().first;
        fds[1] = free_pipes_.back().second;
        free_pipes_.pop_back();
        return true;
      }
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);  // best effort (pipe-max-size may be lower)
    return true;
  }

  // Keeps a direction's pipe for the next connection when nothing is left in it, else closes it.
  void GivePipe(Dir& d) {
    if (d.in_pipe == 0) {
      std::lock_guard<std::mutex> g(pipes_mu_);
      if (free_pipes_.size() < kPoolPipes) {
        free_pipes_.emplace_back(d.pipe_r, d.pipe_w);
        d.pipe_r = d.pipe_w = -1;
        return;
      }
    }
    close(d.pipe_r);
    close(d.pipe_w);
    d.pipe_r = d.pipe_w = -1;
  }

  // Written only when the queue was empty (Loop reads the eventfd before it swaps the queue, so a
  // command queued behind others is taken by the wake-up already on its way).
  void Wake() {
    uint64_t one = 1;
    ssize_t r = write(evfd_, &one, sizeof one);
    (void)r;
  }

  // One direction forward as far as it goes now; false on a fatal error (p->err set).
  bool Pump(Pair* p, Dir& d) {
    while (!d.finished) {
      if (d.prefix_off < d.prefix.size()) {
        ssize_t n = send(d.out, d.prefix.data() + d.prefix_off, d.prefix.size() - d.prefix_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) return true;
          p->err = errno;
          return false;
        }
        d.prefix_off += static_cast<size_t>(n);
        d.bytes += static_cast<uint64_t>(n);
        continue;
      }
      if (d.in_pipe > 0) {
        ssize_t n = splice(d.pipe_r, nullptr, d.out, nullptr, d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) return true;
          p->err = errno;
          return false;
        }
        d.in_pipe -= static_cast<size_t>(n);
        d.bytes += static_cast<uint64_t>(n);
        continue;
      }
      if (d.eof) {
        shutdown(d.out, SHUT_WR);
        d.finished = true;
        return true;
      }
      ssize_t n = splice(d.in, nullptr, d.pipe_w, nullptr, kChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        p->err = errno;
        return false;
      }
      if (n == 0) {
        d.eof = true;
        continue;
      }
      d.in_pipe += static_cast<size_t>(n);
    }
    return true;
  }

  static void Reset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }

  void Finish(std::shared_ptr<Pair> p) {
    p->done = true;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, p->fd[0], nullptr);
    epoll_ctl(epfd_, EPOLL_CTL_DEL, p->fd[1], nullptr);
    if (p->aborted) {
      Reset(p->fd[0]);
      Reset(p->fd[1]);
    }
    for (int d = 0; d < 2; d++) {
      close(p->fd[d]);
      GivePipe(p->dir[d]);
    }
    auto* r = new Result{p->id, static_cast<double>(p->dir[0].bytes.load()), static_cast<double>(p->dir[1].bytes.load()), !p->aborted && p->err == 0, p->err};
    {
      std::lock_guard<std::mutex> g(mu_);
      pairs_.erase(p->id);
    }
    napi_status s = tsfn_.NonBlockingCall(r, [](Napi::Env env, Napi::Function fn, Result* r) {
      std::string code = r->err ? ErrnoCode(r->err) : (r->clean ? "" : "reset");
      fn.Call({Napi::Number::New(env, r->id), Napi::Number::New(env, r->a_to_b), Napi::Number::New(env, r->b_to_a), Napi::Boolean::New(env, r->clean),
               Napi::String::New(env, code)});
      delete r;
    });
    if (s != napi_ok) delete r;
  }

  // Pumps the directions in `dirs` (bit d: dir[d]); the others have nothing new to do.
  void Service(std::shared_ptr<Pair> p, unsigned dirs = 3) {
    if (p->done) return;
    bool ok = (!(dirs & 1) || Pump(p.get(), p->dir[0])) && (!(dirs & 2) || Pump(p.get(), p->dir[1]));
    if (!ok) p->aborted = true;
    if (p->aborted || (p->dir[0].finished && p->dir[1].finished)) Finish(p);
  }

  void Loop() {
    SliceHint(slice_us_);
    NameThread("nm-splice");
    std::vector<epoll_event> events(256);
    for (;;) {
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) continue;  // EINTR
      for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        if (tag == 0) {
          uint64_t v;
          ssize_t r = read(evfd_, &v, sizeof v);
          (void)r;
          std::deque<Command> cmds;
          {
            std::lock_guard<std::mutex> g(mu_);
            cmds.swap(commands_);
          }
          for (const Command& c : cmds) {
            std::shared_ptr<Pair> p = Find(c.id);
            if (!p || p->done) continue;
            if (c.cut) {
              p->aborted = true;
              Finish(p);
              continue;
            }
            for (int d = 0; d < 2; d++) {
              epoll_event ev{};
              ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
              ev.data.u64 = (static_cast<uint64_t>(p->id) << 1) | static_cast<uint64_t>(d);
              epoll_ctl(epfd_, EPOLL_CTL_ADD, p->fd[d], &ev);
            }
            Service(p);
          }
          continue;
        }
        std::shared_ptr<Pair> p = Find(static_cast<uint32_t>(tag >> 1));
        if (!p) continue;
        if (events[i].events & EPOLLERR) {
          int e = 0;
          socklen_t len = sizeof e;
          getsockopt(p->fd[tag & 1], SOL_SOCKET, SO_ERROR, &e, &len);
          if (e) {
            p->err = e;
            p->aborted = true;
            Finish(p);
            continue;
          }
        }
        // An event on fd[k] concerns dir[k] when it can be read (or hung up) and dir[1-k], whose
        // output it is, when it can be written: an edge that only says "writable" (every ACK that
        // frees send space) no longer costs a splice that can only say EAGAIN on the other side.
        unsigned k = static_cast<unsigned>(tag & 1);
        unsigned dirs = 0;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) dirs |= 1u << k;
        if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) dirs |= 1u << (1 - k);
        Service(p, dirs);
      }
    }
  }

  std::shared_ptr<Pair> Find(uint32_t id) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = pairs_.find(id);
    return it == pairs_.end() ? nullptr : it->second;
  }

  std::mutex mu_;
  bool started_ = false;
  uint32_t slice_us_ = 0;  // the slice the splice thread asks for (thread_hint.h)
  int epfd_ = -1, evfd_ = -1;
  uint32_t next_id_ = 0;
  std::map<uint32_t, std::shared_ptr<Pair>> pairs_;
  std::deque<Command> commands_;
  std::mutex pipes_mu_;
  std::vector<std::pair<int, int>> free_pipes_;
  Napi::ThreadSafeFunction tsfn_;
};

std::string PrefixArg(const Napi::Value& v) {
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  return std::string();
}

// spliceInit(dispatch(id, aToB, bToA, clean, code), sliceUs?) -> undefined (once per process)
Napi::Value SpliceInit(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "spliceInit(dispatch): expected a function");
  uint32_t slice_us = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  Engine::Get().EnsureCallback(info.Env(), info[0].As<Napi::Function>(), slice_us);
  return info.Env().Undefined();
}

// spliceStart(fdA, fdB, prefixA?, prefixB?) -> id; the fds are owned by the engine from then on
Napi::Value SpliceStart(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "spliceStart(fdA, fdB): expected two fds");
  int a = info[0].As<Napi::Number>().Int32Value();
  int b = info[1].As<Napi::Number>().Int32Value();
  uint32_t id = Engine::Get().Start(info.Env(), a, b, PrefixArg(info[2]), PrefixArg(info[3]));
  return Napi::Number::New(info.Env(), id);
}

// spliceCut(id) -> whether the pair was still open (both sides are reset)
Napi::Value SpliceCut(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Engine::Get().Cut(info[0].As<Napi::Number>().Uint32Value()));
}

// spliceBytes(id) -> [aToB, bToA] or undefined once it has ended
Napi::Value SpliceBytes(const Napi::CallbackInfo& info) {
  double ab = 0, ba = 0;
  if (!Engine::Get().Bytes(info[0].As<Napi::Number>().Uint32Value(), &ab, &ba)) return info.Env().Undefined();
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r.Set(0u, Napi::Number::New(info.Env(), ab));
  r.Set(1u, Napi::Number::New(info.Env(), ba));
  return r;
}

Napi::Value SpliceActive(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Engine::Get().Active()));
}

// splicePooledPipes() -> empty pipes kept for the next spliced connections
Napi::Value SplicePooledPipes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Engine::Get().PooledPipes()));
}

}  // namespace

void InitSplice(Napi::Env env, Napi::Object exports) {
  exports.Set("spliceInit", Napi::Function::New(env, SpliceInit));
  exports.Set("spliceStart", Napi::Function::New(env, SpliceStart));
  exports.Set("spliceCut", Napi::Function::New(env, SpliceCut));
  exports.Set("spliceBytes", Napi::Function::New(env, SpliceBytes));
  exports.Set("spliceActive", Napi::Function::New(env, SpliceActive));
  exports.Set("splicePooledPipes", Napi::Function::New(env, SplicePooledPipes));
}

}  // namespace nm
