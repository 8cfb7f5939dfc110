/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup/connect6 — outbound capture for IPv6 sockets, the twin of connect4.c. An IPv4-mapped
 * destination (::ffff:a.b.c.d, an IPv6 socket talking IPv4) goes to ::ffff:127.0.0.1, anything
 * else to [::1]; the node proxy listens on both.
 */
#include "include/common.h"

SEC("cgroup/connect6")
int nm_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	__u64 netns = bpf_get_netns_cookie(ctx);
	struct nm_workload *wl = bpf_map_lookup_elem(&nm_workloads, &netns);
	if (!wl || !(wl->flags & NM_WL_CAPTURE_OUT))
		return 1;

	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int mapped = w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
	if (mapped && nm_is_loopback4(w3))
		return 1;
	if (w0 == 0 && w1 == 0 && w2 == 0 && (w3 == bpf_htonl(1) || w3 == 0)) /* ::1 and :: */
		return 1;
	if (nm_is_mesh_port(port) || nm_port_excluded(netns, port, NM_DIR_OUT))
		return 1;

	struct nm_pending p = {};
	__u32 *a = (__u32 *)p.dst.addr;
	a[0] = w0;
	a[1] = w1;
	a[2] = w2;
	a[3] = w3;
	if (nm_cidr_excluded(netns, p.dst.addr))
		return 1;
	p.dst.port = (__u16)ctx->user_port;
	p.dst.family = AF_INET6;
	p.netns_cookie = netns;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&nm_pending, &cookie, &p, BPF_ANY);

	if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(wl->outbound_port ? wl->outbound_port : NM_PORT_OUTBOUND);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
