/* The registry file (SPEC 12): what it accepts, what it refuses with a reason,
 * and each guard and param rule decided for each kind of identity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mh_registry.h"

static const char *doc =
    "{\"version\":1,\"default\":\"deny\",\"contexts\":{"
    "\"user\":{\"params\":[\"user_id\"],\"guard\":\"auth\",\"param_rules\":{\"user_id\":\"sub\"}},"
    "\"todos\":{\"guard\":\"public\"},\"stats\":{\"guard\":\"staff\"},"
    "\"root\":{\"guard\":\"superuser\"},\"billing\":{\"params\":[\"org\"],\"guard\":\"token\"},"
    "\"noguard\":{}},"
    "\"channels\":{\"chat\":{\"params\":[\"room\"],\"guard\":\"auth\",\"history\":{\"size\":5}}}}";

static mh_param param(const char *name, const char *value)
{
    mh_param p = {(char *)name, strlen(name), (char *)value, strlen(value)};
    return p;
}

static mh_reg_result check(const mh_registry *r, bool channel, const char *name, mh_param *ps,
                           size_t n, const mh_who *who, const char **code)
{
    mh_entry e = {(char *)name, strlen(name), n > 0, n, ps};
    char msg[256];
    *code = "";
    return mh_registry_check(r, channel, &e, who, code, msg, sizeof msg);
}

static void guards(void **state)
{
    char err[256];
    mh_registry *r = mh_registry_parse(doc, strlen(doc), err, sizeof err);
    mh_who anon = {0}, u5 = {"5", false, false}, staff = {"7", true, false},
           super = {"8", false, true};
    mh_param p5 = param("user_id", "5"), p6 = param("user_id", "6");
    const char *code;
    (void)state;

    assert_non_null(r);
    assert_int_equal(mh_registry_count(r, false), 6);
    assert_int_equal(mh_registry_count(r, true), 1);
    assert_int_equal(check(r, false, "todos", NULL, 0, &anon, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "user", &p5, 1, &u5, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "user", &p6, 1, &u5, &code), MH_REG_DENY);
    assert_string_equal(code, "forbidden");
    assert_int_equal(check(r, false, "user", &p5, 1, &anon, &code), MH_REG_DENY);
    assert_string_equal(code, "unauthorized");
    /* the rule binds staff and superusers too */
    assert_int_equal(check(r, false, "user", &p5, 1, &super, &code), MH_REG_DENY);
    assert_int_equal(check(r, false, "user", NULL, 0, &u5, &code), MH_REG_DENY);
    assert_string_equal(code, "forbidden");
    assert_int_equal(check(r, false, "stats", NULL, 0, &u5, &code), MH_REG_DENY);
    assert_string_equal(code, "forbidden");
    assert_int_equal(check(r, false, "stats", NULL, 0, &staff, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "stats", NULL, 0, &super, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "root", NULL, 0, &staff, &code), MH_REG_DENY);
    assert_int_equal(check(r, false, "root", NULL, 0, &super, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "billing", NULL, 0, &anon, &code), MH_REG_NEED_TOKEN);
    /* a missing guard is auth, never public */
    assert_int_equal(check(r, false, "noguard", NULL, 0, &anon, &code), MH_REG_DENY);
    assert_string_equal(code, "unauthorized");
    assert_int_equal(check(r, false, "nope", NULL, 0, &super, &code), MH_REG_DENY);
    assert_string_equal(code, "not_found");
    /* contexts and channels are separate name spaces */
    assert_int_equal(check(r, true, "todos", NULL, 0, &u5, &code), MH_REG_DENY);
    assert_string_equal(code, "not_found");
    assert_int_equal(check(r, true, "chat", NULL, 0, &u5, &code), MH_REG_ALLOW);
    mh_registry_free(r);
}

