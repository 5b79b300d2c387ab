/* counter.c - histogram buckets (see counter.h). */
#include "counter.h"

const double gw_hist_le[GW_HIST_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void gw_hist_observe(struct gw_hist *h, uint64_t ns)
{
    static const uint64_t le_ns[GW_HIST_N] = {
        500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull, 50000000ull,
        100000000ull, 250000000ull, 500000000ull, 1000000000ull, 2500000000ull,
        5000000000ull, 10000000000ull,
    };
    int i = 0;

    while (i < GW_HIST_N && ns > le_ns[i])
        i++;
    gw_cnt_add(&h->b[i], 1);
    gw_cnt_add(&h->sum_ns, ns);
}
