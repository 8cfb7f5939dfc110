// The nodemesh native addon: libbpf objects, maps, programs and links; sockets inside another
// network namespace; kernel feature probes. Typed wrapper: native/index.ts.
#include "addon.h"

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "errors.h"

namespace nm {

int ProgTypeByName(const std::string& name) {
  for (int t = 0; t < 256; t++) {
    const char* s = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(t));
    if (!s) break;
    if (name == s) return t;
  }
  return -1;
}

int AttachTypeByName(const std::string& name) {
  for (int t = 0; t < 256; t++) {
    const char* s = libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(t));
    if (!s) break;
    if (name == s) return t;
  }
  return -1;
}

std::string ProgTypeName(int t) {
  const char* s = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(t));
  return s ? s : "unknown(" + std::to_string(t) + ")";
}

std::string AttachTypeName(int t) {
  const char* s = libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(t));
  return s ? s : "unknown(" + std::to_string(t) + ")";
}

std::string MapTypeName(int t) {
  const char* s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(t));
  return s ? s : "unknown(" + std::to_string(t) + ")";
}

}  // namespace nm

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  nm::InstallLibbpfLog();
  nm::InitObject(env, exports);
  nm::InitMap(env, exports);
  nm::InitFd(env, exports);
  nm::InitNetns(env, exports);
  nm::InitProbe(env, exports);
  nm::InitSplice(env, exports);
  nm::InitHbone(env, exports);
  return exports;
}

NODE_API_MODULE(nodemesh_native, Init)
