/*
 * JWT/MWT verification: every way a token must be refused, and the happy
 * paths for each algorithm. Tokens are minted here with libjwt from keys
 * generated for the test, so nothing depends on a fixture's clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mh_jwt.h"

static const char *SECRET = "0123456789abcdef0123456789abcdef-mizan";
static char *rsa_priv, *rsa_pub, *ec_priv, *ec_pub, *rsa_priv2;
static int64_t now;

static char *pem_of(EVP_PKEY *k, int private)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;
    if (private)
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, k);
    n = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static int setup(void **state)
{
    EVP_PKEY *r = EVP_RSA_gen(2048), *r2 = EVP_RSA_gen(2048);
    EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_priv = pem_of(r, 1);
    rsa_pub = pem_of(r, 0);
    rsa_priv2 = pem_of(r2, 1);
    ec_priv = pem_of(e, 1);
    ec_pub = pem_of(e, 0);
    EVP_PKEY_free(r);
    EVP_PKEY_free(r2);
    EVP_PKEY_free(e);
    now = (int64_t)time(NULL);
    return 0;
}

static int teardown(void **state)
{
    free(rsa_priv), free(rsa_pub), free(ec_priv), free(ec_pub), free(rsa_priv2);
    return 0;
}

/* A token: alg, kid, signing key, and claims as a JSON object text. */
static char *mint(jwt_alg_t alg, const char *kid, const char *key, const char *claims)
{
    jwt_t *j;
    char *t;
    jwt_new(&j);
    if (kid)
        jwt_add_header(j, "kid", kid);
    jwt_add_grants_json(j, claims);
    jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0);
    t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static char *claims(const char *extra, int64_t exp_delta)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"sub\":\"5\",\"exp\":%lld,\"iat\":%lld,\"aud\":\"izana\"%s%s}",
             (long long)(now + exp_delta), (long long)now, extra[0] ? "," : "", extra);
    return buf;
}

static mh_jwt_keys keys;
static mh_jwt_policy policy = {.audience = "izana", .issuer = NULL, .leeway = 5};

static void load_keys(void)
{
    char err[256];
    mh_jwt_keys_free(&keys);
    assert_int_equal(mh_jwt_keys_add(&keys, "v1", "HS256", SECRET, strlen(SECRET), err, sizeof err),
                     0);
    assert_int_equal(mh_jwt_keys_add(&keys, "h5", "HS512", SECRET, strlen(SECRET), err, sizeof err),
                     0);
    assert_int_equal(
        mh_jwt_keys_add(&keys, "r1", "RS256", rsa_pub, strlen(rsa_pub), err, sizeof err), 0);
    assert_int_equal(mh_jwt_keys_add(&keys, "e1", "ES256", ec_pub, strlen(ec_pub), err, sizeof err),
                     0);
}

static const char *check(const char *token)
{
    mh_identity id;
    const char *reason;
    mh_jwt_verify(&keys, &policy, token, strlen(token), now, &id, &reason);
    return reason;
}

static void check_minted(jwt_alg_t alg, const char *kid, const char *key, const char *cl,
                         const char *want)
{
    char *t = mint(alg, kid, key, cl);
    assert_non_null(t);
    assert_string_equal(check(t), want);
    free(t);
}

static void accepts_each_algorithm(void **state)
{
    mh_identity id;
    const char *reason;
    char *t;

    load_keys();
    check_minted(JWT_ALG_HS256, "v1", SECRET, claims("\"staff\":true", 300), "ok");
    check_minted(JWT_ALG_HS512, "h5", SECRET, claims("", 300), "ok");
    check_minted(JWT_ALG_RS256, "r1", rsa_priv, claims("", 300), "ok");
    check_minted(JWT_ALG_ES256, "e1", ec_priv, claims("", 300), "ok");
    t = mint(JWT_ALG_HS256, "v1", SECRET, claims("\"staff\":true,\"super\":false", 300));
    assert_int_equal(mh_jwt_verify(&keys, &policy, t, strlen(t), now, &id, &reason), 0);
    assert_string_equal(id.subject, "5");
    assert_true(id.staff);
    assert_false(id.super);
    assert_int_equal(id.exp, now + 300);
    assert_string_equal(id.kid, "v1");
    free(t);
}

