/*
 * dns.h - (upstream) the resolver: c-ares answers per DNS name, kept for
 * as long as a runtime set uses the name, re-resolved on a thread of its
 * own when their TTL ends.
 *
 * up_set_build() asks for the names of its targets (up_dns_acquire): a name
 * the cache holds a good answer for is taken from it; a name seen for the
 * first time (or never answered) is resolved at once, on the building
 * thread, bounded in time.  up_set_free() releases the names; a name no set
 * uses is forgotten.
 *
 * The resolver thread (up_dns_start) re-resolves every name when its TTL
 * ends, clamped to UP_DNS_TTL_MIN_MS .. UP_DNS_TTL_MAX_MS.  A lookup that
 * fails (SERVFAIL, NXDOMAIN, timeout, no address) keeps the last good
 * addresses and is retried after a back-off (1 s doubling to 30 s).  When a
 * name's address set changes the thread calls the `changed` callback (the
 * gateway re-applies the running document, which rebuilds the set from the
 * cache); nothing here touches a worker.  /etc/hosts is honoured (c-ares
 * reads it before asking servers); the servers are resolv.conf's unless
 * up_dns_servers() names others.
 */
#ifndef SLUICE_UP_DNS_H
#define SLUICE_UP_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UP_DNS_TTL_MIN_MS 1000u
#define UP_DNS_TTL_MAX_MS 300000u
#define UP_DNS_RETRY_MIN_MS 1000u
#define UP_DNS_RETRY_MAX_MS 30000u
#define UP_DNS_MAX_ADDRS 64     /* addresses kept per name */

struct up_dns_name;             /* a cache entry (dns.c) */

/* The servers every lookup from now on asks: a c-ares CSV list
 * ("127.0.0.1:5353,[::1]:53"), or NULL/"" for the system's. */
void up_dns_servers(const char *csv);

/* The answer a set uses: addresses have port 0; n == 0 = no address. */
struct up_dns_answer {
    struct sockaddr_storage a[UP_DNS_MAX_ADDRS];
    socklen_t alen[UP_DNS_MAX_ADDRS];
    size_t n;
    char err[96];               /* why n == 0 */
};

/* Take a reference to names[i] for each i (n names), answering each into
 * out[i]: from the cache, else resolved now (all at once, at most
 * timeout_ms).  ref[i] gets the entry to release (NULL on allocation
 * failure, with out[i].n == 0). */
void up_dns_acquire(const char *const *names, size_t n, int timeout_ms,
                    struct up_dns_answer *out, struct up_dns_name **ref);
void up_dns_release(struct up_dns_name *ref);

/* The resolver thread; changed() runs on it when an answer set changed,
 * and returns 0 when the change was applied (else it is called again 1 s
 * later, until it is).  0 or -1.  Stop before the callback's world goes
 * away. */
int up_dns_start(int (*changed)(void));
void up_dns_stop(void);

/* Lookups done (by builds and the thread), and those that failed (/metrics). */
uint64_t up_dns_lookups(void);
uint64_t up_dns_failures(void);

#endif
