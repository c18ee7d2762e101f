/*
 * libFuzzer: connection and subscription tokens (mh_jwt), the hub's other
 * parser of attacker-controlled credentials. Random bytes almost never pass
 * the HMAC, so each input is used two ways:
 *   1. as a token, verified as a connection token and as a subscription
 *      token;
 *   2. split at the first newline into a JOSE header and a claims text,
 *      base64url-encoded and signed here with the key, then verified: so
 *      the header, kid/alg pinning and every claim check see mutations.
 * Beyond "no crash": a success fills what it promises, a failure names a
 * reason from the documented list.
 */
#include "fuzz_check.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_jwt.h"

#define KEY "mizan-fuzz-jwt-secret-0123456789abcdef"
#define NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mh_jwt_keys keys;

static const char *reasons[] = {"ok",
                                "malformed",
                                "alg_none",
                                "unknown_kid",
                                "alg_mismatch",
                                "bad_signature",
                                "missing_exp",
                                "expired",
                                "not_yet_valid",
                                "issued_in_future",
                                "wrong_audience",
                                "wrong_issuer",
                                "missing_sub",
                                "wrong_token_type",
                                "wrong_scope",
                                "wrong_name",
                                "wrong_params",
                                "wrong_sub"};

static void known_reason(const char *r)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (!strcmp(r, reasons[i]))
            return;
    CHECK(!"an undocumented reason");
}

static void verify(const char *t, size_t n)
{
    mh_jwt_policy p = {.audience = "mizan", .issuer = NULL, .leeway = 30};
    mh_param prm = {(char *)"org", 3, (char *)"1", 1};
    mh_entry e = {(char *)"billing", 7, true, 1, &prm};
    mh_identity id;
    const char *reason = NULL;
    int64_t exp = 0;

    if (mh_jwt_verify(&keys, &p, t, n, NOW, &id, &reason) == 0) {
        CHECK(!strcmp(reason, "ok") && id.subject[0] && id.exp + 30 > NOW);
    } else {
        known_reason(reason);
    }
    if (mh_jwt_verify_subscription(&keys, &p, t, n, NOW, false, &e, "5", &exp, &reason) == 0)
        CHECK(!strcmp(reason, "ok") && exp + 30 > NOW);
    else
        known_reason(reason);
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = abc[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = abc[v & 63];
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl;
    char *tok;
    size_t hn, cn, o;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;

    if (!keys.n) {
        char err[128];
        CHECK(mh_jwt_keys_add(&keys, "v1", "HS256", KEY, strlen(KEY), err, sizeof err) == 0);
    }
    if (size > 6000)
        return 0;
    verify((const char *)data, size);
    nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    hn = (size_t)(nl - data);
    cn = size - hn - 1;
    tok = malloc(2 * (size + 64));
    CHECK(tok);
    o = b64url(data, hn, tok);
    tok[o++] = '.';
    o += b64url(nl + 1, cn, tok + o);
    HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const unsigned char *)tok, o, mac, &maclen);
    tok[o++] = '.';
    o += b64url(mac, maclen, tok + o);
    verify(tok, o);
    free(tok);
    return 0;
}
