// What the addon's data-path threads (the HBONE engine's, the splice thread) tell the kernel about
// themselves: a name, for per-thread counts (top -H, /proc/PID/task, bench/support/proc-threads.ts),
// and the CPU slice they ask for (docs/hbone.md, "Latency: the slice the engine asks for").
#pragma once

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace nm {

inline void NameThread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

// Asks the scheduler for a slice of `us` microseconds for the calling thread (sched_setattr with
// SCHED_OTHER and sched_runtime; its nice value kept). Since Linux 6.12 the fair scheduler (EEVDF)
// takes sched_runtime as the slice the thread wants (clamped to 0.1-100 ms): a thread that runs a
// few microseconds per wake-up and asks for a short slice gets an earlier deadline, so when it is
// woken on a CPU that runs something else it runs next instead of waiting for that task's slice
// (up to ~3 ms on this scale) to end. Older kernels ignore sched_runtime for SCHED_OTHER; a refusal
// changes nothing. 0: leave the thread as it is.
inline void SliceHint(uint32_t us) {
  if (us == 0) return;
  struct {
    uint32_t size;
    uint32_t policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
  } attr{};
  attr.size = sizeof attr;  // SCHED_ATTR_SIZE_VER0 (48)
  attr.policy = 0;          // SCHED_OTHER
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  if (errno) return;
  attr.nice = nice;  // sched_setattr sets the nice value too: the thread's own is kept (a node proxy run under nice stays there)
  attr.runtime = static_cast<uint64_t>(us) * 1000;
  syscall(SYS_sched_setattr, tid, &attr, 0u);
}

}  // namespace nm
