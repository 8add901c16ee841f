/*
 * Copyright (C) ngx_oauth_module authors
 *
 * Unit tests of core/ngx_oauth_json.c: token responses (security test T19,
 * T38), dotted paths, limits, and the HTML-safe JSON string escaper.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "ngx_oauth_json.h"


#define S(s)  (const unsigned char *) (s), (sizeof(s) - 1)
#define CS(s)  (const unsigned char *) (s), strlen(s)

#define assert_str(str, expect)                                              \
    do {                                                                     \
        assert_non_null((str).data);                                         \
        assert_int_equal((str).len, strlen(expect));                         \
        assert_memory_equal((str).data, expect, (str).len);                  \
        assert_int_equal((str).data[(str).len], '\0');                       \
    } while (0)

#define assert_absent(str)                                                   \
    do {                                                                     \
        assert_null((str).data);                                             \
        assert_int_equal((str).len, 0);                                      \
    } while (0)


static int
ngx_oauth_test_token_rc(const char *body)
{
    int                rc;
    ngx_oauth_token_t  t;

    rc = ngx_oauth_token_parse(CS(body), &t);

    if (rc == NGX_OAUTH_OK) {
        ngx_oauth_token_free(&t);

    } else {
        /* a refused body leaves nothing behind to free */
        assert_null(t.root);
        assert_null(t.access_token.data);
    }

    return rc;
}


static char *
ngx_oauth_test_nested(size_t depth, const char *open, const char *close)
{
    char    *s, *p;
    size_t   i, olen, clen;

    olen = strlen(open);
    clen = strlen(close);

    s = malloc(depth * (olen + clen) + 1);
    assert_non_null(s);

    p = s;

    for (i = 0; i < depth; i++) {
        memcpy(p, open, olen);
        p += olen;
    }

    for (i = 0; i < depth; i++) {
        memcpy(p, close, clen);
        p += clen;
    }

    *p = '\0';

    return s;
}


/* generic parsing and its limits */

static void
test_parse_limits(void **state)
{
    char    *s;
    void    *root;
    size_t   n;

    assert_int_equal(ngx_oauth_json_parse(S("{\"a\":[1,2,{\"b\":null}]}"),
                                          &root),
                     NGX_OAUTH_OK);
    assert_non_null(root);
    ngx_oauth_json_free(root);

    assert_int_equal(ngx_oauth_json_parse(S("[]"), &root), NGX_OAUTH_OK);
    ngx_oauth_json_free(root);

    ngx_oauth_json_free(NULL);

    assert_int_equal(ngx_oauth_json_parse(S(""), &root), NGX_OAUTH_INVALID);
    assert_null(root);
    assert_int_equal(ngx_oauth_json_parse(NULL, 0, &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("1"), &root), NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("\"x\""), &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("{} {}"), &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("{\"a\":1,\"a\":2}"), &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("{\"a\":\"\xff\"}"), &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("{\"a\":\"x\\u0000y\"}"), &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("{\"a\":\"x\0y\"}"), &root),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_parse(S("{\"a\":NaN}"), &root),
                     NGX_OAUTH_INVALID);

    /* nesting: 64 levels pass, 65 do not; 100k fail fast, no recursion */

    s = ngx_oauth_test_nested(NGX_OAUTH_JSON_MAX_DEPTH, "[", "]");
    assert_int_equal(ngx_oauth_json_parse(CS(s), &root), NGX_OAUTH_OK);
    ngx_oauth_json_free(root);
    free(s);

    s = ngx_oauth_test_nested(NGX_OAUTH_JSON_MAX_DEPTH + 1, "[", "]");
    assert_int_equal(ngx_oauth_json_parse(CS(s), &root), NGX_OAUTH_INVALID);
    free(s);

    s = ngx_oauth_test_nested(100000, "{\"a\":", "}");
    assert_int_equal(ngx_oauth_json_parse(CS(s), &root), NGX_OAUTH_INVALID);
    free(s);

    /* brackets inside strings are not nesting */

    n = 5000;
    s = malloc(n + 16);
    assert_non_null(s);
    memcpy(s, "{\"a\":\"", 6);
    memset(s + 6, '[', n);
    memcpy(s + 6 + n, "\\\"{\"}", 6);
    assert_int_equal(ngx_oauth_json_parse(CS(s), &root), NGX_OAUTH_OK);
    ngx_oauth_json_free(root);
    free(s);

    /* size: 1 MiB passes, one byte more does not */

    n = NGX_OAUTH_JSON_MAX_SIZE;
    s = malloc(n + 2);
    assert_non_null(s);
    memset(s, ' ', n + 1);
    memcpy(s, "{}", 2);
    s[n + 1] = '\0';

    assert_int_equal(ngx_oauth_json_parse((unsigned char *) s, n, &root),
                     NGX_OAUTH_OK);
    ngx_oauth_json_free(root);
    assert_int_equal(ngx_oauth_json_parse((unsigned char *) s, n + 1, &root),
                     NGX_OAUTH_TOO_LARGE);
    free(s);
}


