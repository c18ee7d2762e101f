/*
 * core/mh_sse: the resume points of a stream's query subscriptions (SPEC
 * 6.1), moved by the frames written to it as SPEC 10 moves a client's, and
 * the Last-Event-ID shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mh_sse.h"

static mh_sse *stream_of(const char *const *subs, size_t n)
{
    mh_sse *s = mh_sse_new();

    assert_non_null(s);
    assert_int_equal(strlen(s->secret), MH_SSE_SECRET_LEN);
    for (size_t i = 0; i < n; i++) {
        json_t *v = subs[i] ? json_loads(subs[i], 0, NULL) : NULL;
        const char *since = json_string_value(json_object_get(v, "since"));
        assert_int_equal(mh_sse_add(s, v, since), 0);
        json_decref(v);
    }
    return s;
}

static bool note(mh_sse *s, const char *frame)
{
    return mh_sse_note(s, frame, strlen(frame));
}

static void points_move_as_a_client_s(void **state)
{
    static const char *const subs[] = {
        "{\"context\":\"user\",\"params\":{\"user_id\":5}}",
        "{\"context\":\"user\",\"params\":{\"user_id\":\"6\"},\"since\":\"e:1\"}",
        "{\"channel\":\"chat\",\"params\":{\"room\":\"é\"}}",
        NULL, /* not an object: keeps its place, always - */
        "{\"context\":\"todos\"}",
    };
    mh_sse *s = stream_of(subs, 5);
    (void)state;

    assert_string_equal(mh_sse_id(s), "-,e:1,-,-,-");
    /* a live frame before any ack moves nothing: none is in the index yet */
    assert_false(note(s, "{\"invalidate\":[\"user\"],\"versions\":{\"user\":\"e:2\"}}"));
    /* an ack moves its own subscription (params compared canonically) */
    assert_true(note(s, "{\"subscribed\":true,\"context\":\"user\",\"params\":{\"user_id\":\"5\"},"
                        "\"version\":\"e:3\"}"));
    assert_string_equal(mh_sse_id(s), "e:3,e:1,-,-,-");
    assert_true(note(s, "{\"subscribed\":true,\"channel\":\"chat\",\"params\":{\"room\":\"é\"},"
                        "\"epoch\":\"m1\",\"seq\":4}"));
    assert_true(note(s, "{\"subscribed\":true,\"context\":\"todos\",\"params\":{},"
                        "\"version\":\"0:0\"}"));
    assert_string_equal(mh_sse_id(s), "e:3,e:1,m1:4,-,0:0");
    /* a live invalidate moves every subscription of its context */
    assert_true(note(s, "{\"invalidate\":[{\"context\":\"user\",\"params\":{\"user_id\":\"9\"}}],"
                        "\"versions\":{\"user\":\"e:4\"},\"spread_ms\":0}"));
    assert_string_equal(mh_sse_id(s), "e:4,e:1,m1:4,-,0:0"); /* the second is not acked */
    /* a healing one only its own */
    assert_true(note(s, "{\"invalidate\":[{\"context\":\"user\",\"params\":{\"user_id\":\"6\"}}],"
                        "\"versions\":{\"user\":\"e:7\"},\"reason\":\"resume\"}"));
    assert_string_equal(mh_sse_id(s), "e:4,e:7,m1:4,-,0:0");
    /* its ack (the same version) puts it in the index */
    assert_false(note(s, "{\"subscribed\":true,\"context\":\"user\",\"params\":{\"user_id\":\"6\"},"
                         "\"version\":\"e:7\"}"));
    /* a heal given up carries no version: nothing moves */
    assert_false(note(s, "{\"invalidate\":[\"todos\"],\"reason\":\"gap\"}"));
    assert_true(note(s, "{\"invalidate\":[\"todos\"],\"versions\":{\"todos\":\"t:2\"}}"));
    assert_true(note(s, "{\"channel\":\"chat\",\"params\":{\"room\":\"é\"},\"type\":\"m\","
                        "\"data\":null,\"seq\":5,\"epoch\":\"m1\"}"));
    assert_string_equal(mh_sse_id(s), "e:4,e:7,m1:5,-,t:2");
    /* frames that move nothing: other channels, errors, pongs, the same point again */
    assert_false(note(s, "{\"channel\":\"chat\",\"params\":{\"room\":\"x\"},\"type\":\"m\","
                         "\"data\":null,\"seq\":9,\"epoch\":\"m1\"}"));
    assert_false(note(s, "{\"error\":{\"code\":\"forbidden\",\"message\":\"no\"},"
                         "\"channel\":\"chat\",\"params\":{\"room\":\"é\"}}"));
    assert_false(note(s, "{\"pong\":true}"));
    assert_false(note(s, "{\"invalidate\":[\"todos\"],\"versions\":{\"todos\":\"t:2\"}}"));
    assert_false(note(s, "{\"invalidate\":"));
    /* out of the index: no point, and live frames of its context leave it */
    assert_true(
        note(s, "{\"unsubscribed\":true,\"context\":\"user\",\"params\":{\"user_id\":\"5\"}}"));
    assert_string_equal(mh_sse_id(s), "-,e:7,m1:5,-,t:2");
    assert_true(note(s, "{\"invalidate\":[\"user\"],\"versions\":{\"user\":\"e:9\"}}"));
    assert_string_equal(mh_sse_id(s), "-,e:9,m1:5,-,t:2");
    mh_sse_free(s);
}

