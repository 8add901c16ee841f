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


/* AWS's published examples of Signature Version 4 */

#define P(n, v)  { { sizeof(n) - 1, (unsigned char *) n },                   \
                   { sizeof(v) - 1, (unsigned char *) v } }
#define O(s)     { sizeof(s) - 1, (unsigned char *) s }

static void
test_sigv4_iam(void **state)
{
    char               out[512];
    ngx_oauth_sigv4_t  req;

    static const ngx_oauth_pair_t  h[] = {
        P("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        P("Host", "iam.amazonaws.com")
    };

    ngx_oauth_sigv4_t  init = {
        O("GET"), O("/"), O("Action=ListUsers&Version=2010-05-08"), h, 2,
        O("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        O("AKIDEXAMPLE"), O("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        O("us-east-1"), O("iam"), O("20150830T123600Z")
    };

    req = init;

    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_OK);
    assert_string_equal(out,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/"
        "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924"
        "a6f2b5d7");

    /* the query's order does not matter; a short buffer is refused */

    req.query.data = (unsigned char *) "Version=2010-05-08&Action=ListUsers";
    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_OK);
    assert_true(strstr(out, "Signature=5d672d79c15b") != NULL);

    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, 100),
                     NGX_OAUTH_TOO_LARGE);

    req.amz_date.data = (unsigned char *) "2015-08-30T12:36";
    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_INVALID);
}


static void
test_sigv4_s3(void **state)
{
    char               out[512], hex[65];
    ngx_oauth_sigv4_t  req;

    static const ngx_oauth_pair_t  h[] = {
        P("Host", "examplebucket.s3.amazonaws.com"),
        P("Range", "bytes=0-9"),
        P("x-amz-content-sha256",
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    };

    ngx_oauth_sigv4_t  init = {
        O("GET"), O("/test.txt"), O(""), h, 3,
        O("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        O("AKIAIOSFODNN7EXAMPLE"),
        O("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        O("us-east-1"), O("s3"), O("20130524T000000Z")
    };

    req = init;

    assert_int_equal(ngx_oauth_sha256_hex((const unsigned char *) "", 0, hex),
                     NGX_OAUTH_OK);
    assert_memory_equal(hex, req.payload_hash.data, 64);

    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_OK);
    assert_string_equal(out,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
        "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
        "x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba4"
        "8dd91039c6036bdb41");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_shopify),
        cmocka_unit_test(test_sha256_parts),
        cmocka_unit_test(test_sigv4_iam),
        cmocka_unit_test(test_sigv4_s3),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
