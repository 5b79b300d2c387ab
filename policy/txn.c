/*
 * txn.c - a request's state in the checks (policy.h struct pol_txn) and
 * the helpers every check uses; calls nothing else of the module.
 */
#include "pol_int.h"
#include "../core/arena.h"

#include <stdlib.h>
#include <string.h>

const struct h1_header *pol_header(const struct pol_req *r, const char *name, size_t n)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        if (h->name_len != n)
            continue;
        size_t k = 0;
        for (; k < n; k++) {
            char c = h->name[k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c | 0x20);
            if (c != name[k])
                break;
        }
        if (k == n)
            return h;
    }
    return NULL;
}

const struct h1_header *pol_header_sole(const struct pol_req *r, const char *name, size_t n)
{
    const struct h1_header *h = pol_header(r, name, n);

    if (h == NULL)
        return NULL;
    struct pol_req rest = *r;
    rest.headers = h + 1;
    rest.nheaders = r->nheaders - (size_t)(h + 1 - r->headers);
    return pol_header(&rest, name, n) ? NULL : h;
}

struct pol_buf *pol_txn_buf(struct pol_txn *t)
{
    struct pol_worker *pw = t->pw;
    struct pol_buf *b = t->buf;

    if (b)
        return b;
    if ((b = pw->free_bufs) != NULL) {
        pw->free_bufs = b->next;
        pw->nfree--;
    } else {
        b = xmalloc(sizeof(*b));
    }
    b->next = NULL;
    b->up_len = b->hdr_off = b->hdr_len = b->body_off = b->body_len = b->used = 0;
    return t->buf = b;
}

void pol_txn_set_auth_id(struct pol_txn *t, const char *id, size_t n)
{
    if (n > POL_AUTH_ID_MAX)
        n = POL_AUTH_ID_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        t->auth_id[i] = c > 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '_';
    }
    t->auth_id_len = (uint8_t)n;
    t->has_auth_id = true;
}

enum pol_verdict pol_txn_deny(struct pol_txn *t, int status, const char *challenge)
{
    t->status = (uint16_t)status;
    t->challenge = challenge;
    t->result = status == 503 ? POL_RES_ERROR : POL_RES_DENIED;
    return POL_DENY;
}

void pol_txn_complete(struct pol_txn *t, enum pol_verdict v)
{
    t->pending = false;
    t->op = NULL;
    t->cancel = NULL;
    t->verdict = (uint8_t)v;
    t->done(t->owner);
}

void pol_txn_end(struct pol_txn *t)
{
    if (t->pending && t->cancel)
        t->cancel(t);
    t->pending = false;
    t->op = NULL;
    t->cancel = NULL;
    if (t->buf) {
        struct pol_worker *pw = t->pw;
        if (pw->nfree < POL_FREE_BUFS) {
            t->buf->next = pw->free_bufs;
            pw->free_bufs = t->buf;
            pw->nfree++;
        } else {
            free(t->buf);
        }
        t->buf = NULL;
    }
}

