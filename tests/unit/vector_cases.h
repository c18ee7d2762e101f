/*
 * Runs every case of one vector file ({"cases": [{"name", ...}]}) as its own
 * cmocka test: 'run' gets the case (a json_t *) as its state. 'extra' tests
 * (may be NULL) run after them. Returns cmocka's result, or 1 when the file
 * cannot be read or has no cases. Include after <cmocka.h> and <jansson.h>.
 */
#ifndef MH_TEST_VECTOR_CASES_H
#define MH_TEST_VECTOR_CASES_H

static int run_vector_cases(const char *group, const char *path, CMUnitTestFunction run,
                            const struct CMUnitTest *extra, size_t nextra)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr), *cases;
    struct CMUnitTest *tests;
    size_t n;
    int rc;

    if (!doc) {
        fprintf(stderr, "%s: %s: %s\n", group, path, jerr.text);
        return 1;
    }
    cases = json_object_get(doc, "cases");
    n = json_array_size(cases);
    tests = calloc(n + nextra, sizeof *tests);
    if (!n || !tests) {
        fprintf(stderr, "%s: %s: no cases\n", group, path);
        free(tests);
        json_decref(doc);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        tests[i].name = json_string_value(json_object_get(c, "name"));
        tests[i].test_func = run;
        tests[i].initial_state = c;
    }
    for (size_t i = 0; i < nextra; i++)
        tests[n + i] = extra[i];
    rc = _cmocka_run_group_tests(group, tests, n + nextra, NULL, NULL);
    free(tests);
    json_decref(doc);
    return rc;
}

#endif
