// NativeMap: one BPF map by fd (owned). Keys and values are Buffers whose sizes are checked
// against the map's own key/value size, so a wrong layout fails loudly instead of corrupting.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "errors.h"

namespace nm {
namespace {

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

class NativeMap : public Napi::ObjectWrap<NativeMap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeMap",
                       {InstanceMethod("info", &NativeMap::Info), InstanceMethod("lookup", &NativeMap::Lookup),
                        InstanceMethod("update", &NativeMap::Update), InstanceMethod("delete", &NativeMap::Delete),
                        InstanceMethod("nextKey", &NativeMap::NextKey), InstanceMethod("fd", &NativeMap::Fd),
                        InstanceMethod("attachProgram", &NativeMap::AttachProgram), InstanceMethod("close", &NativeMap::Close)});
  }

  // new NativeMap(fd, label): takes ownership of fd.
  explicit NativeMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeMap>(info) {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    label_ = info.Length() > 1 && info[1].IsString() ? std::string(info[1].As<Napi::String>()) : "fd " + std::to_string(fd_);
    bpf_map_info mi;
    std::memset(&mi, 0, sizeof mi);
    uint32_t len = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd_, &mi, &len)) {
      int err = errno;
      close(fd_);
      fd_ = -1;
      ThrowErrno(env, err, "get info of BPF map", label_, err == EINVAL ? "the fd or pin is not a BPF map" : "");
    }
    info_ = mi;
    value_len_ = mi.value_size;
    if (IsPerCpu(mi.type)) {
      int cpus = libbpf_num_possible_cpus();
      value_len_ = ((mi.value_size + 7) / 8 * 8) * (cpus > 0 ? cpus : 1);
    }
    if (mi.name[0]) label_ = std::string("'") + mi.name + "' (" + label_ + ")";
  }

  ~NativeMap() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  void EnsureOpen(Napi::Env env) {
    if (fd_ < 0) ThrowErrno(env, EBADF, "use BPF map", label_, "it was closed");
  }

  const uint8_t* KeyArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
    if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), std::string(op) + " BPF map " + label_ + ": key must be a Buffer");
    auto b = info[i].As<Napi::Buffer<uint8_t>>();
    if (b.Length() != info_.key_size)
      throw Napi::RangeError::New(info.Env(), std::string(op) + " BPF map " + label_ + ": key is " + std::to_string(b.Length()) +
                                                  " bytes, the map's key size is " + std::to_string(info_.key_size));
    return b.Data();
  }

  // attachProgram(progFd, attachType): attaches a program to this (sockmap/sockhash) map, e.g.
  // 'sk_msg_verdict'. The map holds it (a pinned map keeps it attached); attaching again replaces it.
  Napi::Value AttachProgram(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    int prog_fd = info[0].As<Napi::Number>().Int32Value();
    std::string attach = info[1].As<Napi::String>();
    int at = AttachTypeByName(attach);
    if (at < 0) throw Napi::TypeError::New(env, "attach to BPF map " + label_ + ": unknown attach type '" + attach + "'");
    if (bpf_prog_attach(prog_fd, fd_, static_cast<bpf_attach_type>(at), 0))
      ThrowErrno(env, errno, "attach a program (" + attach + ") to BPF map", label_,
                 errno == EINVAL ? "the map is not a sockmap/sockhash, or the program type does not fit " + attach : "");
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", info_.name);
    o.Set("id", info_.id);
    o.Set("type", MapTypeName(info_.type));
    o.Set("keySize", info_.key_size);
    o.Set("valueSize", info_.value_size);
    o.Set("valueBufferSize", static_cast<uint32_t>(value_len_));
    o.Set("maxEntries", info_.max_entries);
    o.Set("flags", info_.map_flags);
    return o;
  }

  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    const uint8_t* key = KeyArg(info, 0, "lookup in");
    auto value = Napi::Buffer<uint8_t>::New(env, value_len_);
    if (bpf_map_lookup_elem(fd_, key, value.Data())) {
      int err = errno;
      if (err == ENOENT) return env.Undefined();
      ThrowErrno(env, err, "lookup in BPF map", label_);
    }
    return value;
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    const uint8_t* key = KeyArg(info, 0, "update");
    if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "update BPF map " + label_ + ": value must be a Buffer");
    auto v = info[1].As<Napi::Buffer<uint8_t>>();
    if (v.Length() != value_len_)
      throw Napi::RangeError::New(env, "update BPF map " + label_ + ": value is " + std::to_string(v.Length()) +
                                           " bytes, the map's value size is " + std::to_string(value_len_));
    uint64_t flags = info.Length() > 2 && info[2].IsNumber() ? static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value()) : static_cast<uint64_t>(BPF_ANY);
    if (bpf_map_update_elem(fd_, key, v.Data(), flags)) {
      int err = errno;
      std::string hint;
      if (err == E2BIG) hint = "the map is full (" + std::to_string(info_.max_entries) + " entries)";
      if (err == EEXIST) hint = "the key exists and the update asked for a new key only";
      if (err == ENOENT && flags == BPF_EXIST) hint = "the key does not exist and the update asked for an existing key only";
      ThrowErrno(env, err, "update BPF map", label_, hint);
    }
    return env.Undefined();
  }

  Napi::Value Delete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    const uint8_t* key = KeyArg(info, 0, "delete from");
    if (bpf_map_delete_elem(fd_, key)) {
      int err = errno;
      if (err == ENOENT) return Napi::Boolean::New(env, false);
      ThrowErrno(env, err, "delete from BPF map", label_);
    }
    return Napi::Boolean::New(env, true);
  }

  // nextKey(undefined) -> first key; nextKey(k) -> the key after k; undefined at the end.
  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    const uint8_t* key = info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull() ? KeyArg(info, 0, "iterate") : nullptr;
    auto next = Napi::Buffer<uint8_t>::New(env, info_.key_size);
    if (bpf_map_get_next_key(fd_, key, next.Data())) {
      int err = errno;
      if (err == ENOENT) return env.Undefined();
      ThrowErrno(env, err, "iterate BPF map", label_);
    }
    return next;
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

  int fd_ = -1;
  std::string label_;
  bpf_map_info info_;
  size_t value_len_ = 0;
};

}  // namespace

void InitMap(Napi::Env env, Napi::Object exports) { exports.Set("NativeMap", NativeMap::Define(env)); }

}  // namespace nm
