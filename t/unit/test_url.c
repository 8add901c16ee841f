/*
 * Copyright (C) ngx_oauth_module authors
 *
 * Unit tests of core/ngx_oauth_url.c: query parsing, templates, patterns,
 * endpoint checks and the return_to validator (security tests T12, T13,
 * T17, T70, T73).
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_url.h"


#define S(s)  (const unsigned char *) (s), (sizeof(s) - 1)
#define CS(s)  (const unsigned char *) (s), strlen(s)


/* query: ngx_oauth_url_decode() */

static void
test_decode(void **state)
{
    size_t          n;
    unsigned char   out[64], inplace[16];

    assert_int_equal(ngx_oauth_url_decode(S("%41%62c%2f%2F"), 0, out, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Abc//", 5);

    assert_int_equal(ngx_oauth_url_decode(S("a+b%2Bc"), 0, out, &n),
                     NGX_OAUTH_OK);
    assert_memory_equal(out, "a+b+c", n);

    assert_int_equal(ngx_oauth_url_decode(S("a+b%2Bc"), NGX_OAUTH_URL_FORM,
                                          out, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "a b+c", 5);

    assert_int_equal(ngx_oauth_url_decode(S(""), 0, out, &n), NGX_OAUTH_OK);
    assert_int_equal(n, 0);

    assert_int_equal(ngx_oauth_url_decode(S("%C3%A9%e2%80%a8"), 0, out, &n),
                     NGX_OAUTH_OK);
    assert_memory_equal(out, "\xc3\xa9\xe2\x80\xa8", 5);

    /* in place */
    memcpy(inplace, "x%20y%3dz", 9);
    assert_int_equal(ngx_oauth_url_decode(inplace, 9, 0, inplace, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(inplace, "x y=z", 5);

    /* malformed escapes and NUL bytes */
    assert_int_equal(ngx_oauth_url_decode(S("%"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("%4"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("ab%4"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("%zz"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("%g0"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("%0g"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("%%41"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("a%00b"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("a\0b"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("% 41"), 0, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_decode(S("%+41"), NGX_OAUTH_URL_FORM,
                                          out, &n),
                     NGX_OAUTH_INVALID);
}


/* query: ngx_oauth_query_get() */

#define ngx_oauth_test_get(q, name, rc_expect, value_expect, count_expect)   \
    do {                                                                     \
        size_t           count_, i_;                                         \
        unsigned char    dst_[128];                                          \
        ngx_oauth_str_t  v_;                                                 \
                                                                             \
        for (i_ = 0; i_ < sizeof(dst_); i_++) {                              \
            dst_[i_] = 0xaa;                                                 \
        }                                                                    \
                                                                             \
        assert_int_equal(ngx_oauth_query_get(S(q), S(name), dst_,            \
                                             sizeof(dst_), &v_, &count_),    \
                         rc_expect);                                         \
        assert_int_equal(count_, count_expect);                              \
                                                                             \
        if ((rc_expect) == NGX_OAUTH_OK) {                                   \
            assert_int_equal(v_.len, strlen(value_expect));                  \
            assert_memory_equal(v_.data, value_expect, v_.len);              \
            assert_int_equal(v_.data[v_.len], '\0');                         \
                                                                             \
        } else {                                                             \
            assert_int_equal(v_.len, 0);                                     \
        }                                                                    \
    } while (0)


static void
test_query_get(void **state)
{
    ngx_oauth_test_get("a=1&state=xyz&b=2", "state", NGX_OAUTH_OK, "xyz", 1);
    ngx_oauth_test_get("state=xyz", "state", NGX_OAUTH_OK, "xyz", 1);
    ngx_oauth_test_get("code=abc&state=s1", "code", NGX_OAUTH_OK, "abc", 1);
    ngx_oauth_test_get("q=a+b%20c%2Bd", "q", NGX_OAUTH_OK, "a b c+d", 1);
    ngx_oauth_test_get("state=", "state", NGX_OAUTH_OK, "", 1);
    ngx_oauth_test_get("state", "state", NGX_OAUTH_OK, "", 1);
    ngx_oauth_test_get("x=1&state&y=2", "state", NGX_OAUTH_OK, "", 1);
    ngx_oauth_test_get("&&state=v&&", "state", NGX_OAUTH_OK, "v", 1);
    ngx_oauth_test_get("state=a=b", "state", NGX_OAUTH_OK, "a=b", 1);
    ngx_oauth_test_get("return_to=%2Fa%3Fb%3Dc", "return_to", NGX_OAUTH_OK,
                       "/a?b=c", 1);
    ngx_oauth_test_get("my+name=v", "my name", NGX_OAUTH_OK, "v", 1);
    ngx_oauth_test_get("realmId=123&code=c", "realmId", NGX_OAUTH_OK, "123",
                       1);

    /* absent, and names that only look alike */
    ngx_oauth_test_get("", "state", NGX_OAUTH_NOT_FOUND, "", 0);
    ngx_oauth_test_get("a=1&b=2", "state", NGX_OAUTH_NOT_FOUND, "", 0);
    ngx_oauth_test_get("statex=1&xstate=2&stat=3", "state",
                       NGX_OAUTH_NOT_FOUND, "", 0);
    ngx_oauth_test_get("STATE=1&State=2", "state", NGX_OAUTH_NOT_FOUND, "",
                       0);
    ngx_oauth_test_get("a=state", "state", NGX_OAUTH_NOT_FOUND, "", 0);
    ngx_oauth_test_get("st%zzate=1", "state", NGX_OAUTH_NOT_FOUND, "", 0);
    ngx_oauth_test_get("state%00=1", "state", NGX_OAUTH_NOT_FOUND, "", 0);

    /* malformed values: refused, never half-decoded */
    ngx_oauth_test_get("state=%zz", "state", NGX_OAUTH_INVALID, "", 1);
    ngx_oauth_test_get("state=abc%", "state", NGX_OAUTH_INVALID, "", 1);
    ngx_oauth_test_get("state=abc%4", "state", NGX_OAUTH_INVALID, "", 1);
    ngx_oauth_test_get("state=a%00b", "state", NGX_OAUTH_INVALID, "", 1);
    ngx_oauth_test_get("code=a\0b", "code", NGX_OAUTH_INVALID, "", 1);
}


/* T73: duplicated security parameters are counted, in any order or form */

static void
test_query_duplicates(void **state)
{
    ngx_oauth_test_get("state=a&state=b", "state", NGX_OAUTH_OK, "a", 2);
    ngx_oauth_test_get("state=b&code=c&state=a", "state", NGX_OAUTH_OK, "b",
                       2);
    ngx_oauth_test_get("state=a&st%61te=b", "state", NGX_OAUTH_OK, "a", 2);
    ngx_oauth_test_get("%73%74%61%74%65=a&state=b", "state", NGX_OAUTH_OK,
                       "a", 2);
    ngx_oauth_test_get("code=1&code=1", "code", NGX_OAUTH_OK, "1", 2);
    ngx_oauth_test_get("iss=https%3A%2F%2Fp1&iss=https%3A%2F%2Fp2", "iss",
                       NGX_OAUTH_OK, "https://p1", 2);
    ngx_oauth_test_get("shop=a.myshopify.com&x=1&shop=b.myshopify.com",
                       "shop", NGX_OAUTH_OK, "a.myshopify.com", 2);
    ngx_oauth_test_get("state&state=", "state", NGX_OAUTH_OK, "", 2);
    ngx_oauth_test_get("state=a&state=b&state=c", "state", NGX_OAUTH_OK, "a",
                       3);

    /* the second occurrence is malformed: still counted */
    ngx_oauth_test_get("state=a&state=%zz", "state", NGX_OAUTH_OK, "a", 2);
}


/* T70: the destination size caps the value */

static void
test_query_limits(void **state)
{
    char             *q;
    size_t            i, n, count;
    unsigned char     dst[44];
    ngx_oauth_str_t   v;

    /* 43 chars fit a 44-byte buffer, 44 do not */

    assert_int_equal(ngx_oauth_query_get(
                         S("state=01234567890123456789"
                           "01234567890123456789012"),
                         S("state"), dst, sizeof(dst), &v, &count),
                     NGX_OAUTH_OK);
    assert_int_equal(v.len, 43);

    assert_int_equal(ngx_oauth_query_get(
                         S("state=01234567890123456789"
                           "012345678901234567890123"),
                         S("state"), dst, sizeof(dst), &v, &count),
                     NGX_OAUTH_TOO_LARGE);
    assert_int_equal(count, 1);
    assert_int_equal(v.len, 0);

    /* longer raw, short once decoded */

    assert_int_equal(ngx_oauth_query_get(S("v=%41%41%41%41%41%41%41%41%41%41"
                                           "%41%41%41%41%41%41%41%41%41%41"),
                                         S("v"), dst, 21, &v, &count),
                     NGX_OAUTH_OK);
    assert_int_equal(v.len, 20);

    assert_int_equal(ngx_oauth_query_get(S("v=x"), S("v"), dst, 1, &v,
                                         &count),
                     NGX_OAUTH_TOO_LARGE);

    /* a 64 KiB state and 10k parameters */

    n = 70000;
    q = malloc(n + 1);
    assert_non_null(q);

    memcpy(q, "state=", 6);
    memset(q + 6, 'A', n - 6);
    q[n] = '\0';

    assert_int_equal(ngx_oauth_query_get((unsigned char *) q, n, S("state"),
                                         dst, sizeof(dst), &v, &count),
                     NGX_OAUTH_TOO_LARGE);
    free(q);

    n = 10000 * 4 + 16;
    q = malloc(n);
    assert_non_null(q);

    for (i = 0; i < 10000; i++) {
        memcpy(q + i * 4, "a=1&", 4);
    }

    memcpy(q + 40000, "state=last", 10);

    assert_int_equal(ngx_oauth_query_get((unsigned char *) q, 40010,
                                         S("state"), dst, sizeof(dst), &v,
                                         &count),
                     NGX_OAUTH_OK);
    assert_int_equal(count, 1);
    assert_memory_equal(v.data, "last", 4);

    assert_int_equal(ngx_oauth_query_get((unsigned char *) q, 40010, S("a"),
                                         dst, sizeof(dst), &v, &count),
                     NGX_OAUTH_OK);
    assert_int_equal(count, 10000);

    free(q);
}


/* query: ngx_oauth_query_foreach() */

typedef struct {
    int     calls;
    int     stop_at;
    char    seen[512];
} ngx_oauth_test_walk_t;


static int
ngx_oauth_test_walk(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    size_t                  n;
    ngx_oauth_test_walk_t  *w = data;

    assert_int_equal(name->data[name->len], '\0');
    assert_int_equal(value->data[value->len], '\0');

    n = strlen(w->seen);
    snprintf(w->seen + n, sizeof(w->seen) - n, "[%.*s|%.*s]",
             (int) name->len, name->data, (int) value->len, value->data);

    if (++w->calls == w->stop_at) {
        return NGX_OAUTH_DENIED;
    }

    return NGX_OAUTH_OK;
}


static void
test_query_foreach(void **state)
{
    ngx_oauth_test_walk_t  w;

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(
                         S("shop=x.myshopify.com&&return_to=%2Fa&flag&"
                           "a+b=c+d&=e&mode=popup"),
                         ngx_oauth_test_walk, &w),
                     NGX_OAUTH_OK);
    assert_int_equal(w.calls, 6);
    assert_string_equal(w.seen,
                        "[shop|x.myshopify.com][return_to|/a][flag|]"
                        "[a b|c d][|e][mode|popup]");

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(S(""), ngx_oauth_test_walk, &w),
                     NGX_OAUTH_OK);
    assert_int_equal(w.calls, 0);

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(S("&&&"), ngx_oauth_test_walk,
                                             &w),
                     NGX_OAUTH_OK);
    assert_int_equal(w.calls, 0);

    /* malformed anywhere: no handler call at all */

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(S("a=1&b=%zz"),
                                             ngx_oauth_test_walk, &w),
                     NGX_OAUTH_INVALID);
    assert_int_equal(w.calls, 0);

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(S("a=1&b%=2"),
                                             ngx_oauth_test_walk, &w),
                     NGX_OAUTH_INVALID);
    assert_int_equal(w.calls, 0);

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(S("a=1&b=%00"),
                                             ngx_oauth_test_walk, &w),
                     NGX_OAUTH_INVALID);
    assert_int_equal(w.calls, 0);

    memset(&w, 0, sizeof(w));
    assert_int_equal(ngx_oauth_query_foreach(S("a=1&b=\0"),
                                             ngx_oauth_test_walk, &w),
                     NGX_OAUTH_INVALID);
    assert_int_equal(w.calls, 0);

    /* the handler stops the walk with its own code */

    memset(&w, 0, sizeof(w));
    w.stop_at = 2;
    assert_int_equal(ngx_oauth_query_foreach(S("a=1&b=2&c=3"),
                                             ngx_oauth_test_walk, &w),
                     NGX_OAUTH_DENIED);
    assert_int_equal(w.calls, 2);
    assert_string_equal(w.seen, "[a|1][b|2]");
}


/* templates: ngx_oauth_url_expand() */

static void
test_expand(void **state)
{
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_str_t   missing;
    ngx_oauth_pair_t  vars[] = {
        { ngx_oauth_string("shop"), ngx_oauth_string("x.myshopify.com") },
        { ngx_oauth_string("realmId"), ngx_oauth_string("123") },
        { ngx_oauth_string("evil"), ngx_oauth_string("a@b/c?d#e f") },
        { ngx_oauth_string("empty"), ngx_oauth_null_string },
    };

    assert_int_equal(ngx_oauth_url_expand(&b,
                         S("https://{shop}/admin/oauth/access_token"),
                         vars, 4, &missing),
                     NGX_OAUTH_OK);
    assert_string_equal(b.data,
                        "https://x.myshopify.com/admin/oauth/access_token");

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_url_expand(&b,
                         S("https://api/{realmId}/x/{shop}{realmId}"),
                         vars, 4, &missing),
                     NGX_OAUTH_OK);
    assert_string_equal(b.data, "https://api/123/x/x.myshopify.com123");

    /* values are url-escaped: no new host, path, query or fragment */

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{evil}/p"), vars, 4,
                                          &missing),
                     NGX_OAUTH_OK);
    assert_string_equal(b.data, "https://a%40b%2Fc%3Fd%23e%20f/p");

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_url_expand(&b, S("a{empty}b"), vars, 4,
                                          &missing),
                     NGX_OAUTH_OK);
    assert_string_equal(b.data, "ab");

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://plain/x"), vars, 0,
                                          &missing),
                     NGX_OAUTH_OK);
    assert_string_equal(b.data, "https://plain/x");

    /* errors leave what was in the buffer */

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "keep"), NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{shop}/{nope}/x"),
                                          vars, 4, &missing),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(missing.len, 4);
    assert_memory_equal(missing.data, "nope", 4);
    assert_string_equal(b.data, "keep");

    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{Shop}/"), vars, 4,
                                          &missing),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{shop"), vars, 4,
                                          &missing),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://shop}/"), vars, 4,
                                          &missing),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{}/"), vars, 4,
                                          &missing),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{a b}/"), vars, 4,
                                          &missing),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_expand(&b, S("https://{{shop}}/"), vars,
                                          4, &missing),
                     NGX_OAUTH_INVALID);
    assert_string_equal(b.data, "keep");
    assert_int_equal(b.len, 4);

    ngx_oauth_buf_free(&b);
}


