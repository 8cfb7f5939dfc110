/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sockops — completes outbound capture. When a redirected connection is established (the
 * client side sees the SYN-ACK, before the node proxy can accept), the original destination
 * recorded by connect4/connect6 under the socket cookie is moved to nm_orig_dst keyed by what
 * the node proxy sees on the accepted socket: (netns cookie, client address, client port).
 */
#include "include/common.h"

SEC("sockops")
int nm_sockops(struct bpf_sock_ops *skops)
{
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
	bpf_map_update_elem(&nm_orig_dst, &k, &dst, BPF_ANY);
	bpf_map_delete_elem(&nm_pending, &cookie);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
