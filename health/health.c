/* health.c - the process-wide registry of per-address health state. */
#include "health.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct hc_entry {
    struct hc_entry *next;
    struct sockaddr_storage sa;
    socklen_t salen;
    struct hc_state st;
};

static pthread_mutex_t hc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hc_entry *hc_list;

struct hc_state *hc_state_for(const struct sockaddr *sa, socklen_t salen)
{
    struct hc_entry *e;

    pthread_mutex_lock(&hc_lock);
    for (e = hc_list; e; e = e->next)
        if (e->salen == salen && memcmp(&e->sa, sa, salen) == 0)
            break;
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL)
            abort();
        memcpy(&e->sa, sa, salen);
        e->salen = salen;
        e->next = hc_list;
        hc_list = e;
    }
    pthread_mutex_unlock(&hc_lock);
    return &e->st;
}

/* Only the failure that takes an up target down counts: requests already
 * sent to it fail together (a pool's connections are reset at once), and
 * counting each would step the back-off to 30 s on one outage. */
void hc_fail(struct hc_state *s, uint64_t now_ms)
{
    uint64_t until = atomic_load_explicit(&s->down_until_ms, memory_order_relaxed);

    if (until > now_ms)
        return;         /* already down: a request that was on its way */
    uint32_t n = atomic_load_explicit(&s->fails, memory_order_relaxed);
    uint64_t backoff = 1000ull << (n < 5 ? n : 5);

    if (backoff > 30000)
        backoff = 30000;
    /* of workers failing it at once, one marks it down and counts */
    if (atomic_compare_exchange_strong_explicit(&s->down_until_ms, &until, now_ms + backoff,
                                                memory_order_relaxed, memory_order_relaxed))
        atomic_fetch_add_explicit(&s->fails, 1, memory_order_relaxed);
}

void hc_shutdown(void)
{
    pthread_mutex_lock(&hc_lock);
    while (hc_list) {
        struct hc_entry *e = hc_list;
        hc_list = e->next;
        free(e);
    }
    pthread_mutex_unlock(&hc_lock);
}
