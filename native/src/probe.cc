// Kernel feature probes for `nodemesh doctor` and the node proxy's start-up check.
#include <bpf/libbpf.h>

#include "addon.h"
#include "errors.h"

namespace nm {
namespace {

// probeProgramType(name) -> boolean
Napi::Value ProbeProgramType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>();
  int t = ProgTypeByName(name);
  if (t < 0) throw Napi::TypeError::New(env, "probe program type: unknown type '" + name + "'");
  int rc = libbpf_probe_bpf_prog_type(static_cast<bpf_prog_type>(t), nullptr);
  if (rc < 0) ThrowErrno(env, -rc, "probe program type", name, -rc == EPERM ? "probing needs root" : "");
  return Napi::Boolean::New(env, rc == 1);
}

// probeHelper(progTypeName, helperId) -> boolean
Napi::Value ProbeHelper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>();
  uint32_t helper = info[1].As<Napi::Number>().Uint32Value();
  int t = ProgTypeByName(name);
  if (t < 0) throw Napi::TypeError::New(env, "probe helper: unknown program type '" + name + "'");
  int rc = libbpf_probe_bpf_helper(static_cast<bpf_prog_type>(t), static_cast<bpf_func_id>(helper), nullptr);
  if (rc < 0) ThrowErrno(env, -rc, "probe helper " + std::to_string(helper) + " for program type", name, -rc == EPERM ? "probing needs root" : "");
  return Napi::Boolean::New(env, rc == 1);
}

// probeMapType(name) -> boolean
Napi::Value ProbeMapType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>();
  int t = -1;
  for (int i = 0; i < 256; i++) {
    const char* s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(i));
    if (!s) break;
    if (name == s) {
      t = i;
      break;
    }
  }
  if (t < 0) throw Napi::TypeError::New(env, "probe map type: unknown type '" + name + "'");
  int rc = libbpf_probe_bpf_map_type(static_cast<bpf_map_type>(t), nullptr);
  if (rc < 0) ThrowErrno(env, -rc, "probe map type", name, -rc == EPERM ? "probing needs root" : "");
  return Napi::Boolean::New(env, rc == 1);
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version()));
}

}  // namespace

void InitProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("probeProgramType", Napi::Function::New(env, ProbeProgramType));
  exports.Set("probeHelper", Napi::Function::New(env, ProbeHelper));
  exports.Set("probeMapType", Napi::Function::New(env, ProbeMapType));
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion));
}

}  // namespace nm