/* "params" declares the names a subscription may use: any other is bad_param. */
static void declared_params(void **state)
{
    const char *d =
        "{\"version\":1,\"default\":\"allow\",\"contexts\":{"
        "\"user\":{\"params\":[\"user_id\",\"tab\"],\"param_rules\":{\"user_id\":\"sub\"}},"
        "\"feed\":{\"params\":[],\"guard\":\"public\"},\"open\":{\"guard\":\"public\"},"
        "\"nullp\":{\"params\":null,\"guard\":\"public\"}},"
        "\"channels\":{\"chat\":{\"params\":[\"room\"],\"guard\":\"token\"}}}";
    char err[256], msg[256];
    mh_registry *r = mh_registry_parse(d, strlen(d), err, sizeof err);
    mh_who anon = {0}, u5 = {"5", false, false}, super = {"8", false, true};
    mh_param ok[2] = {param("tab", "a"), param("user_id", "5")};
    mh_param bad[2] = {param("evil", "1"), param("user_id", "5")};
    mh_param x = param("x", "1"), room = param("room", "a");
    mh_param roomx[2] = {param("room", "a"), param("x", "1")};
    const char *code;
    (void)state;

    assert_non_null(r);
    assert_int_equal(check(r, false, "user", ok, 2, &u5, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "user", &ok[1], 1, &u5, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "user", bad, 2, &u5, &code), MH_REG_DENY);
    assert_string_equal(code, "bad_param");
    /* before the guard: the same answer for anyone */
    assert_int_equal(check(r, false, "user", bad, 2, &anon, &code), MH_REG_DENY);
    assert_string_equal(code, "bad_param");
    assert_int_equal(check(r, false, "user", bad, 2, &super, &code), MH_REG_DENY);
    assert_string_equal(code, "bad_param");
    /* the message names the param */
    {
        mh_entry e = {"user", 4, true, 2, bad};
        assert_int_equal(mh_registry_check(r, false, &e, &u5, &code, msg, sizeof msg), MH_REG_DENY);
        assert_non_null(strstr(msg, "params.evil"));
    }
    /* [] declares no params at all; no "params" (or null) accepts any name */
    assert_int_equal(check(r, false, "feed", NULL, 0, &anon, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "feed", &x, 1, &anon, &code), MH_REG_DENY);
    assert_string_equal(code, "bad_param");
    assert_int_equal(check(r, false, "open", &x, 1, &anon, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "nullp", &x, 1, &anon, &code), MH_REG_ALLOW);
    /* default allow: an undeclared context declares nothing */
    assert_int_equal(check(r, false, "elsewhere", &x, 1, &u5, &code), MH_REG_ALLOW);
    /* channels too, also ahead of the token guard */
    assert_int_equal(check(r, true, "chat", &room, 1, &anon, &code), MH_REG_NEED_TOKEN);
    assert_int_equal(check(r, true, "chat", roomx, 2, &anon, &code), MH_REG_DENY);
    assert_string_equal(code, "bad_param");
    mh_registry_free(r);
}

static void default_allow_is_auth(void **state)
{
    const char *d = "{\"version\":1,\"default\":\"allow\"}";
    char err[256];
    mh_registry *r = mh_registry_parse(d, strlen(d), err, sizeof err);
    mh_who anon = {0}, u5 = {"5", false, false};
    const char *code;
    (void)state;

    assert_non_null(r);
    assert_int_equal(check(r, false, "anything", NULL, 0, &u5, &code), MH_REG_ALLOW);
    assert_int_equal(check(r, false, "anything", NULL, 0, &anon, &code), MH_REG_DENY);
    assert_string_equal(code, "unauthorized");
    mh_registry_free(r);
}

