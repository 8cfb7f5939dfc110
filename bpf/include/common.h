/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers the capture programs share: address tests and the exclusion lookups. */
#ifndef NM_COMMON_H
#define NM_COMMON_H

#include <linux/in.h>
#include <linux/in6.h>
#include <linux/socket.h>
#include <bpf/bpf_endian.h>
#include "maps.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif

/* The mesh ports, as common/contracts/ports.ts defines them (common/contracts/contracts.unit.test.ts checks this copy). */
#define NM_PORT_OUTBOUND 15001
#define NM_PORT_INBOUND 15006
#define NM_PORT_HBONE 15008
#define NM_PORT_ADMIN 15000
#define NM_PORT_METRICS 15020
#define NM_PORT_READY 15021

static __always_inline int nm_is_mesh_port(__u16 port)
{
	return port == NM_PORT_OUTBOUND || port == NM_PORT_INBOUND || port == NM_PORT_HBONE ||
	       port == NM_PORT_ADMIN || port == NM_PORT_METRICS || port == NM_PORT_READY;
}

/* 127.0.0.0/8 or 0.0.0.0 (which connect() treats as this host); ip is in network order. */
static __always_inline int nm_is_loopback4(__u32 ip)
{
	return (bpf_ntohl(ip) >> 24) == 127 || ip == 0;
}

static __always_inline void nm_addr_from4(__u8 addr[16], __u32 ip)
{
	__u32 *w = (__u32 *)addr;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0xffff);
	w[3] = ip;
}

static __always_inline int nm_port_excluded(__u64 netns, __u16 port, __u8 dir)
{
	struct nm_port_key k = {};
	k.netns_cookie = netns;
	k.port = port;
	k.direction = dir;
	return bpf_map_lookup_elem(&nm_excl_ports, &k) != NULL;
}

static __always_inline int nm_cidr_excluded(__u64 netns, const __u8 addr[16])
{
	struct nm_cidr_key k = {};
	k.prefixlen = 64 + 128;
	__builtin_memcpy(k.netns_cookie, &netns, 8);
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&nm_excl_cidrs, &k) != NULL;
}

#endif
