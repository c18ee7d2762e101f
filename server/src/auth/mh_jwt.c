#define _GNU_SOURCE /* memmem */
#include "mh_jwt.h"

#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mh_json.h"
#include "mh_value.h"

static const struct {
    const char *name;
    jwt_alg_t alg;
} algs[] = {{"HS256", JWT_ALG_HS256},
            {"HS384", JWT_ALG_HS384},
            {"HS512", JWT_ALG_HS512},
            {"RS256", JWT_ALG_RS256},
            {"ES256", JWT_ALG_ES256}};

static int alg_from(const char *name)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (!strcmp(algs[i].name, name))
            return (int)algs[i].alg;
    return -1;
}

unsigned char *mh_b64url_decode(const char *s, size_t n, size_t *out_len)
{
    unsigned char *out = malloc(n * 3 / 4 + 3);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int v;
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;
        else if (c == '_' || c == '/')
            v = 63;
        else if (c == '=' && i >= n - 2)
            break;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = o;
    return out;
}

size_t mh_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    return o;
}

/*
 * An HMAC key's context, keyed once: re-initialising it with no key
 * reuses the key (OpenSSL 3), so a check costs no algorithm fetch and no
 * allocation — fetching per token was a third of a connect storm's
 * verification (libjwt 1.x does it per call).
 */
static EVP_MAC_CTX *hmac_ctx_new(int alg, const void *key, size_t len)
{
    const char *md = alg == JWT_ALG_HS256 ? "SHA256" : alg == JWT_ALG_HS384 ? "SHA384" : "SHA512";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx && !EVP_MAC_init(ctx, key, len, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/*
 * The signature segment equals the base64url of the MAC of everything
 * before it, compared as text in constant time: the one encoding libjwt
 * accepted too (a signature with other spare bits is refused).
 */
static bool hmac_matches(const mh_jwt_key *k, const char *signed_part, size_t n, const char *sig,
                         size_t sig_len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char enc[(EVP_MAX_MD_SIZE * 4 + 2) / 3 + 1];
    size_t mdlen = 0, elen;

    if (!EVP_MAC_init(k->mac, NULL, 0, NULL) ||
        !EVP_MAC_update(k->mac, (const unsigned char *)signed_part, n) ||
        !EVP_MAC_final(k->mac, md, &mdlen, sizeof md))
        return false;
    elen = mh_b64url_encode(md, mdlen, enc);
    return elen == sig_len && CRYPTO_memcmp(enc, sig, elen) == 0;
}

void mh_jwt_keys_free(mh_jwt_keys *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->v[i].key);
        EVP_MAC_CTX_free(ks->v[i].mac);
    }
    free(ks->v);
    ks->v = NULL;
    ks->n = 0;
}