static void refused_files(void **state)
{
    static const struct {
        const char *doc, *why;
    } bad[] = {
        {"", "not JSON"},
        {"[]", "not a JSON object"},
        {"{}", "\"version\" must be 1"},
        {"{\"version\":2}", "\"version\" must be 1"},
        {"{\"version\":1,\"default\":\"maybe\"}", "\"default\""},
        {"{\"version\":1,\"contexts\":[]}", "'contexts' must be an object"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"guard\":\"admins\"}}}", "guard must be"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"guard\":true}}}", "guard must be"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"param_rules\":{\"x\":\"email\"}}}}",
         "the only rule is"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"param_rules\":[\"x\"]}}}", "must be an object"},
        {"{\"version\":1,\"contexts\":{\"bad\\u0001\":{}}}", "context 'bad"},
        {"{\"version\":1,\"contexts\":{\"\":{}}}", "context ''"},
        {"{\"version\":1,\"channels\":{\"c\":3}}", "not an object"},
        {"{\"version\":1,\"version\":1}", "not JSON"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"params\":\"x\"}}}",
         "context 'a': params must be a list"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"params\":[\"x\",3]}}}",
         "context 'a': params[1]: not a string"},
        {"{\"version\":1,\"channels\":{\"c\":{\"params\":[\"\"]}}}", "channel 'c': params[0]"},
        {"{\"version\":1,\"contexts\":{\"a\":{\"params\":[\"b\\u0001\"]}}}",
         "context 'a': params[0]"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        mh_registry *r = mh_registry_parse(bad[i].doc, strlen(bad[i].doc), err, sizeof err);
        if (r || !strstr(err, bad[i].why)) {
            print_error("case %zu: %s -> %s\n", i, bad[i].doc, r ? "(accepted)" : err);
            fail();
        }
    }
}

static void presence_flag(void **state)
{
    const char *d = "{\"version\":1,\"channels\":{\"room\":{\"presence\":true},"
                    "\"chat\":{\"presence\":false},\"plain\":{}}}";
    char err[256];
    mh_registry *r = mh_registry_parse(d, strlen(d), err, sizeof err);
    (void)state;

    assert_non_null(r);
    assert_true(mh_registry_presence(r, "room", 4));
    assert_false(mh_registry_presence(r, "chat", 4));
    assert_false(mh_registry_presence(r, "plain", 5));
    assert_false(mh_registry_presence(r, "nowhere", 7));
    mh_registry_free(r);
    d = "{\"version\":1,\"channels\":{\"room\":{\"presence\":1}}}";
    assert_null(mh_registry_parse(d, strlen(d), err, sizeof err));
    assert_non_null(strstr(err, "channel 'room': presence must be true or false"));
    d = "{\"version\":1,\"contexts\":{\"user\":{\"presence\":true}}}";
    assert_null(mh_registry_parse(d, strlen(d), err, sizeof err));
    assert_non_null(strstr(err, "context 'user': only channels keep presence"));
}

static void join_leave_flag(void **state)
{
    const char *d = "{\"version\":1,\"channels\":{\"room\":{\"presence\":true},"
                    "\"hall\":{\"presence\":true,\"join_leave\":false},"
                    "\"loud\":{\"presence\":true,\"join_leave\":true},\"plain\":{}}}";
    char err[256];
    mh_registry *r = mh_registry_parse(d, strlen(d), err, sizeof err);
    (void)state;

    assert_non_null(r);
    assert_true(mh_registry_join_leave(r, "room", 4)); /* presence says join/leave by default */
    assert_true(mh_registry_join_leave(r, "loud", 4));
    assert_false(mh_registry_join_leave(r, "hall", 4));
    assert_true(mh_registry_presence(r, "hall", 4)); /* the members are still kept */
    assert_false(mh_registry_join_leave(r, "plain", 5));
    assert_false(mh_registry_join_leave(r, "nowhere", 7));
    mh_registry_free(r);
    d = "{\"version\":1,\"channels\":{\"room\":{\"presence\":true,\"join_leave\":0}}}";
    assert_null(mh_registry_parse(d, strlen(d), err, sizeof err));
    assert_non_null(strstr(err, "channel 'room': join_leave is true or false, with presence only"));
    d = "{\"version\":1,\"channels\":{\"room\":{\"join_leave\":false}}}";
    assert_null(mh_registry_parse(d, strlen(d), err, sizeof err));
    assert_non_null(strstr(err, "join_leave is true or false, with presence only"));
}

static void load_errors(void **state)
{
    char err[256];
    (void)state;
    assert_null(mh_registry_load("/nonexistent/registry.json", err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(guards),
                                       cmocka_unit_test(declared_params),
                                       cmocka_unit_test(default_allow_is_auth),
                                       cmocka_unit_test(refused_files),
                                       cmocka_unit_test(load_errors),
                                       cmocka_unit_test(presence_flag),
                                       cmocka_unit_test(join_leave_flag)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
