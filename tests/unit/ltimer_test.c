/* ltimer_test - the deadline heap (client connection timers): order,
 * removal from anywhere, re-insertion, growth. */
#include "../../core/ltimer.c"
#include "tap.h"

#include <stdlib.h>

#define N 1000

static int heap_ok(const struct lt_heap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->v[i]->idx != i + 1)
            return 0;
        if (i > 0 && h->v[(i - 1) / 2]->at > h->v[i]->at)
            return 0;
    }
    return 1;
}

int main(void)
{
    static struct lt_hnode nodes[N];
    struct lt_heap h = { 0 };
    int ok_all = 1;

    ok(lt_heap_min(&h) == NULL, "an empty heap has no minimum");
    srand(7);
    for (int i = 0; i < N; i++) {
        nodes[i].at = (uint64_t)(rand() % 5000);
        lt_heap_push(&h, &nodes[i]);
    }
    ok(h.n == N && heap_ok(&h), "%d pushes: heap order and indexes hold", N);
    /* remove a third of them, from anywhere */
    for (int i = 0; i < N; i += 3) {
        lt_heap_remove(&h, &nodes[i]);
        ok_all &= nodes[i].idx == 0 && heap_ok(&h);
    }
    ok(ok_all && h.n == N - (N + 2) / 3, "removal from the middle keeps the order (%u left)", h.n);
    lt_heap_remove(&h, &nodes[0]);
    ok(h.n == N - (N + 2) / 3, "removing a node not in the heap is a no-op");
    /* move some (the lazy re-arm: remove, new deadline, push) */
    for (int i = 1; i < N; i += 3) {
        lt_heap_remove(&h, &nodes[i]);
        nodes[i].at = (uint64_t)(rand() % 5000);
        lt_heap_push(&h, &nodes[i]);
    }
    ok(heap_ok(&h), "re-inserted nodes keep the order");
    /* pop everything: deadlines come out sorted */
    uint64_t last = 0;
    uint32_t popped = 0;
    ok_all = 1;
    struct lt_hnode *m;
    while ((m = lt_heap_min(&h)) != NULL) {
        ok_all &= m->at >= last;
        last = m->at;
        lt_heap_remove(&h, m);
        popped++;
    }
    ok(ok_all && popped == N - (N + 2) / 3, "the minimum comes out in deadline order (%u)", popped);
    lt_heap_free(&h);
    ok(h.v == NULL && h.n == 0, "freed");
    return tap_done();
}
