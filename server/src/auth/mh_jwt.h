/*
 * mh_jwt — JWT/MWT verification with the algorithm pinned per key.
 *
 * libjwt 1.x verifies with whatever algorithm the token's header names, so
 * a token saying HS256 would be checked with an RSA public key used as an
 * HMAC secret. Here the header is read first, the key is found by `kid`, the
 * token's `alg` must equal the key's, and only then is the signature checked
 * (HMAC here with a context keyed once per key; RS/ES by libjwt). `none`
 * never verifies. Claims are checked here, with a leeway.
 */
#ifndef MH_JWT_H
#define MH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mh_inval.h"
#include "mh_identity.h"

typedef struct mh_jwt_key {
    char kid[65];
    int alg;            /* jwt_alg_t */
    unsigned char *key; /* owned: HMAC secret, or PEM public key */
    int key_len;
    struct evp_mac_ctx_st *mac; /* owned: HS keys' keyed HMAC context; NULL for RS/ES */
} mh_jwt_key;

typedef struct mh_jwt_keys {
    mh_jwt_key *v;
    size_t n;
} mh_jwt_keys;

typedef struct mh_jwt_policy {
    const char *audience; /* required `aud` when not NULL/empty */
    const char *issuer;   /* required `iss` when not NULL/empty */
    int leeway;           /* seconds of clock skew tolerated on exp/nbf/iat */
} mh_jwt_policy;

void mh_jwt_keys_free(mh_jwt_keys *ks);

/**
 * Adds a key. 'alg' is "HS256", "HS384", "HS512", "RS256" or "ES256"; for HS
 * 'key' is the secret, for RS/ES a PEM public key. Returns 0 or -1 ('err').
 */
int mh_jwt_keys_add(mh_jwt_keys *ks, const char *kid, const char *alg, const void *key, size_t len,
                    char *err, size_t errlen);

/**
 * Loads a JWKS file (RFC 7517): "oct" keys (k), "RSA" (n, e), "EC" P-256
 * (x, y), each with "kid" and "alg" (required: the pin); or a PEM in
 * "pem" / "pem_file". Returns 0 or -1 ('err' names the key and why).
 */
int mh_jwt_keys_load(mh_jwt_keys *ks, const char *path, char *err, size_t errlen);

/**
 * Verifies 'token' at time 'now'. Returns 0 and fills 'id', or -1 with
 * *reason one of: malformed, alg_none, unknown_kid, alg_mismatch,
 * bad_signature, missing_exp, expired, not_yet_valid, issued_in_future,
 * wrong_audience, wrong_issuer, missing_sub, wrong_token_type (a
 * subscription token: it has a `scope` claim).
 */
int mh_jwt_verify(const mh_jwt_keys *ks, const mh_jwt_policy *p, const char *token, size_t len,
                  int64_t now, mh_identity *id, const char **reason);

/**
 * Verifies a subscription token (SPEC 12) for subscribing to 'e' (a channel
 * when 'channel'): same keys, pinning and time checks as connection tokens
 * (not aud/iss: Django mints these without), and claims `scope`, `name`,
 * `params` exactly equal to the subscription's, `sub` equal to 'conn_sub'
 * (both absent for an anonymous connection). Returns 0 with *exp set, or -1
 * with *reason: a connection-token reason or wrong_scope, wrong_name,
 * wrong_params, wrong_sub.
 */
int mh_jwt_verify_subscription(const mh_jwt_keys *ks, const mh_jwt_policy *p, const char *token,
                               size_t len, int64_t now, bool channel, const mh_entry *e,
                               const char *conn_sub, int64_t *exp, const char **reason);

/**
 * A user id as the protocol carries it: a non-empty string of at most
 * MH_SUB_MAX bytes without U+0000, or an integer of magnitude below 2^53
 * (written in decimal). 0 with 'out' filled, or -1. Tokens' `sub` and a
 * Django session's `_auth_user_id` both go through it.
 */
int mh_jwt_sub_form(const json_t *v, char out[MH_SUB_MAX + 1]);

/** base64url (no padding) of 'n' bytes into 'out' (room for (n * 4 + 2) / 3); its length. */
size_t mh_b64url_encode(const unsigned char *in, size_t n, char *out);

/** base64url (no padding) decode into a new buffer (caller frees); NULL on bad input. */
unsigned char *mh_b64url_decode(const char *s, size_t n, size_t *out_len);

#endif