/* token responses */

static void
test_token_ok(void **state)
{
    ngx_oauth_token_t  t;

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"access_token\":\"ya29.a0AfH6SM-_~+/=\",\"expires_in\":3599,"
        "\"refresh_token\":\"1//0gLx\",\"scope\":\"openid email\","
        "\"token_type\":\"Bearer\",\"id_token\":\"h.p.s\","
        "\"extra\":{\"x\":[1]}}"), &t),
        NGX_OAUTH_OK);

    assert_str(t.access_token, "ya29.a0AfH6SM-_~+/=");
    assert_str(t.refresh_token, "1//0gLx");
    assert_str(t.scope, "openid email");
    assert_str(t.token_type, "Bearer");
    assert_str(t.id_token, "h.p.s");
    assert_int_equal(t.expires_in, 3599);
    assert_absent(t.error);
    assert_absent(t.error_description);
    assert_non_null(t.root);

    ngx_oauth_token_free(&t);

    /* freed: the struct is empty again */
    assert_null(t.root);
    assert_absent(t.access_token);
    assert_int_equal(t.expires_in, -1);

    /* the minimum, and nulls that mean absent */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"access_token\":\"gho_x\",\"refresh_token\":null,"
        "\"scope\":null,\"expires_in\":null,\"error\":null}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.access_token, "gho_x");
    assert_absent(t.refresh_token);
    assert_absent(t.scope);
    assert_absent(t.token_type);
    assert_absent(t.id_token);
    assert_absent(t.error);
    assert_int_equal(t.expires_in, -1);
    ngx_oauth_token_free(&t);

    /* Salesforce tokens carry "!"; an empty refresh_token is absent */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"access_token\":\"00Dxx!AQ4AQ.abc\",\"refresh_token\":\"\","
        "\"instance_url\":\"https://x.my.salesforce.com\"}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.access_token, "00Dxx!AQ4AQ.abc");
    assert_absent(t.refresh_token);
    ngx_oauth_token_free(&t);

    /* Slack v2 */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"ok\":true,\"access_token\":\"xoxb-1-2\",\"token_type\":\"bot\","
        "\"scope\":\"chat:write,channels:read\",\"team\":{\"id\":\"T9\"}}"),
        &t),
        NGX_OAUTH_OK);
    assert_str(t.access_token, "xoxb-1-2");
    assert_str(t.token_type, "bot");
    assert_str(t.scope, "chat:write,channels:read");
    ngx_oauth_token_free(&t);

    /* scope as an array, joined */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"access_token\":\"a\",\"scope\":[\"read\",\"write\",\"x y\"]}"),
        &t),
        NGX_OAUTH_OK);
    assert_str(t.scope, "read write x y");
    ngx_oauth_token_free(&t);

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"access_token\":\"a\",\"scope\":[]}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.scope, "");
    ngx_oauth_token_free(&t);

    /* token_type is reported as given: the caller decides about it */

    assert_int_equal(ngx_oauth_test_token_rc(
        "{\"access_token\":\"a\",\"token_type\":\"mac\"}"), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_test_token_rc(
        "{\"access_token\":\"a\",\"token_type\":\"DPoP\"}"), NGX_OAUTH_OK);
}


