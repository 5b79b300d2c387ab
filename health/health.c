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

void hc_fail(struct hc_state *s, uint64_t now_ms)
{
    uint32_t n = atomic_fetch_add_explicit(&s->fails, 1, memory_order_relaxed);
    uint64_t backoff = 1000ull << (n < 5 ? n : 5);

    if (backoff > 30000)
        backoff = 30000;
    atomic_store_explicit(&s->down_until_ms, now_ms + backoff, memory_order_relaxed);
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
