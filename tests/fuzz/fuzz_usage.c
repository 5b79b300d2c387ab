/* fuzz_usage.c - libFuzzer target for the streaming usage scanner
 * (policy/usage.c): a response body fed three ways (all at once, split at
 * a point the first bytes pick, one byte per call, each piece an exact-size
 * copy so ASan sees a read past it) must give the same result, in JSON and
 * in SSE mode; a value found is never above the scanner's cap. */
#include "../../policy/usage.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void feed(struct pol_usage *u, const char *p, size_t n)
{
    char *piece = malloc(n ? n : 1);

    memcpy(piece, p, n);
    pol_usage_feed(u, piece, n);
    free(piece);
}

static void same(const struct pol_usage *a, const struct pol_usage *b)
{
    CHECK(a->found == b->found);
    if (!a->found)
        return;
    for (int i = 0; i < POL_U__N; i++) {
        CHECK(a->has[i] == b->has[i]);
        CHECK(!a->has[i] || a->v[i] == b->v[i]);
        CHECK(!a->has[i] || a->v[i] <= POL_USAGE_MAX);
    }
    CHECK(pol_usage_tokens(a) == pol_usage_tokens(b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *b = (const char *)data;

    if (size < 2)
        return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]) % size;
    b += 2;
    size -= 2;
    if (split > size)
        split = size;
    for (int sse = 0; sse < 2; sse++) {
        struct pol_usage whole, two, bytes;
        pol_usage_init(&whole, sse);
        pol_usage_init(&two, sse);
        pol_usage_init(&bytes, sse);
        feed(&whole, b, size);
        feed(&two, b, split);
        feed(&two, b + split, size - split);
        for (size_t i = 0; i < size; i++)
            feed(&bytes, b + i, 1);
        same(&whole, &two);
        same(&whole, &bytes);
    }
    return 0;
}
