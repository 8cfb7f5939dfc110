#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace nm {

std::string ErrnoCode(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

Napi::Error MakeErrnoError(Napi::Env env, int err, const std::string& op, const std::string& object, const std::string& hint) {
  std::string msg = op + " " + object + ": " + std::strerror(err) + " (" + ErrnoCode(err) + ")";
  if (!hint.empty()) msg += "; " + hint;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, ErrnoCode(err)));
  e.Set("op", Napi::String::New(env, op));
  e.Set("object", Napi::String::New(env, object));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& op, const std::string& object, const std::string& hint) {
  throw MakeErrnoError(env, err, op, object, hint);
}

namespace {
thread_local std::string g_log;
const size_t kLogKeep = 64 * 1024;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[4096];
  int n = vsnprintf(buf, sizeof buf, fmt, args);
  if (n > 0) {
    g_log.append(buf, std::min<size_t>(n, sizeof buf - 1));
    if (g_log.size() > kLogKeep) g_log.erase(0, g_log.size() - kLogKeep);
  }
  return n;
}
}  // namespace

void LibbpfLogReset() { g_log.clear(); }

std::string LibbpfLogTail(size_t max_bytes) {
  if (g_log.size() <= max_bytes) return g_log;
  return "…" + g_log.substr(g_log.size() - max_bytes);
}

void InstallLibbpfLog() { libbpf_set_print(LibbpfPrint); }

}  // namespace nm
