#include "mh_djsign.h"

#include "mh_jwt.h" /* mh_b64url_decode, mh_b64url_encode */

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* base64url of a 32-byte digest without padding: exactly 43 characters + NUL. */
static void b64url_digest(const unsigned char d[32], char out[MH_DJSIGN_SIG_LEN + 1])
{
    out[mh_b64url_encode(d, 32, out)] = '\0';
}

int mh_djsign_signature(const char *secret, const char *salt, const char *msg, size_t len,
                        char out[MH_DJSIGN_SIG_LEN + 1])
{
    /* salted_hmac(salt + "signer", msg, secret, algorithm="sha256"):
     * key = sha256(key_salt + secret), then HMAC-SHA256(key, msg). */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char key[32], mac[32];
    unsigned int klen = 0, mlen = 0;
    int rc = -1;

    if (!salt)
        salt = MH_DJSIGN_SESSION_SALT;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(md, salt, strlen(salt)) || !EVP_DigestUpdate(md, "signer", 6) ||
        !EVP_DigestUpdate(md, secret, strlen(secret)) || !EVP_DigestFinal_ex(md, key, &klen) ||
        klen != sizeof key)
        goto fail;
    if (!HMAC(EVP_sha256(), key, (int)sizeof key, (const unsigned char *)msg, len, mac, &mlen) ||
        mlen != sizeof mac)
        goto fail;
    b64url_digest(mac, out);
    rc = 0;
fail:
    OPENSSL_cleanse(key, sizeof key);
    EVP_MD_CTX_free(md);
    return rc;
}

/* The last 'c' in s[0..n), or NULL. */
static const char *last_of(const char *s, size_t n, char c)
{
    while (n > 0) {
        if (s[--n] == c)
            return s + n;
    }
    return NULL;
}

/* django.core.signing.b62_decode, quirks included ("-" alone is 0, "" is an
 * error), bounded to int64. Returns 0 or -1. */
static int b62_decode(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    bool neg = false;

    if (n == 0)
        return -1;
    if (s[0] == '-') {
        neg = true;
        s++, n--;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = s[i] ? memchr(B62, s[i], sizeof B62 - 1) : NULL;
        if (!p || __builtin_mul_overflow(v, 62, &v) || __builtin_add_overflow(v, p - B62, &v))
            return -1;
    }
    *out = neg ? -v : v;
    return 0;
}

/* zlib.decompress(data) (zlib header, trailing bytes after the stream ignored
 * as Python does), refusing more than MH_DJSIGN_MAX_JSON bytes of output.
 * On success *out is malloc'd with a NUL after *out_len bytes. */
static int inflate_bounded(const unsigned char *in, size_t n, char **out, size_t *out_len)
{
    z_stream zs;
    size_t cap = n * 4 < 1024 ? 1024 : n * 4, have = 0;
    char *buf = NULL, *nb;
    int zrc;
    bool init = false;

    if (cap > MH_DJSIGN_MAX_JSON + 1)
        cap = MH_DJSIGN_MAX_JSON + 1;
    memset(&zs, 0, sizeof zs);
    buf = malloc(cap);
    if (!buf || inflateInit(&zs) != Z_OK)
        goto fail;
    init = true;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n; /* n <= MH_DJSIGN_MAX_VALUE */
    for (;;) {
        if (have == cap) {
            if (cap > MH_DJSIGN_MAX_JSON)
                goto fail; /* a bomb, or just too large */
            cap = cap * 2 > MH_DJSIGN_MAX_JSON + 1 ? MH_DJSIGN_MAX_JSON + 1 : cap * 2;
            nb = realloc(buf, cap);
            if (!nb)
                goto fail;
            buf = nb;
        }
        zs.next_out = (Bytef *)buf + have;
        zs.avail_out = (uInt)(cap - have);
        zrc = inflate(&zs, Z_NO_FLUSH);
        have = cap - zs.avail_out;
        if (zrc == Z_STREAM_END)
            break;
        /* Z_BUF_ERROR with room left: the input ended first (truncated) */
        if (zrc != Z_OK && !(zrc == Z_BUF_ERROR && zs.avail_out == 0))
            goto fail;
    }
    if (have > MH_DJSIGN_MAX_JSON)
        goto fail;
    if (have == cap) {
        nb = realloc(buf, have + 1);
        if (!nb)
            goto fail;
        buf = nb;
    }
    buf[have] = '\0';
    inflateEnd(&zs);
    *out = buf;
    *out_len = have;
    return 0;
fail:
    if (init)
        inflateEnd(&zs);
    free(buf);
    return -1;
}

