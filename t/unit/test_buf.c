/*
 * Copyright (C) ngx_oauth_module authors
 *
 * Unit tests of core/ngx_oauth_buf.c.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_buf.h"


#define ngx_oauth_test_buf_is(b, s)                                          \
    do {                                                                     \
        assert_int_equal((b)->len, strlen(s));                               \
        assert_memory_equal((b)->data, s, strlen(s));                        \
        assert_int_equal((b)->data[(b)->len], '\0');                         \
    } while (0)


static void
test_buf_empty(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_null(b.data);
    assert_int_equal(b.len, 0);

    assert_int_equal(ngx_oauth_buf_add(&b, NULL, 0), NGX_OAUTH_OK);
    assert_non_null(b.data);
    ngx_oauth_test_buf_is(&b, "");

    ngx_oauth_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);

    /* free twice, and free a never-used buffer */
    ngx_oauth_buf_free(&b);
}


static void
test_buf_add(void **state)
{
    ngx_oauth_str_t  s = ngx_oauth_string("str");
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_buf_add(&b, "ab", 2), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "cd"), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_byte(&b, '-'), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_str(&b, &s), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add(&b, "x\0y", 3), NGX_OAUTH_OK);

    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "abcd-strx\0y", 12);
    assert_int_equal(b.failed, 0);

    ngx_oauth_buf_free(&b);
}


static void
test_buf_grow(void **state)
{
    size_t           i;
    unsigned char    c;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    for (i = 0; i < 200000; i++) {
        c = (unsigned char) (i * 7);
        assert_int_equal(ngx_oauth_buf_add(&b, &c, 1), NGX_OAUTH_OK);
    }

    assert_int_equal(b.len, 200000);
    assert_true(b.cap > b.len);

    for (i = 0; i < 200000; i++) {
        assert_int_equal(b.data[i], (unsigned char) (i * 7));
    }

    assert_int_equal(b.data[b.len], '\0');

    ngx_oauth_buf_free(&b);
}


static void
test_buf_fmt(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "x:"), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_fmt(&b, "%s=%d;%05.1f", "a", -42, 2.5),
                     NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b, "x:a=-42;002.5");

    /* long output forces growth inside add_fmt */
    assert_int_equal(ngx_oauth_buf_add_fmt(&b, "%300s|", "r"), NGX_OAUTH_OK);
    assert_int_equal(b.len, 13 + 301);
    assert_int_equal(b.data[b.len - 2], 'r');
    assert_int_equal(b.data[b.len - 1], '|');

    assert_int_equal(ngx_oauth_buf_add_fmt(&b, "%s", ""), NGX_OAUTH_OK);
    assert_int_equal(b.len, 13 + 301);

    ngx_oauth_buf_free(&b);
}


static void
test_buf_failed_is_sticky(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "ok"), NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_buf_reserve(&b, (size_t) NGX_OAUTH_BUF_MAX),
                     NGX_OAUTH_TOO_LARGE);
    assert_true(b.failed);

    /* once failed, every add fails and changes nothing */
    assert_int_not_equal(ngx_oauth_buf_add_cstr(&b, "more"), NGX_OAUTH_OK);
    assert_int_not_equal(ngx_oauth_buf_add_fmt(&b, "%d", 1), NGX_OAUTH_OK);
    assert_int_not_equal(ngx_oauth_buf_add_url_escaped(&b, "a", 1),
                         NGX_OAUTH_OK);
    assert_int_not_equal(ngx_oauth_buf_add_form_pair(&b, "a", 1, "b", 1),
                         NGX_OAUTH_OK);
    assert_true(b.failed);
    ngx_oauth_test_buf_is(&b, "ok");

    /* overflow of len + n must not wrap around */
    assert_int_equal(ngx_oauth_buf_add(&b, "x", SIZE_MAX), NGX_OAUTH_NOMEM);

    ngx_oauth_buf_reset(&b);
    assert_false(b.failed);
    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "again"), NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b, "again");

    assert_int_equal(ngx_oauth_buf_add(&b, "x", SIZE_MAX - 2),
                     NGX_OAUTH_TOO_LARGE);
    assert_true(b.failed);

    ngx_oauth_buf_free(&b);
    assert_false(b.failed);
}


static void
test_buf_reset_wipes(void **state)
{
    size_t           i, cap;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "refresh-token-secret"),
                     NGX_OAUTH_OK);
    cap = b.cap;

    ngx_oauth_buf_reset(&b);

    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);

    for (i = 0; i < cap; i++) {
        assert_int_equal(b.data[i], 0);
    }

    ngx_oauth_buf_free(&b);
}


