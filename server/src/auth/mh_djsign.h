/*
 * mh_djsign — Django `signed_cookies` session cookies, verified in C.
 *
 * With SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
 * there is no server-side session: the cookie is the session, signed by
 * django.core.signing (TimestampSigner, JSONSerializer, compress=True):
 *
 *     [.]base64url(json or zlib(json)) ":" base62(unix seconds) ":" signature
 *
 * signature = base64url-without-padding(HMAC-SHA256(sha256(salt + "signer" +
 * secret), everything before the last ':')), salt
 * "django.contrib.sessions.backends.signed_cookies". The hub verifies it the
 * way Django does — SECRET_KEY, then each SECRET_KEY_FALLBACKS, then the
 * age, then base64 and zlib — so a session Django accepts is accepted here
 * (SPEC 12). The value is attacker-controlled: its length, the decompressed
 * size and every read are bounded, and signatures compare in constant time.
 */
#ifndef MH_DJSIGN_H
#define MH_DJSIGN_H

#include <stddef.h>
#include <stdint.h>

#define MH_DJSIGN_SESSION_SALT "django.contrib.sessions.backends.signed_cookies"
#define MH_DJSIGN_SESSION_AGE 1209600 /* Django's SESSION_COOKIE_AGE default: 2 weeks */
#define MH_DJSIGN_MAX_VALUE 8192      /* longer cookie values are "malformed" */
#define MH_DJSIGN_MAX_JSON 65536      /* larger (decompressed) payloads are "bad_payload" */
#define MH_DJSIGN_SIG_LEN 43          /* base64url of a SHA-256 HMAC, no padding */

typedef struct mh_djsign_cfg {
    const char *const *keys; /* SECRET_KEY first, then the fallbacks; not owned */
    size_t nkeys;
    const char *salt; /* NULL = MH_DJSIGN_SESSION_SALT; not owned */
    int64_t max_age;  /* seconds (SESSION_COOKIE_AGE); <= 0 = not checked */
} mh_djsign_cfg;

/**
 * Verifies a signed cookie value at time 'now' (Unix seconds). Returns 0 with
 * *json (malloc'd, NUL-terminated, the caller frees) and *json_len: the
 * session's JSON text, not parsed here. Returns -1 with *json = NULL and
 * *reason one of: "malformed" (empty, over MH_DJSIGN_MAX_VALUE, fewer than
 * two ':', or a signed but unreadable timestamp), "bad_signature" (no key
 * matches), "expired" (older than max_age), "bad_payload" (signed, but the
 * base64 or zlib does not decode, is empty, or exceeds MH_DJSIGN_MAX_JSON).
 * Never reads past value[len - 1]; 'value' need not be NUL-terminated.
 */
int mh_djsign_unsign(const mh_djsign_cfg *cfg, const char *value, size_t len, int64_t now,
                     char **json, size_t *json_len, const char **reason);

/**
 * Finds cookie 'name' in a Cookie request header value ("a=b; c=d"), split
 * the way Django's parse_cookie does: on ';', each part at its first '=',
 * name and value stripped of whitespace; when the name appears more than
 * once the last one wins (as in request.COOKIES). A value in double quotes
 * has them removed (escapes inside are left as they are). Returns 0 with
 * *value / *value_len pointing into 'header', or -1 when absent.
 */
int mh_djsign_cookie_find(const char *header, size_t len, const char *name, const char **value,
                          size_t *value_len);

/**
 * Django's Signer.signature(msg) for one secret and salt (NULL = the session
 * salt): writes MH_DJSIGN_SIG_LEN characters and a NUL to 'out'. For tests
 * and tools; the hub only verifies. Returns 0, or -1 if OpenSSL fails.
 */
int mh_djsign_signature(const char *secret, const char *salt, const char *msg, size_t len,
                        char out[MH_DJSIGN_SIG_LEN + 1]);

#endif