static void
test_token_errors(void **state)
{
    ngx_oauth_token_t  t;

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"error\":\"bad_verification_code\"}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "bad_verification_code");
    assert_absent(t.error_description);
    assert_absent(t.access_token);
    ngx_oauth_token_free(&t);

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"error\":\"invalid_grant\",\"error_description\":"
        "\"Bad <b>request</b>\\r\\n\"}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "invalid_grant");
    assert_str(t.error_description, "Bad <b>request</b>\r\n");
    ngx_oauth_token_free(&t);

    /* Slack */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"ok\":false,\"error\":\"invalid_refresh_token\"}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "invalid_refresh_token");
    ngx_oauth_token_free(&t);

    /* an error wins over a token in the same response */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"access_token\":\"a\",\"error\":\"invalid_client\"}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "invalid_client");
    assert_absent(t.access_token);
    ngx_oauth_token_free(&t);

    /* Facebook Graph: an error object */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"error\":{\"message\":\"Invalid verification code format.\","
        "\"type\":\"OAuthException\",\"code\":100,\"fbtrace_id\":\"x\"}}"),
        &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "OAuthException");
    assert_str(t.error_description, "Invalid verification code format.");
    ngx_oauth_token_free(&t);

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"error\":{\"code\":190}}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "190");
    assert_absent(t.error_description);
    ngx_oauth_token_free(&t);

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"error\":{},\"error_description\":\"kept\"}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "oauth_error");
    assert_str(t.error_description, "kept");
    ngx_oauth_token_free(&t);

    /* an error_description of another type is ignored */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"error\":\"x\",\"error_description\":[1]}"), &t),
        NGX_OAUTH_OK);
    assert_str(t.error, "x");
    assert_absent(t.error_description);
    ngx_oauth_token_free(&t);

    assert_int_equal(ngx_oauth_test_token_rc("{\"error\":123}"),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_test_token_rc("{\"error\":\"\"}"),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_test_token_rc("{\"error\":true}"),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_test_token_rc("{\"error\":[\"x\"]}"),
                     NGX_OAUTH_INVALID);
}


/* T19: the malformed response matrix, and T38: CTLs at ingest */

