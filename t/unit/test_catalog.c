/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * Unit tests of core/ngx_oauth_catalog.c: the one strict parser of preset
 * entries.  The built-in catalog (ngx_oauth_module/providers.json, read
 * from the directory make runs the tests in) must pass it whole.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_catalog.h"
#include "ngx_oauth_store.h"


#define T(s)  (const unsigned char *) (s), (sizeof(s) - 1)

#define TEST_CATALOG  "ngx_oauth_module/providers.json"


static unsigned char *
test_read(const char *path, size_t *len)
{
    FILE           *f;
    long            n;
    unsigned char  *buf;

    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);

    buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, n, f), (size_t) n);
    fclose(f);

    *len = n;

    return buf;
}


static void
test_builtin(void **state)
{
    char                              err[256];
    size_t                            len, i, oauth2;
    unsigned char                    *text;
    ngx_oauth_catalog_t              *cat;
    const ngx_oauth_str_t            *s;
    const ngx_oauth_catalog_entry_t  *e;

    text = test_read(TEST_CATALOG, &len);
    cat = NULL;

    err[0] = '\0';
    if (ngx_oauth_catalog_load(&cat, text, len, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        fail_msg("the built-in catalog is refused: %s", err);
    }

    assert_true(ngx_oauth_catalog_count(cat) >= 70);

    oauth2 = 0;

    for (i = 0; i < ngx_oauth_catalog_count(cat); i++) {
        e = ngx_oauth_catalog_at(cat, i);
        assert_non_null(e);
        assert_true(e->kind == NGX_OAUTH_KIND_OAUTH2
                    || e->kind == NGX_OAUTH_KIND_API_KEY
                    || e->kind == NGX_OAUTH_KIND_AWS_SIGV4);
        oauth2 += (e->kind == NGX_OAUTH_KIND_OAUTH2);
    }

    assert_true(oauth2 > 0);
    assert_null(ngx_oauth_catalog_at(cat, i));

    assert_int_equal(ngx_oauth_catalog_get(cat, T("github"), &e),
                     NGX_OAUTH_OK);
    assert_int_equal(e->kind, NGX_OAUTH_KIND_OAUTH2);
    assert_int_equal(e->token_auth, NGX_OAUTH_TOKEN_AUTH_POST);
    assert_int_equal(e->pkce, 1);
    assert_int_equal(e->refresh, 0);
    assert_true(e->token_header_set);
    assert_string_equal((char *) e->token_header.data, "Authorization");
    assert_string_equal((char *) e->token_prefix.data, "Bearer ");
    assert_int_equal(e->nscopes, 1);
    assert_string_equal((char *) e->scopes[0].data, "read:user");

    s = ngx_oauth_catalog_str(e, "token_url");
    assert_non_null(s);
    assert_string_equal((char *) s->data,
                        "https://github.com/login/oauth/access_token");
    assert_null(ngx_oauth_catalog_str(e, "callback_hmac"));
    assert_null(ngx_oauth_catalog_str(e, "no_such_key"));

    assert_int_equal(ngx_oauth_catalog_get(cat, T("salesforce-mydomain"),
                                           &e),
                     NGX_OAUTH_OK);
    assert_int_equal(e->nconnection_params, 1);
    assert_string_equal((char *) e->connection_params[0].name.data,
                        "domain");
    assert_true(e->connection_params[0].required);
    assert_true(e->connection_params[0].pattern.len > 0);
    assert_null(e->connection_params[0].strip_suffix.data);

    assert_int_equal(ngx_oauth_catalog_get(cat, T("shopify"), &e),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) e->connection_params[0].strip_suffix.data,
                        ".myshopify.com");

    assert_int_equal(ngx_oauth_catalog_get(cat, T("calendly"), &e),
                     NGX_OAUTH_OK);
    assert_int_equal(e->nkeep_token_fields, 1);
    assert_string_equal((char *) e->keep_token_fields[0].as.data,
                        "organization");

    assert_int_equal(ngx_oauth_catalog_get(cat, T("no-such-preset"), &e),
                     NGX_OAUTH_NOT_FOUND);
    assert_null(e);
    assert_int_equal(ngx_oauth_catalog_get(cat, T("git"), &e),
                     NGX_OAUTH_NOT_FOUND);

    ngx_oauth_catalog_free(cat);
    free(text);
}