static void
test_append_params(void **state)
{
    size_t            i;
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_pair_t  p[] = {
        { ngx_oauth_string("oauth_status"), ngx_oauth_string("error") },
        { ngx_oauth_string("oauth_error"), ngx_oauth_string("a b&c") },
    };

    static const char  *cases[][2] = {
        { "/x", "/x?oauth_status=error&oauth_error=a+b%26c" },
        { "/", "/?oauth_status=error&oauth_error=a+b%26c" },
        { "/x?a=1", "/x?a=1&oauth_status=error&oauth_error=a+b%26c" },
        { "/x?", "/x?oauth_status=error&oauth_error=a+b%26c" },
        { "/x?a=1&", "/x?a=1&oauth_status=error&oauth_error=a+b%26c" },
        { "/x#frag", "/x?oauth_status=error&oauth_error=a+b%26c#frag" },
        { "/x?a#f?g", "/x?a&oauth_status=error&oauth_error=a+b%26c#f?g" },
        { "/#/settings", "/?oauth_status=error&oauth_error=a+b%26c#/settings" },
        { "https://app.example.com",
          "https://app.example.com?oauth_status=error&oauth_error=a+b%26c" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ngx_oauth_buf_reset(&b);
        assert_int_equal(ngx_oauth_url_append_params(&b, CS(cases[i][0]), p,
                                                     2),
                         NGX_OAUTH_OK);
        assert_string_equal(b.data, cases[i][1]);
    }

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_url_append_params(&b, S("/x#f"), p, 0),
                     NGX_OAUTH_OK);
    assert_string_equal(b.data, "/x#f");

    ngx_oauth_buf_free(&b);
}


