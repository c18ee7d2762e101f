/* SPEC section 10's resume rule, case by case, and the subset buckets it reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mh_buf.h"
#include "mh_key.h"
#include "mh_versions.h"

static void rule(void **state)
{
    mh_vhash none = {.exists = false};
    mh_vhash h = {.exists = true, .epoch = "k2f9a", .n = 42, .u = 10};

    /* no hash: only "never saw anything" is safe */
    assert_false(mh_versions_missed("0", 0, &none, 0, true));
    assert_true(mh_versions_missed("k2f9a", 41, &none, 0, true));
    /* epoch change, counter backwards */
    assert_true(mh_versions_missed("old", 42, &h, 0, true));
    assert_true(mh_versions_missed("0", 0, &h, 0, true));
    assert_true(mh_versions_missed("k2f9a", 43, &h, 0, true));
    /* nothing happened */
    assert_false(mh_versions_missed("k2f9a", 42, &h, 0, true));
    /* things happened, none of them ours */
    assert_false(mh_versions_missed("k2f9a", 30, &h, 25, true));
    /* an unscoped entry after since */
    assert_true(mh_versions_missed("k2f9a", 9, &h, 0, true));
    /* one of our buckets after since */
    assert_true(mh_versions_missed("k2f9a", 30, &h, 31, true));
    /* too many params to enumerate: counter decides */
    assert_true(mh_versions_missed("k2f9a", 30, &h, 0, false));
}

static void subset_buckets(void **state)
{
    mh_param p[7] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}, {"c", 1, "3", 1}, {"d", 1, "4", 1},
                     {"e", 1, "5", 1}, {"f", 1, "6", 1}, {"g", 1, "7", 1}};
    mh_entry e = {.context = "t", .context_len = 1, .scoped = true, .nparams = 2, .params = p};
    unsigned out[MH_VERSIONS_MAX_BUCKETS];
    mh_buf b;
    int n = mh_versions_buckets(&e, out);

    /* {a}, {b}, {a,b}: the buckets a publisher stamps for those entries */
    assert_true(n >= 1 && n <= 3);
    mh_buf_init(&b);
    mh_key_canon(&b, "t", 1, p, 2);
    {
        unsigned want = mh_key_bucket(b.data, b.len);
        bool found = false;
        for (int i = 0; i < n; i++)
            found |= out[i] == want;
        assert_true(found);
    }
    mh_buf_reset(&b);
    mh_key_canon(&b, "t", 1, p + 1, 1);
    {
        unsigned want = mh_key_bucket(b.data, b.len);
        bool found = false;
        for (int i = 0; i < n; i++)
            found |= out[i] == want;
        assert_true(found);
    }
    mh_buf_free(&b);
    e.nparams = 6;
    assert_true(mh_versions_buckets(&e, out) > 0);
    e.nparams = 7;
    assert_int_equal(mh_versions_buckets(&e, out), -1);
    e.nparams = 0;
    assert_int_equal(mh_versions_buckets(&e, out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(rule), cmocka_unit_test(subset_buckets)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