typedef struct {
    const char  *text;
    const char  *err;
} test_bad_t;


static const test_bad_t  test_bad[] = {
    { "[]", "not a JSON object of presets" },
    { "{\"a\":", "not a valid JSON document" },
    { "{\"a\":1,\"a\":2}", "not a valid JSON document" },
    { "{\"a\":[]}", "preset \"a\" is not an object" },
    { "{\"\":{}}", "a preset name is empty or too long" },
    { "{\"a\":{\"kind\":\"oauth3\"}}",
      "preset \"a\": \"kind\" must be \"oauth2\", \"api_key\", \"basic\", "
      "\"header\" or \"aws_sigv4\"" },
    { "{\"a\":{\"kind\":2}}", "preset \"a\": \"kind\" must be" },
    { "{\"a\":{\"token_auth\":\"jwt\"}}",
      "preset \"a\": \"token_auth\" must be \"basic\" or \"post\"" },
    { "{\"a\":{\"pkce\":\"true\"}}",
      "preset \"a\": \"pkce\" must be true or false" },
    { "{\"a\":{\"refresh\":1}}",
      "preset \"a\": \"refresh\" must be true or false" },
    { "{\"a\":{\"token_url\":7}}",
      "preset \"a\": \"token_url\" must be a string" },
    { "{\"a\":{\"tokenurl\":\"https://x\"}}",
      "preset \"a\": unknown key \"tokenurl\"" },
    { "{\"a\":{\"token_url\":[\"x\"]}}",
      "preset \"a\": \"token_url\" must be a string" },
    { "{\"a\":{\"requires\":\"user_agent\"}}",
      "preset \"a\": \"requires\" must be an array" },
    { "{\"a\":{\"token_headers\":{\"X\":true}}}",
      "preset \"a\": \"token_headers\" must be an object of strings" },
    { "{\"a\":{\"api_headers\":[\"X\"]}}",
      "preset \"a\": \"api_headers\" must be an object of strings" },
    { "{\"a\":{\"lookups\":[\"x\"]}}",
      "preset \"a\": \"lookups\" must be an array of arrays" },
    { "{\"a\":{\"lookups\":[[]]}}", "\"lookups\" must be an array" },
    { "{\"a\":{\"lookups\":[[\"x\",\"\"]]}}",
      "\"lookups\" must be an array" },
    { "{\"a\":{\"lookups\":{\"x\":[\"u\"]}}}",
      "\"lookups\" must be an array" },
    { "{\"a\":{\"scope\":\"read\"}}",
      "preset \"a\": \"scope\" must be an array of non-empty strings" },
    { "{\"a\":{\"scope\":[\"read\",\"\"]}}", "\"scope\" must be an array" },
    { "{\"a\":{\"scope\":[\"read\",1]}}", "\"scope\" must be an array" },
    { "{\"a\":{\"token_header\":\"Authorization\"}}",
      "preset \"a\": \"token_header\" must be" },
    { "{\"a\":{\"token_header\":{\"prefix\":\"Bearer \"}}}",
      "\"token_header\" must be" },
    { "{\"a\":{\"token_header\":{\"name\":\"A\",\"suffix\":\"x\"}}}",
      "\"token_header\" must be" },
    { "{\"a\":{\"token_params\":{\"x\":1}}}",
      "preset \"a\": \"token_params\" must be an object of strings" },
    { "{\"a\":{\"authorization_params\":[\"x\"]}}",
      "\"authorization_params\" must be an object of strings" },
    { "{\"a\":{\"connection_params\":[{\"pattern\":\"x\"}]}}",
      "preset \"a\": \"connection_params\" must be" },
    { "{\"a\":{\"connection_params\":[{\"name\":\"d\","
      "\"pattern\":\"(\"}]}}", "\"connection_params\" must be" },
    { "{\"a\":{\"connection_params\":[{\"name\":\"d\","
      "\"required\":\"yes\"}]}}", "\"connection_params\" must be" },
    { "{\"a\":{\"connection_params\":[{\"name\":\"d\",\"x\":1}]}}",
      "\"connection_params\" must be" },
    { "{\"a\":{\"keep_token_fields\":[\"org\"]}}",
      "preset \"a\": \"keep_token_fields\" must be" },
    { "{\"a\":{\"keep_token_fields\":[{\"as\":\"org\"}]}}",
      "\"keep_token_fields\" must be" },
    { "{\"a\":{\"keep_callback_params\":[\"\"]}}",
      "\"keep_callback_params\" must be" },
    { "{\"a\":{\"keep_callback_params\":[{\"name\":\"r\","
      "\"pattern\":\"(\"}]}}", "\"keep_callback_params\" must be" },
    { "{\"a\":{\"keep_callback_params\":[{\"pattern\":\"^1$\"}]}}",
      "\"keep_callback_params\" must be" },
    { "{\"a\":{\"keep_callback_params\":[{\"name\":\"r\",\"x\":1}]}}",
      "\"keep_callback_params\" must be" },
    { "{\"a\":{\"keep_callback_params\":[{\"name\":\"r\","
      "\"strip_prefix\":\"\"}]}}", "\"keep_callback_params\" must be" },
    { "{\"a\":{\"token_types\":[\"\"]}}", "\"token_types\" must be" },
    /* a good entry first, then a bad one: nothing of it is kept */
    { "{\"a\":{\"kind\":\"oauth2\"},\"b\":{\"kind\":\"x\"}}",
      "preset \"b\": \"kind\" must be" },
};