/* the one loopback rule, shared with the libcurl client's check */

static void
test_loopback(void **state)
{
    const char  *why;

    assert_true(ngx_oauth_url_is_loopback(S("localhost")));
    assert_true(ngx_oauth_url_is_loopback(S("LocalHost")));
    assert_true(ngx_oauth_url_is_loopback(S("127.0.0.1")));
    assert_true(ngx_oauth_url_is_loopback(S("127.255.3.4")));
    assert_true(ngx_oauth_url_is_loopback(S("[::1]")));

    assert_false(ngx_oauth_url_is_loopback(S("127.1")));
    assert_false(ngx_oauth_url_is_loopback(S("127.0.0.01")));
    assert_false(ngx_oauth_url_is_loopback(S("0x7f.0.0.1")));
    assert_false(ngx_oauth_url_is_loopback(S("127.0.0.1.evil.test")));
    assert_false(ngx_oauth_url_is_loopback(S("127.0.0.256")));
    assert_false(ngx_oauth_url_is_loopback(S("128.0.0.1")));
    assert_false(ngx_oauth_url_is_loopback(S("localhost.evil.test")));
    assert_false(ngx_oauth_url_is_loopback(S("[::2]")));
    assert_false(ngx_oauth_url_is_loopback(S("[0:0:0:0:0:0:0:1]")));
    assert_false(ngx_oauth_url_is_loopback(S("[::ffff:127.0.0.1]")));
    assert_false(ngx_oauth_url_is_loopback(S("::1")));
    assert_false(ngx_oauth_url_is_loopback(S("[]")));
    assert_false(ngx_oauth_url_is_loopback(S("")));

    assert_int_equal(ngx_oauth_url_check_transport(S("https"),
                                                   S("api.example.com"),
                                                   &why),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_transport(S("HTTPS"),
                                                   S("api.example.com"),
                                                   &why),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_transport(S("http"),
                                                   S("127.0.0.1"), &why),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_transport(S("http"), S("[::1]"),
                                                   &why),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_transport(S("http"),
                                                   S("api.example.com"),
                                                   &why),
                     NGX_OAUTH_INVALID);
    assert_string_equal(why, "http:// is only allowed with a loopback host");
    assert_int_equal(ngx_oauth_url_check_transport(S("ftp"), S("localhost"),
                                                   &why),
                     NGX_OAUTH_INVALID);
    assert_string_equal(why, "scheme is not https");

    /* the endpoint check applies the same rule */
    assert_int_equal(ngx_oauth_url_check_endpoint(
                         S("http://[::1]:8080/token"), 0, &why),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_endpoint(
                         S("http://127.1/token"), 0, &why),
                     NGX_OAUTH_INVALID);
}


