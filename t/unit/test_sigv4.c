/*
 * Copyright (C) ngx_oauth_module authors
 *
 * Unit tests of core/ngx_oauth_sigv4.c: AWS's published examples, and
 * the canonical request's rules (paths by service, header and query
 * order, repeated headers) checked against canonical requests written
 * out here from AWS's documentation.
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
#include "ngx_oauth_sigv4.h"
#include "ngx_oauth_crypto.h"


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


/*
 * The Authorization value for a canonical request written out by hand:
 * its hash, the string to sign and the signing key derived here, so a
 * mismatch means the signer's canonical request differs from creq.
 */

static void
sigv4_expect(const ngx_oauth_sigv4_t *req, const char *creq,
    const char *signed_headers)
{
    char           out[1024], expect[1024], hash[65], sts[256];
    unsigned char  k1[32], k2[32], sig[32];
    size_t         n;

    assert_int_equal(ngx_oauth_sha256_hex((const unsigned char *) creq,
                                          strlen(creq), hash), NGX_OAUTH_OK);

    n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%.16s\n%.8s/%.*s/%.*s"
                 "/aws4_request\n%s", req->amz_date.data, req->amz_date.data,
                 (int) req->region.len, req->region.data,
                 (int) req->service.len, req->service.data, hash);
    assert_true(n < sizeof(sts));

    n = snprintf(out, sizeof(out), "AWS4%.*s", (int) req->secret_key.len,
                 req->secret_key.data);

    assert_int_equal(ngx_oauth_hmac_sha256((unsigned char *) out, n,
                                           req->amz_date.data, 8, k1), 0);
    assert_int_equal(ngx_oauth_hmac_sha256(k1, 32, req->region.data,
                                           req->region.len, k2), 0);
    assert_int_equal(ngx_oauth_hmac_sha256(k2, 32, req->service.data,
                                           req->service.len, k1), 0);
    assert_int_equal(ngx_oauth_hmac_sha256(k1, 32,
                         (const unsigned char *) "aws4_request", 12, k2), 0);
    assert_int_equal(ngx_oauth_hmac_sha256(k2, 32, (unsigned char *) sts,
                                           strlen(sts), sig), 0);

    n = snprintf(expect, sizeof(expect), "AWS4-HMAC-SHA256 Credential=%.*s/"
                 "%.8s/%.*s/%.*s/aws4_request, SignedHeaders=%s, Signature=",
                 (int) req->access_key.len, req->access_key.data,
                 req->amz_date.data, (int) req->region.len, req->region.data,
                 (int) req->service.len, req->service.data, signed_headers);
    ngx_oauth_hex_encode(sig, sizeof(sig), expect + n);
    expect[n + 64] = '\0';

    assert_int_equal(ngx_oauth_sigv4_sign(req, out, sizeof(out)),
                     NGX_OAUTH_OK);
    assert_string_equal(out, expect);
}


#define EMPTY_SHA256                                                          \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define CREQ_TAIL(service)                                                    \
    "\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"          \
    "host;x-amz-date\n" EMPTY_SHA256


static const ngx_oauth_pair_t  sigv4_host[] = {
    P("Host", "example.amazonaws.com")
};


