/* mh_map against a plain array: inserts, replacements and backward-shift deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mh_map.h"

static void map_agrees_with_array(void **state)
{
    enum { N = 50000 };
    static char keys[N][12];
    static int present[N];
    mh_map m;
    uint64_t r = 12345;

    mh_map_init(&m);
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof keys[i], "k%d", i);
    for (int step = 0; step < 400000; step++) {
        int k;
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        k = (int)((r >> 33) % N);
        if ((r >> 20) & 1) {
            assert_int_equal(mh_map_put(&m, keys[k], strlen(keys[k]), &present[k]), 0);
            present[k] = 1;
        } else {
            void *v = mh_map_del(&m, keys[k], strlen(keys[k]));
            assert_true(present[k] ? v == &present[k] : v == NULL);
            present[k] = 0;
        }
    }
    size_t count = 0;
    for (int k = 0; k < N; k++) {
        void *v = mh_map_get(&m, keys[k], strlen(keys[k]));
        assert_true(present[k] ? v == &present[k] : v == NULL);
        count += (size_t)present[k];
    }
    assert_int_equal(m.count, count);
    {
        size_t it = 0, seen = 0;
        while (mh_map_next(&m, &it, NULL, NULL, NULL))
            seen++;
        assert_int_equal(seen, count);
    }
    mh_map_free(&m);
}

/* The hash is keyed per process: another key scatters the same keys elsewhere. */
static void hash_depends_on_the_process_key(void **state)
{
    unsigned char k1[16] = {1}, k2[16] = {2};
    uint64_t a, b, c;
    mh_map m;
    (void)state;

    mh_map_seed(k1);
    a = mh_map_hash("user:5", 6);
    c = mh_map_hash("user:5", 6);
    mh_map_seed(k2);
    b = mh_map_hash("user:5", 6);
    assert_true(a == c);
    assert_true(a != b);
    /* and a map filled under a key works */
    mh_map_init(&m);
    assert_int_equal(mh_map_put(&m, "k", 1, &m), 0);
    assert_ptr_equal(mh_map_get(&m, "k", 1), &m);
    mh_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(map_agrees_with_array),
                                       cmocka_unit_test(hash_depends_on_the_process_key)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
