/*
 * addr.h - (core) "host:port" addresses as the config writes them: the
 * targets of upstreams, the listeners and the admin address.
 *
 * Owns: struct cfg_addr and its strings (in a config's arena, or malloc'ed
 * for the callers outside a config, freed by cfg_addr_free).  May call:
 * core/arena, libc.
 */
#ifndef SLUICE_CORE_ADDR_H
#define SLUICE_CORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cfg_mem;

struct cfg_addr {
    char *text;             /* as written, e.g. "127.0.0.1:8080", "[::1]:80", "api.internal:8002" */
    char *host;             /* host part without brackets; for a listener, "localhost"
                               becomes "127.0.0.1" and "*" becomes "0.0.0.0" */
    uint16_t port;
    bool is_ip;             /* host is a literal IPv4/IPv6 address (always true for listeners) */
    struct sockaddr_storage sa;  /* valid when is_ip (or after DNS resolution by the caller) */
    socklen_t salen;
};

/* Parse "host:port" / "[v6]:port" into a (which it zeroes first).  host is
 * an IPv4 literal, a bracketed IPv6 literal, or a DNS name (LDH labels; an
 * all-numeric name must be a valid IPv4 address); port 1..65535.  sa/salen
 * are filled when is_ip.  On success a owns copies (free with
 * cfg_addr_free); on failure a holds nothing and err gets a short message. */
bool cfg_parse_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen);
/* cfg_parse_addr() with the strings in the arena mem (NULL: malloc, as
 * cfg_parse_addr); a failed parse just leaves them there. */
bool cfg_parse_addr_in(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                       struct cfg_mem **mem);
/* An address to bind now, not a name to resolve: only IP literals,
 * "localhost" (127.0.0.1) and the wildcards "*" / "0.0.0.0".  mem as for
 * cfg_parse_addr_in(). */
bool cfg_parse_listen_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                           struct cfg_mem **mem);
/* Free a's strings and NULL them; safe on a zeroed or already freed addr.
 * Only for an address parsed without an arena. */
void cfg_addr_free(struct cfg_addr *a);

/* A DNS host name: LDH labels of 1..63, 253 in all, no trailing dot.
 * A name made only of digits and dots must be a real IPv4 address, so
 * "10.0.0.300" is not silently sent to the resolver. */
bool cfg_valid_hostname(const char *h);

#endif
