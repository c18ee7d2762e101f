/*
 * mh_out against protocol/vectors/outbound/frames.json: every frame the hub
 * encodes, its exact bytes written by gen.py (Python's json, from SPEC 8
 * and 11, independently of these encoders). Each case is its own test.
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

#include "mh_envelope.h"
#include "mh_inval.h"
#include "mh_json.h"
#include "mh_out.h"

static const char *str_or_null(const json_t *a, const char *k)
{
    return json_string_value(json_object_get(a, k));
}

static bool flag(const json_t *a, const char *k)
{
    return json_is_true(json_object_get(a, k));
}

static long long num(const json_t *a, const char *k)
{
    return (long long)json_number_value(json_object_get(a, k));
}

/* The case's "ref": absent or null means no ref. */
static const json_t *ref_of(const json_t *a)
{
    const json_t *r = json_object_get(a, "ref");
    return json_is_null(r) ? NULL : r;
}

static void entry_of(const json_t *a, mh_entry *e)
{
    mh_err err;
    assert_int_equal(mh_scope_from_json(e, json_object_get(a, "entry"), "/entry", &err), 0);
}

/* A presence member's args: conn, subject (null), info (absent). */
static void put_member(mh_buf *b, const json_t *a)
{
    const json_t *info = json_object_get(a, "info");
    mh_buf text;

    mh_buf_init(&text);
    if (info)
        assert_int_equal(mh_json_dump(&text, info), 0);
    mh_out_member(b, str_or_null(a, "conn"), str_or_null(a, "subject"),
                  info ? mh_buf_cstr(&text) : NULL);
    mh_buf_free(&text);
}

