/*
 * libFuzzer: Django signed_cookies verification (mh_djsign). Random bytes
 * almost never pass the HMAC, so each input is used three ways:
 *   1. as a cookie value, verified with FUZZ_KEY (the seeds are signed
 *      with it by tests/unit/gen_django_signing.py);
 *   2. as a Cookie header, whose "sessionid" is then verified;
 *   3. as "payload:timestamp", signed here and verified — so the base64,
 *      base62, age and zlib paths see every mutation. A value signed with
 *      the key must never come back as bad_signature.
 * Beyond "no crash": the result's shape matches the return code.
 */
#include "fuzz_check.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_djsign.h"

#define FUZZ_KEY "mizan-fuzz-djsign-key" /* gen_django_signing.py FUZZ_KEY */
#define NOW (1700000000 + 3600)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {"not-this-one", FUZZ_KEY};
static const mh_djsign_cfg cfg = {.keys = keys, .nkeys = 2, .max_age = MH_DJSIGN_SESSION_AGE};

static const char *unsign(const char *v, size_t n)
{
    char *json = (char *)"unset";
    size_t json_len = 1;
    const char *reason = NULL;
    int rc = mh_djsign_unsign(&cfg, v, n, NOW, &json, &json_len, &reason);

    CHECK(reason);
    if (rc == 0) {
        CHECK(!strcmp(reason, "ok") && json && json_len > 0 && json_len <= MH_DJSIGN_MAX_JSON);
        CHECK(json[json_len] == '\0');
        free(json);
    } else {
        CHECK(rc == -1 && !json && json_len == 0);
        CHECK(!strcmp(reason, "malformed") || !strcmp(reason, "bad_signature") ||
              !strcmp(reason, "expired") || !strcmp(reason, "bad_payload"));
    }
    return reason;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *v;
    size_t vn;
    char *buf;

    unsign(s, size);

    if (!mh_djsign_cookie_find(s, size, "sessionid", &v, &vn)) {
        CHECK(v >= s && vn <= size && (size_t)(v - s) <= size - vn);
        unsign(v, vn);
    }

    if (size + 1 + MH_DJSIGN_SIG_LEN <= MH_DJSIGN_MAX_VALUE && memchr(s, ':', size)) {
        buf = malloc(size + 1 + MH_DJSIGN_SIG_LEN + 1);
        memcpy(buf, s, size);
        buf[size] = ':';
        CHECK(!mh_djsign_signature(FUZZ_KEY, NULL, s, size, buf + size + 1));
        CHECK(strcmp(unsign(buf, size + 1 + MH_DJSIGN_SIG_LEN), "bad_signature"));
        free(buf);
    }
    return 0;
}
