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

#include "vector_cases.h"

#include "mh_key.h"

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
    const struct CMUnitTest more[] = {
        cmocka_unit_test(test_crc_and_range),
    };
    char path[1024];

    snprintf(path, sizeof path, "%s/shard/shards.json", argc > 1 ? argv[1] : MH_VECTORS_DIR);
    return run_vector_cases("shard", path, run_case, more, sizeof more / sizeof more[0]);
}