/* configured endpoints (T17, T22) */

static void
test_endpoint(void **state)
{
    size_t       i;
    const char  *reason;

    static const char  *good[] = {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/v2/auth?x=1&y=%20z",
        "HTTPS://Slack.com/api/oauth.v2.access",
        "https://example.com:8443/x",
        "https://example.com",
        "https://api.example.com./x",
        "https://[2001:db8::1]/token",
        "https://[2001:db8::1]:8443/token",
        "http://127.0.0.1:8080/token",
        "http://127.255.255.254/",
        "http://127.0.0.1",
        "http://localhost/x",
        "http://LOCALHOST:1/x",
        "http://[::1]:9000/",
        "http://[::1]",
        "https://under_score.example.com/",
    };

    static const char  *bad[] = {
        "",
        "http://example.com/token",
        "http://127.0.0.1.evil.com/",
        "http://127.1/",
        "http://127.0.1/",
        "http://127.0.0.1.1/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.0.0.01/",
        "http://2130706433/",
        "http://127.0.0.256/",
        "http://128.0.0.1/",
        "http://localhost.evil.com/",
        "http://localhost./",
        "http://[::2]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://127.0.0.1/",
        "https://user:pw@example.com/",
        "https://@example.com/",
        "https://example.com@evil.com/",
        "https:///path",
        "https://",
        "https:example.com",
        "https:/example.com",
        "//example.com/x",
        "example.com/x",
        "/token",
        "https://example.com#frag",
        "https://example.com/#",
        "https://example.com/pa th",
        "https://example.com/\r\nHost: x",
        "https://example.com/\t",
        " https://example.com/",
        "https://exa mple.com/",
        "https://ex%61mple.com/",
        "https://ex..ample.com/",
        "https://.example.com/",
        "https://example.com:0/",
        "https://example.com:65536/",
        "https://example.com:/",
        "https://example.com:80x/",
        "https://example.com:123456/",
        "https://example.com:-1/",
        "https://example.com:1:2/",
        "https://[::1/",
        "https://[::1]x/",
        "https://[]/",
        "https://[fe80::1%25eth0]/",
        "https://[v1.x]/",
        "https://{shop}/admin",
        "https://example.com\\@evil.com/",
        "https://example.com/\\",
        "https://example.com/%zz",
        "https://example.com/%4",
        "https://example.com/<script>",
        "https://ex\xc3\xa4mple.com/",
        "https://example.com/\x7f",
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        reason = NULL;
        if (ngx_oauth_url_check_endpoint(CS(good[i]), 0, &reason)
            != NGX_OAUTH_OK)
        {
            fail_msg("refused \"%s\": %s", good[i], reason);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason = NULL;
        if (ngx_oauth_url_check_endpoint(CS(bad[i]), 0, &reason)
            != NGX_OAUTH_INVALID)
        {
            fail_msg("accepted \"%s\"", bad[i]);
        }

        assert_non_null(reason);
    }

    assert_int_equal(ngx_oauth_url_check_endpoint(
                         S("https://{shop}/admin/oauth/access_token"),
                         NGX_OAUTH_URL_TEMPLATE, &reason),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_endpoint(
                         S("https://api.example.com/{realmId}/x"),
                         NGX_OAUTH_URL_TEMPLATE, &reason),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_url_check_endpoint(
                         S("http://{shop}/admin"), NGX_OAUTH_URL_TEMPLATE,
                         &reason),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_url_check_endpoint(
                         S("https://u@{shop}/"), NGX_OAUTH_URL_TEMPLATE,
                         &reason),
                     NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_url_check_endpoint(S("http://example.com/"),
                                                  0, &reason),
                     NGX_OAUTH_INVALID);
    assert_string_equal(reason,
                        "http:// is only allowed with a loopback host");
}


/* T17: an expanded template from a hostile value never passes */

static void
test_expand_then_check(void **state)
{
    size_t            i;
    const char       *reason;
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_pair_t  var;

    static const char  *shops[] = {
        "a@b.myshopify.com",
        "evil.test/x",
        "evil.test#",
        "evil.test:443@x",
        "evil.test?",
        "evil test",
        "evil.test\\",
        "evil.test%2f",
        "\xc3\xa9vil.test",
    };

    var.name.data = (unsigned char *) "shop";
    var.name.len = 4;

    for (i = 0; i < sizeof(shops) / sizeof(shops[0]); i++) {
        var.value.data = (unsigned char *) shops[i];
        var.value.len = strlen(shops[i]);

        ngx_oauth_buf_reset(&b);
        assert_int_equal(ngx_oauth_url_expand(&b,
                             S("https://{shop}/admin/oauth/access_token"),
                             &var, 1, NULL),
                         NGX_OAUTH_OK);

        if (ngx_oauth_url_check_endpoint(b.data, b.len, 0, &reason)
            == NGX_OAUTH_OK)
        {
            fail_msg("accepted \"%s\"", b.data);
        }
    }

    ngx_oauth_buf_free(&b);
}


/* origins */

static void
test_origin(void **state)
{
    char         o[NGX_OAUTH_ORIGIN_MAX], host[300];
    size_t       i, n;
    const char  *reason;

    static const char  *cases[][2] = {
        { "https://app.example.com", "https://app.example.com" },
        { "https://app.example.com/", "https://app.example.com" },
        { "HTTPS://App.Example.COM:443/x?y#z", "https://app.example.com" },
        { "https://app.example.com:8443/x", "https://app.example.com:8443" },
        { "https://app.example.com:08443", "https://app.example.com:8443" },
        { "https://app.example.com:80", "https://app.example.com:80" },
        { "http://localhost:3000/cb", "http://localhost:3000" },
        { "http://x:80", "http://x" },
        { "http://x:443", "http://x:443" },
        { "https://app.example.com?q", "https://app.example.com" },
        { "https://app.example.com#f", "https://app.example.com" },
        { "https://xn--bcher-kva.example", "https://xn--bcher-kva.example" },
        { "https://app.example.com.", "https://app.example.com." },
        { "http://127.0.0.1:8080", "http://127.0.0.1:8080" },
    };

    static const char  *bad[] = {
        "", "/path", "//app.example.com", "app.example.com",
        "javascript://app.example.com", "data:text/html,x",
        "ftp://app.example.com", "https:app.example.com",
        "https://u@app.example.com", "https://app.example.com@evil",
        "https://[::1]/", "https://app%2eexample.com",
        "https://app.example.com:0", "https://app.example.com:65536",
        "https://app.example.com:", "https://app.example.com\\x",
        "https://b\xc3\xbc" "cher.example", "https://app example.com",
        "https://app.example.com\n", "https://",
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (ngx_oauth_url_origin(CS(cases[i][0]), o, &n, &reason)
            != NGX_OAUTH_OK)
        {
            fail_msg("refused \"%s\": %s", cases[i][0], reason);
        }

        assert_string_equal(o, cases[i][1]);
        assert_int_equal(n, strlen(cases[i][1]));
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ngx_oauth_url_origin(CS(bad[i]), o, &n, &reason)
            != NGX_OAUTH_INVALID)
        {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }

    /* the longest host allowed, with a port, still fits */

    memcpy(host, "https://", 8);
    memset(host + 8, 'A', 253);
    memcpy(host + 261, ":65535/", 8);

    assert_int_equal(ngx_oauth_url_origin(CS(host), o, &n, &reason),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 8 + 253 + 6);
    assert_int_equal(o[8], 'a');

    memset(host + 8, 'a', 254);
    memcpy(host + 262, "/", 2);
    assert_int_equal(ngx_oauth_url_origin(CS(host), o, &n, &reason),
                     NGX_OAUTH_INVALID);
}


/* return_to (T12, T13) */

static ngx_oauth_str_t  ngx_oauth_test_origins[] = {
    ngx_oauth_string("https://app.example.com"),
    ngx_oauth_string("http://localhost:3000"),
    ngx_oauth_string("https://Admin.Example.com:8443/"),
    ngx_oauth_string("not an origin"),
    ngx_oauth_string("https://u@broken.example.com"),
};

#define NGX_OAUTH_TEST_NORIGINS  5


static int
ngx_oauth_test_rt(const char *s)
{
    const char  *reason;

    reason = NULL;

    if (ngx_oauth_return_to_check(CS(s), ngx_oauth_test_origins,
                                  NGX_OAUTH_TEST_NORIGINS, &reason)
        == NGX_OAUTH_OK)
    {
        return 1;
    }

    assert_non_null(reason);

    return 0;
}


static void
test_return_to_accepted(void **state)
{
    size_t  i;

    static const char  *good[] = {
        "/",
        "/dashboard",
        "/a/b/c?d=e&f=g#h",
        "/settings#/integrations",
        "/#/x",
        "/search?q=a%20b",
        "/search?q=a+b",
        "/x?next=%2Fy",
        "/x?url=https://app.example.com/",
        "/x#https://evil.com",
        "/caf%C3%A9",
        "/./x",
        "/../x",
        "/@user",
        "/a//b",
        "/a/b:c",
        "/100%25",
        "/a%2fb",
        "/~user/",
        "/a;b,c!d$e&f'g(h)i*j+k=l",
        "/x/%E3%80%B1",
        "/.x", "/..x", "/./", "/.", "/..", "/x/.//y",
        "https://app.example.com",
        "https://app.example.com/",
        "https://app.example.com/x?y=1#z",
        "https://APP.Example.COM/x",
        "HTTPS://app.example.com/x",
        "HtTpS://app.example.com",
        "https://app.example.com:443/x",
        "https://app.example.com?x",
        "https://app.example.com#x",
        "https://app.example.com//evil.com",
        "https://app.example.com/?q=a%20b",
        "https://admin.example.com:8443/x",
        "https://ADMIN.example.com:08443",
        "http://localhost:3000/cb",
        "http://LOCALHOST:3000",
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!ngx_oauth_test_rt(good[i])) {
            fail_msg("refused \"%s\"", good[i]);
        }
    }
}