static void
test_token_malformed(void **state)
{
    size_t  i;
    char   *s;

    static const char  *bad[] = {
        /* not a JSON object */
        "",
        " ",
        "{\"access_token\":\"abc\"",
        "{\"access_token\":\"abc",
        "<html><body><h1>200 OK</h1></body></html>",
        "<!DOCTYPE html><html></html>",
        "[{\"access_token\":\"x\"}]",
        "[]",
        "null",
        "\"access_token\"",
        "42",
        "access_token=gho_abc&scope=repo&token_type=bearer",
        "{\"access_token\":\"a\"} trailing",
        "{'access_token':'a'}",
        "{access_token:\"a\"}",

        /* missing or wrongly typed access_token */
        "{}",
        "{\"token_type\":\"bearer\"}",
        "{\"ok\":true}",
        "{\"ok\":false}",
        "{\"access_token\":123}",
        "{\"access_token\":null}",
        "{\"access_token\":\"\"}",
        "{\"access_token\":true}",
        "{\"access_token\":[\"a\"]}",
        "{\"access_token\":{\"v\":\"a\"}}",
        "{\"Access_Token\":\"a\"}",

        /* duplicate keys */
        "{\"access_token\":\"a\",\"access_token\":\"b\"}",
        "{\"access_token\":\"a\",\"expires_in\":1,\"expires_in\":2}",

        /* CTLs, spaces, non-ASCII, NUL, bad UTF-8 in credentials */
        "{\"access_token\":\"abc\\u0000def\"}",
        "{\"access_token\":\"x\\r\\nHost: evil\"}",
        "{\"access_token\":\"x\\nX: 1\"}",
        "{\"access_token\":\"a b\"}",
        "{\"access_token\":\"a\\tb\"}",
        "{\"access_token\":\"t\\u00f6k\"}",
        "{\"access_token\":\"t\xc3\xb6k\"}",
        "{\"access_token\":\"\xff\xfe\"}",
        "{\"access_token\":\"a\\u007f\"}",
        "{\"access_token\":\"a\\ud800\"}",
        "{\"access_token\":\"a\",\"token_type\":\"Bearer\\r\\nX: 1\"}",
        "{\"access_token\":\"a\",\"token_type\":\"\\u0000\"}",
        "{\"access_token\":\"a\",\"refresh_token\":\"r\\r\\n\"}",
        "{\"access_token\":\"a\",\"refresh_token\":\"r r\"}",
        "{\"access_token\":\"a\",\"id_token\":\"\\n\"}",

        /* wrong types elsewhere */
        "{\"access_token\":\"a\",\"refresh_token\":1}",
        "{\"access_token\":\"a\",\"refresh_token\":{}}",
        "{\"access_token\":\"a\",\"token_type\":1}",
        "{\"access_token\":\"a\",\"id_token\":false}",
        "{\"access_token\":\"a\",\"scope\":1}",
        "{\"access_token\":\"a\",\"scope\":{}}",
        "{\"access_token\":\"a\",\"scope\":[1]}",
        "{\"access_token\":\"a\",\"scope\":[\"a\",null]}",
        "{\"access_token\":\"a\",\"scope\":\"a\\nb\"}",

        /* expires_in */
        "{\"access_token\":\"a\",\"expires_in\":-1}",
        "{\"access_token\":\"a\",\"expires_in\":-0.5}",
        "{\"access_token\":\"a\",\"expires_in\":\"abc\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"\"}",
        "{\"access_token\":\"a\",\"expires_in\":\" 3600\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"3600 \"}",
        "{\"access_token\":\"a\",\"expires_in\":\"+3600\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"-5\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"36.5\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"0x10\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"1e3\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"9999999999999\"}",
        "{\"access_token\":\"a\",\"expires_in\":\"316224001\"}",
        "{\"access_token\":\"a\",\"expires_in\":1e309}",
        "{\"access_token\":\"a\",\"expires_in\":-1e309}",
        "{\"access_token\":\"a\",\"expires_in\":18446744073709551616}",
        "{\"access_token\":\"a\",\"expires_in\":9223372036854775807}",
        "{\"access_token\":\"a\",\"expires_in\":316224001}",
        "{\"access_token\":\"a\",\"expires_in\":1e10}",
        "{\"access_token\":\"a\",\"expires_in\":true}",
        "{\"access_token\":\"a\",\"expires_in\":{}}",
        "{\"access_token\":\"a\",\"expires_in\":[3600]}",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ngx_oauth_test_token_rc(bad[i]) != NGX_OAUTH_INVALID) {
            fail_msg("accepted %s", bad[i]);
        }
    }

    /* NUL bytes inside the body */
    assert_int_equal(ngx_oauth_token_parse(S("{\"access_token\":\"a\0b\"}"),
                                           &(ngx_oauth_token_t) { 0 }),
                     NGX_OAUTH_INVALID);

    /* 50k-deep nesting (100k of these would exceed the size cap first) */
    s = ngx_oauth_test_nested(50000, "{\"access_token\":", "}");
    assert_int_equal(ngx_oauth_test_token_rc(s), NGX_OAUTH_INVALID);
    free(s);

    s = ngx_oauth_test_nested(100000, "[", "]");
    assert_int_equal(ngx_oauth_test_token_rc(s), NGX_OAUTH_INVALID);
    free(s);

    /* an access token above NGX_OAUTH_TOKEN_MAX */
    s = malloc(NGX_OAUTH_TOKEN_MAX + 64);
    assert_non_null(s);
    memcpy(s, "{\"access_token\":\"", 17);
    memset(s + 17, 'a', NGX_OAUTH_TOKEN_MAX);
    memcpy(s + 17 + NGX_OAUTH_TOKEN_MAX, "\"}", 3);
    assert_int_equal(ngx_oauth_test_token_rc(s), NGX_OAUTH_OK);
    memset(s + 17, 'a', NGX_OAUTH_TOKEN_MAX + 1);
    memcpy(s + 18 + NGX_OAUTH_TOKEN_MAX, "\"}", 3);
    assert_int_equal(ngx_oauth_test_token_rc(s), NGX_OAUTH_INVALID);
    free(s);

    /* a huge body */
    s = malloc(NGX_OAUTH_JSON_MAX_SIZE + 64);
    assert_non_null(s);
    memcpy(s, "{\"access_token\":\"a\",\"x\":\"", 25);
    memset(s + 25, 'x', NGX_OAUTH_JSON_MAX_SIZE);
    memcpy(s + 25 + NGX_OAUTH_JSON_MAX_SIZE, "\"}", 3);
    assert_int_equal(ngx_oauth_test_token_rc(s), NGX_OAUTH_TOO_LARGE);
    free(s);
}


