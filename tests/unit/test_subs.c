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

/* With 'max_shapes' (0: none), refused adds included. */
static void check_index(size_t max_shapes)
{
    mh_subs s;
    live *subs = calloc(3000, sizeof *subs);
    size_t nlive = 0, refused = 0;
    int owner_tag;

    mh_subs_init(&s, max_shapes);
    for (int round = 0; round < 40; round++) {
        /* grow, then shrink a little, so projections see adds and removes */
        for (int i = 0; i < 60 && nlive < 3000; i++) {
            int rc;
            random_entry(&subs[nlive].e, false);
            rc = mh_subs_add(&s, false, &subs[nlive].e, &owner_tag, &subs[nlive].sub);
            if (rc == MH_SUBS_E_SHAPES && max_shapes) {
                mh_entry_free(&subs[nlive].e);
                refused++;
                continue;
            }
            assert_int_equal(rc, 0);
            nlive++;
        }
        for (size_t k = 0; k < 3; k++) {
            mh_ctx *c = mh_subs_context(&s, ctxs[k], 1);
            assert_true(!c || !max_shapes || c->nshapes <= max_shapes);
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
    assert_int_equal(s.nshapes, 0);
    assert_int_equal(s.contexts.count, 0);
    /* 4 names make 16 shapes per context: a cap of 5 must have refused some */
    assert_true(!max_shapes || refused > 0);
    mh_subs_free(&s);
    free(subs);
}

static void index_matches_definition(void **state)
{
    (void)state;
    check_index(0);
}

static void index_matches_definition_with_a_shape_cap(void **state)
{
    (void)state;
    check_index(5);
}

/* Visits for one scope among 100,000 equal visits among 10: lookups, not scans. */
static void scoped_cost_independent_of_scopes(void **state)
{
    mh_subs s;
    int owner;
    char val[16];
    mh_entry e;
    visit_log v = {.n = 0};

    mh_subs_init(&s, 0);
    for (int i = 0; i < 100000; i++) {
        mh_param p = {.name = "user_id", .name_len = 7, .value = val};
        mh_entry sub = {
            .context = "user", .context_len = 4, .scoped = true, .nparams = 1, .params = &p};
        p.value_len = (size_t)snprintf(val, sizeof val, "%d", i);
        mh_sub *added;
        assert_int_equal(mh_subs_add(&s, false, &sub, &owner, &added), 0);
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

static int add_one(mh_subs *s, const char *ctx, const char *n1, const char *n2, const char *v,
                   mh_sub **out)
{
    mh_param ps[2] = {{(char *)n1, n1 ? strlen(n1) : 0, (char *)v, strlen(v)},
                      {(char *)n2, n2 ? strlen(n2) : 0, (char *)v, strlen(v)}};
    mh_entry e = {(char *)ctx, strlen(ctx), true, (size_t)(n1 != NULL) + (n2 != NULL), ps};
    return mh_subs_add(s, false, &e, s, out);
}

/* A context holds at most max_shapes shapes; a refused add changes nothing. */
static void shape_cap(void **state)
{
    mh_subs s;
    mh_sub *a1, *a2, *b, *ab, *none, *c, *other;
    (void)state;

    mh_subs_init(&s, 4);
    assert_int_equal(add_one(&s, "feed", NULL, NULL, "", &none), 0);
    assert_int_equal(add_one(&s, "feed", "a", NULL, "1", &a1), 0);
    assert_int_equal(add_one(&s, "feed", "b", NULL, "1", &b), 0);
    assert_int_equal(add_one(&s, "feed", "a", "b", "1", &ab), 0);
    assert_int_equal(s.nshapes, 4);
    /* a fifth shape is refused, and nothing is left behind */
    assert_int_equal(add_one(&s, "feed", "c", NULL, "1", &c), MH_SUBS_E_SHAPES);
    assert_null(c);
    assert_int_equal(s.nsubs, 4);
    assert_int_equal(s.nnodes, 4);
    assert_int_equal(s.nshapes, 4);
    /* a shape the context has takes new keys; another context has its own cap */
    assert_int_equal(add_one(&s, "feed", "a", NULL, "2", &a2), 0);
    assert_int_equal(add_one(&s, "news", "c", NULL, "1", &other), 0);
    assert_int_equal(s.nshapes, 5);
    /* the refused shape's entry reaches nobody; the others still match */
    {
        mh_param p = {"a", 1, "1", 1};
        mh_entry e = {"feed", 4, true, 1, &p};
        visit_log v = {.n = 0};
        assert_int_equal(mh_subs_match(&s, &e, record, &v), 2); /* {a:1} and {a:1,b:1} */
    }
    /* a shape whose last subscription ends frees its place */
    mh_subs_remove(&s, b);
    assert_int_equal(s.nshapes, 5 - 1);
    assert_int_equal(add_one(&s, "feed", "c", NULL, "1", &c), 0);
    assert_non_null(mh_subs_find(&s, false, &c->node->entry));
    assert_ptr_equal(mh_subs_find(&s, false, &c->node->entry), c->node);
    mh_subs_free(&s);
}

/*
 * 50,000 invented shapes against the default cap: 63 are accepted beside
 * the honest one, and a scoped entry still reaches exactly its one node
 * after a lookup per held shape (bench/subs_shapes.c measures the time).
 */
static void invented_shapes_are_bounded(void **state)
{
    mh_subs s;
    mh_sub *sub;
    char name[16];
    long accepted = 0;
    (void)state;

    mh_subs_init(&s, 64);
    assert_int_equal(add_one(&s, "feed", "user_id", NULL, "7", &sub), 0);
    for (int i = 0; i < 50000; i++) {
        snprintf(name, sizeof name, "x%d", i);
        int rc = add_one(&s, "feed", name, NULL, "1", &sub);
        assert_true(rc == 0 || rc == MH_SUBS_E_SHAPES);
        accepted += rc == 0;
    }
    assert_int_equal(accepted, 63);
    assert_int_equal(s.nshapes, 64);
    assert_int_equal(mh_subs_context(&s, "feed", 4)->nshapes, 64);
    {
        mh_param p = {"user_id", 7, "7", 1};
        mh_entry e = {"feed", 4, true, 1, &p};
        visit_log v = {.n = 0};
        assert_int_equal(mh_subs_match(&s, &e, record, &v), 1);
        assert_string_equal(v.seen[0]->key, "[\"feed\",{\"user_id\":\"7\"}]");
    }
    mh_subs_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(index_matches_definition),
        cmocka_unit_test(index_matches_definition_with_a_shape_cap),
        cmocka_unit_test(scoped_cost_independent_of_scopes),
        cmocka_unit_test(shape_cap),
        cmocka_unit_test(invented_shapes_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
