/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every map the capture programs share, and the layout of every key and value.
 *
 * These structs are mirrored byte for byte in native/layout.ts; native/layout.unit.test.ts compares
 * the two against the BTF of the built objects. Change both together.
 *
 * Conventions:
 *  - A workload is identified by the cookie of its network namespace (SO_NETNS_COOKIE /
 *    bpf_get_netns_cookie): the programs run in the workload's cgroup or netns and the node proxy
 *    opens its listeners in that netns, so the netns is the unit both sides agree on.
 *  - Addresses are 16 bytes: IPv6, or IPv4 as an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
 *  - Ports in nm_sockaddr and nm_conn_key are in network byte order; nm_port_key.port is in
 *    host byte order (it is compared with values the operator wrote).
 *
 * Every map is pinned by name (LIBBPF_PIN_BY_NAME): loading the objects with a pin root such as
 * /sys/fs/bpf/nodemesh/<node> shares and keeps the maps across node proxy restarts.
 */
#ifndef NM_MAPS_H
#define NM_MAPS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* nm_workload.flags */
#define NM_WL_CAPTURE_OUT 0x1 /* redirect outbound TCP connects to the outbound listener */
#define NM_WL_CAPTURE_IN 0x2  /* steer inbound TCP to the inbound listener (sk_lookup) */

/* nm_port_key.direction */
#define NM_DIR_OUT 1
#define NM_DIR_IN 2

/* Per-workload capture configuration. Key: netns cookie (__u64). */
struct nm_workload {
	__u32 flags;         /* NM_WL_* */
	__u16 outbound_port; /* host order; the proxy's outbound listener (0 = 15001) */
	__u16 _pad;
};

/* An excluded port of one workload. Value: __u8 (1). */
struct nm_port_key {
	__u64 netns_cookie;
	__u16 port;     /* host order */
	__u8 direction; /* NM_DIR_* */
	__u8 _pad[5];
};

/* An excluded destination CIDR of one workload (LPM trie). Value: __u8 (1).
 * prefixlen counts the netns cookie too: 64 + 96 + v4 prefix, or 64 + v6 prefix. */
struct nm_cidr_key {
	__u32 prefixlen;
	__u8 netns_cookie[8]; /* the cookie's bytes as stored by a __u64 on this host */
	__u8 addr[16];
};

/* An endpoint address. */
struct nm_sockaddr {
	__u8 addr[16]; /* IPv6 or IPv4-mapped */
	__u16 port;    /* network order */
	__u16 family;  /* AF_INET or AF_INET6: the family the application connected with */
};

/* The original destination of a connect() that was redirected, until the connection is
 * established. Key: socket cookie (__u64) of the application's socket. */
struct nm_pending {
	struct nm_sockaddr dst;
	__u32 _pad;
	__u64 netns_cookie;
};

/* The established connection's client end, as the node proxy sees it on the accepted socket
 * (remoteAddress, remotePort) in the workload's netns. Value: struct nm_sockaddr (the original
 * destination). */
struct nm_conn_key {
	__u64 netns_cookie;
	__u8 addr[16]; /* the application's source address, IPv4-mapped for IPv4 */
	__u16 port;    /* the application's source port, network order */
	__u16 _pad[3];
};

#define NM_MAX_WORKLOADS 4096
#define NM_MAX_CONNS 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_MAX_WORKLOADS);
	__type(key, __u64);
	__type(value, struct nm_workload);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_workloads SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_MAX_WORKLOADS * 8);
	__type(key, struct nm_port_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_excl_ports SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NM_MAX_WORKLOADS * 8);
	__type(key, struct nm_cidr_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_excl_cidrs SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct nm_pending);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_pending SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_MAX_CONNS);
	__type(key, struct nm_conn_key);
	__type(value, struct nm_sockaddr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_orig_dst SEC(".maps") __weak;

/* An address of an enrolled workload (sk_lookup cannot learn its netns, so inbound capture
 * works from the destination address; workload addresses are unique on a node). */
struct nm_ip_key {
	__u8 addr[16]; /* IPv6 or IPv4-mapped */
};

/* Which workload owns a local address. Key: struct nm_ip_key; value: its netns cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_MAX_WORKLOADS * 4);
	__type(key, struct nm_ip_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_workload_ips SEC(".maps") __weak;

/* The node proxy's inbound (15006) listener for each workload address. Key: struct nm_ip_key;
 * value: the listening socket (written from user space as its fd). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NM_MAX_WORKLOADS * 4);
	__type(key, struct nm_ip_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_inbound SEC(".maps") __weak;

#endif
