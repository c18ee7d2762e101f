/*
 * The C side of the differential run (tests/diff/run): reads one request a
 * line on stdin, {"op": OP, "in": INPUT}, and answers one line on stdout,
 * {"ok": RESULT} or {"err": CODE, "path": ..., "pos": ..., "stage": ...}.
 * The TypeScript and Python workers answer the same requests the same way;
 * tests/diff/README.md lists the operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mh_envelope.h"
#include "mh_frame.h"
#include "mh_header.h"
#include "mh_inval.h"
#include "mh_json.h"
#include "mh_key.h"
#include "mh_value.h"

static void put_error(mh_buf *out, int rc, const mh_err *err, const char *stage)
{
    mh_buf_puts(out, "{\"err\":");
    mh_json_put_string(out, mh_code_name(rc), strlen(mh_code_name(rc)));
    if (err->has_path) {
        mh_buf_puts(out, ",\"path\":");
        mh_json_put_string(out, err->path, err->path_len);
    }
    if (err->pos >= 0)
        mh_buf_printf(out, ",\"pos\":%ld", err->pos);
    mh_buf_printf(out, ",\"stage\":\"%s\"}", stage);
}

static void put_ok_json(mh_buf *out, json_t *v)
{
    mh_buf_puts(out, "{\"ok\":");
    mh_json_dump(out, v);
    mh_buf_putc(out, '}');
}

static void put_key(mh_buf *out, const mh_entry *e)
{
    mh_buf k;

    mh_buf_init(&k);
    mh_key_canon(&k, e->context, e->context_len, e->params, e->nparams);
    mh_buf_puts(out, "{\"ok\":{\"key\":");
    mh_json_put_string(out, k.data, k.len);
    mh_buf_printf(out, ",\"bucket\":%u}}", mh_key_bucket(k.data, k.len));
    mh_buf_free(&k);
}

/* The operations on a JSON text: parse it first, as the hub would. */
static void run_json_op(mh_buf *out, const char *op, const char *text, size_t len)
{
    mh_err err;
    json_t *v;
    int rc;

    mh_err_clear(&err);
    v = mh_json_parse(text, len, &err);
    if (!v) {
        put_error(out, err.code, &err, "parse");
        return;
    }
    if (!strcmp(op, "key")) {
        mh_entry e;
        if ((rc = mh_scope_from_json(&e, v, "", &err)))
            put_error(out, rc, &err, "api");
        else
            put_key(out, &e);
        mh_entry_free(&e);
    } else if (!strcmp(op, "match")) {
        mh_entry e, s;
        memset(&s, 0, sizeof s);
        if (!json_is_object(v)) {
            mh_buf_puts(out, "{\"err\":\"not_object\",\"stage\":\"worker\"}");
            memset(&e, 0, sizeof e);
        } else if ((rc = mh_entry_from_json(&e, json_object_get(v, "entry"), "/entry", &err)) ||
                   (rc = mh_scope_from_json(&s, json_object_get(v, "subscription"), "/subscription",
                                            &err))) {
            put_error(out, rc, &err, "api");
        } else {
            mh_buf_puts(out, mh_match(&e, &s) ? "{\"ok\":true}" : "{\"ok\":false}");
        }
        mh_entry_free(&s);
        mh_entry_free(&e);
    } else {
        mh_inval l, back;
        mh_buf h;
        memset(&back, 0, sizeof back);
        mh_buf_init(&h);
        if ((rc = mh_inval_from_json(v, &l, &err))) {
            put_error(out, rc, &err, "api");
        } else if (!strcmp(op, "inval")) {
            json_t *j = mh_inval_to_json(&l);
            put_ok_json(out, j);
            json_decref(j);
        } else if ((rc = mh_header_encode(&h, &l, &err))) {
            put_error(out, rc, &err, "api");
        } else if (!strcmp(op, "henc")) {
            mh_buf_puts(out, "{\"ok\":");
            mh_json_put_string(out, h.data ? h.data : "", h.len);
            mh_buf_putc(out, '}');
        } else if ((rc = mh_header_decode(h.data ? h.data : "", h.len, &back, &err))) {
            put_error(out, rc, &err, "decode");
        } else {
            json_t *j = mh_inval_to_json(&back);
            mh_buf_puts(out, "{\"ok\":{\"header\":");
            mh_json_put_string(out, h.data ? h.data : "", h.len);
            mh_buf_puts(out, ",\"json\":");
            mh_json_dump(out, j);
            mh_buf_puts(out, "}}");
            json_decref(j);
        }
        mh_buf_free(&h);
        mh_inval_free(&back);
        mh_inval_free(&l);
    }
    json_decref(v);
}

static void run(mh_buf *out, const char *op, const char *in, size_t len)
{
    mh_err err;
    int rc;

    mh_err_clear(&err);
    if (!strcmp(op, "hdec")) {
        mh_inval l;
        if ((rc = mh_header_decode(in, len, &l, &err))) {
            put_error(out, rc, &err, "api");
        } else {
            json_t *j = mh_inval_to_json(&l);
            put_ok_json(out, j);
            json_decref(j);
        }
        mh_inval_free(&l);
    } else if (!strcmp(op, "frame")) {
        mh_frame f;
        if ((rc = mh_frame_decode(in, len, &f, &err))) {
            put_error(out, rc, &err, "api");
        } else {
            json_t *j = mh_frame_to_json(&f);
            put_ok_json(out, j);
            json_decref(j);
        }
        mh_frame_free(&f);
    } else if (!strcmp(op, "env")) {
        mh_envelope env;
        if ((rc = mh_envelope_decode(in, len, &env, &err))) {
            put_error(out, rc, &err, "api");
        } else {
            json_t *j = mh_envelope_to_json(&env);
            put_ok_json(out, j);
            json_decref(j);
        }
        mh_envelope_free(&env);
    } else if (!strcmp(op, "nums")) {
        /* SPEC 1's string form of each number of a JSON array (the sweep) */
        json_t *a = mh_json_parse(in, len, &err);
        size_t i;
        json_t *v;
        mh_buf_puts(out, "{\"ok\":[");
        json_array_foreach(a, i, v)
        {
            char num[MH_NUMBER_MAX];
            int k = mh_value_number(json_number_value(v), num);
            if (i)
                mh_buf_putc(out, ',');
            mh_json_put_string(out, num, k < 0 ? 0 : (size_t)k);
        }
        mh_buf_puts(out, "]}");
        json_decref(a);
    } else if (!strcmp(op, "key") || !strcmp(op, "match") || !strcmp(op, "inval") ||
               !strcmp(op, "henc") || !strcmp(op, "rt")) {
        run_json_op(out, op, in, len);
    } else {
        mh_buf_puts(out, "{\"err\":\"unknown_op\",\"stage\":\"worker\"}");
    }
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    mh_buf out;

    mh_buf_init(&out);
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t je;
        json_t *req = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &je);
        const json_t *op = json_object_get(req, "op"), *in = json_object_get(req, "in");

        mh_buf_reset(&out);
        if (!json_is_string(op) || !json_is_string(in))
            mh_buf_puts(&out, "{\"err\":\"bad_request\",\"stage\":\"worker\"}");
        else
            run(&out, json_string_value(op), json_string_value(in), json_string_length(in));
        mh_buf_putc(&out, '\n');
        fwrite(out.data, 1, out.len, stdout);
        fflush(stdout);
        json_decref(req);
    }
    free(line);
    mh_buf_free(&out);
    return 0;
}
