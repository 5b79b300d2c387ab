/* fuzz_chunked.c - libFuzzer target for the chunked walker.  The body is
 * walked three ways (all at once, split at a point the first byte picks,
 * one byte per call); outcome, bytes consumed and reassembled data must be
 * identical, and no piece may claim more than it was given. */
#include "../../gateway/http1.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

struct out {
    int last;
    size_t used;
    size_t ndata;
    char *data;
};

/* step 0: whole remaining input per call; else at most step bytes; the
 * first call is capped at split bytes. */
static void walk(const char *b, size_t n, size_t split, size_t step, struct out *o)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    o->used = o->ndata = 0;
    o->last = H1C_AGAIN;
    bool first = true;
    while (o->used < n) {
        size_t avail = n - o->used;
        if (first && split)
            avail = split < avail ? split : avail;
        if (step && avail > step)
            avail = step;
        first = false;
        /* exact-size copy so ASan sees reads past the piece */
        char *piece = malloc(avail);
        memcpy(piece, b + o->used, avail);
        size_t k = 0;
        int kind = h1_chunked_next(&c, piece, avail, &k);
        free(piece);
        CHECK(k <= avail);
        CHECK(kind != H1C_AGAIN || k == avail);
        CHECK(kind == H1C_ERROR || kind == H1C_DONE || k > 0);
        if (kind == H1C_DATA) {
            memcpy(o->data + o->ndata, b + o->used, k);
            o->ndata += k;
        }
        o->used += k;
        o->last = kind;
        if (kind == H1C_DONE || kind == H1C_ERROR)
            break;
    }
    CHECK(o->used <= n && o->ndata <= o->used);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = (size - 1) * data[0] / 256;
    const char *b = (const char *)data + 1;
    size_t n = size - 1;
    struct out o[3];
    for (int i = 0; i < 3; i++)
        o[i].data = malloc(n ? n : 1);
    walk(b, n, 0, 0, &o[0]);
    walk(b, n, split, 0, &o[1]);
    walk(b, n, 0, 1, &o[2]);
    for (int i = 1; i < 3; i++) {
        CHECK(o[i].last == o[0].last);
        CHECK(o[i].used == o[0].used);
        CHECK(o[i].ndata == o[0].ndata);
        CHECK(memcmp(o[i].data, o[0].data, o[0].ndata) == 0);
    }
    for (int i = 0; i < 3; i++)
        free(o[i].data);
    return 0;
}
