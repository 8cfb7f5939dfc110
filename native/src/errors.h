// Errors thrown to JavaScript: an Error with errno, code ('EPERM'), the operation and the object
// it was applied to. native/index.ts turns them into NativeError.
#pragma once
#include <napi.h>
#include <string>

namespace nm {

// Throws (as a C++ exception caught by node-addon-api) an error for a failed system call or
// libbpf call. err is a positive errno.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& op, const std::string& object,
                             const std::string& hint = "");
Napi::Error MakeErrnoError(Napi::Env env, int err, const std::string& op, const std::string& object,
                           const std::string& hint = "");
std::string ErrnoCode(int err);

// libbpf's log (including the verifier's) of the current thread, captured since the last Reset.
void LibbpfLogReset();
std::string LibbpfLogTail(size_t max_bytes);
void InstallLibbpfLog();

}  // namespace nm
