/*
 * Copyright (C) ngx_oauth_module authors
 *
 * Unit tests of core/ngx_oauth_template.c: header and body templates of
 * provider quirks (Walmart's headers, JSON revocation bodies).
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_template.h"


#define S(s)  (const unsigned char *) (s), (sizeof(s) - 1)
#define V(n, v)  { { sizeof(n) - 1, (unsigned char *) n },                    \
                   { sizeof(v) - 1, (unsigned char *) v } }


static ngx_oauth_pair_t  vars[] = {
    V("token", "a\"b\\c"),
    V("sellerId", "10001"),
    V("client_id", "id one"),
    V("evil", "x\r\nInjected: 1"),
};


static void
test_raw(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;
    ngx_oauth_str_t  missing;

    assert_int_equal(ngx_oauth_template_expand(&b, S("{sellerId}"), vars, 4,
                                               NGX_OAUTH_TPL_RAW, &missing),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) b.data, "10001");

    /* a header value must not become two headers */
    assert_int_equal(ngx_oauth_template_expand(&b, S("-{evil}"), vars, 4,
                                               NGX_OAUTH_TPL_RAW, &missing),
                     NGX_OAUTH_INVALID);
    assert_string_equal((char *) b.data, "10001");

    assert_int_equal(ngx_oauth_template_expand(&b, S("{nope}x"), vars, 4,
                                               NGX_OAUTH_TPL_RAW, &missing),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(missing.len, 4);
    assert_memory_equal(missing.data, "nope", 4);
    assert_int_equal(b.len, 5);

    ngx_oauth_buf_free(&b);
}


/* ngx_oauth_url_expand(): every brace belongs to a placeholder */

static void
test_url(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;
    ngx_oauth_str_t  missing;

    assert_int_equal(ngx_oauth_template_expand(&b,
                         S("https://x/{sellerId}?q={client_id}"), vars, 4,
                         NGX_OAUTH_TPL_URL, NULL),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) b.data, "https://x/10001?q=id%20one");

    assert_int_equal(ngx_oauth_template_expand(&b, S("/{sellerId}/}"), vars,
                                               4, NGX_OAUTH_TPL_URL, NULL),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_template_expand(&b, S("/{}"), vars, 4,
                                               NGX_OAUTH_TPL_URL, NULL),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_template_expand(&b, S("/{a b}"), vars, 4,
                                               NGX_OAUTH_TPL_URL, NULL),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_template_expand(&b, S("/{sellerId"), vars, 4,
                                               NGX_OAUTH_TPL_URL, NULL),
                     NGX_OAUTH_INVALID);

    /* the first problem from the left is the one reported */
    assert_int_equal(ngx_oauth_template_expand(&b, S("/{nope}/}"), vars, 4,
                                               NGX_OAUTH_TPL_URL, &missing),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(missing.len, 4);
    assert_memory_equal(missing.data, "nope", 4);

    /* nothing of a failed expansion stays */
    assert_string_equal((char *) b.data, "https://x/10001?q=id%20one");

    ngx_oauth_buf_free(&b);
}


static void
test_json(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    /* braces of the JSON itself are literal */
    assert_int_equal(ngx_oauth_template_expand(&b,
                         S("{\"token\":\"{token}\",\"x\":{}}"), vars, 4,
                         NGX_OAUTH_TPL_JSON, NULL),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) b.data,
                        "{\"token\":\"a\\\"b\\\\c\",\"x\":{}}");

    ngx_oauth_buf_free(&b);
}


static void
test_form(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_template_expand(&b,
                         S("client_id={client_id}&stripe_user_id={sellerId}"),
                         vars, 4, NGX_OAUTH_TPL_FORM, NULL),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) b.data,
                        "client_id=id+one&stripe_user_id=10001");

    /* "{" without a name and "}" is text; so is "{}" */
    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_template_expand(&b, S("{ {} {a b} {"),
                                               vars, 4, NGX_OAUTH_TPL_FORM,
                                               NULL),
                     NGX_OAUTH_OK);
    assert_string_equal((char *) b.data, "{ {} {a b} {");

    ngx_oauth_buf_free(&b);
}


static int
count_name(void *data, const unsigned char *name, size_t len)
{
    int  *n = data;

    (*n)++;

    return (len == 5 && memcmp(name, "token", 5) == 0) ? NGX_OAUTH_OK
                                                       : NGX_OAUTH_NOT_FOUND;
}


static void
test_names(void **state)
{
    int  n;

    n = 0;
    assert_int_equal(ngx_oauth_template_names(S("{\"a\":\"{token}\"}"),
                                              count_name, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 1);

    n = 0;
    assert_int_equal(ngx_oauth_template_names(S("{token}{other}{token}"),
                                              count_name, &n),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(n, 2);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
