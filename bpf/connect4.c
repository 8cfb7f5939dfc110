/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup/connect4 — outbound capture for IPv4. Attached to an enrolled workload's cgroup: a TCP
 * connect() to anything but loopback, a mesh port or an excluded port/CIDR is rewritten to the
 * node proxy's outbound listener (127.0.0.1:15001) in the workload's netns, and the original
 * destination is recorded under the socket's cookie (sockops.c re-keys it once established).
 * No listener there means the connect() is refused: plaintext never leaves unproxied.
 */
#include "include/common.h"

SEC("cgroup/connect4")
int nm_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	__u64 netns = bpf_get_netns_cookie(ctx);
	struct nm_workload *wl = bpf_map_lookup_elem(&nm_workloads, &netns);
	if (!wl || !(wl->flags & NM_WL_CAPTURE_OUT))
		return 1;

	__u32 ip = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if (nm_is_loopback4(ip) || nm_is_mesh_port(port) || nm_port_excluded(netns, port, NM_DIR_OUT))
		return 1;
	struct nm_pending p = {};
	nm_addr_from4(p.dst.addr, ip);
	if (nm_cidr_excluded(netns, p.dst.addr))
		return 1;
	p.dst.port = (__u16)ctx->user_port;
	p.dst.family = AF_INET;
	p.netns_cookie = netns;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&nm_pending, &cookie, &p, BPF_ANY);

	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(wl->outbound_port ? wl->outbound_port : NM_PORT_OUTBOUND);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
