/*
 * Copyright (C) ngx_oauth_module authors
 *
 * libFuzzer target: key ring text, sealed values and base64 on arbitrary
 * bytes.  Besides "no crash", it checks what the parser promises about a
 * ring it accepts, that a ring it accepts seals and opens, and how a
 * value that does not open under a fixed ring is refused.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_crypto.h"


#define ngx_oauth_fuzz_assert(c)  do { if (!(c)) abort(); } while (0)


static const char  ngx_oauth_fuzz_ring_text[] =
    "fz:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    "old:4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8\n";


static ngx_oauth_keyring_t  ngx_oauth_fuzz_ring;
static int                  ngx_oauth_fuzz_ready;


static int
ngx_oauth_fuzz_kid_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}


static void
ngx_oauth_fuzz_parse(const uint8_t *data, size_t size)
{
    int                  rc;
    char                 err[256];
    size_t               i, j, slen, plen;
    unsigned char        sealed[ngx_oauth_seal_size(NGX_OAUTH_KID_MAX, 5)];
    unsigned char        plain[sizeof(sealed)];
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    memset(err, 'x', sizeof(err));

    rc = ngx_oauth_keyring_parse(&kr, data, size, err, sizeof(err));

    ngx_oauth_fuzz_assert(memchr(err, '\0', sizeof(err)) != NULL);

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_fuzz_assert(err[0] != '\0');
        ngx_oauth_fuzz_assert(kr.nkeys == 0);
        return;
    }

    ngx_oauth_fuzz_assert(kr.nkeys >= 1 && kr.nkeys <= NGX_OAUTH_KEYS_MAX);

    for (i = 0; i < kr.nkeys; i++) {
        ngx_oauth_fuzz_assert(kr.keys[i].kid_len >= 1
                              && kr.keys[i].kid_len <= NGX_OAUTH_KID_MAX);
        ngx_oauth_fuzz_assert(kr.keys[i].kid[kr.keys[i].kid_len] == '\0');

        for (j = 0; j < kr.keys[i].kid_len; j++) {
            ngx_oauth_fuzz_assert(ngx_oauth_fuzz_kid_char(
                                      (unsigned char) kr.keys[i].kid[j]));
        }

        ngx_oauth_fuzz_assert(ngx_oauth_keyring_find(&kr,
                                  (const unsigned char *) kr.keys[i].kid,
                                  kr.keys[i].kid_len)
                              == &kr.keys[i]);
    }

    /* an accepted ring seals under its first key and opens again */

    memset(&aad, 0, sizeof(aad));
    aad.field.len = 6;
    aad.field.data = (unsigned char *) "access";

    rc = ngx_oauth_seal(&kr, &aad, (const unsigned char *) "hello", 5,
                        sealed, &slen);
    ngx_oauth_fuzz_assert(rc == NGX_OAUTH_OK);
    ngx_oauth_fuzz_assert(slen == ngx_oauth_seal_size(kr.keys[0].kid_len,
                                                      5));

    rc = ngx_oauth_open(&kr, &aad, sealed, slen, plain, &plen);
    ngx_oauth_fuzz_assert(rc == NGX_OAUTH_OK);
    ngx_oauth_fuzz_assert(plen == 5 && memcmp(plain, "hello", 5) == 0);

    ngx_oauth_keyring_wipe(&kr);
}


