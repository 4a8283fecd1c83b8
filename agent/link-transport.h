/*
 * The link's transport choices that are plain data (pure: tests/unit/test-link-transport):
 * the request headers a sync sends, and the TCP congestion control name, checked against
 * what the kernel offers. link.c applies them to curl and to the socket.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define LINK_TCP_CONGESTION_MAX 15 /* the kernel's TCP_CA_NAME_MAX (16) less the NUL */
/* Leaves the socket with the kernel's default (net.ipv4.tcp_congestion_control). */
#define LINK_TCP_CONGESTION_KERNEL "default"
/*
 * BBR paces by the measured bottleneck rate and round trip rather than halving on each
 * loss: at 10% random loss and 1.5 s RTT it keeps the 256 kbit/s link busy where Reno and
 * CUBIC carry a tenth of it (docs/protocol.md, "Transport"). Sender side only: the
 * controller needs nothing for it.
 */
#define LINK_TCP_CONGESTION_DEFAULT "bbr"

/*
 * The headers of a sync request, NULL-terminated, for curl_slist_append. Only what the
 * controller reads, plus the removal of what curl would add on its own: "Accept" of any type
 * and "Content-Type" (the bodies of the sync route are JSON, always: 32 bytes a request
 * saved, or 50 of curl's form type), and "Expect: 100-continue" (a round trip of 1.5 s
 * before a body over 1 MiB, or a second wait when a server ignores it). curl sends no
 * User-Agent unless asked.
 */
extern const char *const link_request_headers[];

/* Pure: whether name can be a congestion control name (1-15 of a-z 0-9 _ -) or "default". */
bool link_tcp_congestion_name_is_valid(const char *name);

/*
 * Pure: whether name is in offered, the text of
 * /proc/sys/net/ipv4/tcp_available_congestion_control (names separated by blanks).
 */
bool link_tcp_congestion_offered(const char *offered, const char *name);