static void last_event_id_shapes(void **state)
{
    char pts[3][MH_SSE_POINT_MAX + 1];
    (void)state;

    assert_int_equal(mh_sse_parse_id("a:1,-,0:0", 3, pts), 0);
    assert_string_equal(pts[0], "a:1");
    assert_string_equal(pts[1], "");
    assert_string_equal(pts[2], "0:0");
    assert_int_equal(mh_sse_parse_id("a:1,-", 3, pts), -1);       /* too few */
    assert_int_equal(mh_sse_parse_id("a:1,-,0:0,-", 3, pts), -1); /* too many */
    assert_int_equal(mh_sse_parse_id("a:1,x,0:0", 3, pts), -1);   /* not a version */
    assert_int_equal(mh_sse_parse_id("a:01,-,0:0", 3, pts), -1);
    assert_int_equal(mh_sse_parse_id("A:1,-,0:0", 3, pts), -1);
    assert_int_equal(mh_sse_parse_id("a:1,,0:0", 3, pts), -1);
    assert_int_equal(mh_sse_parse_id("", 1, pts), -1);
    assert_int_equal(mh_sse_parse_id("-", 0, pts), -1);
}

static void posts_are_put_in_order(void **state)
{
    mh_sse *s = mh_sse_new();
    mh_sse_post p;
    (void)state;

    assert_int_equal(mh_sse_order(s, 0, "x", 1, 0), 1); /* unnumbered: at once */
    assert_int_equal(mh_sse_order(s, 1, "a", 1, 0), 1);
    assert_false(mh_sse_stalled(s, 100000));
    assert_int_equal(mh_sse_order(s, 3, "c", 1, 10), 0); /* kept for 2 */
    assert_int_equal(mh_sse_order(s, 3, "c", 1, 11), 0); /* a repeat of a kept one */
    assert_int_equal(mh_sse_order(s, 4, "d", 1, 12), 0);
    assert_null(mh_sse_next_held(s, &p, 13)); /* 2 has not come */
    assert_false(mh_sse_stalled(s, 10 + MH_SSE_HELD_MS));
    assert_true(mh_sse_stalled(s, 11 + MH_SSE_HELD_MS));
    assert_int_equal(mh_sse_order(s, 2, "b", 1, 20), 1);
    assert_non_null(mh_sse_next_held(s, &p, 21));
    assert_int_equal(p.n, 3);
    assert_memory_equal(p.body, "c", 1);
    free(p.body);
    assert_non_null(mh_sse_next_held(s, &p, 21));
    assert_int_equal(p.n, 4);
    free(p.body);
    assert_null(mh_sse_next_held(s, &p, 21));
    assert_false(mh_sse_stalled(s, 1000000));
    assert_int_equal(mh_sse_order(s, 2, "b", 1, 30), 0); /* handled already: dropped */
    assert_int_equal(mh_sse_order(s, 5 + MH_SSE_HELD_MAX + 1, "z", 1, 30), -1); /* too far */
    for (unsigned i = 0; i < MH_SSE_HELD_MAX; i++)
        assert_int_equal(mh_sse_order(s, 6 + i, "k", 1, 40), 0);
    /* every place ahead is taken: the next one is 5 itself, then all drain */
    assert_int_equal(mh_sse_order(s, 5 + MH_SSE_HELD_MAX, "k", 1, 40), 0); /* a repeat */
    assert_int_equal(mh_sse_order(s, 5, "e", 1, 41), 1);
    for (unsigned i = 0; i < MH_SSE_HELD_MAX; i++) {
        assert_non_null(mh_sse_next_held(s, &p, 42));
        free(p.body);
    }
    assert_int_equal(s->next_n, 6 + MH_SSE_HELD_MAX);
    assert_int_equal(mh_sse_order(s, 7 + MH_SSE_HELD_MAX, "k", 1, 43), 0); /* kept at exit */
    mh_sse_free(s);                                                        /* frees what it keeps */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(points_move_as_a_client_s),
        cmocka_unit_test(last_event_id_shapes),
        cmocka_unit_test(posts_are_put_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
