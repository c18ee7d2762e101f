/* mh_rate: the token bucket behind the frame, inbound and resume limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mh_rate.h"

static void starts_full_then_refills_at_the_rate(void **state)
{
    double tokens = 0;
    uint64_t last = 0, t = 1000;

    (void)state;
    for (int i = 0; i < 5; i++) /* the burst, at once */
        assert_true(mh_rate_take(&tokens, &last, 10, 5, t));
    assert_false(mh_rate_take(&tokens, &last, 10, 5, t));
    assert_false(mh_rate_take(&tokens, &last, 10, 5, t + 99)); /* 0.99 of a token */
    assert_true(mh_rate_take(&tokens, &last, 10, 5, t + 100));
    assert_false(mh_rate_take(&tokens, &last, 10, 5, t + 100));
    /* a long pause saves up the burst, no more */
    t += 60000;
    for (int i = 0; i < 5; i++)
        assert_true(mh_rate_take(&tokens, &last, 10, 5, t));
    assert_false(mh_rate_take(&tokens, &last, 10, 5, t));
}

static void a_refused_take_costs_nothing(void **state)
{
    double tokens = 0;
    uint64_t last = 0;

    (void)state;
    assert_true(mh_rate_take(&tokens, &last, 1, 1, 5));
    for (int i = 0; i < 100; i++) /* refusals do not push the next token back */
        assert_false(mh_rate_take(&tokens, &last, 1, 1, 5 + (uint64_t)i));
    assert_true(mh_rate_take(&tokens, &last, 1, 1, 1005));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(starts_full_then_refills_at_the_rate),
                                       cmocka_unit_test(a_refused_take_costs_nothing)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
