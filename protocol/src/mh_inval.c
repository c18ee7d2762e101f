#include "mh_inval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_json.h"
#include "mh_value.h"

void mh_entry_free(mh_entry *e)
{
    for (size_t i = 0; i < e->nparams; i++) {
        free(e->params[i].name);
        free(e->params[i].value);
    }
    free(e->params);
    free(e->context);
    memset(e, 0, sizeof *e);
}

void mh_inval_free(mh_inval *l)
{
    for (size_t i = 0; i < l->n; i++)
        mh_entry_free(&l->entries[i]);
    free(l->entries);
    l->entries = NULL;
    l->n = 0;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int mh_entry_copy(mh_entry *dst, const mh_entry *src)
{
    memset(dst, 0, sizeof *dst);
    dst->scoped = src->scoped;
    dst->context = dup_bytes(src->context, src->context_len);
    if (!dst->context)
        goto fail;
    dst->context_len = src->context_len;
    if (src->nparams) {
        dst->params = calloc(src->nparams, sizeof *dst->params);
        if (!dst->params)
            goto fail;
        for (size_t i = 0; i < src->nparams; i++) {
            mh_param *d = &dst->params[i];
            const mh_param *s = &src->params[i];
            dst->nparams = i + 1;
            d->name = dup_bytes(s->name, s->name_len);
            d->value = dup_bytes(s->value, s->value_len);
            if (!d->name || !d->value)
                goto fail;
            d->name_len = s->name_len;
            d->value_len = s->value_len;
        }
    }
    return 0;
fail:
    mh_entry_free(dst);
    return MH_E_NOMEM;
}

int mh_entry_set_context(mh_entry *e, const char *name, size_t len, mh_err *err)
{
    int rc = mh_name_check(name, len, MH_NAME_MAX, err);
    if (rc)
        return rc;
    free(e->context);
    e->context = dup_bytes(name, len);
    if (!e->context)
        return mh_err_set(err, MH_E_NOMEM, "out of memory");
    e->context_len = len;
    return 0;
}

static int param_cmp(const void *a, const void *b)
{
    return strcmp(((const mh_param *)a)->name, ((const mh_param *)b)->name);
}

void mh_params_sort(mh_param *p, size_t n)
{
    if (n > 1)
        qsort(p, n, sizeof *p, param_cmp);
}

typedef struct json_member {
    const char *key;
    size_t len;
    json_t *val;
} json_member;

static int member_cmp(const void *a, const void *b)
{
    const json_member *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

int mh_entry_params_from_json(mh_entry *e, const json_t *obj, const char *path, mh_err *err)
{
    size_t n = json_object_size(obj), i = 0;
    json_member *m;
    const char *key;
    size_t klen;
    json_t *val;
    int rc = 0;

    e->scoped = true;
    if (n > MH_PARAMS_MAX) {
        rc = mh_err_set(err, MH_E_TOO_LARGE, "%zu params, the limit is %d", n, MH_PARAMS_MAX);
        mh_err_path(err, path, NULL, 0);
        return rc;
    }
    if (n == 0)
        return 0;
    /* SPEC 1: params are checked in canonical order, so the first bad one is
     * the same whatever order the object's keys came in. */
    m = calloc(n, sizeof *m);
    e->params = calloc(n, sizeof *e->params);
    if (!m || !e->params) {
        free(m);
        return mh_err_set(err, MH_E_NOMEM, "out of memory");
    }
    json_object_keylen_foreach((json_t *)obj, key, klen, val)
    {
        m[i++] = (json_member){key, klen, val};
    }
    qsort(m, n, sizeof *m, member_cmp);
    for (i = 0; i < n; i++) {
        mh_param *p = &e->params[e->nparams];

        rc = mh_name_check(m[i].key, m[i].len, MH_PARAM_NAME_MAX, err);
        if (!rc)
            rc = mh_value_form(m[i].val, &p->value, &p->value_len, err);
        if (rc) {
            mh_err_path(err, path, m[i].key, m[i].len);
            break;
        }
        p->name = dup_bytes(m[i].key, m[i].len);
        if (!p->name) {
            free(p->value);
            rc = mh_err_set(err, MH_E_NOMEM, "out of memory");
            break;
        }
        p->name_len = m[i].len;
        e->nparams++;
    }
    free(m);
    return rc;
}

/* An entry or scope object {"context", "params"} found at 'path'. */
static int entry_object_from_json(mh_entry *e, const json_t *item, const char *path, mh_err *err)
{
    char at[MH_ERR_PATH_MAX];
    const json_t *ctx, *params;
    int rc;

    ctx = json_object_get(item, "context");
    if (!json_is_string(ctx)) {
        rc = mh_err_set(err, MH_E_BAD_INVALIDATION, "\"context\" must be a string");
        mh_err_path(err, path, "context", 7);
        return rc;
    }
    rc = mh_entry_set_context(e, json_string_value(ctx), json_string_length(ctx), err);
    if (rc) {
        mh_err_path(err, path, "context", 7);
        return rc;
    }
    e->scoped = true;
    params = json_object_get(item, "params");
    if (!params)
        return 0;
    snprintf(at, sizeof at, "%s/params", path);
    if (!json_is_object(params)) {
        rc = mh_err_set(err, MH_E_BAD_INVALIDATION, "\"params\" must be an object");
        mh_err_path(err, at, NULL, 0);
        return rc;
    }
    return mh_entry_params_from_json(e, params, at, err);
}

int mh_scope_from_json(mh_entry *e, const json_t *scope, const char *path, mh_err *err)
{
    int rc;

    memset(e, 0, sizeof *e);
    if (!json_is_object(scope)) {
        rc = mh_err_set(err, MH_E_BAD_INVALIDATION, "a scope is {\"context\", \"params\"}");
        mh_err_path(err, path, NULL, 0);
        return rc;
    }
    return entry_object_from_json(e, scope, path, err);
}

static int entry_from_json(mh_entry *e, const json_t *item, const char *path, mh_err *err)
{
    int rc;

    if (json_is_string(item)) {
        rc = mh_entry_set_context(e, json_string_value(item), json_string_length(item), err);
        if (rc)
            mh_err_path(err, path, NULL, 0);
        return rc;
    }
    if (!json_is_object(item)) {
        rc = mh_err_set(err, MH_E_BAD_INVALIDATION,
                        "an entry is a context name or {\"context\", \"params\"}");
        mh_err_path(err, path, NULL, 0);
        return rc;
    }
    return entry_object_from_json(e, item, path, err);
}

int mh_entry_from_json(mh_entry *e, const json_t *item, const char *path, mh_err *err)
{
    memset(e, 0, sizeof *e);
    return entry_from_json(e, item, path, err);
}

int mh_inval_from_json(const json_t *list, mh_inval *out, mh_err *err)
{
    size_t n, i;
    int rc;

    memset(out, 0, sizeof *out);
    if (!json_is_array(list)) {
        rc = mh_err_set(err, MH_E_BAD_INVALIDATION, "an invalidation list is a JSON array");
        mh_err_path(err, "", NULL, 0);
        return rc;
    }
    n = json_array_size(list);
    if (n > MH_ENTRIES_MAX) {
        rc = mh_err_set(err, MH_E_TOO_LARGE, "%zu entries, the limit is %d", n, MH_ENTRIES_MAX);
        mh_err_path(err, "", NULL, 0);
        return rc;
    }
    if (n == 0)
        return 0;
    out->entries = calloc(n, sizeof *out->entries);
    if (!out->entries)
        return mh_err_set(err, MH_E_NOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        char path[32];
        out->n = i + 1;
        snprintf(path, sizeof path, "/%zu", i);
        rc = entry_from_json(&out->entries[i], json_array_get(list, i), path, err);
        if (rc)
            return rc;
    }
    return 0;
}

void mh_params_dump(mh_buf *out, const mh_param *p, size_t n)
{
    mh_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            mh_buf_putc(out, ',');
        mh_json_put_string(out, p[i].name, p[i].name_len);
        mh_buf_putc(out, ':');
        mh_json_put_string(out, p[i].value, p[i].value_len);
    }
    mh_buf_putc(out, '}');
}

void mh_entry_dump(mh_buf *out, const mh_entry *e)
{
    if (!e->scoped) {
        mh_json_put_string(out, e->context, e->context_len);
        return;
    }
    mh_buf_puts(out, "{\"context\":");
    mh_json_put_string(out, e->context, e->context_len);
    mh_buf_puts(out, ",\"params\":");
    mh_params_dump(out, e->params, e->nparams);
    mh_buf_putc(out, '}');
}

json_t *mh_params_to_json(const mh_param *p, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < n; i++) {
        if (json_object_set_new(o, p[i].name, json_stringn(p[i].value, p[i].value_len))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *mh_entry_to_json(const mh_entry *e)
{
    json_t *o;

    if (!e->scoped)
        return json_stringn(e->context, e->context_len);
    o = json_object();
    if (!o || json_object_set_new(o, "context", json_stringn(e->context, e->context_len)) ||
        json_object_set_new(o, "params", mh_params_to_json(e->params, e->nparams))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mh_inval_to_json(const mh_inval *l)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < l->n; i++) {
        if (json_array_append_new(a, mh_entry_to_json(&l->entries[i]))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
