// BpfObject: a libbpf object opened from an ELF file and loaded into the kernel. Programs and
// maps are listed with borrowed fds (valid until close()); index.ts dups what it hands out.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "errors.h"

namespace nm {
namespace {

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeObject",
                       {InstanceMethod("programs", &NativeObject::Programs), InstanceMethod("maps", &NativeObject::Maps),
                        InstanceMethod("close", &NativeObject::Close)});
  }

  explicit NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
    Napi::Env env = info.Env();
    path_ = info[0].As<Napi::String>();
    std::string pin_root;
    bool has_pin_root = info.Length() > 1 && info[1].IsString();
    if (has_pin_root) pin_root = info[1].As<Napi::String>();

    LibbpfLogReset();
    LIBBPF_OPTS(bpf_object_open_opts, opts);
    if (has_pin_root) opts.pin_root_path = pin_root.c_str();
    obj_ = bpf_object__open_file(path_.c_str(), &opts);
    if (!obj_) {
      int err = errno;
      ThrowErrno(env, err, "open BPF object", path_,
                 err == ENOENT ? "build it with `bash scripts/setup.sh` (make -C bpf)" : LibbpfLogTail(2000));
    }
    if (!has_pin_root) {
      // Without a pin root, maps declared with pinning stay private to this object (libbpf would
      // otherwise pin them under /sys/fs/bpf).
      bpf_map* map;
      bpf_object__for_each_map(map, obj_) bpf_map__set_pin_path(map, nullptr);
    }
    int rc = bpf_object__load(obj_);
    if (rc) {
      int err = -rc;
      std::string hint;
      if ((err == EPERM || err == EACCES) && geteuid() != 0)
        hint = "loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); run as root";
      else if (err == EACCES || err == EINVAL)
        hint = "the kernel refused a program or map (the verifier's reasons are in the log)";
      if (!LibbpfLogTail(1).empty()) hint += (hint.empty() ? "" : "; ") + std::string("libbpf log: ") + LibbpfLogTail(3000);
      bpf_object__close(obj_);
      obj_ = nullptr;
      ThrowErrno(env, err, "load BPF object", path_, hint);
    }
  }

  ~NativeObject() override {
    if (obj_) bpf_object__close(obj_);
  }

 private:
  void EnsureOpen(Napi::Env env) {
    if (!obj_) ThrowErrno(env, EBADF, "use BPF object", path_, "it was closed");
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", bpf_program__name(prog));
      o.Set("section", bpf_program__section_name(prog));
      o.Set("type", ProgTypeName(bpf_program__type(prog)));
      o.Set("expectedAttachType", AttachTypeName(bpf_program__expected_attach_type(prog)));
      o.Set("fd", bpf_program__fd(prog));
      out.Set(i++, o);
    }
    return out;
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureOpen(env);
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    bpf_map* map;
    bpf_object__for_each_map(map, obj_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", bpf_map__name(map));
      o.Set("type", MapTypeName(bpf_map__type(map)));
      o.Set("keySize", bpf_map__key_size(map));
      o.Set("valueSize", bpf_map__value_size(map));
      o.Set("maxEntries", bpf_map__max_entries(map));
      o.Set("fd", bpf_map__fd(map));
      const char* pin = bpf_map__pin_path(map);
      o.Set("pinPath", pin && bpf_map__is_pinned(map) ? Napi::Value(Napi::String::New(env, pin)) : env.Null());
      out.Set(i++, o);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
    return info.Env().Undefined();
  }

  std::string path_;
  bpf_object* obj_ = nullptr;
};

}  // namespace

void InitObject(Napi::Env env, Napi::Object exports) { exports.Set("NativeObject", NativeObject::Define(env)); }

}  // namespace nm
