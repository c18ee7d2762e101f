/* The settings table: defaults, precedence (file < env < flags), and errors that name the setting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mh_config.h"

static int load(mh_config *c, char *err, int argc, ...)
{
    char *argv[16] = {"mizan-hub"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return mh_config_load(c, argc, argv, err, 256);
}

static void defaults(void **state)
{
    mh_config c;
    char err[256];
    assert_int_equal(load(&c, err, 1), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8765);
    assert_string_equal(c.redis.host, "127.0.0.1");
    assert_int_equal(c.redis.port, 6379);
    assert_int_equal(c.redis.db, 0);
    assert_string_equal(c.redis_prefix, "mizan:");
    assert_int_equal(c.allow_anonymous, 0);
    assert_int_equal(c.max_frame, 65536);
    /* issue 12: heals give up after a bound; channel resumes are rate limited */
    assert_int_equal(c.heal_timeout_ms, 5000);
    assert_int_equal(c.resume_rate, 10);
    assert_int_equal(c.resume_burst, 256);
}

static void flags_and_forms(void **state)
{
    mh_config c;
    char err[256];
    assert_int_equal(load(&c, err, 7, "--listen", "0.0.0.0:9000",
                          "--redis=redis://:s3cret@r.example:6380/2", "--allow-anonymous",
                          "--max-frame", "1024"),
                     0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9000);
    assert_string_equal(c.redis.host, "r.example");
    assert_int_equal(c.redis.port, 6380);
    assert_int_equal(c.redis.db, 2);
    assert_string_equal(c.redis.password, "s3cret");
    assert_string_equal(c.redis.user, "");
    assert_int_equal(c.allow_anonymous, 1);
    assert_int_equal(c.max_frame, 1024);
    assert_int_equal(load(&c, err, 4, "--allow-anonymous", "false", "--workers=2"), 0);
    assert_int_equal(c.allow_anonymous, 0);
    assert_int_equal(c.workers, 2);
    /* USER:PASSWORD@ is an ACL user; PASSWORD@ and :PASSWORD@ the default user */
    assert_int_equal(load(&c, err, 3, "--redis", "redis://hub:pw@r.example:6380/0"), 0);
    assert_string_equal(c.redis.user, "hub");
    assert_string_equal(c.redis.password, "pw");
    assert_string_equal(c.redis.host, "r.example");
    assert_int_equal(load(&c, err, 3, "--redis", "redis://pw@r.example"), 0);
    assert_string_equal(c.redis.user, "");
    assert_string_equal(c.redis.password, "pw");
}

static void bad_values_name_the_setting(void **state)
{
    mh_config c;
    char err[256];
    assert_int_equal(load(&c, err, 3, "--max-frame", "10"), -1);
    assert_non_null(strstr(err, "max_frame"));
    assert_non_null(strstr(err, "between 256 and"));
    assert_int_equal(load(&c, err, 3, "--listen", "nohost"), -1);
    assert_non_null(strstr(err, "listen"));
    assert_int_equal(load(&c, err, 3, "--redis", "http://x"), -1);
    assert_non_null(strstr(err, "redis"));
    assert_int_equal(load(&c, err, 3, "--workers", "many"), -1);
    assert_non_null(strstr(err, "not an integer"));
    assert_int_equal(load(&c, err, 3, "--hub-id", "Bad_Id"), -1);
    assert_non_null(strstr(err, "hub_id"));
    assert_int_equal(load(&c, err, 3, "--heal-timeout-ms", "0"), -1);
    assert_non_null(strstr(err, "heal_timeout_ms"));
    assert_int_equal(load(&c, err, 3, "--resume-burst", "0"), -1);
    assert_non_null(strstr(err, "resume_burst"));
    assert_int_equal(load(&c, err, 2, "--no-such"), -1);
    assert_non_null(strstr(err, "unknown setting"));
    assert_int_equal(load(&c, err, 2, "--max-frame"), -1);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(load(&c, err, 3, "--tls-cert", "/x.pem"), -1);
    assert_non_null(strstr(err, "tls_key"));
}

