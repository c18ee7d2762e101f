#include "mh_header.h"

#include <stdlib.h>
#include <string.h>

#include "mh_value.h"

typedef struct scan {
    const char *s;
    size_t len;
    size_t pos;
    mh_buf tok; /* the current token, percent-decoded */
    mh_err *err;
} scan;

static bool at_end(const scan *sc)
{
    return sc->pos >= sc->len;
}

static void skip_ows(scan *sc)
{
    while (!at_end(sc) && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t'))
        sc->pos++;
}

static bool is_tchar(unsigned char c)
{
    return c >= 0x21 && c <= 0x7E && c != '%' && c != ',' && c != ';' && c != '=';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads *tchar into sc->tok (percent-decoded); an empty token is allowed. */
static int read_token(scan *sc)
{
    mh_buf_reset(&sc->tok);
    while (!at_end(sc)) {
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '%') {
            int hi = sc->pos + 2 < sc->len ? hexval(sc->s[sc->pos + 1]) : -1;
            int lo = hi >= 0 ? hexval(sc->s[sc->pos + 2]) : -1;
            if (hi < 0 || lo < 0) {
                mh_err_set(sc->err, MH_E_BAD_HEADER,
                           "'%%' must be followed by two hex digits (at byte %zu)", sc->pos);
                mh_err_at(sc->err, (long)sc->pos);
                return MH_E_BAD_HEADER;
            }
            mh_buf_putc(&sc->tok, (char)(hi << 4 | lo));
            sc->pos += 3;
        } else if (is_tchar(c)) {
            mh_buf_putc(&sc->tok, (char)c);
            sc->pos++;
        } else {
            break;
        }
    }
    if (sc->tok.oom)
        return mh_err_set(sc->err, MH_E_NOMEM, "out of memory");
    return 0;
}

static int syntax(scan *sc, const char *what)
{
    if (at_end(sc))
        mh_err_set(sc->err, MH_E_BAD_HEADER, "%s, found the end of the header (at byte %zu)", what,
                   sc->pos);
    else
        mh_err_set(sc->err, MH_E_BAD_HEADER, "%s, found byte 0x%02X (at byte %zu)", what,
                   (unsigned char)sc->s[sc->pos], sc->pos);
    mh_err_at(sc->err, (long)sc->pos);
    return MH_E_BAD_HEADER;
}

static char *take_token(scan *sc)
{
    char *d = malloc(sc->tok.len + 1);
    if (d) {
        memcpy(d, sc->tok.data ? sc->tok.data : "", sc->tok.len);
        d[sc->tok.len] = '\0';
    }
    return d;
}

static int read_param(scan *sc, mh_entry *e, mh_param *params)
{
    size_t name_at = sc->pos, value_at;
    mh_param *p;
    int rc;

    if ((rc = read_token(sc)))
        return rc;
    if (sc->tok.len == 0)
        return syntax(sc, "expected a param name");
    if ((rc = mh_name_check(sc->tok.data, sc->tok.len, MH_PARAM_NAME_MAX, sc->err))) {
        mh_err_at(sc->err, (long)name_at);
        return rc;
    }
    for (size_t i = 0; i < e->nparams; i++) {
        if (params[i].name_len == sc->tok.len &&
            !memcmp(params[i].name, sc->tok.data, sc->tok.len)) {
            mh_err_set(sc->err, MH_E_BAD_HEADER, "param '%s' given twice (at byte %zu)",
                       params[i].name, name_at);
            mh_err_at(sc->err, (long)name_at);
            return MH_E_BAD_HEADER;
        }
    }
    if (e->nparams == MH_PARAMS_MAX) {
        mh_err_set(sc->err, MH_E_TOO_LARGE, "more than %d params (at byte %zu)", MH_PARAMS_MAX,
                   name_at);
        mh_err_at(sc->err, (long)name_at);
        return MH_E_TOO_LARGE;
    }
    p = &params[e->nparams];
    p->name = take_token(sc);
    if (!p->name)
        return mh_err_set(sc->err, MH_E_NOMEM, "out of memory");
    p->name_len = sc->tok.len;
    e->nparams++; /* owned by e from here, so cleanup frees it */

    skip_ows(sc);
    if (at_end(sc) || sc->s[sc->pos] != '=')
        return syntax(sc, "expected '=' after a param name");
    sc->pos++;
    skip_ows(sc);
    value_at = sc->pos;
    if ((rc = read_token(sc)))
        return rc;
    if ((rc = mh_value_check(sc->tok.data ? sc->tok.data : "", sc->tok.len, sc->err))) {
        mh_err_at(sc->err, (long)value_at);
        return rc;
    }
    p->value = take_token(sc);
    if (!p->value)
        return mh_err_set(sc->err, MH_E_NOMEM, "out of memory");
    p->value_len = sc->tok.len;
    return 0;
}

static int read_element(scan *sc, mh_entry *e)
{
    size_t name_at = sc->pos;
    int rc;

    if ((rc = read_token(sc)))
        return rc;
    if (sc->tok.len == 0)
        return syntax(sc, "expected a context name");
    if ((rc = mh_entry_set_context(e, sc->tok.data, sc->tok.len, sc->err))) {
        mh_err_at(sc->err, (long)name_at);
        return rc;
    }
    skip_ows(sc);
    if (at_end(sc) || sc->s[sc->pos] != ';')
        return 0;
    sc->pos++;
    e->scoped = true;
    skip_ows(sc);
    if (at_end(sc) || sc->s[sc->pos] == ',')
        return 0; /* "name;" is the scoped entry with {} params */
    e->params = calloc(MH_PARAMS_MAX, sizeof *e->params);
    if (!e->params)
        return mh_err_set(sc->err, MH_E_NOMEM, "out of memory");
    for (;;) {
        if ((rc = read_param(sc, e, e->params)))
            return rc;
        skip_ows(sc);
        if (at_end(sc) || sc->s[sc->pos] != ';')
            break;
        sc->pos++;
        skip_ows(sc);
    }
    mh_params_sort(e->params, e->nparams);
    return 0;
}

int mh_header_decode(const char *s, size_t len, mh_inval *out, mh_err *err)
{
    scan sc = {.s = s, .len = len, .pos = 0, .err = err};
    int rc = 0;

    memset(out, 0, sizeof *out);
    mh_buf_init(&sc.tok);
    if (len > MH_HEADER_MAX) {
        rc = mh_err_set(err, MH_E_TOO_LARGE, "header is %zu bytes, the limit is %d", len,
                        MH_HEADER_MAX);
        mh_err_at(err, MH_HEADER_MAX);
        goto done;
    }
    for (;;) {
        size_t at;
        skip_ows(&sc);
        if (at_end(&sc))
            break;
        if (s[sc.pos] == ',') { /* empty list element */
            sc.pos++;
            continue;
        }
        at = sc.pos;
        if (out->n == MH_ENTRIES_MAX) {
            rc = mh_err_set(err, MH_E_TOO_LARGE, "more than %d entries (at byte %zu)",
                            MH_ENTRIES_MAX, at);
            mh_err_at(err, (long)at);
            goto done;
        }
        if (!out->entries) {
            out->entries = calloc(MH_ENTRIES_MAX, sizeof *out->entries);
            if (!out->entries) {
                rc = mh_err_set(err, MH_E_NOMEM, "out of memory");
                goto done;
            }
        }
        out->n++;
        if ((rc = read_element(&sc, &out->entries[out->n - 1])))
            goto done;
        skip_ows(&sc);
        if (at_end(&sc))
            break;
        if (s[sc.pos] != ',') {
            rc = syntax(&sc, "expected ',' or ';'");
            goto done;
        }
        sc.pos++;
    }
done:
    mh_buf_free(&sc.tok);
    return rc;
}

static void put_pct(mh_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            mh_buf_putc(out, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            mh_buf_put(out, e, 3);
        }
    }
}

int mh_header_encode(mh_buf *out, const mh_inval *l, mh_err *err)
{
    size_t start = out->len;

    for (size_t i = 0; i < l->n; i++) {
        const mh_entry *e = &l->entries[i];
        if (i)
            mh_buf_put(out, ", ", 2);
        put_pct(out, e->context, e->context_len);
        if (!e->scoped)
            continue;
        if (e->nparams == 0)
            mh_buf_putc(out, ';');
        for (size_t k = 0; k < e->nparams; k++) {
            mh_buf_putc(out, ';');
            put_pct(out, e->params[k].name, e->params[k].name_len);
            mh_buf_putc(out, '=');
            put_pct(out, e->params[k].value, e->params[k].value_len);
        }
    }
    /* SPEC 5: no decoder takes more, so no encoder writes more. */
    if (out->len - start > MH_HEADER_MAX) {
        size_t n = out->len - start;
        out->len = start;
        mh_err_set(err, MH_E_TOO_LARGE, "the header would be %zu bytes, the limit is %d", n,
                   MH_HEADER_MAX);
        mh_err_path(err, "", NULL, 0);
        return MH_E_TOO_LARGE;
    }
    return out->oom ? mh_err_set(err, MH_E_NOMEM, "out of memory") : 0;
}