static void
sigv4_path(const char *service, const char *path, const char *canonical)
{
    char               creq[512];
    ngx_oauth_sigv4_t  req = {
        O("GET"), O("/"), O(""), sigv4_host, 1, O(EMPTY_SHA256),
        O("AKIDEXAMPLE"), O("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        O("us-east-1"), O("service"), O("20150830T123600Z")
    };

    req.path.data = (unsigned char *) path;
    req.path.len = strlen(path);
    req.service.data = (unsigned char *) service;
    req.service.len = strlen(service);

    snprintf(creq, sizeof(creq), "GET\n%s\n%s", canonical, CREQ_TAIL());
    sigv4_expect(&req, creq, "host;x-amz-date");
}


/*
 * Paths: other services normalize and encode each segment twice (AWS's
 * test suite: get-relative-relative, get-slash-dot-slash, get-slashes,
 * get-space, get-utf8); S3 encodes once and keeps the path as it is.
 */

static void
test_sigv4_paths(void **state)
{
    char               out[512];
    ngx_oauth_sigv4_t  req = {
        O("GET"), O("/"), O(""), sigv4_host, 1, O(EMPTY_SHA256),
        O("AKIDEXAMPLE"), O("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        O("us-east-1"), O("service"), O("20150830T123600Z")
    };

    (void) state;

    /* get-vanilla as AWS publishes it */

    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_OK);
    assert_true(strstr(out, "Signature=5fa00fa31553b73ebf1942676e86291e837"
                            "2ff2a2260956d9b8aae1d763fbf31") != NULL);

    sigv4_path("service", "/", "/");
    sigv4_path("service", "/example1/example2/../..", "/");
    sigv4_path("service", "/./", "/");
    sigv4_path("service", "//example//", "/example/");
    sigv4_path("service", "/a/./b/../c", "/a/c");
    sigv4_path("service", "/example%20space/", "/example%2520space/");
    sigv4_path("service", "/%E1%88%B4", "/%25E1%2588%25B4");
    sigv4_path("service", "/a:b/c=d", "/a%253Ab/c%253Dd");
    sigv4_path("service", "/-_.~AZaz09", "/-_.~AZaz09");

    sigv4_path("s3", "//example//", "//example//");
    sigv4_path("s3", "/a%20b/./c/..", "/a%20b/./c/..");
    sigv4_path("s3", "/a:b", "/a%3Ab");
    sigv4_path("s3", "/dir%2Fkey", "/dir%2Fkey");
    sigv4_path("s3-object-lambda", "/k%7e", "/k~");

    /* a path that is not one */

    req.path.data = (unsigned char *) "/a%zz";
    req.path.len = 5;
    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_INVALID);

    req.path.data = (unsigned char *) "a/b";
    req.path.len = 3;
    assert_int_equal(ngx_oauth_sigv4_sign(&req, out, sizeof(out)),
                     NGX_OAUTH_INVALID);
}


/*
 * Headers sort by name ("x-amz-meta-a" before "x-amz-meta-a-b", though
 * "-" sorts before ":"), a repeated name is signed once with its values
 * joined in the order given (AWS's get-header-value-order), values are
 * trimmed and their inner spaces folded; query pairs sort by name, then
 * value.
 */

static void
test_sigv4_order(void **state)
{
    static const ngx_oauth_pair_t  h[] = {
        P("X-Amz-Meta-A-B", "1"),
        P("My-Header1", "value4"),
        P("Host", "example.amazonaws.com"),
        P("my-header1", "  value1   a \t b "),
        P("X-Amz-Meta-A", "2"),
        P("MY-HEADER1", "value3")
    };

    ngx_oauth_sigv4_t  req = {
        O("POST"), O("/"), O("a-b=1&k=b&a=2&k=a&sp=x%20y"), h, 6,
        O(EMPTY_SHA256),
        O("AKIDEXAMPLE"), O("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        O("us-east-1"), O("service"), O("20150830T123600Z")
    };

    (void) state;

    sigv4_expect(&req,
                 "POST\n/\na=2&a-b=1&k=a&k=b&sp=x%20y\n"
                 "host:example.amazonaws.com\n"
                 "my-header1:value4,value1 a b,value3\n"
                 "x-amz-date:20150830T123600Z\n"
                 "x-amz-meta-a:2\n"
                 "x-amz-meta-a-b:1\n"
                 "\n"
                 "host;my-header1;x-amz-date;x-amz-meta-a;x-amz-meta-a-b\n"
                 EMPTY_SHA256,
                 "host;my-header1;x-amz-date;x-amz-meta-a;x-amz-meta-a-b");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigv4_iam),
        cmocka_unit_test(test_sigv4_s3),
        cmocka_unit_test(test_sigv4_paths),
        cmocka_unit_test(test_sigv4_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