static void
ngx_oauth_fuzz_open(const uint8_t *data, size_t size)
{
    int               rc;
    size_t            plen;
    unsigned char    *plain;
    ngx_oauth_str_t   kid;
    ngx_oauth_aad_t   aad;

    /* exact-size copies: ASan sees any access past either end */

    plain = malloc(size + 1);
    ngx_oauth_fuzz_assert(plain != NULL);

    memset(&aad, 0, sizeof(aad));
    aad.owner.len = 5;
    aad.owner.data = (unsigned char *) "alice";
    aad.provider.len = 6;
    aad.provider.data = (unsigned char *) "github";
    aad.field.len = 6;
    aad.field.data = (unsigned char *) "access";

    rc = ngx_oauth_open(&ngx_oauth_fuzz_ring, &aad, data, size, plain,
                        &plen);

    if (ngx_oauth_sealed_kid(data, size, &kid) == NGX_OAUTH_OK) {
        ngx_oauth_fuzz_assert(kid.len >= 1 && kid.len <= NGX_OAUTH_KID_MAX);
        ngx_oauth_fuzz_assert(kid.data == data + 3);

        /*
         * The seeds hold values sealed under this ring, so some inputs do
         * open; every other one is refused with a reason.
         */

        if (rc == NGX_OAUTH_OK) {
            ngx_oauth_fuzz_assert(plen
                                  == size - ngx_oauth_seal_size(kid.len, 0));

        } else {
            ngx_oauth_fuzz_assert(rc == NGX_OAUTH_DENIED
                                  || rc == NGX_OAUTH_UNKNOWN_KEY);
            ngx_oauth_fuzz_assert(plen == 0);
        }

    } else {
        ngx_oauth_fuzz_assert(rc == NGX_OAUTH_INVALID && plen == 0);
    }

    free(plain);
}


static void
ngx_oauth_fuzz_base64(const uint8_t *data, size_t size)
{
    int             rc;
    char           *enc;
    size_t          n, m;
    unsigned char  *dec, *again;

    dec = malloc(ngx_oauth_base64_decoded_max(size) + 1);
    enc = malloc(ngx_oauth_base64_encoded_len(size) + 1);
    again = malloc(ngx_oauth_base64_decoded_max(size) + 1);
    ngx_oauth_fuzz_assert(dec != NULL && enc != NULL && again != NULL);

    rc = ngx_oauth_base64_decode((const char *) data, size, dec, &n);

    if (rc == NGX_OAUTH_OK) {
        ngx_oauth_fuzz_assert(n <= ngx_oauth_base64_decoded_max(size));

        /* one encoding per value: re-encoding gives the same bytes back */

        m = ngx_oauth_base64url_encode(dec, n, enc);
        ngx_oauth_fuzz_assert(m == ngx_oauth_base64url_encoded_len(n));
        ngx_oauth_fuzz_assert(ngx_oauth_base64_decode(enc, m, again, &m)
                              == NGX_OAUTH_OK);
        ngx_oauth_fuzz_assert(m == n && memcmp(again, dec, n) == 0);

        m = ngx_oauth_base64_encode(dec, n, enc);
        ngx_oauth_fuzz_assert(m == ngx_oauth_base64_encoded_len(n));
        ngx_oauth_fuzz_assert(ngx_oauth_base64_decode(enc, m, again, &m)
                              == NGX_OAUTH_OK);
        ngx_oauth_fuzz_assert(m == n && memcmp(again, dec, n) == 0);

    } else {
        ngx_oauth_fuzz_assert(rc == NGX_OAUTH_INVALID && n == 0);
    }

    free(dec);
    free(enc);
    free(again);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t  *copy;

    if (!ngx_oauth_fuzz_ready) {
        ngx_oauth_fuzz_assert(ngx_oauth_keyring_parse(&ngx_oauth_fuzz_ring,
                                  (const unsigned char *)
                                  ngx_oauth_fuzz_ring_text,
                                  sizeof(ngx_oauth_fuzz_ring_text) - 1,
                                  NULL, 0)
                              == NGX_OAUTH_OK);
        ngx_oauth_fuzz_ready = 1;
    }

    copy = malloc(size ? size : 1);
    ngx_oauth_fuzz_assert(copy != NULL);
    memcpy(copy, data, size);

    ngx_oauth_fuzz_parse(copy, size);
    ngx_oauth_fuzz_open(copy, size);
    ngx_oauth_fuzz_base64(copy, size);

    free(copy);

    return 0;
}