static void
test_return_to_refused(void **state)
{
    size_t  i;

    static const char  *bad[] = {
        /* protocol-relative and slash/backslash tricks */
        "", "//evil", "//evil.com", "///evil", "////evil", "/\\evil",
        "\\/evil", "\\\\evil", "\\evil", "/\\/evil", "/%5cevil", "/%5Cevil",
        "/%2f%2fevil", "/%2F%2Fevil", "/%2fevil", "/%2F/evil",
        "/%252f%252fevil", "/%25252f%25252fevil", "/%255cevil",
        "/%25%32%66%25%32%66evil",

        /* whitespace and control characters, raw and encoded */
        "/%09/evil", "/\t/evil", "/ /evil", "/%20/evil", "/%0a/evil",
        "/%0d/evil", "/\n/evil", "/\r/evil", " /x", "/x ", "\t/x", "/x\n",
        "/x%0d%0aSet-Cookie:%20a=b", "/%0d%0a", "/x\r\nLocation: //evil",
        "/%00", "/x%00y", "/\x01", "/%01javascript:alert(1)", "/%7f",
        "/x\x7f", "/%2509/evil", "/a%20b", "/a?q=%0a", "/a#%0d",
        "/a?x=%5c", "/%C2%A0/evil", "/%E3%80%B1evil.com", "/%c3%a9",
        "/.//evil", "/..//evil", "/././/evil", "/%2e//evil", "/.%2f/evil",
        "/%2e%2e%2f%2fevil", "/./%5cevil", "/./https:x",

        /* schemes */
        "https:evil", "https:/evil", "https://evil", "https://evil.com",
        "http://evil.com", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
        "javascript://app.example.com/%0aalert(1)",
        "javascript://%0aalert(1)", "data:text/html,<script>alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)",
        "file:///etc/passwd", "ftp://app.example.com/",
        "/https://evil.com", "/http:evil", "/javascript:alert(1)",
        "/%68ttp://evil", "/%6a%61vascript:x", "/x:y/z", "/https:",

        /* neither a path nor an absolute URL */
        "evil.com", "evil.com/x", "?x=1", "#x", ".", "./x", "../x", "x",
        "@evil.com", ":x", "%2f%2fevil", "%2fx",

        /* characters that must not stand raw in a URL */
        "/<script>", "/x\"y", "/x>y", "/`x`",

        /* malformed percent-encoding */
        "/%", "/%zz", "/%2", "/a%0", "/a%g1", "/%%2f",

        /* T13: suffix, userinfo and origin tricks */
        "https://app.example.com.evil.com",
        "https://app.example.com.evil.com/",
        "https://evil.com/?https://app.example.com",
        "https://evil.com/https://app.example.com",
        "https://evil.com#https://app.example.com",
        "https://app.example.com@evil.com",
        "https://app.example.com@evil.com/",
        "https://app.example.com:443@evil.com",
        "https://u:p@app.example.com/",
        "https://@app.example.com/",
        "https://app.example.com%2eevil.com",
        "https://app.example.com%40evil.com",
        "https://app%2eexample.com",
        "https://app.example.com\\@evil.com",
        "https://app.example.com\\.evil.com",
        "https://evilapp.example.com",
        "https://evil-app.example.com",
        "https://app-example.com",
        "https://example.com",
        "https://www.app.example.com",
        "https://app.example.co",
        "https://app.example.comm",
        "https://app.example.com.",
        "https://APP.EXAMPLE.COM.",
        "https://app.example.com..",
        "https://app..example.com",
        "https://.app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com:444/",
        "https://app.example.com:0",
        "https://app.example.com:99999",
        "https://app.example.com:",
        "https://app.example.com:443:443",
        "https://app.example.com:+443",
        "https://app.example.com: 443",
        "http://app.example.com",
        "http://app.example.com:443",
        "ws://app.example.com",
        "https:app.example.com",
        "https:/app.example.com",
        "https:///app.example.com",
        "https:\\\\app.example.com",
        "https:/\\app.example.com",
        "//app.example.com/x",
        "\\\\app.example.com/x",
        "https://[::1]/",
        "https://[app.example.com]/",
        "https://xn--app-example.com",
        "https://\xd0\xb0pp.example.com",
        "https://app.example.com\xe3\x80\x82" "evil.com",
        "http://localhost:3001",
        "http://localhost",
        "http://localhost:3000.evil.com",
        "https://admin.example.com",
        "https://admin.example.com:443",
        "https://broken.example.com",
        "https://u@broken.example.com",
        "not an origin",
        "https://app.example.com/a%20b",
        "https://app.example.com/%0d%0a",
        "https://app.example.com/%5c",
        "https://app.example.com/%zz",
        "https://app.example.com/\\",

        /* CJK look-alike separators, raw */
        "/\xe3\x80\xb1" "evil.com", "/\xe3\x80\xb5" "evil.com",
        "/\xe3\x82\x9d" "evil.com", "/\xe3\x83\xbc" "evil.com",
        "/\xef\xbd\xb0" "evil.com", "/\xef\xbc\x8f" "evil.com",
        "/caf\xc3\xa9",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ngx_oauth_test_rt(bad[i])) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}