static void
test_token_expires_in(void **state)
{
    size_t             i;
    ngx_oauth_token_t  t;

    static const struct {
        const char  *body;
        long long    expect;
    } cases[] = {
        { "{\"access_token\":\"a\"}", -1 },
        { "{\"access_token\":\"a\",\"expires_in\":null}", -1 },
        { "{\"access_token\":\"a\",\"expires_in\":0}", 0 },
        { "{\"access_token\":\"a\",\"expires_in\":3600}", 3600 },
        { "{\"access_token\":\"a\",\"expires_in\":\"3600\"}", 3600 },
        { "{\"access_token\":\"a\",\"expires_in\":\"0\"}", 0 },
        { "{\"access_token\":\"a\",\"expires_in\":\"007\"}", 7 },
        { "{\"access_token\":\"a\",\"expires_in\":3600.9}", 3600 },
        { "{\"access_token\":\"a\",\"expires_in\":3.6e3}", 3600 },
        { "{\"access_token\":\"a\",\"expires_in\":5184000}", 5184000 },
        { "{\"access_token\":\"a\",\"expires_in\":316224000}", 316224000 },
        { "{\"access_token\":\"a\",\"expires_in\":\"316224000\"}",
          316224000 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (ngx_oauth_token_parse(CS(cases[i].body), &t) != NGX_OAUTH_OK) {
            fail_msg("refused %s", cases[i].body);
        }

        assert_int_equal(t.expires_in, cases[i].expect);
        ngx_oauth_token_free(&t);
    }
}


/* dotted paths */

static const char  ngx_oauth_test_doc[] =
    "{\"sub\":\"123\",\"user\":{\"id\":42,\"name\":\"Ann \\u00e9\"},"
    "\"team\":{\"id\":\"T1\"},\"data\":[{\"id\":7},{\"id\":\"x\"}],"
    "\"ok\":true,\"f\":false,\"r\":1.5,\"tenth\":0.1,\"three\":3.0,"
    "\"e\":1e20,\"n\":null,\"o\":{},\"a\":[],\"big\":12345678901234,"
    "\"neg\":-3,\"0\":{\"k\":\"zero\"},\"empty\":\"\","
    "\"deep\":{\"a\":{\"b\":{\"c\":[[\"v\"]]}}},\"dot.key\":\"d\"}";


static void
ngx_oauth_test_get(void *root, const char *path, int rc_expect,
    const char *expect)
{
    int              rc;
    ngx_oauth_str_t  v;

    rc = ngx_oauth_json_get(root, CS(path), &v);

    if (rc != rc_expect) {
        fail_msg("path \"%s\": rc %d, expected %d", path, rc, rc_expect);
    }

    if (rc == NGX_OAUTH_OK) {
        assert_str(v, expect);
        ngx_oauth_json_str_free(&v);
        assert_absent(v);

    } else {
        assert_absent(v);
    }
}


static void
test_json_get(void **state)
{
    void               *root;
    ngx_oauth_token_t   t;

    assert_int_equal(ngx_oauth_json_parse(S(ngx_oauth_test_doc), &root),
                     NGX_OAUTH_OK);

    ngx_oauth_test_get(root, "sub", NGX_OAUTH_OK, "123");
    ngx_oauth_test_get(root, "user.id", NGX_OAUTH_OK, "42");
    ngx_oauth_test_get(root, "user.name", NGX_OAUTH_OK, "Ann \xc3\xa9");
    ngx_oauth_test_get(root, "team.id", NGX_OAUTH_OK, "T1");
    ngx_oauth_test_get(root, "data.0.id", NGX_OAUTH_OK, "7");
    ngx_oauth_test_get(root, "data.1.id", NGX_OAUTH_OK, "x");
    ngx_oauth_test_get(root, "ok", NGX_OAUTH_OK, "true");
    ngx_oauth_test_get(root, "f", NGX_OAUTH_OK, "false");
    ngx_oauth_test_get(root, "r", NGX_OAUTH_OK, "1.5");
    ngx_oauth_test_get(root, "tenth", NGX_OAUTH_OK, "0.1");
    ngx_oauth_test_get(root, "three", NGX_OAUTH_OK, "3");
    ngx_oauth_test_get(root, "e", NGX_OAUTH_OK, "1e+20");
    ngx_oauth_test_get(root, "big", NGX_OAUTH_OK, "12345678901234");
    ngx_oauth_test_get(root, "neg", NGX_OAUTH_OK, "-3");
    ngx_oauth_test_get(root, "0.k", NGX_OAUTH_OK, "zero");
    ngx_oauth_test_get(root, "empty", NGX_OAUTH_OK, "");
    ngx_oauth_test_get(root, "deep.a.b.c.0.0", NGX_OAUTH_OK, "v");

    ngx_oauth_test_get(root, "n", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "o", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "a", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "user", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "data", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "data.0", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "data.2.id", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "data.-1.id", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "data.x", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "data.99999999999", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "missing", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "Sub", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "sub.x", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "user.id.x", NGX_OAUTH_NOT_FOUND, NULL);
    ngx_oauth_test_get(root, "dot.key", NGX_OAUTH_NOT_FOUND, NULL);

    ngx_oauth_test_get(root, "", NGX_OAUTH_INVALID, NULL);
    ngx_oauth_test_get(root, ".", NGX_OAUTH_INVALID, NULL);
    ngx_oauth_test_get(root, ".sub", NGX_OAUTH_INVALID, NULL);
    ngx_oauth_test_get(root, "sub.", NGX_OAUTH_INVALID, NULL);
    ngx_oauth_test_get(root, "user..id", NGX_OAUTH_INVALID, NULL);
    ngx_oauth_test_get(root, "user.id.", NGX_OAUTH_INVALID, NULL);
    ngx_oauth_test_get(root, "team.", NGX_OAUTH_INVALID, NULL);

    ngx_oauth_json_free(root);

    ngx_oauth_test_get(NULL, "sub", NGX_OAUTH_NOT_FOUND, NULL);

    /* the same lookup inside a token response (Slack's team.id) */

    assert_int_equal(ngx_oauth_token_parse(S(
        "{\"ok\":true,\"access_token\":\"xoxb-1\","
        "\"team\":{\"id\":\"T024BE7LD\",\"name\":\"Acme\"},"
        "\"authed_user\":{\"id\":\"U1\"}}"), &t),
        NGX_OAUTH_OK);
    ngx_oauth_test_get(t.root, "team.id", NGX_OAUTH_OK, "T024BE7LD");
    ngx_oauth_test_get(t.root, "authed_user.id", NGX_OAUTH_OK, "U1");
    ngx_oauth_token_free(&t);
}


/* the JSON string escaper */

static void
ngx_oauth_test_escape(const char *in, size_t len, const char *expect)
{
    json_t           *j;
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    json_error_t      err;

    assert_int_equal(ngx_oauth_json_add_string(&b, in, len), NGX_OAUTH_OK);
    assert_string_equal(b.data, expect);
    assert_int_equal(b.len, strlen(expect));

    /* and it reads back as the same string */

    j = json_loadb((const char *) b.data, b.len,
                   JSON_DECODE_ANY|JSON_ALLOW_NUL, &err);
    assert_non_null(j);
    assert_int_equal(json_string_length(j), len);
    assert_memory_equal(json_string_value(j), in, len);
    json_decref(j);

    ngx_oauth_buf_free(&b);
}


static void
test_json_escape(void **state)
{
    size_t           i;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    static const char  *invalid[] = {
        "\xff", "\xfe", "\x80", "a\xbf", "\xc0\xaf", "\xc1\xbf",
        "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xf0\x80\x80\xaf", "\xed\xa0\x80",
        "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x80",
        "\xe2", "\xc3", "\xf0\x9f\x98", "\xc3\x28", "\xe2\x28\xa1",
        "ok\xf8\x88\x80\x80\x80",
    };

    ngx_oauth_test_escape("", 0, "\"\"");
    ngx_oauth_test_escape("abc", 3, "\"abc\"");
    ngx_oauth_test_escape("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    ngx_oauth_test_escape("\n\t\r\x01\x1f\x7f", 6,
                          "\"\\u000a\\u0009\\u000d\\u0001\\u001f\\u007f\"");
    ngx_oauth_test_escape("a\0b", 3, "\"a\\u0000b\"");
    ngx_oauth_test_escape("</script><!--&'x'", 17,
                          "\"\\u003c/script\\u003e\\u003c!--\\u0026"
                          "\\u0027x\\u0027\"");
    ngx_oauth_test_escape("x\xe2\x80\xa8y\xe2\x80\xa9z", 9,
                          "\"x\\u2028y\\u2029z\"");
    ngx_oauth_test_escape("\xe2\x80\xa7\xe2\x82\xac", 6,
                          "\"\xe2\x80\xa7\xe2\x82\xac\"");
    ngx_oauth_test_escape("caf\xc3\xa9 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
                          15,
                          "\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
    ngx_oauth_test_escape("\xef\xbb\xbf\xee\x80\x80", 6,
                          "\"\xef\xbb\xbf\xee\x80\x80\"");

    /* invalid UTF-8: refused, the buffer untouched and not failed */

    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "[1,"), NGX_OAUTH_OK);

    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        if (ngx_oauth_json_add_string(&b, CS(invalid[i]))
            != NGX_OAUTH_INVALID)
        {
            fail_msg("accepted invalid UTF-8 #%zu", i);
        }

        assert_int_equal(ngx_oauth_utf8_valid(CS(invalid[i])), 0);
    }

    assert_false(b.failed);
    assert_string_equal(b.data, "[1,");

    assert_int_equal(ngx_oauth_json_add_string(&b, "ok", 2), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_byte(&b, ']'), NGX_OAUTH_OK);
    assert_string_equal(b.data, "[1,\"ok\"]");

    ngx_oauth_buf_free(&b);

    assert_int_equal(ngx_oauth_utf8_valid(S("")), 1);
    assert_int_equal(ngx_oauth_utf8_valid(S("\xf4\x8f\xbf\xbf")), 1);
    assert_int_equal(ngx_oauth_utf8_valid(S("\xed\x9f\xbf")), 1);
    assert_int_equal(ngx_oauth_utf8_valid(S("\xee\x80\x80")), 1);
}