static void encode(const char *enc, const json_t *a, mh_buf *b)
{
    mh_entry e = {0};

    if (!strcmp(enc, "welcome")) {
        mh_out_welcome(b, str_or_null(a, "hub"), str_or_null(a, "conn"), str_or_null(a, "subject"),
                       flag(a, "staff"), flag(a, "super"), num(a, "expires"),
                       (int)num(a, "spread_ms"), (int)num(a, "max_frame"));
    } else if (!strcmp(enc, "authed")) {
        mh_out_authed(b, str_or_null(a, "subject"), flag(a, "staff"), flag(a, "super"),
                      num(a, "expires"), ref_of(a));
    } else if (!strcmp(enc, "expiring")) {
        mh_out_expiring(b, num(a, "expires"), num(a, "in"));
    } else if (!strcmp(enc, "ack")) {
        entry_of(a, &e);
        mh_out_ack(b, flag(a, "subscribed"), flag(a, "channel"), &e, str_or_null(a, "version"),
                   str_or_null(a, "epoch"), (uint64_t)num(a, "seq"), ref_of(a));
    } else if (!strcmp(enc, "invalidate")) {
        entry_of(a, &e);
        mh_out_invalidate(b, &e, str_or_null(a, "version"), str_or_null(a, "reason"),
                          (int)num(a, "spread_ms"), json_number_value(json_object_get(a, "ts")));
    } else if (!strcmp(enc, "error")) {
        int target = (int)num(a, "target");
        if (target)
            entry_of(a, &e);
        mh_out_error(b, str_or_null(a, "code"), str_or_null(a, "message"), ref_of(a), target,
                     target ? &e : NULL);
    } else if (!strcmp(enc, "ended")) {
        entry_of(a, &e);
        mh_out_ended(b, flag(a, "channel"), &e, str_or_null(a, "code"), str_or_null(a, "message"));
    } else if (!strcmp(enc, "gap")) {
        entry_of(a, &e);
        mh_out_gap(b, &e, (uint64_t)num(a, "from"), (uint64_t)num(a, "to"), flag(a, "recovered"),
                   str_or_null(a, "reason"));
    } else if (!strcmp(enc, "pong")) {
        mh_out_pong(b, ref_of(a));
    } else if (!strcmp(enc, "rpc_error")) {
        mh_out_rpc_error(b, str_or_null(a, "id_json"), str_or_null(a, "code"),
                         str_or_null(a, "message"));
    } else if (!strcmp(enc, "identity")) {
        mh_out_identity(b, str_or_null(a, "subject"), flag(a, "staff"), flag(a, "super"));
    } else if (!strcmp(enc, "canary")) {
        mh_out_canary(b, str_or_null(a, "hub"), str_or_null(a, "nonce"));
    } else if (!strcmp(enc, "channel_message")) {
        const char *text = str_or_null(a, "envelope");
        mh_envelope env;
        mh_err err;
        assert_int_equal(mh_envelope_decode(text, strlen(text), &env, &err), 0);
        assert_int_equal(mh_out_channel_message(b, &env), 0);
        mh_envelope_free(&env);
    } else if (!strcmp(enc, "member")) {
        put_member(b, a);
    } else if (!strcmp(enc, "presence_envelope")) {
        mh_buf scope, m;
        entry_of(a, &e);
        mh_buf_init(&scope);
        mh_buf_init(&m);
        mh_out_presence_scope(&scope, &e);
        put_member(&m, json_object_get(a, "member"));
        mh_out_presence_envelope(b, flag(a, "join"), scope.data, scope.len, m.data, m.len);
        mh_buf_free(&scope);
        mh_buf_free(&m);
    } else if (!strcmp(enc, "presence_event")) {
        mh_buf m;
        entry_of(a, &e);
        mh_buf_init(&m);
        put_member(&m, json_object_get(a, "member"));
        mh_out_presence_event(b, flag(a, "join"), &e, m.data, m.len);
        mh_buf_free(&m);
    } else if (!strcmp(enc, "presence")) {
        const json_t *list = json_object_get(a, "members");
        size_t n = json_array_size(list);
        mh_buf *ms = calloc(n + 1, sizeof *ms);
        const char **texts = calloc(n + 1, sizeof *texts);
        size_t *lens = calloc(n + 1, sizeof *lens);
        assert_non_null(ms);
        assert_non_null(texts);
        assert_non_null(lens);
        entry_of(a, &e);
        for (size_t i = 0; i < n; i++) {
            mh_buf_init(&ms[i]);
            put_member(&ms[i], json_array_get(list, i));
            texts[i] = ms[i].data;
            lens[i] = ms[i].len;
        }
        mh_out_presence(b, &e, texts, lens, n, ref_of(a));
        for (size_t i = 0; i < n; i++)
            mh_buf_free(&ms[i]);
        free(ms);
        free(texts);
        free(lens);
    } else if (!strcmp(enc, "stream")) {
        mh_out_stream(b, str_or_null(a, "conn"), str_or_null(a, "secret"));
    } else if (!strcmp(enc, "post")) {
        const char *body = str_or_null(a, "body");
        mh_out_post(b, str_or_null(a, "conn"), str_or_null(a, "secret"), (uint64_t)num(a, "n"),
                    body, strlen(body));
    } else if (!strcmp(enc, "close")) {
        mh_out_close(b, (unsigned)num(a, "code"), str_or_null(a, "reason"));
    } else if (!strcmp(enc, "sse_event")) {
        const char *data = str_or_null(a, "data");
        size_t n = mh_out_sse_event(NULL, str_or_null(a, "id"), data, strlen(data));
        char *out = malloc(n);
        assert_non_null(out);
        assert_int_equal(mh_out_sse_event(out, str_or_null(a, "id"), data, strlen(data)), n);
        mh_buf_put(b, out, n);
        free(out);
    } else {
        fail_msg("no encoder called '%s' (add it here and to gen.py)", enc);
    }
    mh_entry_free(&e);
}

static void run_case(void **state)
{
    const json_t *c = *state;
    const char *want = json_string_value(json_object_get(c, "expect"));
    mh_buf b;

    mh_buf_init(&b);
    encode(json_string_value(json_object_get(c, "encoder")), json_object_get(c, "args"), &b);
    assert_false(b.oom);
    assert_non_null(mh_buf_cstr(&b));
    if (strlen(want) != b.len || memcmp(want, b.data, b.len))
        fail_msg("%s:\n  got  %.*s\n  want %s", json_string_value(json_object_get(c, "name")),
                 (int)b.len, b.data, want);
    mh_buf_free(&b);
}

int main(int argc, char **argv)
{
    char path[1024];

    snprintf(path, sizeof path, "%s/outbound/frames.json", argc > 1 ? argv[1] : MH_VECTORS_DIR);
    return run_vector_cases("outbound", path, run_case, NULL, 0);
}