static void
test_strict(void **state)
{
    char                              err[256];
    size_t                            i;
    ngx_oauth_catalog_t              *cat;
    const test_bad_t                 *b;
    const ngx_oauth_catalog_entry_t  *e;

    for (i = 0; i < sizeof(test_bad) / sizeof(test_bad[0]); i++) {
        b = &test_bad[i];
        cat = NULL;
        err[0] = '\0';

        if (ngx_oauth_catalog_load(&cat, (const unsigned char *) b->text,
                                   strlen(b->text), err, sizeof(err))
            == NGX_OAUTH_OK)
        {
            fail_msg("accepted %s", b->text);
        }

        assert_null(cat);

        if (strstr(err, b->err) == NULL) {
            fail_msg("%s: \"%s\", not \"%s\"", b->text, err, b->err);
        }
    }

    /* the same values, well formed */

    cat = NULL;
    assert_int_equal(ngx_oauth_catalog_load(&cat, T(
        "{\"a\":{\"kind\":\"header\",\"token_auth\":\"basic\","
        "\"pkce\":false,\"token_header\":{\"name\":\"X-Key\"},"
        "\"token_params\":{\"x\":\"1\",\"y\":\"\"},"
        "\"connection_params\":[{\"name\":\"d\"}],"
        "\"keep_token_fields\":[{\"path\":\"o.id\"}],"
        "\"keep_callback_params\":[\"shop\",{\"name\":\"realmId\","
        "\"pattern\":\"^[0-9]{1,32}$\",\"strip_prefix\":\"https://\"}],"
        "\"revocation_body\":null,"
        "\"token_types\":[\"bot\"],"
        "\"requires\":[\"user_agent\"],\"token_headers\":{\"X-A\":\"1\"},"
        "\"api_headers\":{\"X-B\":\"{client_id}\"},"
        "\"lookups\":[[\"p\",\"https://a.example/x\",\"0.id\","
        "\"optional\"]]"
        "}}"), err, sizeof(err)),
        NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_catalog_get(cat, T("a"), &e), NGX_OAUTH_OK);
    assert_int_equal(e->kind, NGX_OAUTH_KIND_HEADER);
    assert_int_equal(e->token_auth, NGX_OAUTH_TOKEN_AUTH_BASIC);
    assert_int_equal(e->pkce, 0);
    assert_int_equal(e->refresh, NGX_OAUTH_CATALOG_UNSET);
    assert_null(e->token_prefix.data);
    assert_int_equal(e->ntoken_params, 2);
    assert_int_equal(e->nauthorization_params, 0);
    assert_string_equal((char *) e->token_params[1].name.data, "y");
    assert_int_equal(e->token_params[1].value.len, 0);
    assert_int_equal(e->connection_params[0].pattern.len, 0);
    assert_false(e->connection_params[0].required);
    assert_string_equal((char *) e->keep_token_fields[0].as.data, "o.id");
    assert_int_equal(e->nkeep_callback_params, 2);
    assert_int_equal(e->keep_callback_patterns[0].len, 0);
    assert_string_equal((char *) e->keep_callback_params[1].data, "realmId");
    assert_string_equal((char *) e->keep_callback_patterns[1].data,
                        "^[0-9]{1,32}$");
    assert_int_equal(e->keep_callback_strips[0].len, 0);
    assert_string_equal((char *) e->keep_callback_strips[1].data,
                        "https://");
    assert_int_equal(e->ntoken_types, 1);
    assert_string_equal((char *) e->token_types[0].data, "bot");
    assert_null(ngx_oauth_catalog_str(e, "revocation_body"));
    assert_int_equal(e->nrequires, 1);
    assert_int_equal(e->ntoken_headers, 1);
    assert_string_equal((char *) e->token_headers[0].value.data, "1");
    assert_int_equal(e->napi_headers, 1);
    assert_string_equal((char *) e->api_headers[0].value.data,
                        "{client_id}");
    assert_int_equal(e->nlookups, 1);
    assert_int_equal(e->lookups[0].nargs, 4);
    assert_string_equal((char *) e->lookups[0].args[1].data,
                        "https://a.example/x");
    assert_string_equal((char *) e->lookups[0].args[3].data, "optional");

    ngx_oauth_catalog_free(cat);
    ngx_oauth_catalog_free(NULL);
}


