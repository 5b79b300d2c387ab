/*
 * pol_int.h - (policy) what the module's files share and nobody else
 * includes: each check's parse and run entry, the worker's state.
 */
#ifndef SLUICE_POL_INT_H
#define SLUICE_POL_INT_H

#include "policy.h"
#include "limit.h"
#include "../core/cfgparse.h"

#include <event2/event.h>

/* access.c */
struct pol_access *pol_access_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path);
/* Does the access list let the address in? */
bool pol_access_allows(const struct pol_access *a, const struct sockaddr *sa);

/* apikey.c */
struct pol_apikey *pol_apikey_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                    struct pol_auth *au);
enum pol_verdict pol_apikey_check(const struct pol_auth *au, struct pol_txn *t,
                                  const struct pol_req *r);

/* fwdauth.c */
struct pol_fwdauth *pol_fwdauth_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                      const struct nidx *upstreams, struct pol_auth *au);

/* basic.c */
struct pol_basic *pol_basic_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                  struct pol_auth *au);
enum pol_verdict pol_basic_check(const struct pol_auth *au, struct pol_txn *t,
                                 const struct pol_req *r);
struct pol_bcache;
void pol_bcache_free(struct pol_bcache *bc);
/* The worker stops: wait for its jobs still with the verifiers. */
void pol_basic_worker_end(struct pol_worker *pw);

/* jwtauth.c: auth.jwt (the library is jwt.h) */
struct jwt_conf *pol_jwt_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                               struct pol_auth *au);
enum pol_verdict pol_jwt_check(const struct pol_auth *au, struct pol_txn *t,
                               const struct pol_req *r);
/* The worker's cache of verified tokens goes (jwt_cache_free). */
void pol_jwt_worker_end(struct pol_worker *pw);
#define POL_JWT_CACHE 512           /* verified tokens a worker keeps */

/* pfile.c: the whole of file (at most max bytes, NUL-terminated, malloc'ed:
 * the caller frees it), or NULL after an error at path. */
char *pol_read_file(struct cfg_ctx *cx, const struct jp *path, const char *file, size_t max,
                    size_t *len);
/* n hex digits into n/2 bytes; -1 for anything else */
int pol_unhex(const char *s, size_t n, unsigned char *out);
/* SHA-256 of p[0, n) with the worker's context. */
void pol_sha256(struct pol_worker *pw, const void *p, size_t n, unsigned char out[32]);
/* Does s (n bytes) start with prefix, ASCII case ignored? */
bool pol_prefix_ieq(const char *s, size_t n, const char *prefix, size_t plen);

/* txn.c: the value of header name (lower-case, n bytes) in r, or NULL */
const struct h1_header *pol_header(const struct pol_req *r, const char *name, size_t n);
/* The same when the header is there once, else NULL: a credential sent
 * twice is none (with forward_credential the backend might read the other) */
const struct h1_header *pol_header_sole(const struct pol_req *r, const char *name, size_t n);

#define POL_FREE_BUFS 64

struct pol_worker {
    struct event_base *base;
    pol_forward_fn fwd;
    void *fwd_ctx;
    struct pol_buf *free_bufs;          /* at most POL_FREE_BUFS */
    uint32_t nfree;
    /* basic auth: the verifier thread's answers come through a pipe */
    int vpipe[2];
    struct event *vev;
    struct pol_bcache *bcache;          /* verified credentials (basic.c) */
    uint32_t vinflight;                 /* jobs with the verifiers */
    struct evp_md_ctx_st *md;           /* SHA-256 (pfile.c pol_sha256) */
    struct jwt_cache *jcache;           /* verified tokens (jwtauth.c); NULL until the first */
    struct pol_redis *rd;               /* rate_limit_store.redis (limit.c), opened on first use */
    struct pol_redis *retired;          /* ones a reload moved away from, finishing their calls */
};

#endif