/*
 * A generated corpus in the manner of oauth2-proxy's openredirects list:
 * every separator trick in front of every destination, every scheme in
 * front of every authority form; none may pass.
 */

static void
test_return_to_corpus(void **state)
{
    char    buf[256];
    size_t  i, j, n;

    static const char  *seps[] = {
        "//", "/\\", "\\/", "\\\\", "///", "/%2f", "/%2F", "/%5c", "/%5C",
        "/%2f/", "%2f%2f", "/%09/", "/%0a/", "/%0d/", "/%20/", "/\t/",
        "/\n/", "/ /", "/%252f", "/%255c", "/%2f%2f", "/%2F%2F", "/\\\\",
        "/%5c%5c", "/%09", "/%0a", "/%00/", "/%25%32%66", "/%2525252f",
        "%5c%5c", "/\r\n/", "/%E3%80%B1%2f", "/.%2f/",
    };

    static const char  *dests[] = {
        "evil.com", "evil.com/path", "evil.com?x=1", "evil.com#x",
        "evil.com@app.example.com", "app.example.com@evil.com",
        "127.0.0.1", "app.example.com.evil.com", "evil.com:443",
    };

    static const char  *schemes[] = {
        "https:", "http:", "javascript:", "JaVaScRiPt:", "data:",
        "vbscript:", "HtTpS:", "file:", " https:", "\thttps:", "https%3a",
        "/https:", "/%68ttps:", "ws:", "jav\tascript:", "java%0ascript:",
    };

    static const char  *auths[] = {
        "//evil.com", "evil.com", "/evil.com", "///evil.com",
        "\\\\evil.com", "/\\evil.com", "//evil.com/?https://app.example.com",
        "//app.example.com@evil.com", "//app.example.com.evil.com",
        "//evil.com\\@app.example.com", "//evil.com%23@app.example.com",
        "//app.example.com%2f@evil.com", "alert(1)", "//%0aalert(1)",
    };

    n = 0;

    for (i = 0; i < sizeof(seps) / sizeof(seps[0]); i++) {
        for (j = 0; j < sizeof(dests) / sizeof(dests[0]); j++) {
            snprintf(buf, sizeof(buf), "%s%s", seps[i], dests[j]);

            if (ngx_oauth_test_rt(buf)) {
                fail_msg("accepted \"%s\"", buf);
            }

            n++;
        }
    }

    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        for (j = 0; j < sizeof(auths) / sizeof(auths[0]); j++) {
            snprintf(buf, sizeof(buf), "%s%s", schemes[i], auths[j]);

            if (ngx_oauth_test_rt(buf)) {
                fail_msg("accepted \"%s\"", buf);
            }

            n++;
        }
    }

    /* at least the 300 payloads T12 asks for */
    assert_true(n >= 300);
}


