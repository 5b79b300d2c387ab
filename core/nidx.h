/*
 * nidx.h - (core) a name -> position index, so a 10,000-route document is
 * checked in linear time (duplicate names, references by name).
 *
 * Owns: its slot array (not the keys).  May call: core/hash.h, core/arena.
 * Keys point into the config being built and must outlive the index; a
 * slot keeps its key's hash (one cache line holds all a probe reads, and
 * strings are compared only on a full hash match), and a name is hashed
 * once.  A zeroed struct nidx is empty and ready.
 */
#ifndef SLUICE_CORE_NIDX_H
#define SLUICE_CORE_NIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOT_FOUND_IDX ((size_t)-1)

struct nidx_slot {
    const char *key;        /* NULL = empty */
    uint64_t hash;
    size_t val;
};

struct nidx {
    struct nidx_slot *v;
    size_t cap;
    size_t n;               /* keys held */
};

/* The hash of a name in an nidx, never 0 (so 0 can mean "no name"). */
uint64_t nidx_hash(const char *k);
/* Room for at least want keys at load <= 1/2 (cap stays a power of two). */
void nidx_grow(struct nidx *x, size_t want);
/* Adds k with value v unless present; returns the earlier value, or
 * NOT_FOUND_IDX when k was added. */
size_t nidx_add(struct nidx *x, const char *k, size_t v);
/* The value of k, or NOT_FOUND_IDX. */
size_t nidx_find(const struct nidx *x, const char *k);
/* nidx_find() of k whose nidx_hash() is h. */
size_t nidx_find_h(const struct nidx *x, const char *k, uint64_t h);
/* Whether a key with nidx_hash() h may be in x (false is sure), without
 * reading the key itself. */
bool nidx_may_have(const struct nidx *x, uint64_t h);
/* Frees the slots; x is then empty and reusable. */
void nidx_free(struct nidx *x);

#endif
