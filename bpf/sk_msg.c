/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sk_msg — the same-node fast path. Attached to nm_fp_socks (BPF_SK_MSG_VERDICT), so it runs on
 * every send of an app socket sockops.c put there. A socket whose direction the node proxy
 * permitted (nm_fp_permits, after the destination's policy allowed the connection) has its bytes
 * put straight into the peer app socket's receive queue; every other byte takes the normal path
 * through the node proxy.
 *
 * Ordering: a socket that sent a byte before its permit existed gets a tombstone instead (written
 * here with BPF_NOEXIST, so exactly one of the proxy's permit and the tombstone wins), and never
 * redirects: the receiver reads redirected bytes before TCP ones, so a redirect after a byte that
 * is still on its way through the proxy would reorder the stream. Sends of one socket run under
 * its socket lock, so nothing else races with the checks below. If the peer socket is gone (it
 * closed), the direction falls back to the proxy's path for good.
 *
 * Needs bpf_get_netns_cookie in sk_msg programs (Linux 5.15); a separate object from capture.o,
 * so an older kernel refusing it leaves capture alone (the node proxy then splices instead).
 */
#include "include/common.h"
#include "include/fastpath.h"

SEC("sk_msg")
int nm_sk_msg(struct sk_msg_md *msg)
{
	struct nm_fp_key k = {};
	k.netns_cookie = bpf_get_netns_cookie(msg);
	nm_fp_addr(k.local_addr, msg->family, msg->local_ip4, msg->local_ip6);
	nm_fp_addr(k.remote_addr, msg->family, msg->remote_ip4, msg->remote_ip6);
	k.local_port = msg->local_port;
	k.remote_port = bpf_ntohl(msg->remote_port);

	struct nm_fp_permit *p = bpf_map_lookup_elem(&nm_fp_permits, &k);
	if (!p) {
		struct nm_fp_permit tomb = {};
		if (bpf_map_update_elem(&nm_fp_permits, &k, &tomb, BPF_NOEXIST) == 0)
			return SK_PASS;
		p = bpf_map_lookup_elem(&nm_fp_permits, &k); /* the proxy's permit won the race */
		if (!p)
			return SK_PASS;
	}
	if (!(p->flags & NM_FP_REDIRECT))
		return SK_PASS;
	struct nm_fp_key peer = p->peer;
	if (bpf_msg_redirect_hash(msg, &nm_fp_socks, &peer, BPF_F_INGRESS) != SK_PASS) {
		p->flags = 0;
		return SK_PASS;
	}
	__sync_fetch_and_add(&p->bytes, msg->size);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
