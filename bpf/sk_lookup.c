/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sk_lookup — inbound capture. Attached to an enrolled workload's netns: a TCP connection
 * arriving from outside the netns for one of the workload's addresses (nm_workload_ips), on any
 * port but HBONE (15008) or an excluded inbound port, is handed to the node proxy's inbound
 * listener (15006), which the node proxy put in nm_inbound under that address. The original
 * destination is then the accepted socket's local address. Connections from inside the netns
 * (from loopback or from one of the workload's own addresses: the app itself, or the node proxy
 * connecting to the app from inside the netns) are left alone; so the node proxy must not spoof
 * the client's address when it connects to the app. With no listener registered the connection
 * is dropped, so plaintext never reaches the app around the proxy.
 *
 * sk_lookup programs cannot call bpf_get_netns_cookie, hence the address-keyed maps.
 */
#include "include/common.h"

SEC("sk_lookup")
int nm_sk_lookup(struct bpf_sk_lookup *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;

	struct nm_ip_key ip = {};
	if (ctx->family == AF_INET) {
		nm_addr_from4(ip.addr, ctx->local_ip4);
	} else {
		__u32 *a = (__u32 *)ip.addr;
		a[0] = ctx->local_ip6[0];
		a[1] = ctx->local_ip6[1];
		a[2] = ctx->local_ip6[2];
		a[3] = ctx->local_ip6[3];
	}
	__u64 *netns = bpf_map_lookup_elem(&nm_workload_ips, &ip);
	if (!netns)
		return SK_PASS;
	__u64 cookie = *netns;
	struct nm_workload *wl = bpf_map_lookup_elem(&nm_workloads, &cookie);
	if (!wl || !(wl->flags & NM_WL_CAPTURE_IN))
		return SK_PASS;
	/* From inside the netns: the source is one of the workload's own addresses (the app
	 * calling itself, or the node proxy connecting to the app from inside the netns). Such
	 * packets are routed locally, but inet_iif reports the address's device, not loopback, and
	 * ctx->ingress_ifindex needs Linux 5.17; the source address tells on every kernel. */
	struct nm_ip_key remote = {};
	if (ctx->family == AF_INET) {
		if (nm_is_loopback4(ctx->remote_ip4))
			return SK_PASS;
		nm_addr_from4(remote.addr, ctx->remote_ip4);
	} else {
		if (ctx->remote_ip6[0] == 0 && ctx->remote_ip6[1] == 0 && ctx->remote_ip6[2] == 0 &&
		    ctx->remote_ip6[3] == bpf_htonl(1))
			return SK_PASS;
		__u32 *a = (__u32 *)remote.addr;
		a[0] = ctx->remote_ip6[0];
		a[1] = ctx->remote_ip6[1];
		a[2] = ctx->remote_ip6[2];
		a[3] = ctx->remote_ip6[3];
	}
	__u64 *remote_netns = bpf_map_lookup_elem(&nm_workload_ips, &remote);
	if (remote_netns && *remote_netns == cookie)
		return SK_PASS;

	__u16 port = (__u16)ctx->local_port;
	if (port == NM_PORT_HBONE || nm_port_excluded(cookie, port, NM_DIR_IN))
		return SK_PASS;

	struct bpf_sock *sk = bpf_map_lookup_elem(&nm_inbound, &ip);
	if (!sk)
		return SK_DROP;
	long err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
