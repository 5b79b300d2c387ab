/*
 * addr.c - config addresses (addr.h).
 *
 * With mem, the strings of an address go into a config's arena (and a
 * failed one just drops them); without, they are malloc'ed for the
 * public cfg_parse_addr() and freed with cfg_addr_free().
 */
#include "addr.h"
#include "arena.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cfg_valid_hostname(const char *h)
{
    /* byte classes: 0 not allowed, 1 letter, 2 digit, 3 '-' ('.' and NUL
     * end a label and are handled first) */
    static const unsigned char cls[256] = {
        ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 2, ['-'] = 3 };
    size_t i = 0, lab = 0;
    bool only_digits = true;
    unsigned char prev = 0;

    /* one pass: the length limit is checked at the end, which gives the
     * same answer as checking it first */
    for (;; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.' || c == '\0') {
            if (lab == 0 || lab > 63 || prev == '-')
                return false;
            if (c == '\0')
                break;
            lab = 0;
            prev = c;
            continue;
        }
        unsigned char k = cls[c];
        if (k == 0 || (k == 3 && lab == 0))
            return false;
        only_digits &= k == 2;
        lab++;
        prev = c;
    }
    if (i > 253)
        return false;
    if (only_digits) {
        struct in_addr a4;
        return inet_pton(AF_INET, h, &a4) == 1;
    }
    return true;
}

static bool addr_fail(struct cfg_addr *a, char *err, size_t errlen, const char *msg,
                      struct cfg_mem **mem)
{
    if (mem)
        a->text = a->host = NULL;
    else
        cfg_addr_free(a);
    if (errlen)
        snprintf(err, errlen, "%s", msg);
    return false;
}

/* Where host and port are in text: NULL, or what is wrong. */
static const char *addr_split(const char *text, const char **host, size_t *hlen,
                              const char **portp, bool *bracketed)
{
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        *host = text + 1;
        *hlen = (size_t)(close - *host);
        if (close[1] == '\0')
            return "missing port (expected [v6]:port)";
        if (close[1] != ':')
            return "expected ':' and a port after ']'";
        *portp = close + 2;
        *bracketed = true;
        return NULL;
    }
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return "missing port (expected host:port)";
    *host = text;
    *hlen = (size_t)(colon - text);
    if (memchr(*host, ':', *hlen))
        return "an IPv6 address must be in brackets, e.g. [::1]:8080";
    if (memchr(*host, '[', *hlen) || memchr(*host, ']', *hlen))
        return "misplaced '[' or ']'";
    *portp = colon + 1;
    return NULL;
}

/* The port 1..65535 of "digits", or 0. */
static unsigned long addr_port(const char *portp)
{
    unsigned long port = 0;

    for (const char *p = portp; *p; p++) {
        if (*p < '0' || *p > '9' || p - portp >= 5)
            return 0;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    return port > 65535 ? 0 : port;
}

/* a->host and a->port are set: fill the socket address of an IP literal,
 * or check the name.  NULL, or what is wrong. */
static const char *addr_resolve_literal(struct cfg_addr *a, bool bracketed)
{
    if (bracketed) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->sa;
        if (inet_pton(AF_INET6, a->host, &s6->sin6_addr) != 1)
            return "not a valid IPv6 address inside [ ]";
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        a->salen = sizeof(*s6);
        a->is_ip = true;
        return NULL;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
    if (inet_pton(AF_INET, a->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        a->salen = sizeof(*s4);
        a->is_ip = true;
        return NULL;
    }
    if (!cfg_valid_hostname(a->host))
        return "host is neither an IP address nor a valid DNS name";
    return NULL;
}

bool cfg_parse_addr_in(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                       struct cfg_mem **mem)
{
    const char *host = NULL, *portp = NULL, *why;
    size_t hlen = 0;
    bool bracketed = false;
    unsigned long port;

    memset(a, 0, sizeof(*a));
    if (text == NULL || *text == '\0')
        return addr_fail(a, err, errlen, "empty address", mem);
    if ((why = addr_split(text, &host, &hlen, &portp, &bracketed)) != NULL)
        return addr_fail(a, err, errlen, why, mem);
    if (hlen == 0)
        return addr_fail(a, err, errlen, "empty host", mem);
    if (*portp == '\0')
        return addr_fail(a, err, errlen, "missing port", mem);
    if ((port = addr_port(portp)) == 0)
        return addr_fail(a, err, errlen, "port must be a number from 1 to 65535", mem);

    a->host = cm_strndup(mem, host, hlen);
    a->port = (uint16_t)port;
    if ((why = addr_resolve_literal(a, bracketed)) != NULL)
        return addr_fail(a, err, errlen, why, mem);
    a->text = cm_strdup(mem, text);
    return true;
}

bool cfg_parse_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen)
{
    return cfg_parse_addr_in(text, a, err, errlen, NULL);
}

void cfg_addr_free(struct cfg_addr *a)
{
    free(a->text);
    free(a->host);
    a->text = a->host = NULL;
}

/* "*:port" is "0.0.0.0:port", written as given. */
static bool listen_any(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                       struct cfg_mem **mem)
{
    size_t n = strlen(text) + 8;
    char *buf = xmalloc(n);
    bool ok;

    snprintf(buf, n, "0.0.0.0%s", text + 1);
    ok = cfg_parse_addr_in(buf, a, err, errlen, mem);
    free(buf);
    if (ok) {
        if (!mem)
            free(a->text);
        a->text = cm_strdup(mem, text);
    }
    return ok;
}

bool cfg_parse_listen_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                           struct cfg_mem **mem)
{
    if (text[0] == '*' && text[1] == ':')
        return listen_any(text, a, err, errlen, mem);
    if (!cfg_parse_addr_in(text, a, err, errlen, mem))
        return false;
    if (a->is_ip)
        return true;
    if (strcasecmp(a->host, "localhost") == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->salen = sizeof(*s4);
        a->is_ip = true;
        if (!mem)
            free(a->host);
        a->host = cm_strdup(mem, "127.0.0.1");
        return true;
    }
    return addr_fail(a, err, errlen,
                     "a listener host must be an IP address, localhost or *", mem);
}