static void
test_buf_url_escaped(void **state)
{
    int              c;
    char             expect[4];
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_buf_add_url_escaped(&b,
                         "a b&c=d/e?f#g~h.i_j-k+l%m\xc3\xa9", 27),
                     NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b,
        "a%20b%26c%3Dd%2Fe%3Ff%23g~h.i_j-k%2Bl%25m%C3%A9");

    /* every byte: unreserved kept, everything else %XX upper-case */

    for (c = 0; c < 256; c++) {
        unsigned char  ch = (unsigned char) c;

        ngx_oauth_buf_reset(&b);
        assert_int_equal(ngx_oauth_buf_add_url_escaped(&b, &ch, 1),
                         NGX_OAUTH_OK);

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
        {
            assert_int_equal(b.len, 1);
            assert_int_equal(b.data[0], c);

        } else {
            snprintf(expect, sizeof(expect), "%%%02X", c);
            ngx_oauth_test_buf_is(&b, expect);
        }
    }

    ngx_oauth_buf_free(&b);
}


static void
test_buf_form_escaped(void **state)
{
    int              c;
    char             expect[4];
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    /* WHATWG urlencoded serializer vectors */

    assert_int_equal(ngx_oauth_buf_add_form_escaped(&b, "a b*~'()!", 9),
                     NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b, "a+b*%7E%27%28%29%21");

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_buf_add_form_escaped(&b,
                         "\xe2\x82\xac \r\n\t+", 8),
                     NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b, "%E2%82%AC+%0D%0A%09%2B");

    /* T23: the client_secret of the test list, per RFC 6749 2.3.1 */

    ngx_oauth_buf_reset(&b);
    assert_int_equal(ngx_oauth_buf_add_form_escaped(&b, "a:b+c%d=e/f", 11),
                     NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b, "a%3Ab%2Bc%25d%3De%2Ff");

    for (c = 0; c < 256; c++) {
        unsigned char  ch = (unsigned char) c;

        ngx_oauth_buf_reset(&b);
        assert_int_equal(ngx_oauth_buf_add_form_escaped(&b, &ch, 1),
                         NGX_OAUTH_OK);

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '*')
        {
            assert_int_equal(b.len, 1);
            assert_int_equal(b.data[0], c);

        } else if (c == ' ') {
            ngx_oauth_test_buf_is(&b, "+");

        } else {
            snprintf(expect, sizeof(expect), "%%%02X", c);
            ngx_oauth_test_buf_is(&b, expect);
        }
    }

    ngx_oauth_buf_free(&b);
}


static void
test_buf_form_pair(void **state)
{
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    assert_int_equal(ngx_oauth_buf_add_form_pair(&b, "grant_type", 10,
                         "authorization_code", 18),
                     NGX_OAUTH_OK);
    ngx_oauth_test_buf_is(&b, "grant_type=authorization_code");

    assert_int_equal(ngx_oauth_buf_add_form_pair(&b, "redirect_uri", 12,
                         "https://app.example.com/cb?x=1&y=2", 34),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_form_pair(&b, "scope", 5,
                         "openid email", 12),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_form_pair(&b, "empty", 5, "", 0),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_form_pair(&b, "a b&c", 5, "=", 1),
                     NGX_OAUTH_OK);

    ngx_oauth_test_buf_is(&b,
        "grant_type=authorization_code"
        "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1%26y%3D2"
        "&scope=openid+email&empty=&a+b%26c=%3D");

    assert_false(b.failed);

    ngx_oauth_buf_free(&b);
}


static void
test_buf_escape_grows(void **state)
{
    size_t           i;
    unsigned char    big[5000];
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    memset(big, '/', sizeof(big));

    assert_int_equal(ngx_oauth_buf_add_cstr(&b, "x"), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_buf_add_url_escaped(&b, big, sizeof(big)),
                     NGX_OAUTH_OK);
    assert_int_equal(b.len, 1 + 3 * sizeof(big));

    for (i = 1; i < b.len; i += 3) {
        assert_memory_equal(b.data + i, "%2F", 3);
    }

    assert_int_equal(b.data[b.len], '\0');

    ngx_oauth_buf_free(&b);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_buf_empty),
        cmocka_unit_test(test_buf_add),
        cmocka_unit_test(test_buf_grow),
        cmocka_unit_test(test_buf_fmt),
        cmocka_unit_test(test_buf_failed_is_sticky),
        cmocka_unit_test(test_buf_reset_wipes),
        cmocka_unit_test(test_buf_url_escaped),
        cmocka_unit_test(test_buf_form_escaped),
        cmocka_unit_test(test_buf_form_pair),
        cmocka_unit_test(test_buf_escape_grows),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
