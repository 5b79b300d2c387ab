/*
 * hash.h - (core) the FNV-1a hash used by the name and address indexes (config
 * names, stats names, admin aggregation, pool buckets).  None of them is
 * exposed to untrusted keys in a way that matters: config and address keys
 * come from the operator.
 *
 * Owns: nothing but the two functions.  May call: nothing.
 */
#ifndef SLUICE_HASH_H
#define SLUICE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t gw_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;

    while (n--)
        h = (h ^ *s++) * 1099511628211ull;
    return h;
}

static inline uint64_t gw_hash_str(const char *k)
{
    uint64_t h = 1469598103934665603ull;

    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

#endif
