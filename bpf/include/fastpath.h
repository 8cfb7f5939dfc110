/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The same-node fast path's maps (sockops.c fills the socket map, sk_msg.c redirects): once the
 * destination's policy admitted a same-node connection, the node proxy writes a permit for each
 * direction, and the client app's bytes go straight into the server app's socket (and back)
 * without crossing the node proxy's two sockets.
 *
 * Mirrored byte for byte in native/layout.ts (checked against the BTF by layout.unit.test.ts).
 *
 * A socket is named by its netns cookie and its own 4-tuple, as the socket itself sees it
 * (local = its own address). Captured client sockets all connect to 127.0.0.1:15001 in their own
 * netns, so the 4-tuple alone is not unique on a node; the netns cookie makes it so.
 */
#ifndef NM_FASTPATH_H
#define NM_FASTPATH_H

#include "maps.h"

/* nm_fp_permit.flags */
#define NM_FP_REDIRECT 0x1 /* this socket's bytes go into the peer's receive queue */

struct nm_fp_key {
	__u64 netns_cookie;
	__u8 local_addr[16];  /* IPv6 or IPv4-mapped */
	__u8 remote_addr[16]; /* IPv6 or IPv4-mapped */
	__u32 local_port;     /* host order */
	__u32 remote_port;    /* host order */
};

/*
 * One direction of a connection, keyed by the sending socket. Written by the node proxy (with
 * BPF_NOEXIST) once policy allowed the connection; written by sk_msg.c as a tombstone (flags 0)
 * when the socket sent a byte before that — such a direction stays on the proxy's path for its
 * whole life, so bytes can never overtake the ones the proxy still carries.
 */
struct nm_fp_permit {
	struct nm_fp_key peer; /* where this socket's bytes go */
	__u64 bytes;           /* bytes redirected so far */
	__u32 flags;           /* NM_FP_* */
	__u32 _pad;
};

/* nm_fp_config[0]: 1 once the node proxy attached sk_msg.c to nm_fp_socks (sockops adds sockets
 * only then). */
struct nm_fp_config {
	__u32 enabled;
};

#define NM_FP_MAX_SOCKS 65536

/* The apps' sockets that may take part: captured clients (active, sockops ACTIVE_ESTABLISHED) and
 * sockets accepted from the node proxy's upstream connects (passive, from the pod's own address). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NM_FP_MAX_SOCKS);
	__type(key, struct nm_fp_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_fp_socks SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_FP_MAX_SOCKS);
	__type(key, struct nm_fp_key);
	__type(value, struct nm_fp_permit);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_fp_permits SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nm_fp_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_fp_config SEC(".maps") __weak;

static __always_inline void nm_fp_addr(__u8 out[16], __u32 family, __u32 ip4, const __u32 *ip6)
{
	if (family == AF_INET) {
		nm_addr_from4(out, ip4);
	} else {
		__u32 *w = (__u32 *)out;
		w[0] = ip6[0];
		w[1] = ip6[1];
		w[2] = ip6[2];
		w[3] = ip6[3];
	}
}

#endif