int mh_jwt_keys_add(mh_jwt_keys *ks, const char *kid, const char *alg, const void *key, size_t len,
                    char *err, size_t errlen)
{
    int a = alg_from(alg ? alg : "");
    mh_jwt_key *nv;

    if (a < 0) {
        snprintf(err, errlen, "key '%s': alg '%s' is not one of HS256 HS384 HS512 RS256 ES256", kid,
                 alg ? alg : "(none)");
        return -1;
    }
    if (strlen(kid) > 64) {
        snprintf(err, errlen, "key '%.20s...': kid longer than 64", kid);
        return -1;
    }
    if (len == 0 || len > 1 << 20) {
        snprintf(err, errlen, "key '%s': empty or oversized key material", kid);
        return -1;
    }
    if (a <= JWT_ALG_HS512 && len < 32) {
        snprintf(err, errlen, "key '%s': an HMAC secret needs at least 32 bytes", kid);
        return -1;
    }
    if (a > JWT_ALG_HS512 && !memmem(key, len, "-----BEGIN PUBLIC KEY-----", 26)) {
        snprintf(err, errlen, "key '%s': %s needs a PEM public key (no private keys here)", kid,
                 alg);
        return -1;
    }
    for (size_t i = 0; i < ks->n; i++) {
        if (!strcmp(ks->v[i].kid, kid)) {
            snprintf(err, errlen, "key '%s' given twice", kid);
            return -1;
        }
    }
    nv = realloc(ks->v, (ks->n + 1) * sizeof *nv);
    if (!nv)
        goto oom;
    ks->v = nv;
    memset(&nv[ks->n], 0, sizeof nv[ks->n]);
    snprintf(nv[ks->n].kid, sizeof nv[ks->n].kid, "%s", kid);
    nv[ks->n].alg = a;
    /* PEM parsers want a terminating NUL */
    nv[ks->n].key = malloc(len + 1);
    if (!nv[ks->n].key)
        goto oom;
    memcpy(nv[ks->n].key, key, len);
    nv[ks->n].key[len] = '\0';
    nv[ks->n].key_len = (int)len;
    if (a <= JWT_ALG_HS512) {
        nv[ks->n].mac = hmac_ctx_new(a, key, len);
        if (!nv[ks->n].mac) {
            free(nv[ks->n].key);
            snprintf(err, errlen, "key '%s': OpenSSL has no HMAC for %s", kid, alg);
            return -1;
        }
    }
    ks->n++;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* A JWK's RSA (n, e) or EC P-256 (x, y) public key as PEM; NULL on error. */
static char *jwk_to_pem(json_t *k, const char *kty, char *err, size_t errlen, const char *kid)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char *a = NULL, *b = NULL, pub[65];
    size_t alen = 0, blen = 0;
    BIO *bio = NULL;
    char *pem = NULL;
    bool rsa = !strcmp(kty, "RSA");
    const char *fa = rsa ? "n" : "x", *fb = rsa ? "e" : "y";
    const json_t *ja = json_object_get(k, fa), *jb = json_object_get(k, fb);

    if (!bld || !json_is_string(ja) || !json_is_string(jb))
        goto fail;
    a = mh_b64url_decode(json_string_value(ja), json_string_length(ja), &alen);
    b = mh_b64url_decode(json_string_value(jb), json_string_length(jb), &blen);
    if (!a || !b)
        goto fail;
    if (rsa) {
        n = BN_bin2bn(a, (int)alen, NULL);
        e = BN_bin2bn(b, (int)blen, NULL);
        if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            goto fail;
    } else {
        const json_t *crv = json_object_get(k, "crv");
        if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") || alen != 32 ||
            blen != 32)
            goto fail;
        pub[0] = 4;
        memcpy(pub + 1, a, 32);
        memcpy(pub + 33, b, 32);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub))
            goto fail;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto fail;
    bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PUBKEY(bio, pkey))
        goto fail;
    {
        char *data;
        long len = BIO_get_mem_data(bio, &data);
        pem = malloc((size_t)len + 1);
        if (pem) {
            memcpy(pem, data, (size_t)len);
            pem[len] = '\0';
        }
    }
    goto done;
fail:
    snprintf(err, errlen, "key '%s': not a valid %s JWK (%s, %s)", kid, kty, fa, fb);
done:
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(a);
    free(b);
    return pem;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

int mh_jwt_keys_load(mh_jwt_keys *ks, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je), *keys, *k;
    size_t i;
    int rc = -1;

    if (!doc) {
        snprintf(err, errlen, "cannot read key file '%s': %s (line %d)", path, je.text, je.line);
        return -1;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        snprintf(err, errlen, "key file '%s': expected {\"keys\": [...]} with at least one key",
                 path);
        goto done;
    }
    json_array_foreach(keys, i, k)
    {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *pem_file = json_string_value(json_object_get(k, "pem_file"));
        const json_t *pem = json_object_get(k, "pem"), *kk = json_object_get(k, "k");
        unsigned char *material = NULL;
        size_t mlen = 0;
        int added;

        if (!kid || !alg) {
            snprintf(err, errlen, "key file '%s': key #%zu needs \"kid\" and \"alg\" (the pin)",
                     path, i);
            goto done;
        }
        if (json_is_string(pem)) {
            material = (unsigned char *)strdup(json_string_value(pem));
            mlen = material ? strlen((char *)material) : 0;
        } else if (pem_file) {
            material = (unsigned char *)read_file(pem_file, &mlen);
            if (!material) {
                snprintf(err, errlen, "key '%s': cannot read pem_file '%s'", kid, pem_file);
                goto done;
            }
        } else if (kty && !strcmp(kty, "oct") && json_is_string(kk)) {
            material = mh_b64url_decode(json_string_value(kk), json_string_length(kk), &mlen);
        } else if (kty && (!strcmp(kty, "RSA") || !strcmp(kty, "EC"))) {
            material = (unsigned char *)jwk_to_pem(k, kty, err, errlen, kid);
            if (!material)
                goto done;
            mlen = strlen((char *)material);
        }
        if (!material) {
            snprintf(err, errlen, "key '%s': no usable key material (k, n/e, x/y, pem, pem_file)",
                     kid);
            goto done;
        }
        added = mh_jwt_keys_add(ks, kid, alg, material, mlen, err, errlen);
        free(material);
        if (added)
            goto done;
    }
    rc = 0;