int mh_djsign_unsign(const mh_djsign_cfg *cfg, const char *value, size_t len, int64_t now,
                     char **json, size_t *json_len, const char **reason)
{
    const char *salt = cfg->salt ? cfg->salt : MH_DJSIGN_SESSION_SALT;
    const char *sig, *ts, *b64;
    size_t signed_len, b64_len, sig_len, raw_len = 0;
    unsigned char *raw = NULL;
    char expect[MH_DJSIGN_SIG_LEN + 1], *out = NULL, *nb;
    size_t out_len = 0;
    int64_t stamp;
    bool match = false, compressed;

    *json = NULL;
    *json_len = 0;
    *reason = "malformed";
    if (!value || len == 0 || len > MH_DJSIGN_MAX_VALUE)
        return -1;
    /* Signer.unsign: the signature follows the last ':' ... */
    sig = last_of(value, len, ':');
    if (!sig)
        return -1;
    signed_len = (size_t)(sig - value);
    sig++;
    sig_len = len - signed_len - 1;
    /* ... and TimestampSigner.unsign needs another one before it. Django
     * checks this after the signature; only Django can sign such a value,
     * and it never does, so refusing it first changes no outcome. */
    ts = last_of(value, signed_len, ':');
    if (!ts)
        return -1;

    /* SECRET_KEY, then each fallback; an empty key is skipped (in Django an
     * empty fallback means SECRET_KEY again, so the result is the same). */
    for (size_t i = 0; i < cfg->nkeys && !match; i++) {
        if (!cfg->keys[i] || !cfg->keys[i][0])
            continue;
        if (mh_djsign_signature(cfg->keys[i], salt, value, signed_len, expect)) {
            *reason = "bad_signature";
            return -1;
        }
        match = sig_len == MH_DJSIGN_SIG_LEN && !CRYPTO_memcmp(sig, expect, MH_DJSIGN_SIG_LEN);
    }
    OPENSSL_cleanse(expect, sizeof expect);
    if (!match) {
        *reason = "bad_signature";
        return -1;
    }

    /* From here on the value is Django's own. */
    b64 = value;
    b64_len = (size_t)(ts - value);
    ts++;
    if (b62_decode(ts, signed_len - b64_len - 1, &stamp))
        return -1; /* "malformed" */
    if (cfg->max_age > 0) {
        /* age = now - timestamp, which int64 cannot always hold */
        if ((__int128)now - stamp > cfg->max_age) {
            *reason = "expired";
            return -1;
        }
    }

    *reason = "bad_payload";
    compressed = b64_len > 0 && b64[0] == '.';
    if (compressed)
        b64++, b64_len--;
    /* Python's b64decode refuses 4k+1 characters; mh_b64url_decode would
     * drop the last one */
    if (b64_len % 4 == 1)
        return -1;
    raw = mh_b64url_decode(b64, b64_len, &raw_len);
    if (!raw)
        goto fail;
    if (compressed) {
        if (inflate_bounded(raw, raw_len, &out, &out_len))
            goto fail;
    } else {
        nb = realloc(raw, raw_len + 1);
        if (!nb)
            goto fail;
        out = nb;
        raw = NULL;
        out_len = raw_len;
        out[out_len] = '\0';
    }
    if (out_len == 0 || out_len > MH_DJSIGN_MAX_JSON)
        goto fail;
    free(raw);
    *json = out;
    *json_len = out_len;
    *reason = "ok";
    return 0;
fail:
    free(raw);
    free(out);
    return -1;
}

/* Python's str.strip() for the ASCII range: \t\n\v\f\r, \x1c-\x1f, space. */
static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

static void strip(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s))
        (*s)++, (*n)--;
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

int mh_djsign_cookie_find(const char *header, size_t len, const char *name, const char **value,
                          size_t *value_len)
{
    size_t name_len = name ? strlen(name) : 0;
    const char *p = header, *end = header + len;
    bool found = false;

    if (!header || name_len == 0)
        return -1;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *chunk_end = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(chunk_end - p));
        if (eq) {
            const char *k = p, *v = eq + 1;
            size_t kn = (size_t)(eq - p), vn = (size_t)(chunk_end - v);
            strip(&k, &kn);
            if (kn == name_len && !memcmp(k, name, kn)) {
                strip(&v, &vn);
                if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"')
                    v++, vn -= 2;
                *value = v;
                *value_len = vn;
                found = true; /* keep going: the last one wins, as in Django */
            }
        }
        p = semi ? semi + 1 : end;
    }
    return found ? 0 : -1;
}
