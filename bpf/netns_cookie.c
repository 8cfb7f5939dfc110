/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netns_cookie — the netns cookie of a network namespace on kernels without SO_NETNS_COOKIE
 * (Linux 5.10–5.13). Not part of capture.o: the native addon loads it on its own, attaches it
 * for a moment to its own cgroup, has its netns worker thread (which lives in the namespace
 * asked about) bind a fresh TCP socket to the probe address 127.255.90.1:1, and reads the cookie
 * this program recorded under the socket's cookie. bpf_get_netns_cookie in cgroup_sock_addr
 * programs and bpf_get_socket_cookie there exist since 5.7 (see native/netns-cookie.ts).
 *
 * Only a bind to exactly the probe address is recorded, and it is refused (EPERM) so that it
 * leaves no bound socket behind; every other bind passes untouched.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NM_PROBE_ADDR 0x7fff5a01 /* 127.255.90.1 */
#define NM_PROBE_PORT 1

/* socket cookie -> netns cookie; private to each load (not pinned) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} nm_netns_probe SEC(".maps");

SEC("cgroup/bind4")
int nm_netns_probe4(struct bpf_sock_addr *ctx)
{
	if (ctx->user_ip4 != bpf_htonl(NM_PROBE_ADDR) || ctx->user_port != bpf_htons(NM_PROBE_PORT))
		return 1;
	__u64 sk = bpf_get_socket_cookie(ctx);
	__u64 ns = bpf_get_netns_cookie(ctx);
	bpf_map_update_elem(&nm_netns_probe, &sk, &ns, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