done:
    json_decref(doc);
    return rc;
}

static json_t *decode_segment(const char *s, size_t n)
{
    size_t len;
    unsigned char *raw = mh_b64url_decode(s, n, &len);
    json_t *v;

    if (!raw)
        return NULL;
    v = json_loadb((const char *)raw, len, JSON_DECODE_INT_AS_REAL, NULL);
    free(raw);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static bool aud_matches(const json_t *aud, const char *want)
{
    size_t i;
    json_t *a;

    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), want);
    if (json_is_array(aud))
        json_array_foreach(aud, i, a) if (json_is_string(a) &&
                                          !strcmp(json_string_value(a), want)) return true;
    return false;
}

/*
 * The checks every token gets: shape, key by `kid`, the pinned algorithm,
 * the signature, then exp/nbf/iat (and aud/iss when 'p' sets them). On
 * success *claims holds the verified claims (caller decrefs).
 */
static int verify_signed(const mh_jwt_keys *ks, const mh_jwt_policy *p, const char *token,
                         size_t len, int64_t now, json_t **claims, const mh_jwt_key **key_out,
                         int64_t *exp, const char **reason)
{
    const char *dot1, *dot2;
    json_t *head = NULL, *cl = NULL, *v;
    const mh_jwt_key *key = NULL;
    const char *alg, *kid;
    jwt_t *jwt = NULL;
    char *tok = NULL;
    int rc = -1;

    *claims = NULL;
    *reason = "malformed";
    if (len == 0 || len > 8192 || memchr(token, '\0', len))
        return -1;
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return -1;
    head = decode_segment(token, (size_t)(dot1 - token));
    if (!head)
        goto done;
    alg = json_string_value(json_object_get(head, "alg"));
    kid = json_string_value(json_object_get(head, "kid"));
    if (!alg)
        goto done;
    if (!strcasecmp(alg, "none")) {
        *reason = "alg_none";
        goto done;
    }
    for (size_t i = 0; i < ks->n && !key; i++)
        if (kid ? !strcmp(ks->v[i].kid, kid) : ks->n == 1)
            key = &ks->v[i];
    if (!key) {
        *reason = "unknown_kid";
        goto done;
    }
    if (alg_from(alg) != key->alg) {
        *reason = "alg_mismatch";
        goto done;
    }
    if (dot2 + 1 == token + len) {
        *reason = "bad_signature";
        goto done;
    }
    if (key->mac) {
        if (!hmac_matches(key, token, (size_t)(dot2 - token), dot2 + 1,
                          len - (size_t)(dot2 + 1 - token))) {
            *reason = "bad_signature";
            goto done;
        }
    } else {
        tok = strndup(token, len);
        if (!tok || jwt_decode(&jwt, tok, key->key, key->key_len) || !jwt ||
            (int)jwt_get_alg(jwt) != key->alg) {
            *reason = "bad_signature";
            goto done;
        }
    }
    /* Signature good: now the claims, parsed by us for exact control. */
    cl = decode_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!cl)
        goto done;
    v = json_object_get(cl, "exp");
    if (!json_is_number(v)) {
        *reason = "missing_exp";
        goto done;
    }
    *exp = (int64_t)floor(json_number_value(v));
    if (now >= *exp + p->leeway) {
        *reason = "expired";
        goto done;
    }
    v = json_object_get(cl, "nbf");
    if (v && (!json_is_number(v) || now + p->leeway < (int64_t)json_number_value(v))) {
        *reason = "not_yet_valid";
        goto done;
    }
    v = json_object_get(cl, "iat");
    if (v && (!json_is_number(v) || now + p->leeway < (int64_t)json_number_value(v))) {
        *reason = "issued_in_future";
        goto done;
    }
    if (p->audience && p->audience[0] && !aud_matches(json_object_get(cl, "aud"), p->audience)) {
        *reason = "wrong_audience";
        goto done;
    }
    if (p->issuer && p->issuer[0]) {
        const char *iss = json_string_value(json_object_get(cl, "iss"));
        if (!iss || strcmp(iss, p->issuer)) {
            *reason = "wrong_issuer";
            goto done;
        }
    }
    *claims = cl;
    cl = NULL;
    *key_out = key;
    rc = 0;
done:
    jwt_free(jwt);
    free(tok);
    json_decref(head);
    json_decref(cl);
    return rc;
}

