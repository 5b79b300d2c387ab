/*
 * fwd_check.h - what the two round-trip fuzzers (fuzz_fwd_request.c,
 * fuzz_fwd_response.c) check the same way: a failed property aborts, and a
 * forwarded chunked body, parsed again, holds exactly the body received and
 * ends exactly where the forwarded bytes end.
 */
#ifndef SLUICE_FUZZ_FWD_CHECK_H
#define SLUICE_FUZZ_FWD_CHECK_H

#include "../../gateway/http1.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static inline bool same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* The chunked body at out[off, olen), parsed by sluice's parser into
 * scratch: no error, done exactly at olen, the same bytes as body. */
static inline void check_chunked(const char *out, size_t off, size_t olen, const char *body,
                                 size_t blen, char *scratch)
{
    struct h1_chunked ck;
    size_t b2 = 0, used = 0;
    int k;

    h1_chunked_init(&ck);
    do {
        k = h1_chunked_next(&ck, out + off, olen - off, &used);
        CHECK(k != H1C_ERROR);
        if (k == H1C_DATA) {
            memcpy(scratch + b2, out + off, used);
            b2 += used;
        }
        off += used;
    } while (k != H1C_DONE && k != H1C_AGAIN);
    CHECK(k == H1C_DONE && off == olen);
    CHECK(b2 == blen && memcmp(scratch, body, blen) == 0);
}

#endif
