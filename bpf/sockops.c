/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sockops — completes outbound capture. When a redirected connection is established (the
 * client side sees the SYN-ACK, before the node proxy can accept), the original destination
 * recorded by connect4/connect6 under the socket cookie is moved to nm_orig_dst keyed by what
 * the node proxy sees on the accepted socket: (netns cookie, client address, client port).
 *
 * Same-node fast path (include/fastpath.h, sk_msg.c), once the node proxy enabled it: the
 * captured client socket, and every socket accepted from a connection that came from the pod's
 * own address (the node proxy dials the app from there), go into nm_fp_socks — before the app can
 * send a byte. Being there changes nothing until the node proxy writes a permit.
 */
#include "include/common.h"
#include "include/fastpath.h"

static __always_inline int nm_fp_enabled(void)
{
	__u32 zero = 0;
	struct nm_fp_config *c = bpf_map_lookup_elem(&nm_fp_config, &zero);
	return c && c->enabled;
}

static __always_inline void nm_fp_key_of(struct nm_fp_key *k, struct bpf_sock_ops *skops, __u64 netns)
{
	k->netns_cookie = netns;
	nm_fp_addr(k->local_addr, skops->family, skops->local_ip4, skops->local_ip6);
	nm_fp_addr(k->remote_addr, skops->family, skops->remote_ip4, skops->remote_ip6);
	k->local_port = skops->local_port;
	k->remote_port = bpf_ntohl(skops->remote_port);
}

/* An accepted socket whose peer is the pod's own address: possibly the node proxy's upstream. */
static __always_inline void nm_fp_passive(struct bpf_sock_ops *skops)
{
	if (skops->family == AF_INET) {
		if (skops->local_ip4 != skops->remote_ip4)
			return;
	} else if (skops->family == AF_INET6) {
		if (skops->local_ip6[0] != skops->remote_ip6[0] || skops->local_ip6[1] != skops->remote_ip6[1] ||
		    skops->local_ip6[2] != skops->remote_ip6[2] || skops->local_ip6[3] != skops->remote_ip6[3])
			return;
	} else {
		return;
	}
	if (!nm_fp_enabled())
		return;
	struct nm_fp_key k = {};
	nm_fp_key_of(&k, skops, 0);
	struct nm_ip_key ip = {};
	__builtin_memcpy(ip.addr, k.local_addr, 16);
	__u64 *netns = bpf_map_lookup_elem(&nm_workload_ips, &ip);
	if (!netns)
		return;
	k.netns_cookie = *netns;
	bpf_sock_hash_update(skops, &nm_fp_socks, &k, BPF_ANY);
}

SEC("sockops")
int nm_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		nm_fp_passive(skops);
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct nm_pending *p = bpf_map_lookup_elem(&nm_pending, &cookie);
	if (!p)
		return 1;
	struct nm_conn_key k = {};
	k.netns_cookie = p->netns_cookie;
	if (skops->family == AF_INET) {
		nm_addr_from4(k.addr, skops->local_ip4);
	} else {
		__u32 *a = (__u32 *)k.addr;
		a[0] = skops->local_ip6[0];
		a[1] = skops->local_ip6[1];
		a[2] = skops->local_ip6[2];
		a[3] = skops->local_ip6[3];
	}
	k.port = bpf_htons((__u16)skops->local_port);
	struct nm_sockaddr dst = p->dst;
	__u64 netns = p->netns_cookie;
	bpf_map_update_elem(&nm_orig_dst, &k, &dst, BPF_ANY);
	bpf_map_delete_elem(&nm_pending, &cookie);
	if (nm_fp_enabled()) {
		struct nm_fp_key fk = {};
		nm_fp_key_of(&fk, skops, netns);
		bpf_sock_hash_update(skops, &nm_fp_socks, &fk, BPF_ANY);
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
