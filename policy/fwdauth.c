/*
 * fwdauth.c - auth.forward's config: which upstream answers, at what
 * path, and which of its response headers go to the backend.  The
 * subrequest itself is the gateway's (gateway/authreq.c): it owns the
 * upstreams' pools and balancers.
 */
#include "pol_int.h"
#include "../core/hdr.h"

#include <string.h>

static void copy_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                      void *elem, void *arg)
{
    struct pol_fwdauth *f = arg;
    char **out = elem;

    if (!J_IS_STRING(it) || !it->valuestring[0]) {
        cfg_errp(cx, path, "must be a header name");
        return;
    }
    char *s = cfg_strdup(cx, it->valuestring);
    for (char *p = s; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p)) {
            cfg_errp(cx, path, "must be a header name (an HTTP token)");
            return;
        }
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    }
    size_t n = strlen(s);
    if (hdr_class(s, n) != HDR_OTHER) {
        cfg_errp(cx, path, "\"%s\" is a header sluice manages itself (x-auth-id is always taken)", s);
        return;
    }
    for (size_t j = 0; j < i; j++)
        if (f->copy_headers[j] && strcmp(f->copy_headers[j], s) == 0) {
            cfg_errp(cx, path, "duplicate \"%s\"", s);
            return;
        }
    *out = s;
    f->copy_lens[i] = (uint32_t)n;
}

static void copy_start(struct cfg_ctx *cx, size_t n, void *elems, void *arg)
{
    struct pol_fwdauth *f = arg;

    f->copy_headers = elems;
    f->copy_lens = cfg_calloc(cx, n ? n : 1, sizeof(*f->copy_lens));
}

struct pol_fwdauth *pol_fwdauth_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                      const struct nidx *upstreams, struct pol_auth *au)
{
    static const char *const keys[] = { "upstream", "path", "copy_headers", NULL };
    const cJSON *f[3];
    const char *s;
    struct pol_fwdauth *fa;

    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        return NULL;
    fa = cfg_calloc(cx, 1, sizeof(*fa));
    au->cred_header = "authorization";
    au->cred_header_len = 13;
    if (cfg_get_name(cx, f[0], path, "upstream", true, &s) == CFG_OK) {
        fa->upstream = cfg_strdup(cx, s);
        fa->upstream_idx = upstreams ? nidx_find(upstreams, s) : NOT_FOUND_IDX;
        if (fa->upstream_idx == NOT_FOUND_IDX)
            cfg_errp(cx, JP_K(path, "upstream"), "no upstream named \"%s\"", s);
    }
    fa->path = "/";
    if (cfg_get_name(cx, f[1], path, "path", false, &s) == CFG_OK) {
        bool ok = s[0] == '/';
        for (const char *p = s; *p; p++)
            ok &= (unsigned char)*p > 0x20 && *p != 0x7f && *p != '#';
        if (!ok)
            cfg_errp(cx, JP_K(path, "path"), "must start with '/' and hold no spaces, controls or '#'");
        fa->path = cfg_strdup(cx, s);
    }
    fa->path_len = strlen(fa->path);
    const struct cfg_list spec = { .key = "copy_headers", .elem_size = sizeof(char *),
                                   .start = copy_start, .each = copy_elem };
    cfg_list(cx, f[2], path, &spec, &fa->ncopy, fa);
    /* the copied headers are the auth upstream's: a client's own of those
     * names never reach the backend, whether or not the answer has them */
    au->strip = fa->copy_headers;
    au->strip_lens = fa->copy_lens;
    au->nstrip = fa->copy_headers ? fa->ncopy : 0;
    return fa;
}
