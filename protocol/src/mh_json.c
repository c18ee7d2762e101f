#include "mh_json.h"

#include "mh_value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool mh_json_is_safe_integer(const json_t *v)
{
    double d;

    if (!json_is_number(v))
        return false;
    d = json_number_value(v);
    return d == floor(d) && fabs(d) <= 9007199254740991.0;
}

/*
 * The parser. jansson's own cannot store an object key holding U+0000 (SPEC 1
 * makes such a param name `bad_name`, and an ignored field must simply be
 * accepted), stops at a NUL byte after a number or literal, and finds
 * nesting too deep only after reading everything. This one reads the text
 * once, front to back, and the first place where the text breaks SPEC 1
 * decides the error: `bad_json`, or `too_large` at the bracket opening the
 * 65th level. It builds jansson values, keys stored with their length.
 */
typedef struct jparse {
    const unsigned char *s;
    size_t len;
    size_t i;
    int depth;
    int max_depth;
    int keep;     /* past the depth limit, skip the deep value and read on */
    int too_deep; /* the limit was passed (then that is the error) */
    mh_err *err;
    mh_buf str; /* the current string, unescaped */
} jparse;

static int jp_fail(jparse *p, const char *what)
{
    if (p->too_deep) /* an earlier place broke the rules first */
        return MH_E_TOO_LARGE;
    return mh_err_set(p->err, MH_E_BAD_JSON, "invalid JSON at byte %zu: %s", p->i, what);
}

static void jp_ws(jparse *p)
{
    while (p->i < p->len) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->i++;
    }
}

static int jp_peek(const jparse *p)
{
    return p->i < p->len ? p->s[p->i] : -1;
}