int mh_jwt_sub_form(const json_t *v, char out[MH_SUB_MAX + 1])
{
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= MH_SUB_MAX &&
        strlen(json_string_value(v)) == json_string_length(v)) {
        strcpy(out, json_string_value(v));
        return 0;
    }
    if (json_is_number(v) && json_number_value(v) == floor(json_number_value(v)) &&
        fabs(json_number_value(v)) < 9007199254740992.0) {
        snprintf(out, MH_SUB_MAX + 1, "%.0f", json_number_value(v));
        return 0;
    }
    return -1;
}

/* The `info` claim (SPEC 11.2): any JSON but null, compact, at most 1024 bytes. */
static int read_info(const json_t *v, char out[MH_IDENTITY_INFO_MAX + 1])
{
    mh_buf b;
    int rc = 0;

    out[0] = '\0';
    if (!v)
        return 0;
    if (json_is_null(v))
        return -1;
    mh_buf_init(&b);
    if (mh_json_dump(&b, v) || b.oom || b.len > MH_IDENTITY_INFO_MAX || !mh_buf_cstr(&b))
        rc = -1;
    else
        memcpy(out, b.data, b.len + 1);
    mh_buf_free(&b);
    return rc;
}

int mh_jwt_verify(const mh_jwt_keys *ks, const mh_jwt_policy *p, const char *token, size_t len,
                  int64_t now, mh_identity *id, const char **reason)
{
    const mh_jwt_key *key = NULL;
    json_t *claims = NULL;
    int rc = -1;

    memset(id, 0, sizeof *id);
    if (verify_signed(ks, p, token, len, now, &claims, &key, &id->exp, reason))
        return -1;
    /* A subscription token names one context; it never opens a connection. */
    if (json_object_get(claims, "scope")) {
        *reason = "wrong_token_type";
        goto done;
    }
    if (mh_jwt_sub_form(json_object_get(claims, "sub"), id->subject)) {
        *reason = "missing_sub";
        goto done;
    }
    id->staff = json_is_true(json_object_get(claims, "staff"));
    id->super = json_is_true(json_object_get(claims, "super"));
    if (read_info(json_object_get(claims, "info"), id->info)) {
        *reason = "malformed";
        goto done;
    }
    snprintf(id->kid, sizeof id->kid, "%s", key->kid);
    *reason = "ok";
    rc = 0;
done:
    json_decref(claims);
    return rc;
}

/* The token's params object equals 'e's params exactly (string forms). */
static bool params_equal(const json_t *obj, const mh_entry *e)
{
    if (!json_is_object(obj) || json_object_size(obj) != e->nparams)
        return false;
    for (size_t i = 0; i < e->nparams; i++) {
        json_t *v = json_object_get(obj, e->params[i].name);
        char *form = NULL;
        size_t n = 0;
        bool same;
        mh_err err;
        if (!v || mh_value_form(v, &form, &n, &err))
            return false;
        same = n == e->params[i].value_len && !memcmp(form, e->params[i].value, n);
        free(form);
        if (!same)
            return false;
    }
    return true;
}

int mh_jwt_verify_subscription(const mh_jwt_keys *ks, const mh_jwt_policy *p, const char *token,
                               size_t len, int64_t now, bool channel, const mh_entry *e,
                               const char *conn_sub, int64_t *exp, const char **reason)
{
    /* Django's subscription tokens carry no aud/iss: only the leeway applies. */
    mh_jwt_policy sp = {.audience = NULL, .issuer = NULL, .leeway = p->leeway};
    const mh_jwt_key *key = NULL;
    json_t *claims = NULL;
    const char *scope, *name;
    char sub[MH_SUB_MAX + 1];
    json_t *subv;
    int rc = -1;

    if (verify_signed(ks, &sp, token, len, now, &claims, &key, exp, reason))
        return -1;
    scope = json_string_value(json_object_get(claims, "scope"));
    name = json_string_value(json_object_get(claims, "name"));
    if (!scope || strcmp(scope, channel ? "channel" : "context")) {
        *reason = "wrong_scope";
        goto done;
    }
    if (!name || strlen(name) != e->context_len || memcmp(name, e->context, e->context_len)) {
        *reason = "wrong_name";
        goto done;
    }
    if (!params_equal(json_object_get(claims, "params"), e)) {
        *reason = "wrong_params";
        goto done;
    }
    /* Bound to the identity it was minted for: both anonymous, or the same sub. */
    subv = json_object_get(claims, "sub");
    if (subv ? (!conn_sub || mh_jwt_sub_form(subv, sub) || strcmp(sub, conn_sub))
             : conn_sub != NULL) {
        *reason = "wrong_sub";
        goto done;
    }
    *reason = "ok";
    rc = 0;
done:
    json_decref(claims);
    return rc;
}