/* SPEC 11.2: the info claim, kept as compact JSON; null or over 1024 bytes refused. */
static void info_claim(void **state)
{
    static char big[1200];
    mh_identity id;
    const char *reason;
    char *t;
    (void)state;

    load_keys();
    t = mint(JWT_ALG_HS256, "v1", SECRET,
             claims("\"info\": {\"name\": [\"Zo\u00eb\", 1, 2.5, {}]}", 300));
    assert_int_equal(mh_jwt_verify(&keys, &policy, t, strlen(t), now, &id, &reason), 0);
    assert_string_equal(id.info, "{\"name\":[\"Zo\xc3\xab\",1,2.5,{}]}");
    free(t);
    t = mint(JWT_ALG_HS256, "v1", SECRET, claims("", 300));
    assert_int_equal(mh_jwt_verify(&keys, &policy, t, strlen(t), now, &id, &reason), 0);
    assert_string_equal(id.info, "");
    free(t);
    check_minted(JWT_ALG_HS256, "v1", SECRET, claims("\"info\":null", 300), "malformed");
    /* 1022 x's in quotes: 1024 bytes, accepted; one more, refused */
    for (int extra = 0; extra < 2; extra++) {
        char cl[1400];
        memset(big, 'x', sizeof big);
        big[1022 + extra] = '\0';
        snprintf(cl, sizeof cl, "{\"sub\":\"5\",\"exp\":%lld,\"aud\":\"izana\",\"info\":\"%s\"}",
                 (long long)(now + 300), big);
        check_minted(JWT_ALG_HS256, "v1", SECRET, cl, extra ? "malformed" : "ok");
    }
}

