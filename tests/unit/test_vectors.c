/*
 * Runs every case of every protocol/vectors file (*.json) as its own cmocka
 * test, so a failure names the file and the case. The same files run in
 * TypeScript and Python; this is the C side of that agreement.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mh_envelope.h"
#include "mh_frame.h"
#include "mh_header.h"
#include "mh_inval.h"
#include "mh_json.h"
#include "mh_key.h"
#include "mh_value.h"

typedef struct vcase {
    const char *kind;
    json_t *c; /* the case object */
} vcase;

/* JSON equality where numbers compare by value (integer 1 == real 1.0). */
static int json_eq(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        const char *k;
        size_t klen;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_keylen_foreach((json_t *)a, k, klen, v)
        {
            json_t *w = json_object_getn(b, k, klen);
            if (!w || !json_eq(v, w))
                return 0;
        }
        return 1;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    default:
        return 1;
    }
}

static void expect_json(const json_t *got, const json_t *want, const char *name)
{
    if (!json_eq(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
        char *w = json_dumps(want, JSON_ENCODE_ANY | JSON_COMPACT);
        print_error("%s:\n  got  %s\n  want %s\n", name, g ? g : "?", w ? w : "?");
        free(g);
        free(w);
        fail();
    }
}

/* Checks the outcome of a call: success with nothing expected, or the exact error. */
static int check_outcome(const json_t *c, int rc, const mh_err *err, const char *name)
{
    const json_t *want = json_object_get(c, "error");

    if (!want) {
        if (rc != 0) {
            print_error("%s: unexpected error %s (%s) pos=%ld path=%s\n", name, mh_code_name(rc),
                        err->msg, err->pos, err->path);
            fail();
        }
        return 0;
    }
    if (rc == 0) {
        print_error("%s: expected error %s, got success\n", name,
                    json_string_value(json_object_get(want, "code")));
        fail();
    }
    assert_int_equal(rc, err->code);
    assert_true(err->msg[0] != '\0');
    if (strcmp(mh_code_name(rc), json_string_value(json_object_get(want, "code")))) {
        print_error("%s: expected %s, got %s (%s)\n", name,
                    json_string_value(json_object_get(want, "code")), mh_code_name(rc), err->msg);
        fail();
    }
    if (json_object_get(want, "pos")) {
        long pos = (long)json_number_value(json_object_get(want, "pos"));
        if (pos != err->pos) {
            print_error("%s: expected pos %ld, got %ld (%s)\n", name, pos, err->pos, err->msg);
            fail();
        }
    }
    if (json_object_get(want, "path")) {
        const json_t *path = json_object_get(want, "path");
        if (!err->has_path || err->path_len != json_string_length(path) ||
            memcmp(json_string_value(path), err->path, err->path_len)) {
            print_error("%s: expected path '%s', got '%s' (%s)\n", name, json_string_value(path),
                        err->has_path ? err->path : "(none)", err->msg);
            fail();
        }
    }
    return 1;
}

static void expect_str(const char *got, size_t len, const json_t *want, const char *name)
{
    if (!json_is_string(want) || json_string_length(want) != len ||
        memcmp(got, json_string_value(want), len)) {
        print_error("%s:\n  got  '%.*s'\n  want '%s'\n", name, (int)len, got,
                    json_string_value(want));
        fail();
    }
}

static void run_header_decode(const char *name, const json_t *in, const json_t *c)
{
    mh_inval l;
    mh_err err;
    int rc;

    mh_err_clear(&err);
    rc = mh_header_decode(json_string_value(in), json_string_length(in), &l, &err);
    if (!check_outcome(c, rc, &err, name)) {
        json_t *got = mh_inval_to_json(&l);
        expect_json(got, json_object_get(c, "expect"), name);
        json_decref(got);
    }
    mh_inval_free(&l);
}

static void run_inval(const char *name, const json_t *in, const json_t *c, const char *kind)
{
    mh_inval l, back;
    mh_err err;
    mh_buf b;
    int rc;

    mh_err_clear(&err);
    mh_buf_init(&b);
    memset(&back, 0, sizeof back);
    rc = mh_inval_from_json(in, &l, &err);
    /* header_encode fails where decoding fails or where the header would pass 8192 bytes */
    if (!rc && !strcmp(kind, "header_encode"))
        rc = mh_header_encode(&b, &l, &err);
    if (check_outcome(c, rc, &err, name))
        goto done;
    if (!strcmp(kind, "invalidation_decode")) {
        json_t *got = mh_inval_to_json(&l);
        expect_json(got, json_object_get(c, "expect"), name);
        json_decref(got);
        goto done;
    }
    if (strcmp(kind, "header_encode"))
        assert_int_equal(mh_header_encode(&b, &l, &err), 0);
    if (!strcmp(kind, "header_encode")) {
        expect_str(b.data ? b.data : "", b.len, json_object_get(c, "expect"), name);
        goto done;
    }
    /* roundtrip: the header, then the header decoded again */
    expect_str(b.data ? b.data : "", b.len, json_object_get(json_object_get(c, "expect"), "header"),
               name);
    rc = mh_header_decode(b.data ? b.data : "", b.len, &back, &err);
    assert_int_equal(rc, 0);
    {
        json_t *got = mh_inval_to_json(&back);
        expect_json(got, json_object_get(json_object_get(c, "expect"), "json"), name);
        json_decref(got);
    }
done:
    mh_inval_free(&back);
    mh_inval_free(&l);
    mh_buf_free(&b);
}

static void run_canonical_key(const char *name, const json_t *in, const json_t *c)
{
    const json_t *want = json_object_get(c, "expect");
    mh_entry e;
    mh_err err;
    mh_buf b;
    int rc;

    mh_err_clear(&err);
    rc = mh_scope_from_json(&e, in, "", &err);
    if (!check_outcome(c, rc, &err, name)) {
        mh_buf_init(&b);
        mh_key_canon(&b, e.context, e.context_len, e.params, e.nparams);
        assert_false(b.oom);
        expect_str(b.data, b.len, json_object_get(want, "key"), name);
        assert_int_equal(mh_key_bucket(b.data, b.len),
                         (unsigned)json_number_value(json_object_get(want, "bucket")));
        mh_buf_free(&b);
    }
    mh_entry_free(&e);
}

static void run_match(const char *name, const json_t *in, const json_t *c)
{
    mh_entry e, s;
    mh_err err;
    int rc;

    mh_err_clear(&err);
    memset(&s, 0, sizeof s);
    rc = mh_entry_from_json(&e, json_object_get(in, "entry"), "/entry", &err);
    if (!rc)
        rc = mh_scope_from_json(&s, json_object_get(in, "subscription"), "/subscription", &err);
    if (!check_outcome(c, rc, &err, name) &&
        mh_match(&e, &s) != json_is_true(json_object_get(c, "expect"))) {
        print_error("%s: expected %s\n", name,
                    json_is_true(json_object_get(c, "expect")) ? "match" : "no match");
        fail();
    }
    mh_entry_free(&s);
    mh_entry_free(&e);
}

static void run_frame(const char *name, const json_t *in, const json_t *c)
{
    mh_frame f;
    mh_err err;
    int rc;

    mh_err_clear(&err);
    rc = mh_frame_decode(json_string_value(in), json_string_length(in), &f, &err);
    if (!check_outcome(c, rc, &err, name)) {
        json_t *got = mh_frame_to_json(&f);
        mh_buf b;
        json_t *again;

        expect_json(got, json_object_get(c, "expect"), name);
        /* What the hub writes to the inbound stream parses back to the same frame. */
        mh_buf_init(&b);
        assert_int_equal(mh_frame_dump(&b, &f), 0);
        again = mh_json_parse(b.data, b.len, NULL);
        assert_non_null(again);
        expect_json(again, got, name);
        json_decref(again);
        json_decref(got);
        mh_buf_free(&b);
    }
    mh_frame_free(&f);
}

static void run_envelope(const char *name, const json_t *in, const json_t *c)
{
    mh_envelope env;
    mh_err err;
    int rc;

    mh_err_clear(&err);
    rc = mh_envelope_decode(json_string_value(in), json_string_length(in), &env, &err);
    if (!check_outcome(c, rc, &err, name)) {
        json_t *got = mh_envelope_to_json(&env);
        expect_json(got, json_object_get(c, "expect"), name);
        json_decref(got);
    }
    mh_envelope_free(&env);
}

static void run_value_string(const char *name, const json_t *in, const json_t *c)
{
    mh_err err;
    char *s = NULL;
    size_t n = 0;
    int rc;

    mh_err_clear(&err);
    rc = mh_value_form(in, &s, &n, &err);
    if (rc)
        mh_err_path(&err, "", NULL, 0); /* the value is the root */
    if (!check_outcome(c, rc, &err, name))
        expect_str(s, n, json_object_get(c, "expect"), name);
    free(s);
}

static const char *known_kinds[] = {"header_decode", "header_encode",   "invalidation_decode",
                                    "roundtrip",     "canonical_key",   "match",
                                    "frame_decode",  "envelope_decode", "value_string"};

static void run_case(void **state)
{
    const vcase *v = *state;
    const json_t *in = json_object_get(v->c, "input");
    const char *name = json_string_value(json_object_get(v->c, "name"));

    if (!strcmp(v->kind, "header_decode"))
        run_header_decode(name, in, v->c);
    else if (!strcmp(v->kind, "header_encode") || !strcmp(v->kind, "invalidation_decode") ||
             !strcmp(v->kind, "roundtrip"))
        run_inval(name, in, v->c, v->kind);
    else if (!strcmp(v->kind, "canonical_key"))
        run_canonical_key(name, in, v->c);
    else if (!strcmp(v->kind, "match"))
        run_match(name, in, v->c);
    else if (!strcmp(v->kind, "frame_decode"))
        run_frame(name, in, v->c);
    else if (!strcmp(v->kind, "envelope_decode"))
        run_envelope(name, in, v->c);
    else if (!strcmp(v->kind, "value_string"))
        run_value_string(name, in, v->c);
    else
        fail_msg("unknown vector kind '%s'", v->kind);
}

/* The whole file as a NUL-terminated string (vector files hold no NUL byte). */
static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *text = NULL;
    long n;

    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (text = malloc((size_t)n + 1))) {
        if (fread(text, 1, (size_t)n, fp) != (size_t)n) {
            free(text);
            text = NULL;
        } else {
            text[n] = '\0';
        }
    }
    fclose(fp);
    return text;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : MH_VECTORS_DIR;
    struct CMUnitTest *tests = NULL;
    vcase *cases = NULL;
    size_t ntests = 0, cap = 0, nfiles = 0;
    char *files[64];
    char path[4096];
    json_t *docs[64];
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc;

    if (!d) {
        fprintf(stderr, "cannot open vectors directory %s\n", dir);
        return 2;
    }
    while ((de = readdir(d)) && nfiles < 64) {
        size_t n = strlen(de->d_name);
        if (n > 5 && !strcmp(de->d_name + n - 5, ".json"))
            files[nfiles++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(files, nfiles, sizeof files[0], name_cmp);
    if (nfiles == 0) {
        fprintf(stderr, "no vector files in %s\n", dir);
        return 2;
    }
    for (size_t f = 0; f < nfiles; f++) {
        mh_err jerr;
        char *text;
        const json_t *kind, *list;
        size_t k;

        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        /* The library's own parser: jansson's cannot load a key holding U+0000. */
        if (!(text = read_file(path))) {
            fprintf(stderr, "%s: cannot read\n", path);
            return 2;
        }
        mh_err_clear(&jerr);
        docs[f] = mh_json_parse_depth(text, strlen(text), 1000, &jerr);
        free(text);
        if (!docs[f]) {
            fprintf(stderr, "%s: %s\n", path, jerr.msg);
            return 2;
        }
        kind = json_object_get(docs[f], "kind");
        list = json_object_get(docs[f], "cases");
        for (k = 0; k < sizeof known_kinds / sizeof known_kinds[0]; k++)
            if (json_is_string(kind) && !strcmp(json_string_value(kind), known_kinds[k]))
                break;
        if (k == sizeof known_kinds / sizeof known_kinds[0] || !json_is_array(list)) {
            fprintf(stderr, "%s: unknown kind or no cases; the C runner must learn it\n", path);
            return 2;
        }
        for (size_t i = 0; i < json_array_size(list); i++) {
            if (ntests == cap) {
                cap = cap ? cap * 2 : 256;
                tests = realloc(tests, cap * sizeof *tests);
                cases = realloc(cases, cap * sizeof *cases);
            }
            cases[ntests].kind = json_string_value(kind);
            cases[ntests].c = json_array_get(list, i);
            ntests++;
        }
    }
    for (size_t i = 0; i < ntests; i++) {
        char *name = malloc(256);
        snprintf(name, 256, "%s: %s", cases[i].kind,
                 json_string_value(json_object_get(cases[i].c, "name")));
        tests[i] =
            (struct CMUnitTest){.name = name, .test_func = run_case, .initial_state = &cases[i]};
    }
    rc = _cmocka_run_group_tests("vectors", tests, ntests, NULL, NULL);
    for (size_t i = 0; i < ntests; i++)
        free((char *)tests[i].name);
    for (size_t f = 0; f < nfiles; f++) {
        json_decref(docs[f]);
        free(files[f]);
    }
    free(tests);
    free(cases);
    return rc;
}
