#include "mh_value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool mh_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

int mh_name_check(const char *s, size_t n, size_t max, mh_err *err)
{
    if (n == 0)
        return mh_err_set(err, MH_E_BAD_NAME, "name is empty");
    if (n > max)
        return mh_err_set(err, MH_E_BAD_NAME, "name is %zu bytes, the limit is %zu", n, max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return mh_err_set(err, MH_E_BAD_NAME, "name has control character 0x%02X at byte %zu",
                              c, i);
    }
    if (!mh_utf8_valid(s, n))
        return mh_err_set(err, MH_E_BAD_NAME, "name is not valid UTF-8");
    return 0;
}

int mh_value_check(const char *s, size_t n, mh_err *err)
{
    if (n > MH_VALUE_MAX)
        return mh_err_set(err, MH_E_BAD_PARAM, "value is %zu bytes, the limit is %d", n,
                          MH_VALUE_MAX);
    if (memchr(s, '\0', n))
        return mh_err_set(err, MH_E_BAD_PARAM, "value contains U+0000");
    if (!mh_utf8_valid(s, n))
        return mh_err_set(err, MH_E_BAD_PARAM, "value is not valid UTF-8");
    return 0;
}

/* d's significant decimal digits in 'exact' (NUL-terminated) and its exponent. */
static int expansion(double d, int precision, char *exact, size_t size)
{
    const char *c;
    int n = 0, e;

    snprintf(exact, size, "%.*e", precision, d);
    for (c = exact; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9')
            exact[n++] = *c;
    e = atoi(c + 1);
    exact[n] = '\0';
    return e;
}

/*
 * The k-digit candidates for 'd': the expansion cut to k digits, and that
 * plus one unit in the last place. Returns 1 with the one to print in
 * digits/exp10 when either reads back as 'd', 0 when neither does, and -1
 * when both do but 'exact' is too short to tell which is nearer.
 */
static int try_digits(double d, const char *exact, int e, bool full, int k, char *digits,
                      int *exp10)
{
    char cand[40], up[24];
    int up_e = e, lo_ok, hi_ok, cmp = -1;
    const char *rest = exact + k;

    memcpy(up, exact, (size_t)k);
    up[k] = '\0';
    for (int i = k - 1; i >= 0; i--) {
        if (up[i] != '9') {
            up[i]++;
            break;
        }
        up[i] = '0';
        if (i == 0) { /* 99..9 + 1 = 100..0: one more digit, a 0, dropped */
            memmove(up + 1, up, (size_t)k - 1);
            up[0] = '1';
            up_e = e + 1;
        }
    }
    snprintf(cand, sizeof cand, "%.1s.%.*se%d", exact, k - 1, exact + 1, e);
    lo_ok = strtod(cand, NULL) == d;
    snprintf(cand, sizeof cand, "%.1s.%.*se%d", up, k - 1, up + 1, up_e);
    hi_ok = strtod(cand, NULL) == d;
    if (!lo_ok && !hi_ok)
        return 0;
    if (lo_ok && hi_ok) { /* the nearer: the rest of the expansion against ".5" */
        if (!full)
            return -1;
        cmp = *rest > '5' ? 1 : *rest < '5' ? -1 : 0;
        if (cmp == 0)
            cmp = rest[1 + strspn(rest + 1, "0")] ? 1 : 0;
        if (cmp == 0) /* a tie: the even one */
            cmp = (exact[k - 1] - '0') % 2 ? 1 : -1;
    }
    memcpy(digits, lo_ok && cmp < 0 ? exact : up, (size_t)k);
    *exp10 = lo_ok && cmp < 0 ? e : up_e;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    return 1;
}

/*
 * Shortest digits that read back as 'd' (d > 0, finite), as ECMAScript's
 * Number::toString asks: the least count k of significant digits, and of
 * the k-digit decimals that read back, the one nearest 'd' (the even one on
 * a tie). glibc's printf and strtod are exact, so every test here is too.
 *
 * Where the doubles around 'd' are evenly spaced, the decimals that read
 * back lie in an interval centred on 'd', so printf's nearest k digits read
 * back whenever any k digits do: trying k = 1, 2, ... is enough. At a power
 * of two the interval below is half the one above, and the nearest k digits
 * may fall out below while the k digits just above still read back (2^-24):
 * there both neighbours are tried, and since some k-digit decimal reads back
 * for every k from the least one on, k is found by bisection.
 */
static int shortest_digits(double d, char *digits, int *exp10)
{
    char exact[800];
    bool full = false;
    int lo = 1, hi = 17, e, r, p2;

    if (frexp(d, &p2) != 0.5) {
        for (int k = 1; k <= 17; k++) {
            char tmp[40];
            snprintf(tmp, sizeof tmp, "%.*e", k - 1, d);
            if (k == 17 || strtod(tmp, NULL) == d) {
                e = expansion(d, k - 1, digits, 24);
                *exp10 = e;
                k = (int)strlen(digits);
                while (k > 1 && digits[k - 1] == '0')
                    k--;
                digits[k] = '\0';
                return k;
            }
        }
    }
    /*
     * 41 significant digits: their first 17 are the exact expansion's unless
     * rounding at the 41st carried into them (the digits after the 17th are
     * then all 0s); then, and to settle which candidate is nearer, the whole
     * exact expansion (at most 767 digits).
     */
    e = expansion(d, 40, exact, sizeof exact);
    if (strspn(exact + 17, "0") >= 24) {
        e = expansion(d, 770, exact, sizeof exact);
        full = true;
    }
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        char scratch[24];
        int x;
        if ((r = try_digits(d, exact, e, full, mid, scratch, &x)) != 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    r = try_digits(d, exact, e, full, lo, digits, exp10);
    if (r < 0) {
        e = expansion(d, 770, exact, sizeof exact);
        r = try_digits(d, exact, e, true, lo, digits, exp10);
    }
    return (int)strlen(digits);
}

int mh_value_number(double d, char *out)
{
    char digits[24];
    char *o = out;
    int k, e, n;

    if (isnan(d) || isinf(d))
        return -1;
    if (d == 0) {
        strcpy(out, "0");
        return 1;
    }
    if (d < 0) {
        *o++ = '-';
        d = -d;
    }
    k = shortest_digits(d, digits, &e);
    n = e + 1; /* the decimal point sits after n digits */
    if (k <= n && n <= 21) {
        memcpy(o, digits, (size_t)k);
        o += k;
        for (int i = 0; i < n - k; i++)
            *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, digits, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)k);
        o += k;
    } else {
        *o++ = digits[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    *o = '\0';
    return (int)(o - out);
}

int mh_value_form(const json_t *v, char **out, size_t *len, mh_err *err)
{
    char num[MH_NUMBER_MAX];
    const char *s;
    size_t n;
    int rc;

    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_REAL:
    case JSON_INTEGER: {
        int k = mh_value_number(json_number_value(v), num);
        if (k < 0)
            return mh_err_set(err, MH_E_BAD_PARAM, "number is not finite");
        s = num;
        n = (size_t)k;
        break;
    }
    case JSON_TRUE:
        s = "true", n = 4;
        break;
    case JSON_FALSE:
        s = "false", n = 5;
        break;
    case JSON_NULL:
        s = "null", n = 4;
        break;
    default:
        return mh_err_set(err, MH_E_BAD_PARAM,
                          "nested objects and arrays are not allowed as param values");
    }
    rc = mh_value_check(s, n, err);
    if (rc)
        return rc;
    *out = malloc(n + 1);
    if (!*out)
        return mh_err_set(err, MH_E_NOMEM, "out of memory");
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    *len = n;
    return 0;
}
