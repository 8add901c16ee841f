/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * Unit tests of core/ngx_oauth_pattern.c: connection_param pattern=,
 * compiled once and matched whole.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_pattern.h"


#define S(s)  (const unsigned char *) (s), (sizeof(s) - 1)
#define CS(s)  (const unsigned char *) (s), strlen(s)


/* connection_param pattern= (T17) */

static void
test_pattern(void **state)
{
    char         err[128];
    char        *big;
    const char  *shop = "^[a-zA-Z0-9][a-zA-Z0-9-]*\\.myshopify\\.com$";
    const char  *realm = "^[0-9]{1,20}$";

    assert_int_equal(ngx_oauth_pattern_match(shop, S("shop1.myshopify.com")),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_match(shop, S("evil.test")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(shop,
                                             S("x.myshopify.com.evil.test")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(shop, S("a@b.myshopify.com")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(shop,
                                             S("x.myshopify.com\nevil")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(shop,
                                             S("evil\nx.myshopify.com")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(shop,
                                             S("x.myshopify.com\0.evil")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(shop, S("")),
                     NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_pattern_match(realm, S("9130355")),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_match(realm, S("12/../x")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(realm, S("%2F")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match(realm, S("-1")),
                     NGX_OAUTH_INVALID);

    big = malloc(10241);
    assert_non_null(big);
    memset(big, '1', 10240);
    big[10240] = '\0';
    assert_int_equal(ngx_oauth_pattern_match(realm, CS(big)),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match("[0-9]+", CS(big)),
                     NGX_OAUTH_OK);
    free(big);

    /* anchoring is enforced even when the pattern forgets it */

    assert_int_equal(ngx_oauth_pattern_match("[a-z]+", S("abc")),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_match("[a-z]+", S("abc1")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match("[a-z]+", S("1abc")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match("b", S("abc")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match("a|ab", S("ab")), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_match("a|ab", S("abc")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_match("^a$|^b$", S("b")),
                     NGX_OAUTH_OK);

    /* a stray ")" cannot break the anchoring out of a wrapper */
    assert_int_equal(ngx_oauth_pattern_match("a)|(b", S("a)xyz")),
                     NGX_OAUTH_ERROR);
    assert_int_equal(ngx_oauth_pattern_match("a)", S("a)")), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_match("a)", S("a)x")),
                     NGX_OAUTH_INVALID);

    /* bad patterns */
    assert_int_equal(ngx_oauth_pattern_match("(", S("(")), NGX_OAUTH_ERROR);
    assert_int_equal(ngx_oauth_pattern_check("(", err, sizeof(err)),
                     NGX_OAUTH_INVALID);
    assert_true(strlen(err) > 0);
    assert_int_equal(ngx_oauth_pattern_check("[a-z", err, sizeof(err)),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_check(shop, err, sizeof(err)),
                     NGX_OAUTH_OK);
}


/* compiled once, matched many times; values with controls never match */

static void
test_compiled(void **state)
{
    int                   i;
    char                  err[128], *big;
    unsigned char         c[2];
    ngx_oauth_pattern_t  *any, *shop;

    assert_int_equal(ngx_oauth_pattern_compile(&shop,
                         "^[a-z0-9][a-z0-9-]*\\.myshopify\\.com$", err,
                         sizeof(err)),
                     NGX_OAUTH_OK);

    for (i = 0; i < 3; i++) {
        assert_int_equal(ngx_oauth_pattern_exec(shop,
                                                S("shop1.myshopify.com")),
                         NGX_OAUTH_OK);
        assert_int_equal(ngx_oauth_pattern_exec(shop, S("evil.test")),
                         NGX_OAUTH_INVALID);
    }

    ngx_oauth_pattern_free(shop);

    /* POSIX "." matches a newline: the rule refuses it all the same */

    assert_int_equal(ngx_oauth_pattern_compile(&any, ".*", err,
                                               sizeof(err)),
                     NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_pattern_exec(any, S("anything at all")),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_exec(any, S("")), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pattern_exec(any, S("a\nb")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_exec(any, S("a\r")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_exec(any, S("\ta")),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pattern_exec(any, S("a\0b")),
                     NGX_OAUTH_INVALID);

    c[1] = 'x';

    for (i = 0; i < 0x20; i++) {
        c[0] = (unsigned char) i;
        assert_int_equal(ngx_oauth_pattern_exec(any, c, 2),
                         NGX_OAUTH_INVALID);
    }

    c[0] = 0x7f;
    assert_int_equal(ngx_oauth_pattern_exec(any, c, 2), NGX_OAUTH_INVALID);

    /* UTF-8 is not a control character */
    assert_int_equal(ngx_oauth_pattern_exec(any, S("caf\xc3\xa9")),
                     NGX_OAUTH_OK);

    /* past the stack copy, and the rule still holds there */

    big = malloc(4097);
    assert_non_null(big);
    memset(big, 'a', 4096);
    big[4096] = '\0';
    assert_int_equal(ngx_oauth_pattern_exec(any, CS(big)), NGX_OAUTH_OK);
    big[4000] = '\n';
    assert_int_equal(ngx_oauth_pattern_exec(any, CS(big)),
                     NGX_OAUTH_INVALID);
    free(big);

    ngx_oauth_pattern_free(any);
    ngx_oauth_pattern_free(NULL);

    /* a pattern that does not compile says why, and leaves nothing */

    any = (ngx_oauth_pattern_t *) 1;
    err[0] = '\0';
    assert_int_equal(ngx_oauth_pattern_compile(&any, "a{2,1}", err,
                                               sizeof(err)),
                     NGX_OAUTH_INVALID);
    assert_null(any);
    assert_true(strlen(err) > 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_compiled),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