static int jp_hex4(const jparse *p, size_t at)
{
    int v = 0;

    if (at + 4 > p->len)
        return -1;
    for (size_t k = at; k < at + 4; k++) {
        unsigned char c = p->s[k];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void jp_put_utf8(mh_buf *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    mh_buf_put(b, u, n);
}

/* Length of the valid UTF-8 sequence at s[i], or 0 (SPEC 1: scalar values only). */
static size_t jp_utf8_len(const jparse *p)
{
    unsigned char c = p->s[p->i];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;

    if (n == 0 || p->len - p->i < n || !mh_utf8_valid((const char *)p->s + p->i, n))
        return 0;
    return n;
}

/* Reads the string at p->i (the opening quote) into p->str. */
static int jp_string(jparse *p)
{
    mh_buf_reset(&p->str);
    p->i++;
    for (;;) {
        size_t run = p->i;
        unsigned char c;

        while (p->i < p->len && (c = p->s[p->i]) >= 0x20 && c < 0x80 && c != '"' && c != '\\')
            p->i++;
        mh_buf_put(&p->str, p->s + run, p->i - run);
        if (p->i >= p->len)
            return jp_fail(p, "unterminated string");
        c = p->s[p->i];
        if (c == '"') {
            p->i++;
            return p->str.oom ? mh_err_set(p->err, MH_E_NOMEM, "out of memory") : 0;
        }
        if (c < 0x20)
            return jp_fail(p, "control character in a string");
        if (c >= 0x80) {
            size_t n = jp_utf8_len(p);
            if (!n)
                return jp_fail(p, "invalid UTF-8");
            mh_buf_put(&p->str, p->s + p->i, n);
            p->i += n;
            continue;
        }
        /* a backslash */
        if (p->i + 1 >= p->len)
            return jp_fail(p, "unterminated string");
        switch (p->s[p->i + 1]) {
        case '"':
        case '\\':
        case '/':
            mh_buf_putc(&p->str, (char)p->s[p->i + 1]);
            break;
        case 'b':
            mh_buf_putc(&p->str, '\b');
            break;
        case 'f':
            mh_buf_putc(&p->str, '\f');
            break;
        case 'n':
            mh_buf_putc(&p->str, '\n');
            break;
        case 'r':
            mh_buf_putc(&p->str, '\r');
            break;
        case 't':
            mh_buf_putc(&p->str, '\t');
            break;
        case 'u': {
            int u = jp_hex4(p, p->i + 2), lo;
            if (u < 0)
                return jp_fail(p, "invalid \\u escape");
            if (u >= 0xDC00 && u <= 0xDFFF)
                return jp_fail(p, "escaped lone surrogate");
            if (u >= 0xD800 && u <= 0xDBFF) {
                lo = p->i + 7 < p->len && p->s[p->i + 6] == '\\' && p->s[p->i + 7] == 'u'
                         ? jp_hex4(p, p->i + 8)
                         : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jp_fail(p, "escaped lone surrogate");
                jp_put_utf8(&p->str,
                            0x10000 + (((unsigned)u - 0xD800) << 10) + ((unsigned)lo - 0xDC00));
                p->i += 12;
                continue;
            }
            jp_put_utf8(&p->str, (unsigned)u);
            p->i += 6;
            continue;
        }
        default:
            return jp_fail(p, "invalid escape");
        }
        p->i += 2;
    }
}

static bool jp_digit(const jparse *p)
{
    return p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9';
}

static int jp_number(jparse *p, json_t **out)
{
    size_t start = p->i;
    char small[64], *copy = small;
    double d;

    if (jp_peek(p) == '-')
        p->i++;
    if (jp_peek(p) == '0')
        p->i++;
    else if (jp_digit(p))
        while (jp_digit(p))
            p->i++;
    else
        return jp_fail(p, "invalid number");
    if (jp_peek(p) == '.') {
        p->i++;
        if (!jp_digit(p))
            return jp_fail(p, "invalid number");
        while (jp_digit(p))
            p->i++;
    }
    if (jp_peek(p) == 'e' || jp_peek(p) == 'E') {
        p->i++;
        if (jp_peek(p) == '+' || jp_peek(p) == '-')
            p->i++;
        if (!jp_digit(p))
            return jp_fail(p, "invalid number");
        while (jp_digit(p))
            p->i++;
    }
    /* strtod needs a terminated copy; it rounds to nearest, as JavaScript does
     * (in the C locale: nothing in the hub calls setlocale). */
    if (p->i - start >= sizeof small && !(copy = malloc(p->i - start + 1)))
        return mh_err_set(p->err, MH_E_NOMEM, "out of memory");
    memcpy(copy, p->s + start, p->i - start);
    copy[p->i - start] = '\0';
    d = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (isinf(d)) {
        p->i = start;
        return jp_fail(p, "number overflows a double");
    }
    *out = json_real(d);
    return *out ? 0 : mh_err_set(p->err, MH_E_NOMEM, "out of memory");
}

static int jp_value(jparse *p, json_t **out);

#define JP_SKIPPED 1

/*
 * Skips the container at p->i by its brackets alone (strings honoured), for
 * a caller that only wants the fields around a value nested too deep.
 */
static int jp_skip(jparse *p)
{
    size_t level = 0;

    while (p->i < p->len) {
        unsigned char c = p->s[p->i++];
        if (c == '"') {
            while (p->i < p->len && p->s[p->i] != '"')
                p->i += p->s[p->i] == '\\' ? 2 : 1;
            p->i++;
        } else if (c == '[' || c == '{') {
            level++;
        } else if ((c == ']' || c == '}') && --level == 0) {
            return 0;
        }
    }
    return MH_E_TOO_LARGE;
}

/*
 * Enters one more level of nesting: SPEC 1's limit is checked here, in text
 * order. In keep mode the deep value is skipped (JP_SKIPPED) and stands as
 * null, so a frame's `ref` after it is still read for the error reply.
 */
static int jp_enter(jparse *p)
{
    if (++p->depth > p->max_depth) {
        if (!p->too_deep)
            mh_err_set(p->err, MH_E_TOO_LARGE, "JSON nesting is deeper than %d levels",
                       p->max_depth);
        p->too_deep = 1;
        p->depth--;
        if (!p->keep)
            return MH_E_TOO_LARGE;
        return jp_skip(p) ? MH_E_TOO_LARGE : JP_SKIPPED;
    }
    p->i++;
    jp_ws(p);
    return 0;
}

/*
 * On an error *out keeps what was read so far (a caller reporting a frame
 * nested too deep still finds its `ref`); the caller decides whether to keep it.
 */
static int jp_object(jparse *p, json_t **out)
{
    int rc;

    if ((rc = jp_enter(p)) == JP_SKIPPED) {
        *out = json_null();
        return 0;
    }
    if (rc)
        return rc;
    if (!(*out = json_object()))
        return mh_err_set(p->err, MH_E_NOMEM, "out of memory");
    if (jp_peek(p) == '}') {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        json_t *v = NULL;
        char *key;
        size_t klen;
        int c;

        jp_ws(p);
        if (jp_peek(p) != '"')
            return jp_fail(p, "expected a string key");
        if ((rc = jp_string(p)))
            return rc;
        klen = p->str.len;
        key = mh_buf_take(&p->str);
        if (!key)
            return mh_err_set(p->err, MH_E_NOMEM, "out of memory");
        jp_ws(p);
        if (jp_peek(p) != ':') {
            free(key);
            return jp_fail(p, "expected ':'");
        }
        p->i++;
        rc = jp_value(p, &v);
        /* A duplicate key: the last one wins, in the first one's place. */
        if (v && json_object_setn_new_nocheck(*out, key, klen, v))
            rc = rc ? rc : mh_err_set(p->err, MH_E_NOMEM, "out of memory");
        free(key);
        if (rc)
            return rc;
        jp_ws(p);
        c = jp_peek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c != '}')
            return jp_fail(p, "expected ',' or '}'");
        p->i++;
        p->depth--;
        return 0;
    }
}

static int jp_array(jparse *p, json_t **out)
{
    int rc;

    if ((rc = jp_enter(p)) == JP_SKIPPED) {
        *out = json_null();
        return 0;
    }
    if (rc)
        return rc;
    if (!(*out = json_array()))
        return mh_err_set(p->err, MH_E_NOMEM, "out of memory");
    if (jp_peek(p) == ']') {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        json_t *v = NULL;
        int c;

        rc = jp_value(p, &v);
        if (v && json_array_append_new(*out, v))
            rc = rc ? rc : mh_err_set(p->err, MH_E_NOMEM, "out of memory");
        if (rc)
            return rc;
        jp_ws(p);
        c = jp_peek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c != ']')
            return jp_fail(p, "expected ',' or ']'");
        p->i++;
        p->depth--;
        return 0;
    }
}