/* a site's catalog over the built-in one */

static void
test_merge(void **state)
{
    char                              err[256];
    ngx_oauth_catalog_t              *cat, *before;
    const ngx_oauth_str_t            *s;
    const ngx_oauth_catalog_entry_t  *e;

    cat = NULL;
    assert_int_equal(ngx_oauth_catalog_load(&cat, T(
        "{\"a\":{\"token_url\":\"https://a/1\",\"scope\":[\"x\"]},"
        "\"b\":{\"token_url\":\"https://b/1\"}}"), err, sizeof(err)),
        NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_catalog_load(&cat, T(
        "{\"b\":{\"token_url\":\"https://b/2\"},"
        "\"c\":{\"token_url\":\"https://c/1\"}}"), err, sizeof(err)),
        NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_catalog_count(cat), 3);

    assert_int_equal(ngx_oauth_catalog_get(cat, T("a"), &e), NGX_OAUTH_OK);
    assert_int_equal(e->nscopes, 1);
    assert_int_equal(ngx_oauth_catalog_get(cat, T("b"), &e), NGX_OAUTH_OK);
    s = ngx_oauth_catalog_str(e, "token_url");
    assert_string_equal((char *) s->data, "https://b/2");
    assert_int_equal(ngx_oauth_catalog_get(cat, T("c"), &e), NGX_OAUTH_OK);

    /* a bad site catalog changes nothing */

    before = cat;
    assert_int_equal(ngx_oauth_catalog_load(&cat, T(
        "{\"a\":{\"token_url\":\"https://a/2\"},\"d\":{\"pkce\":1}}"), err,
        sizeof(err)),
        NGX_OAUTH_INVALID);
    assert_ptr_equal(cat, before);
    assert_int_equal(ngx_oauth_catalog_count(cat), 3);
    assert_int_equal(ngx_oauth_catalog_get(cat, T("a"), &e), NGX_OAUTH_OK);
    s = ngx_oauth_catalog_str(e, "token_url");
    assert_string_equal((char *) s->data, "https://a/1");

    ngx_oauth_catalog_free(cat);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_builtin),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_merge),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