static void refuses_hostile_tokens(void **state)
{
    char *t, *bad;
    load_keys();
    /* time */
    check_minted(JWT_ALG_HS256, "v1", SECRET, claims("", -60), "expired");
    check_minted(JWT_ALG_HS256, "v1", SECRET, claims("", -3), "ok"); /* within leeway */
    {
        char cl[256];
        snprintf(cl, sizeof cl, "{\"sub\":\"5\",\"exp\":%lld,\"nbf\":%lld,\"aud\":\"izana\"}",
                 (long long)(now + 300), (long long)(now + 60));
        check_minted(JWT_ALG_HS256, "v1", SECRET, cl, "not_yet_valid");
        snprintf(cl, sizeof cl, "{\"sub\":\"5\",\"exp\":%lld,\"iat\":%lld,\"aud\":\"izana\"}",
                 (long long)(now + 300), (long long)(now + 60));
        check_minted(JWT_ALG_HS256, "v1", SECRET, cl, "issued_in_future");
        check_minted(JWT_ALG_HS256, "v1", SECRET, "{\"sub\":\"5\",\"aud\":\"izana\"}",
                     "missing_exp");
        snprintf(cl, sizeof cl, "{\"exp\":%lld,\"aud\":\"izana\"}", (long long)(now + 300));
        check_minted(JWT_ALG_HS256, "v1", SECRET, cl, "missing_sub");
        snprintf(cl, sizeof cl, "{\"sub\":5,\"exp\":%lld,\"aud\":[\"x\",\"izana\"]}",
                 (long long)(now + 300));
        check_minted(JWT_ALG_HS256, "v1", SECRET, cl, "ok"); /* numeric sub, aud array */
        snprintf(cl, sizeof cl, "{\"sub\":\"5\",\"exp\":%lld,\"aud\":\"other\"}",
                 (long long)(now + 300));
        check_minted(JWT_ALG_HS256, "v1", SECRET, cl, "wrong_audience");
    }
    /* keys and algorithms */
    check_minted(JWT_ALG_HS256, "nope", SECRET, claims("", 300), "unknown_kid");
    check_minted(JWT_ALG_HS384, "v1", SECRET, claims("", 300), "alg_mismatch");
    check_minted(JWT_ALG_HS256, "v1", "a-different-secret-of-enough-length!!", claims("", 300),
                 "bad_signature");
    check_minted(JWT_ALG_RS256, "r1", rsa_priv2, claims("", 300), "bad_signature");
    /* HS256 signed with the RSA public key as the HMAC secret: alg confusion */
    check_minted(JWT_ALG_HS256, "r1", rsa_pub, claims("", 300), "alg_mismatch");
    /* alg none, with and without a signature part */
    t = mint(JWT_ALG_HS256, "v1", SECRET, claims("", 300));
    {
        const char *none_head =
            "eyJhbGciOiJub25lIiwia2lkIjoidjEifQ"; /* {"alg":"none","kid":"v1"} */
        char *dot = strchr(t, '.'), *dot2 = strchr(dot + 1, '.');
        char buf[2048];
        snprintf(buf, sizeof buf, "%s%.*s.", none_head, (int)(dot2 - dot), dot);
        assert_string_equal(check(buf), "alg_none");
        /* tamper the payload of a valid token */
        bad = strdup(t);
        bad[(dot - t) + 5] = bad[(dot - t) + 5] == 'A' ? 'B' : 'A';
        assert_string_equal(check(bad), "bad_signature");
        free(bad);
        /* drop the signature */
        snprintf(buf, sizeof buf, "%.*s", (int)(dot2 - t + 1), t);
        assert_string_equal(check(buf), "bad_signature");
        /* the same MAC with a spare bit of the last character set: one
         * encoding is the signature, not every string that decodes to it */
        {
            static const char abc[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            size_t n = strlen(t);
            bad = strdup(t);
            bad[n - 1] = abc[(strchr(abc, bad[n - 1]) - abc) ^ 1];
            assert_string_equal(check(bad), "bad_signature");
            free(bad);
        }
    }
    free(t);
    /* garbage */
    assert_string_equal(check(""), "malformed");
    assert_string_equal(check("abc"), "malformed");
    assert_string_equal(check("a.b"), "malformed");
    assert_string_equal(check("a.b.c.d"), "malformed");
    assert_string_equal(check("!!!.???.###"), "malformed");
    assert_string_equal(check("e30.e30.e30"), "malformed"); /* {} header: no alg */
}

static void jwks_file(void **state)
{
    char path[] = "/tmp/mh-jwks-XXXXXX", err[256];
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    mh_jwt_keys ks = {0};
    mh_identity id;
    const char *reason;
    char *t;

    /* oct key (base64url of SECRET), and PEMs inline */
    fprintf(f, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"v1\",\"alg\":\"HS256\",\"k\":\""
               "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYtbWl6YW4\"},"
               "{\"kid\":\"r1\",\"alg\":\"RS256\",\"pem\":\"");
    for (const char *p = rsa_pub; *p; p++)
        fputs(*p == '\n' ? "\\n" : (char[]){*p, 0}, f);
    fprintf(f, "\"}]}");
    fclose(f);
    assert_int_equal(mh_jwt_keys_load(&ks, path, err, sizeof err), 0);
    assert_int_equal(ks.n, 2);
    t = mint(JWT_ALG_HS256, "v1", SECRET, claims("", 300));
    assert_int_equal(mh_jwt_verify(&ks, &policy, t, strlen(t), now, &id, &reason), 0);
    free(t);
    t = mint(JWT_ALG_RS256, "r1", rsa_priv, claims("", 300));
    assert_int_equal(mh_jwt_verify(&ks, &policy, t, strlen(t), now, &id, &reason), 0);
    free(t);
    mh_jwt_keys_free(&ks);
    /* a key without its alg pin is refused at load */
    f = fopen(path, "w");
    fprintf(f, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"v1\",\"k\":\"c2VjcmV0\"}]}");
    fclose(f);
    assert_int_equal(mh_jwt_keys_load(&ks, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "alg"));
    mh_jwt_keys_free(&ks);
    unlink(path);
    /* short HMAC secrets and private keys are refused */
    assert_int_equal(mh_jwt_keys_add(&ks, "s", "HS256", "short", 5, err, sizeof err), -1);
    assert_int_equal(
        mh_jwt_keys_add(&ks, "p", "RS256", rsa_priv, strlen(rsa_priv), err, sizeof err), -1);
    mh_jwt_keys_free(&ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_each_algorithm),
        cmocka_unit_test(refuses_hostile_tokens),
        cmocka_unit_test(info_claim),
        cmocka_unit_test(jwks_file),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    mh_jwt_keys_free(&keys);
    return rc;
}
