#include "mh_json.h"

#include "mh_value.h"

#include <math.h>
#include <string.h>

bool mh_json_is_safe_integer(const json_t *v)
{
    double d;

    if (!json_is_number(v))
        return false;
    d = json_number_value(v);
    return d == floor(d) && fabs(d) <= 9007199254740991.0;
}

int mh_json_depth(const json_t *v, int limit)
{
    int max = 0;

    if (limit < 0)
        return 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            int d = mh_json_depth(c, limit - 1);
            if (d > max)
                max = d;
            if (max > limit)
                break;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            int d = mh_json_depth(c, limit - 1);
            if (d > max)
                max = d;
            if (max > limit)
                break;
        }
        return max + 1;
    }
    return 0;
}

json_t *mh_json_parse_keep(const char *text, size_t len, mh_err *err, int *too_deep)
{
    json_error_t je;
    json_t *v;

    *too_deep = 0;
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    if (!v) {
        if (json_error_code(&je) == json_error_stack_overflow)
            mh_err_set(err, MH_E_TOO_LARGE, "JSON nesting is deeper than %d levels",
                       MH_JSON_DEPTH_MAX);
        else
            mh_err_set(err, MH_E_BAD_JSON, "invalid JSON at byte %d: %s", je.position, je.text);
        return NULL;
    }
    if (mh_json_depth(v, MH_JSON_DEPTH_MAX) > MH_JSON_DEPTH_MAX) {
        *too_deep = 1;
        mh_err_set(err, MH_E_TOO_LARGE, "JSON nesting is deeper than %d levels", MH_JSON_DEPTH_MAX);
    }
    return v;
}

json_t *mh_json_parse(const char *text, size_t len, mh_err *err)
{
    int too_deep;
    json_t *v = mh_json_parse_keep(text, len, err, &too_deep);

    if (v && too_deep) {
        json_decref(v);
        return NULL;
    }
    return v;
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
        json_t *c;
        int first = 1;
        mh_buf_putc(out, '{');
        json_object_foreach((json_t *)v, k, c)
        {
            if (!first)
                mh_buf_putc(out, ',');
            first = 0;
            mh_json_put_string(out, k, strlen(k));
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