/* provider quirks: Meta's "data" wrapper, Slack's user token */

static void
test_token_wrapped(void **state)
{
    ngx_oauth_str_t    v;
    ngx_oauth_token_t  t;

    const char *meta = "{\"data\":[{\"access_token\":\"IGQ1\","
                       "\"user_id\":\"1784\",\"permissions\":\"a,b\"}]}";
    const char *slack = "{\"ok\":true,\"team\":{\"id\":\"T1\"},"
                        "\"authed_user\":{\"id\":\"U1\","
                        "\"access_token\":\"xoxp-1\",\"scope\":\"a,b\","
                        "\"token_type\":\"user\"}}";

    assert_int_equal(ngx_oauth_token_parse((const unsigned char *) meta,
                                           strlen(meta), &t),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) t.access_token.data, "IGQ1");
    assert_int_equal(ngx_oauth_json_get(t.fields,
                                        (const unsigned char *) "user_id", 7,
                                        &v),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) v.data, "1784");
    ngx_oauth_json_str_free(&v);
    ngx_oauth_token_free(&t);

    /* a bot-less Slack install has no top-level token */
    assert_int_equal(ngx_oauth_token_parse((const unsigned char *) slack,
                                           strlen(slack), &t),
                     NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_token_parse_at((const unsigned char *) slack,
                                              strlen(slack),
                                              (const unsigned char *)
                                              "authed_user", 11, &t),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) t.access_token.data, "xoxp-1");
    assert_string_equal((char *) t.scope.data, "a,b");
    assert_int_equal(ngx_oauth_json_get(t.root,
                                        (const unsigned char *) "team.id", 7,
                                        &v),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) v.data, "T1");
    ngx_oauth_json_str_free(&v);
    ngx_oauth_token_free(&t);

    assert_int_equal(ngx_oauth_token_parse_at((const unsigned char *) slack,
                                              strlen(slack),
                                              (const unsigned char *)
                                              "team.nope", 9, &t),
                     NGX_OAUTH_INVALID);
}


