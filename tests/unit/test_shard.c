/*
 * mh_key_shard against protocol/vectors/shard/shards.json (SPEC 11.1): each
 * shard key's slot and its shard for N = 1..5, written by gen.py with
 * Python's own CRC, independently of mh_key.c. Each case is its own test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mh_key.h"

static json_t *cases_doc;

static void run_case(void **state)
{
    const json_t *c = *state;
    const json_t *in = json_object_get(c, "input"), *want = json_object_get(c, "expect");
    const json_t *shards = json_object_get(want, "shards");
    const char *key = json_string_value(in);
    size_t len = json_string_length(in);

    assert_non_null(key);
    assert_true(json_array_size(shards) >= 1);
    assert_int_equal(mh_key_crc16(key, len) % MH_SLOTS,
                     (unsigned)json_integer_value(json_object_get(want, "slot")));
    for (size_t i = 0; i < json_array_size(shards); i++) {
        unsigned n = (unsigned)i + 1, got = mh_key_shard(key, len, n);
        if (got != (unsigned)json_integer_value(json_array_get(shards, i)))
            fail_msg("%s: %u shards: got shard %u, want %lld", key, n, got,
                     (long long)json_integer_value(json_array_get(shards, i)));
    }
}

/* The CRC's own check value, and shards always in range. */
static void test_crc_and_range(void **state)
{
    (void)state;
    assert_int_equal(mh_key_crc16("123456789", 9), 0x31C3);
    for (unsigned n = 1; n <= 64; n++)
        for (int i = 0; i < 2000; i++) {
            char k[16];
            int len = snprintf(k, sizeof k, "k%d", i);
            assert_true(mh_key_shard(k, (size_t)len, n) < n);
        }
}

int main(int argc, char **argv)
{
    char path[1024];
    json_error_t jerr;
    struct CMUnitTest *tests;
    size_t n, i;
    int rc;

    snprintf(path, sizeof path, "%s/shard/shards.json", argc > 1 ? argv[1] : MH_VECTORS_DIR);
    cases_doc = json_load_file(path, 0, &jerr);
    if (!cases_doc) {
        fprintf(stderr, "test_shard: %s: %s\n", path, jerr.text);
        return 1;
    }
    n = json_array_size(json_object_get(cases_doc, "cases"));
    if (n == 0) {
        fprintf(stderr, "test_shard: %s: no cases\n", path);
        return 1;
    }
    tests = calloc(n + 1, sizeof *tests);
    for (i = 0; i < n; i++) {
        json_t *c = json_array_get(json_object_get(cases_doc, "cases"), i);
        tests[i].name = json_string_value(json_object_get(c, "name"));
        tests[i].test_func = run_case;
        tests[i].initial_state = c;
    }
    tests[n].name = "crc check value, shards in range";
    tests[n].test_func = test_crc_and_range;
    rc = _cmocka_run_group_tests("shard", tests, n + 1, NULL, NULL);
    free(tests);
    json_decref(cases_doc);
    return rc;
}
