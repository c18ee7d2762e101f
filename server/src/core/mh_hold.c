#include "mh_hold.h"

#include <stdlib.h>

mh_hold *mh_hold_new(void)
{
    return calloc(1, sizeof(mh_hold));
}

void mh_hold_push(mh_hold *h, mh_msg *m, uint64_t seq)
{
    if (h->n == MH_HOLD_MAX || h->overflow) {
        if (!h->overflow)
            h->dropped_from = seq;
        h->overflow = true;
        h->dropped_to = seq;
        return;
    }
    if (h->n == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 8;
        mh_msg **nm = realloc(h->msgs, ncap * sizeof *nm);
        uint64_t *ns;
        if (!nm)
            goto lost;
        h->msgs = nm;
        ns = realloc(h->seqs, ncap * sizeof *ns);
        if (!ns)
            goto lost;
        h->seqs = ns;
        h->cap = ncap;
    }
    h->msgs[h->n] = mh_msg_ref(m);
    h->seqs[h->n++] = seq;
    return;
lost:
    if (!h->overflow)
        h->dropped_from = seq;
    h->overflow = true;
    h->dropped_to = seq;
}

void mh_hold_free(mh_hold *h)
{
    if (!h)
        return;
    for (uint32_t i = 0; i < h->n; i++)
        mh_msg_unref(h->msgs[i]);
    free(h->msgs);
    free(h->seqs);
    free(h);
}