/* a token request's form as the JSON object Notion and Atlassian take */

static void
test_json_from_form(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    (void) state;

    assert_int_equal(ngx_oauth_json_from_form(&b, (const unsigned char *)
                         "grant_type=authorization_code&code=a%2Bb+c"
                         "&redirect_uri=https%3A%2F%2Fapp%2Fcb&x=", 81),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) b.data,
                        "{\"grant_type\":\"authorization_code\","
                        "\"code\":\"a+b c\","
                        "\"redirect_uri\":\"https://app/cb\",\"x\":\"\"}");

    /* quotes and backslashes escaped; an empty form is an empty object */

    assert_int_equal(ngx_oauth_json_from_form(&b, (const unsigned char *)
                         "a=%22%5C", 8), NGX_OAUTH_OK);
    assert_string_equal((char *) b.data, "{\"a\":\"\\\"\\\\\"}");

    assert_int_equal(ngx_oauth_json_from_form(&b, (const unsigned char *)
                         "", 0), NGX_OAUTH_OK);
    assert_string_equal((char *) b.data, "{}");

    /* malformed escapes and invalid UTF-8 are refused */

    assert_int_equal(ngx_oauth_json_from_form(&b, (const unsigned char *)
                         "a=%zz", 5), NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_json_from_form(&b, (const unsigned char *)
                         "a=%FF", 5), NGX_OAUTH_INVALID);

    ngx_oauth_buf_free(&b);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_token_ok),
        cmocka_unit_test(test_token_errors),
        cmocka_unit_test(test_token_malformed),
        cmocka_unit_test(test_token_expires_in),
        cmocka_unit_test(test_token_wrapped),
        cmocka_unit_test(test_json_get),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_from_form),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
