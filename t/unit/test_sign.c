/*
 * Copyright (C) ngx_oauth_module authors
 *
 * Unit tests of core/ngx_oauth_sign.c: HMAC-SHA256 (RFC 4231 test
 * case 2) and Shopify's signed redirects.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_sign.h"


#define S(s)  (const unsigned char *) (s), (sizeof(s) - 1)


static void
test_hmac_rfc4231(void **state)
{
    unsigned char  mac[NGX_OAUTH_HMAC_LEN];

    static const unsigned char  expect[] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
        0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
        0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43
    };

    assert_int_equal(ngx_oauth_hmac_sha256(S("Jefe"),
                         S("what do ya want for nothing?"), mac),
                     NGX_OAUTH_OK);
    assert_memory_equal(mac, expect, sizeof(expect));
}


static void
test_shopify(void **state)
{
    /* the example of Shopify's documentation, parameters in any order */

    assert_int_equal(ngx_oauth_shopify_hmac_check(
        S("code=0907a61c0c8d55e99db179b68161bc00&hmac=4712bf92ffc2917d15a2f5a"
          "273e39f0116667419aa4b6ac0b3baaf26fa3c4d20&shop=some-shop.myshopify"
          ".com&timestamp=1337178173"), S("hush")),
        NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_shopify_hmac_check(
        S("timestamp=1337178173&shop=some-shop.myshopify.com&hmac=4712BF92FF"
          "C2917D15A2F5A273E39F0116667419AA4B6AC0B3BAAF26FA3C4D20&code=0907a6"
          "1c0c8d55e99db179b68161bc00"), S("hush")),
        NGX_OAUTH_OK);

    /* another secret, a changed value, no hmac, two hmacs */

    assert_int_equal(ngx_oauth_shopify_hmac_check(
        S("code=0907a61c0c8d55e99db179b68161bc00&hmac=4712bf92ffc2917d15a2f5a"
          "273e39f0116667419aa4b6ac0b3baaf26fa3c4d20&shop=some-shop.myshopify"
          ".com&timestamp=1337178173"), S("hush!")),
        NGX_OAUTH_DENIED);

    assert_int_equal(ngx_oauth_shopify_hmac_check(
        S("code=0907a61c0c8d55e99db179b68161bc00&hmac=4712bf92ffc2917d15a2f5a"
          "273e39f0116667419aa4b6ac0b3baaf26fa3c4d20&shop=evil-shop.myshopify"
          ".com&timestamp=1337178173"), S("hush")),
        NGX_OAUTH_DENIED);

    assert_int_equal(ngx_oauth_shopify_hmac_check(
        S("code=x&shop=a.myshopify.com"), S("hush")),
        NGX_OAUTH_DENIED);

    assert_int_equal(ngx_oauth_shopify_hmac_check(
        S("code=0907a61c0c8d55e99db179b68161bc00&hmac=4712bf92ffc2917d15a2f5a"
          "273e39f0116667419aa4b6ac0b3baaf26fa3c4d20&shop=some-shop.myshopify"
          ".com&timestamp=1337178173&hmac=4712bf92ffc2917d15a2f5a273e39f01166"
          "67419aa4b6ac0b3baaf26fa3c4d20"), S("hush")),
        NGX_OAUTH_DENIED);

    assert_int_equal(ngx_oauth_shopify_hmac_check(S("a=%zz&hmac=1"),
                                                  S("hush")),
                     NGX_OAUTH_INVALID);
}

/* a body hashed in parts is hashed as a whole */

static void
test_sha256_parts(void **state)
{
    char                 one[65], parts[65];
    ngx_oauth_sha256_t  *h;

    (void) state;

    assert_int_equal(ngx_oauth_sha256_hex((const unsigned char *) "abcdef",
                                          6, one), NGX_OAUTH_OK);

    h = ngx_oauth_sha256_new();
    assert_non_null(h);
    assert_int_equal(ngx_oauth_sha256_update(h,
                         (const unsigned char *) "abc", 3), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_sha256_update(h,
                         (const unsigned char *) "", 0), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_sha256_update(h,
                         (const unsigned char *) "def", 3), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_sha256_final_hex(h, parts), NGX_OAUTH_OK);
    assert_string_equal(one, parts);

    h = ngx_oauth_sha256_new();
    assert_non_null(h);
    assert_int_equal(ngx_oauth_sha256_final_hex(h, parts), NGX_OAUTH_OK);
    assert_string_equal(parts, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b9"
                               "34ca495991b7852b855");

    ngx_oauth_sha256_free(ngx_oauth_sha256_new());
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_shopify),
        cmocka_unit_test(test_sha256_parts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
