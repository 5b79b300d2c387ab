/* ltimer.c - a loop's common-timeout cache (see ltimer.h). */
#include "ltimer.h"

const struct timeval *lt_common_timeout(struct lt_common *c, uint32_t ms)
{
    for (int i = 0; i < c->n; i++)
        if (c->ms[i] == ms)
            return &c->tv[i];
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    const struct timeval *ct = event_base_init_common_timeout(c->base, &tv);
    if (c->n < (int)(sizeof(c->ms) / sizeof(c->ms[0]))) {
        c->ms[c->n] = ms;
        c->tv[c->n] = *ct;
        return &c->tv[c->n++];
    }
    return ct;  /* libevent keeps it alive for the life of the base */
}