static void
test_return_to_limits(void **state)
{
    char         *big;
    const char   *reason;

    big = malloc(16 * 1024 + 1);
    assert_non_null(big);

    big[0] = '/';
    memset(big + 1, 'a', 16 * 1024 - 1);
    big[16 * 1024] = '\0';

    assert_int_equal(ngx_oauth_return_to_check(CS(big), NULL, 0, &reason),
                     NGX_OAUTH_INVALID);

    big[NGX_OAUTH_RETURN_TO_MAX] = '\0';
    assert_int_equal(ngx_oauth_return_to_check(CS(big), NULL, 0, &reason),
                     NGX_OAUTH_OK);

    big[NGX_OAUTH_RETURN_TO_MAX] = 'a';
    big[NGX_OAUTH_RETURN_TO_MAX + 1] = '\0';
    assert_int_equal(ngx_oauth_return_to_check(CS(big), NULL, 0, &reason),
                     NGX_OAUTH_INVALID);

    free(big);

    /* no allowed origins: only relative paths */

    assert_int_equal(ngx_oauth_return_to_check(S("/x"), NULL, 0, &reason),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_return_to_check(S("https://app.example.com/"),
                                               NULL, 0, &reason),
                     NGX_OAUTH_INVALID);
    assert_string_equal(reason, "return_to origin not allowed");

    /* NUL inside the given length */
    assert_int_equal(ngx_oauth_return_to_check(S("/x\0//evil"), NULL, 0,
                                               &reason),
                     NGX_OAUTH_INVALID);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_query_duplicates),
        cmocka_unit_test(test_query_limits),
        cmocka_unit_test(test_query_foreach),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_append_params),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_endpoint),
        cmocka_unit_test(test_expand_then_check),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_return_to_accepted),
        cmocka_unit_test(test_return_to_refused),
        cmocka_unit_test(test_return_to_corpus),
        cmocka_unit_test(test_return_to_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
