/* mh_tokcache: verified connection tokens, remembered until their expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mh_tokcache.h"

static mh_identity who(const char *subject, int64_t exp)
{
    mh_identity id;

    memset(&id, 0, sizeof id);
    snprintf(id.subject, sizeof id.subject, "%s", subject);
    snprintf(id.kid, sizeof id.kid, "v1");
    snprintf(id.info, sizeof id.info, "{\"name\":\"%s\"}", subject);
    id.staff = true;
    id.exp = exp;
    return id;
}

static void answers_a_remembered_token_with_what_it_said(void **state)
{
    mh_tokcache *tc = mh_tokcache_new(16);
    mh_identity in = who("alice", 2000), out;

    (void)state;
    assert_int_equal(mh_tokcache_get(tc, "aaa.bbb.ccc", 11, 1000, 0, &out), 0);
    mh_tokcache_put(tc, "aaa.bbb.ccc", 11, &in);
    memset(&out, 0, sizeof out);
    assert_int_equal(mh_tokcache_get(tc, "aaa.bbb.ccc", 11, 1000, 0, &out), 1);
    assert_string_equal(out.subject, "alice");
    assert_string_equal(out.info, "{\"name\":\"alice\"}");
    assert_string_equal(out.kid, "v1");
    assert_true(out.staff);
    assert_int_equal(out.exp, 2000);
    /* the whole token is the key: one byte apart, or a prefix, is a miss */
    assert_int_equal(mh_tokcache_get(tc, "aaa.bbb.ccd", 11, 1000, 0, &out), 0);
    assert_int_equal(mh_tokcache_get(tc, "aaa.bbb.cc", 10, 1000, 0, &out), 0);
    mh_tokcache_free(tc);
}

static void forgets_a_token_at_its_expiry_with_the_leeway(void **state)
{
    mh_tokcache *tc = mh_tokcache_new(16);
    mh_identity in = who("bob", 2000), out;

    (void)state;
    mh_tokcache_put(tc, "t", 1, &in);
    assert_int_equal(mh_tokcache_get(tc, "t", 1, 2029, 30, &out), 1);
    assert_int_equal(mh_tokcache_get(tc, "t", 1, 1999, 0, &out), 1);
    assert_int_equal(mh_tokcache_get(tc, "t", 1, 2000, 0, &out), 0);
    assert_int_equal(mh_tokcache_count(tc), 0); /* dropped, not kept for later */
    assert_int_equal(mh_tokcache_get(tc, "t", 1, 1000, 0, &out), 0);
    /* no expiry: kept */
    in.exp = 0;
    mh_tokcache_put(tc, "t", 1, &in);
    assert_int_equal(mh_tokcache_get(tc, "t", 1, INT64_MAX / 2, 0, &out), 1);
    mh_tokcache_free(tc);
}

static void holds_no_more_than_its_slots(void **state)
{
    mh_tokcache *tc = mh_tokcache_new(5); /* rounded up to 8 */
    mh_identity in = who("carol", 0), out;
    char tok[32];
    int hits = 0;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        snprintf(tok, sizeof tok, "token-%d", i);
        mh_tokcache_put(tc, tok, strlen(tok), &in);
        assert_true(mh_tokcache_count(tc) <= 8);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(tok, sizeof tok, "token-%d", i);
        hits += mh_tokcache_get(tc, tok, strlen(tok), 0, 0, &out);
    }
    assert_true(hits >= 1 && hits <= 8);
    /* the newest is always there */
    assert_int_equal(mh_tokcache_get(tc, "token-999", 9, 0, 0, &out), 1);
    mh_tokcache_free(tc);
}

static void off_and_oversized_are_misses(void **state)
{
    static char big[MH_TOKCACHE_TOKEN_MAX + 2];
    mh_tokcache *tc = mh_tokcache_new(4);
    mh_identity in = who("dan", 0), out;

    (void)state;
    assert_null(mh_tokcache_new(0));
    mh_tokcache_put(NULL, "t", 1, &in);
    assert_int_equal(mh_tokcache_get(NULL, "t", 1, 0, 0, &out), 0);
    memset(big, 'x', sizeof big - 1);
    mh_tokcache_put(tc, big, sizeof big - 1, &in);
    assert_int_equal(mh_tokcache_count(tc), 0);
    assert_int_equal(mh_tokcache_get(tc, big, sizeof big - 1, 0, 0, &out), 0);
    mh_tokcache_free(tc);
    mh_tokcache_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_a_remembered_token_with_what_it_said),
        cmocka_unit_test(forgets_a_token_at_its_expiry_with_the_leeway),
        cmocka_unit_test(holds_no_more_than_its_slots),
        cmocka_unit_test(off_and_oversized_are_misses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