static int jp_literal(jparse *p, const char *word, json_t *v, json_t **out)
{
    size_t n = strlen(word);

    if (p->len - p->i < n || memcmp(p->s + p->i, word, n))
        return jp_fail(p, "unexpected character");
    p->i += n;
    *out = v;
    return 0;
}

static int jp_value(jparse *p, json_t **out)
{
    int c, rc;

    *out = NULL;
    jp_ws(p);
    c = jp_peek(p);
    switch (c) {
    case '{':
        return jp_object(p, out);
    case '[':
        return jp_array(p, out);
    case '"':
        if ((rc = jp_string(p)))
            return rc;
        *out = json_stringn_nocheck(p->str.data ? p->str.data : "", p->str.len);
        return *out ? 0 : mh_err_set(p->err, MH_E_NOMEM, "out of memory");
    case 't':
        return jp_literal(p, "true", json_true(), out);
    case 'f':
        return jp_literal(p, "false", json_false(), out);
    case 'n':
        return jp_literal(p, "null", json_null(), out);
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return jp_number(p, out);
        return jp_fail(p, c < 0 ? "unexpected end of text" : "unexpected character");
    }
}

static json_t *parse(const char *text, size_t len, int max_depth, int keep, mh_err *err,
                     int *too_deep)
{
    jparse p = {.s = (const unsigned char *)text,
                .len = len,
                .max_depth = max_depth,
                .keep = keep,
                .err = err};
    json_t *v = NULL;
    int rc;

    mh_buf_init(&p.str);
    rc = jp_value(&p, &v);
    if (!rc) {
        jp_ws(&p);
        if (p.i < p.len)
            rc = jp_fail(&p, "text after the JSON value");
    }
    mh_buf_free(&p.str);
    *too_deep = p.too_deep;
    if (p.too_deep && v)
        return v; /* what was read; the error is too_large */
    if (rc || p.too_deep) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *mh_json_parse_keep(const char *text, size_t len, mh_err *err, int *too_deep)
{
    return parse(text, len, MH_JSON_DEPTH_MAX, 1, err, too_deep);
}

json_t *mh_json_parse_depth(const char *text, size_t len, int max_depth, mh_err *err)
{
    int too_deep;
    json_t *v = parse(text, len, max_depth, 0, err, &too_deep);

    if (v && too_deep) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *mh_json_parse(const char *text, size_t len, mh_err *err)
{
    return mh_json_parse_depth(text, len, MH_JSON_DEPTH_MAX, err);
}

void mh_json_put_string(mh_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    mh_buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc = 0;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        mh_buf_put(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            esc = '"';
            break;
        case '\\':
            esc = '\\';
            break;
        case '\b':
            esc = 'b';
            break;
        case '\f':
            esc = 'f';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\t':
            esc = 't';
            break;
        }
        if (esc) {
            char e[2] = {'\\', esc};
            mh_buf_put(out, e, 2);
        } else {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            mh_buf_put(out, u, 6);
        }
    }
    mh_buf_put(out, s + run, len - run);
    mh_buf_putc(out, '"');
}

int mh_json_dump(mh_buf *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        size_t klen;
        json_t *c;
        int first = 1;
        mh_buf_putc(out, '{');
        json_object_keylen_foreach((json_t *)v, k, klen, c)
        {
            if (!first)
                mh_buf_putc(out, ',');
            first = 0;
            mh_json_put_string(out, k, klen);
            mh_buf_putc(out, ':');
            if (mh_json_dump(out, c))
                return -1;
        }
        mh_buf_putc(out, '}');
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *c;
        mh_buf_putc(out, '[');
        json_array_foreach(v, i, c)
        {
            if (i)
                mh_buf_putc(out, ',');
            if (mh_json_dump(out, c))
                return -1;
        }
        mh_buf_putc(out, ']');
        return 0;
    }
    case JSON_STRING:
        mh_json_put_string(out, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
    case JSON_REAL: {
        char num[MH_NUMBER_MAX];
        int n = mh_value_number(json_number_value(v), num);
        if (n < 0)
            return -1;
        mh_buf_put(out, num, (size_t)n);
        return 0;
    }
    case JSON_TRUE:
        mh_buf_puts(out, "true");
        return 0;
    case JSON_FALSE:
        mh_buf_puts(out, "false");
        return 0;
    case JSON_NULL:
        mh_buf_puts(out, "null");
        return 0;
    }
    return -1;
}
