// Operations on BPF fds: pin / get from the bpffs, program and link info, bpf_link creation
// (cgroup and netns attach points) and detach; socket options Node lacks.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <malloc.h>
#include <v8.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "errors.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace nm {
namespace {

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected a file descriptor (number)");
  return info[i].As<Napi::Number>().Int32Value();
}

std::string PinHint(int err) {
  if (err == EEXIST) return "something is already pinned there; unpin it first or open it with fromPin";
  if (err == ENOENT) return "the parent directory does not exist or nothing is pinned there";
  if (err == EPERM || err == EINVAL)
    return "the path must be inside a bpffs mount (mount -t bpf bpf /sys/fs/bpf) and this needs root";
  return "";
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(info.Env(), errno, "open pinned BPF object", path, PinHint(errno));
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  std::string path = info[1].As<Napi::String>();
  if (bpf_obj_pin(fd, path.c_str())) ThrowErrno(info.Env(), errno, "pin BPF object at", path, PinHint(errno));
  return info.Env().Undefined();
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// reduceMemory() -> boolean: what V8 does when the system runs low on memory (full collections
// that compact the heap and shrink the young generation, LowMemoryNotification), then the C heap's
// free memory back to the system (glibc malloc_trim: the free pages of every thread's arena, not
// only the top); true when malloc_trim gave some back. The node proxy calls it once a burst is over
// (node-proxy/mesh/idle-gc.ts). Main thread only (the isolate of the calling JS).
Napi::Value ReduceMemory(const Napi::CallbackInfo& info) {
  if (v8::Isolate* isolate = v8::Isolate::GetCurrent()) isolate->LowMemoryNotification();
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// holdMallocThresholds(bytes) -> boolean: fixes glibc's mmap and trim thresholds at BYTES
// (mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), which also stops glibc from raising them by
// itself. Left dynamic, the first freed mmapped block (a 256 KiB HBONE receive buffer, a 512 KiB
// ciphertext buffer) lifts the mmap threshold to its size and the trim threshold to twice that;
// from then on such buffers come from the engine threads' arenas, and a thread arena keeps up to
// the trim threshold of free memory at its top resident after they are freed: malloc_trim()
// returns only the free pages inside a thread arena's bins, never its top. Held at 128 KiB, large
// buffers are mmapped and unmapped again, and an arena's top gives back all but 128 KiB. Call it
// at start-up, before the threads allocate. False when glibc refused a value (or not glibc).
Napi::Value HoldMallocThresholds(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "holdMallocThresholds(bytes): bytes must be a number");
  int64_t bytes = info[0].As<Napi::Number>().Int64Value();
  if (bytes < 4096 || bytes > (32 << 20)) throw Napi::RangeError::New(info.Env(), "holdMallocThresholds(bytes): bytes must be 4096..33554432");
#ifdef __GLIBC__
  bool ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes)) == 1 && ok;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// mallocStats() -> { arenaBytes, inUseBytes, freeBytes, mmappedBytes } | undefined: the C heap
// over every arena (glibc mallinfo2): memory the arenas hold from the system, the part allocated,
// the part free but kept, and the blocks mmapped on their own. undefined without glibc >= 2.33.
Napi::Value MallocStats(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("arenaBytes", Napi::Number::New(info.Env(), static_cast<double>(mi.arena)));
  o.Set("inUseBytes", Napi::Number::New(info.Env(), static_cast<double>(mi.uordblks)));
  o.Set("freeBytes", Napi::Number::New(info.Env(), static_cast<double>(mi.fordblks)));
  o.Set("mmappedBytes", Napi::Number::New(info.Env(), static_cast<double>(mi.hblkhd)));
  return o;
#else
  return info.Env().Undefined();
#endif
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (nfd < 0) ThrowErrno(info.Env(), errno, "dup", "fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), nfd);
}

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  bpf_prog_info pi;
  std::memset(&pi, 0, sizeof pi);
  uint32_t len = sizeof pi;
  if (bpf_obj_get_info_by_fd(fd, &pi, &len))
    ThrowErrno(env, errno, "get info of BPF program", "fd " + std::to_string(fd), "the fd or pin is not a BPF program");
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", pi.name);
  o.Set("id", pi.id);
  o.Set("type", ProgTypeName(pi.type));
  char tag[17];
  for (int i = 0; i < 8; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  o.Set("tag", std::string(tag, 16));
  return o;
}

Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  bpf_link_info li;
  std::memset(&li, 0, sizeof li);
  uint32_t len = sizeof li;
  if (bpf_obj_get_info_by_fd(fd, &li, &len))
    ThrowErrno(env, errno, "get info of BPF link", "fd " + std::to_string(fd), "the fd or pin is not a BPF link");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", li.id);
  o.Set("progId", li.prog_id);
  o.Set("type", li.type);
  if (li.type == BPF_LINK_TYPE_CGROUP) {
    o.Set("cgroupId", Napi::BigInt::New(env, static_cast<uint64_t>(li.cgroup.cgroup_id)));
    o.Set("attachType", AttachTypeName(li.cgroup.attach_type));
  } else if (li.type == BPF_LINK_TYPE_NETNS) {
    o.Set("netnsIno", li.netns.netns_ino);
    o.Set("attachType", AttachTypeName(li.netns.attach_type));
  }
  return o;
}

