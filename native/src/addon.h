// Each source file registers its exports here.
#pragma once
#include <napi.h>

namespace nm {
void InitObject(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);
void InitProbe(Napi::Env env, Napi::Object exports);
void InitSplice(Napi::Env env, Napi::Object exports);
void InitHbone(Napi::Env env, Napi::Object exports);

// Enum lookups by libbpf's names ("cgroup_sock_addr", "cgroup_inet4_connect", "sockhash").
int ProgTypeByName(const std::string& name);    // -1 when unknown
int AttachTypeByName(const std::string& name);  // -1 when unknown
std::string ProgTypeName(int t);
std::string AttachTypeName(int t);
std::string MapTypeName(int t);
}  // namespace nm