/* --redis-shards: every URL parsed in order; --redis alone is the one shard. */
static void redis_shards(void **state)
{
    mh_config c;
    char err[256];

    assert_int_equal(load(&c, err, 3, "--redis", "redis://:pw@r.example:6380/2"), 0);
    assert_int_equal(c.nshards, 1);
    assert_string_equal(c.shards[0].host, "r.example");
    assert_int_equal(c.shards[0].port, 6380);
    assert_int_equal(c.shards[0].db, 2);
    assert_string_equal(c.shards[0].password, "pw");
    assert_int_equal(load(&c, err, 3, "--redis-shards",
                          "redis://127.0.0.1:7001/0, rediss://u:p@[::1]:7002/3,redis://h3"),
                     0);
    assert_int_equal(c.nshards, 3);
    assert_int_equal(c.shards[0].port, 7001);
    assert_int_equal(c.shards[0].tls, 0);
    assert_string_equal(c.shards[1].host, "::1");
    assert_int_equal(c.shards[1].db, 3);
    assert_string_equal(c.shards[1].user, "u");
    assert_int_equal(c.shards[1].tls, 1);
    assert_int_equal(c.redis_tls, 1); /* a rediss:// shard: the TLS flags apply */
    assert_string_equal(c.shards[2].host, "h3");
    assert_int_equal(c.shards[2].port, 6379);
    assert_int_equal(load(&c, err, 3, "--redis-shards", "redis://a:1/0,http://b"), -1);
    assert_non_null(strstr(err, "redis_shards"));
    assert_non_null(strstr(err, "http://b"));
    assert_int_equal(load(&c, err, 3, "--redis-shards", " , "), -1);
    assert_non_null(strstr(err, "no URL"));
    assert_int_equal(load(&c, err, 5, "--redis-shards", "redis://a:1/0,redis://b:2/0",
                          "--redis-sentinels", "127.0.0.1:26379"),
                     -1);
    assert_non_null(strstr(err, "Sentinel"));
    assert_int_equal(load(&c, err, 3, "--redis-shards",
                          "redis://a,redis://a,redis://a,redis://a,redis://a,redis://a,"
                          "redis://a,redis://a,redis://a,redis://a,redis://a,redis://a,"
                          "redis://a,redis://a,redis://a,redis://a,redis://a"),
                     -1);
    assert_non_null(strstr(err, "at most 16"));
}

static void precedence_file_env_flags(void **state)
{
    mh_config c;
    char err[256], path[] = "/tmp/mh-test-config-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nmax_frame = 2048\nworkers = 3\nlog_level = debug\n");
    fclose(f);
    setenv("MIZAN_HUB_WORKERS", "4", 1);
    assert_int_equal(load(&c, err, 3, "--config", path), 0);
    assert_int_equal(c.max_frame, 2048);
    assert_int_equal(c.workers, 4);
    assert_int_equal(load(&c, err, 5, "--config", path, "--workers", "5"), 0);
    assert_int_equal(c.workers, 5);
    setenv("MIZAN_HUB_WORKERS", "zero", 1);
    assert_int_equal(load(&c, err, 1), -1);
    assert_non_null(strstr(err, "MIZAN_HUB_WORKERS"));
    unsetenv("MIZAN_HUB_WORKERS");
    f = fopen(path, "w");
    fprintf(f, "bogus = 1\n");
    fclose(f);
    assert_int_equal(load(&c, err, 3, "--config", path), -1);
    assert_non_null(strstr(err, "unknown setting 'bogus'"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(flags_and_forms),
        cmocka_unit_test(bad_values_name_the_setting),
        cmocka_unit_test(precedence_file_env_flags),
        cmocka_unit_test(redis_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