// linkCreate(progFd, targetPath, attachType, label) -> link fd. The target is a cgroup v2
// directory or a netns file (/proc/<pid>/ns/net, /run/netns/<name>).
Napi::Value LinkCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = FdArg(info, 0);
  std::string target = info[1].As<Napi::String>();
  std::string attach = info[2].As<Napi::String>();
  std::string label = info[3].As<Napi::String>();
  int at = AttachTypeByName(attach);
  if (at < 0) throw Napi::TypeError::New(env, "attach " + label + ": unknown attach type '" + attach + "'");
  int tfd = open(target.c_str(), O_RDONLY | O_CLOEXEC);
  if (tfd < 0) ThrowErrno(env, errno, "open attach target", target);
  LibbpfLogReset();
  int lfd = bpf_link_create(prog_fd, tfd, static_cast<bpf_attach_type>(at), nullptr);
  int err = errno;
  close(tfd);
  if (lfd < 0) {
    std::string hint;
    if (err == EINVAL) hint = "the program type does not fit attach type " + attach + ", or the target is not a cgroup v2 directory / netns file";
    if (err == EPERM) hint = "attaching needs root (CAP_NET_ADMIN, CAP_BPF)";
    if (err == EBADF) hint = "the target is not a cgroup v2 directory or a netns file";
    ThrowErrno(env, err, "attach " + label + " (" + attach + ") to", target, hint);
  }
  return Napi::Number::New(env, lfd);
}

Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  if (bpf_link_detach(fd)) ThrowErrno(info.Env(), errno, "detach BPF link", "fd " + std::to_string(fd));
  return info.Env().Undefined();
}

Napi::Value SocketCookie(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
    ThrowErrno(info.Env(), errno, "read SO_COOKIE of", "socket fd " + std::to_string(fd));
  return Napi::BigInt::New(info.Env(), cookie);
}

Napi::Value SocketNetnsCookie(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
    ThrowErrno(info.Env(), errno, "read SO_NETNS_COOKIE of", "socket fd " + std::to_string(fd), errno == ENOPROTOOPT ? "needs Linux >= 5.14" : "");
  return Napi::BigInt::New(info.Env(), cookie);
}

Napi::Value SetMark(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint32_t mark = info[1].As<Napi::Number>().Uint32Value();
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark))
    ThrowErrno(info.Env(), errno, "set SO_MARK on", "socket fd " + std::to_string(fd), errno == EPERM ? "needs CAP_NET_ADMIN" : "");
  return info.Env().Undefined();
}

// Reserves `bytes` of kernel send buffer for a socket (setSendBuffer in native/netns.ts says why):
// SO_SNDBUFFORCE (CAP_NET_ADMIN, beyond net.core.wmem_max), else SO_SNDBUF (capped at wmem_max).
// Returns the send buffer the kernel granted (getsockopt: twice the request, for its bookkeeping).
Napi::Value SetSendBuffer(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int bytes = info[1].As<Napi::Number>().Int32Value();
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes)) {
    if (errno != EPERM || setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes))
      ThrowErrno(info.Env(), errno, "set SO_SNDBUF on", "socket fd " + std::to_string(fd));
  }
  int granted = 0;
  socklen_t len = sizeof granted;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &granted, &len)) ThrowErrno(info.Env(), errno, "read SO_SNDBUF of", "socket fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), granted);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("objGet", Napi::Function::New(env, ObjGet));
  exports.Set("objPin", Napi::Function::New(env, ObjPin));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("dupFd", Napi::Function::New(env, DupFd));
  exports.Set("reduceMemory", Napi::Function::New(env, ReduceMemory));
  exports.Set("holdMallocThresholds", Napi::Function::New(env, HoldMallocThresholds));
  exports.Set("mallocStats", Napi::Function::New(env, MallocStats));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo));
  exports.Set("linkCreate", Napi::Function::New(env, LinkCreate));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach));
  exports.Set("socketCookie", Napi::Function::New(env, SocketCookie));
  exports.Set("socketNetnsCookie", Napi::Function::New(env, SocketNetnsCookie));
  exports.Set("setSendBuffer", Napi::Function::New(env, SetSendBuffer));
  exports.Set("setMark", Napi::Function::New(env, SetMark));
}

}  // namespace nm
