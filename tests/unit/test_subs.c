/*
 * The subscription index against the definition: for random subscriptions,
 * removals and entries, mh_subs_match visits exactly the key nodes whose
 * entries mh_match says match — each once — and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mh_key.h"
#include "mh_subs.h"

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *ctxs[] = {"a", "b", "c"};
static const char *pnames[] = {"x", "y", "z", "w"};
static const char *pvals[] = {"1", "2", "3"};

/* A random entry: context, scoped or not, a random subset of params. */
static void random_entry(mh_entry *e, bool allow_unscoped)
{
    memset(e, 0, sizeof *e);
    mh_entry_set_context(e, ctxs[rnd(3)], 1, NULL);
    e->scoped = !allow_unscoped || rnd(5) != 0;
    if (!e->scoped)
        return;
    e->params = calloc(4, sizeof *e->params);
    for (int i = 0; i < 4; i++) {
        if (rnd(2)) {
            mh_param *p = &e->params[e->nparams++];
            p->name = strdup(pnames[i]);
            p->name_len = 1;
            p->value = strdup(pvals[rnd(3)]);
            p->value_len = 1;
        }
    }
    mh_params_sort(e->params, e->nparams);
}

typedef struct live {
    mh_sub *sub;
    mh_entry e;
} live;

typedef struct visit_log {
    mh_keynode *seen[4096];
    size_t n;
} visit_log;

static void record(mh_keynode *node, void *arg)
{
    visit_log *v = arg;
    assert_true(v->n < 4096);
    v->seen[v->n++] = node;
}

static void index_matches_definition(void **state)
{
    mh_subs s;
    live *subs = calloc(3000, sizeof *subs);
    size_t nlive = 0;
    int owner_tag;

    mh_subs_init(&s);
    for (int round = 0; round < 40; round++) {
        /* grow, then shrink a little, so projections see adds and removes */
        for (int i = 0; i < 60 && nlive < 3000; i++) {
            random_entry(&subs[nlive].e, false);
            subs[nlive].sub = mh_subs_add(&s, false, &subs[nlive].e, &owner_tag);
            assert_non_null(subs[nlive].sub);
            nlive++;
        }
        for (int i = 0; i < 20 && nlive; i++) {
            size_t k = rnd((unsigned)nlive);
            mh_subs_remove(&s, subs[k].sub);
            mh_entry_free(&subs[k].e);
            subs[k] = subs[--nlive];
        }
        assert_int_equal(s.nsubs, nlive);
        for (int q = 0; q < 30; q++) {
            mh_entry e;
            visit_log v = {.n = 0};
            long n;
            random_entry(&e, true);
            n = mh_subs_match(&s, &e, record, &v);
            assert_int_equal(n, (long)v.n);
            /* each visited node matches, and is visited once */
            for (size_t i = 0; i < v.n; i++) {
                assert_true(mh_match(&e, &v.seen[i]->entry));
                for (size_t j = i + 1; j < v.n; j++)
                    assert_ptr_not_equal(v.seen[i], v.seen[j]);
            }
            /* every live subscription that matches was reached */
            for (size_t k = 0; k < nlive; k++) {
                if (!mh_match(&e, &subs[k].e))
                    continue;
                bool found = false;
                for (size_t i = 0; i < v.n && !found; i++)
                    found = v.seen[i] == subs[k].sub->node;
                assert_true(found);
            }
            mh_entry_free(&e);
        }
    }
    for (size_t k = 0; k < nlive; k++) {
        mh_subs_remove(&s, subs[k].sub);
        mh_entry_free(&subs[k].e);
    }
    assert_int_equal(s.nsubs, 0);
    assert_int_equal(s.nnodes, 0);
    assert_int_equal(s.contexts.count, 0);
    mh_subs_free(&s);
    free(subs);
}

/* Visits for one scope among 100,000 equal visits among 10: lookups, not scans. */
static void scoped_cost_independent_of_scopes(void **state)
{
    mh_subs s;
    int owner;
    char val[16];
    mh_entry e;
    visit_log v = {.n = 0};

    mh_subs_init(&s);
    for (int i = 0; i < 100000; i++) {
        mh_param p = {.name = "user_id", .name_len = 7, .value = val};
        mh_entry sub = {
            .context = "user", .context_len = 4, .scoped = true, .nparams = 1, .params = &p};
        p.value_len = (size_t)snprintf(val, sizeof val, "%d", i);
        assert_non_null(mh_subs_add(&s, false, &sub, &owner));
    }
    {
        mh_param p = {.name = "user_id", .name_len = 7, .value = "77777", .value_len = 5};
        e = (mh_entry){
            .context = "user", .context_len = 4, .scoped = true, .nparams = 1, .params = &p};
        assert_int_equal(mh_subs_match(&s, &e, record, &v), 1);
        assert_string_equal(v.seen[0]->key, "[\"user\",{\"user_id\":\"77777\"}]");
    }
    mh_subs_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(index_matches_definition),
        cmocka_unit_test(scoped_cost_independent_of_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
