
/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * Unit tests of core/ngx_oauth_crypto.c and ngx_oauth_strerror().
 * Expected values come from RFC 4648 section 10, RFC 7636 appendix B and
 * FIPS 180-2, or were computed independently (Python's base64 module).
 */

#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/rand.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_crypto.h"


#define TEST_NSEALS  1000000

/* bytes 0x00..0x1f */
#define KEY_A_B64    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
/* bytes 0xe0..0xff: the standard alphabet uses '+' and '/' here */
#define KEY_B_STD    "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8="
#define KEY_B_URL    "4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8"
#define KEY_31_B64   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
#define KEY_33_B64   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY_64_B64   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


/*
 * RAND_bytes() is interposed so that a generator failure can be injected
 * (T51); otherwise every call goes to OpenSSL's.
 */

static int  test_rand_fail;


int
RAND_bytes(unsigned char *buf, int num)
{
    static int  (*real)(unsigned char *, int);

    if (test_rand_fail) {
        return 0;
    }

    if (real == NULL) {
        real = (int (*)(unsigned char *, int)) dlsym(RTLD_NEXT, "RAND_bytes");
        if (real == NULL) {
            return 0;
        }
    }

    return real(buf, num);
}


static char  test_dir[] = "/tmp/ngx_oauth_test_crypto.XXXXXX";


static ngx_oauth_aad_t
test_aad(const char *owner, const char *provider, const char *account,
    const char *field)
{
    ngx_oauth_aad_t  aad;

    aad.owner.len = strlen(owner);
    aad.owner.data = (unsigned char *) owner;
    aad.provider.len = strlen(provider);
    aad.provider.data = (unsigned char *) provider;
    aad.account.len = strlen(account);
    aad.account.data = (unsigned char *) account;
    aad.field.len = strlen(field);
    aad.field.data = (unsigned char *) field;

    return aad;
}


static void
test_ring(ngx_oauth_keyring_t *kr, const char *text)
{
    char  err[256];

    assert_int_equal(ngx_oauth_keyring_parse(kr, (const unsigned char *) text,
                                             strlen(text), err, sizeof(err)),
                     NGX_OAUTH_OK);
}


static int
test_all_zero(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }

    return 1;
}


static int
test_seal(const ngx_oauth_keyring_t *kr, const ngx_oauth_aad_t *aad,
    const char *plain, unsigned char *out, size_t *outlen)
{
    return ngx_oauth_seal(kr, aad, (const unsigned char *) plain,
                          strlen(plain), out, outlen);
}


/* opens and expects rc; on failure the output buffer must be wiped */

static void
test_open_expect(const ngx_oauth_keyring_t *kr, const ngx_oauth_aad_t *aad,
    const unsigned char *sealed, size_t slen, int expect)
{
    int               rc;
    size_t            plen, clen;
    unsigned char    *plain;
    ngx_oauth_str_t   kid;

    plain = malloc(slen + 1);
    assert_non_null(plain);
    memset(plain, 0xaa, slen + 1);
    plen = 12345;

    rc = ngx_oauth_open(kr, aad, sealed, slen, plain, &plen);

    assert_int_equal(rc, expect);

    if (rc != NGX_OAUTH_OK) {
        assert_int_equal(plen, 0);

        /* a value that parsed was decrypted: what it wrote is wiped */
        if (rc == NGX_OAUTH_DENIED) {
            assert_int_equal(ngx_oauth_sealed_kid(sealed, slen, &kid),
                             NGX_OAUTH_OK);
            clen = slen - ngx_oauth_seal_size(kid.len, 0);
            assert_true(test_all_zero(plain, clen));
        }
    }

    free(plain);
}


static int
test_write_file(const char *name, const char *data, size_t len, mode_t mode,
    char *path, size_t pathlen)
{
    int  fd;

    snprintf(path, pathlen, "%s/%s", test_dir, name);
    (void) unlink(path);

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd == -1) {
        return -1;
    }

    if (len != 0 && write(fd, data, len) != (ssize_t) len) {
        close(fd);
        return -1;
    }

    /* fchmod: the umask must not decide the mode under test */
    if (fchmod(fd, mode) == -1) {
        close(fd);
        return -1;
    }

    return close(fd);
}


static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}


static int
test_group_setup(void **state)
{
    return (mkdtemp(test_dir) == NULL) ? -1 : 0;
}


static int
test_group_teardown(void **state)
{
    return nftw(test_dir, test_rm, 16, FTW_DEPTH | FTW_PHYS);
}


/* ngx_oauth_strerror */

static void
test_strerror(void **state)
{
    size_t       i, j;
    const char  *s[12];
    static int   rcs[] = {
        NGX_OAUTH_OK, NGX_OAUTH_ERROR, NGX_OAUTH_NOT_FOUND, NGX_OAUTH_INVALID,
        NGX_OAUTH_DENIED, NGX_OAUTH_UNKNOWN_KEY, NGX_OAUTH_FULL,
        NGX_OAUTH_BUSY, NGX_OAUTH_CONFLICT, NGX_OAUTH_NOMEM,
        NGX_OAUTH_TOO_LARGE, 12345
    };

    for (i = 0; i < 12; i++) {
        s[i] = ngx_oauth_strerror(rcs[i]);
        assert_non_null(s[i]);
        assert_true(strlen(s[i]) > 0);

        for (j = 0; j < i; j++) {
            assert_string_not_equal(s[i], s[j]);
        }
    }

    assert_string_equal(ngx_oauth_strerror(-100), "unknown error");

    /* none of them can pass for nginx's NGX_ERROR ... NGX_ABORT (-1..-6) */
    for (i = 1; i < 11; i++) {
        assert_true(rcs[i] < -100);
    }
    assert_string_equal(ngx_oauth_strerror(NGX_OAUTH_DENIED),
                        "authentication failed");
}


/* seal and open */

static void
test_seal_roundtrip(void **state)
{
    size_t               i, len, slen, plen;
    unsigned char       *plain, *sealed, *out;
    ngx_oauth_str_t      kid;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;
    static size_t        sizes[] = { 0, 1, 15, 16, 17, 255, 4096, 100000 };

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("alice", "github", "12345", "access");

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        len = sizes[i];

        plain = malloc(len + 1);
        out = malloc(len + 1);
        slen = ngx_oauth_seal_size(2, len);
        sealed = malloc(slen);    /* exact size: ASan sees any overflow */
        assert_non_null(plain);
        assert_non_null(out);
        assert_non_null(sealed);

        assert_int_equal(ngx_oauth_random(plain, len), NGX_OAUTH_OK);

        assert_int_equal(ngx_oauth_seal(&kr, &aad, plain, len, sealed,
                                        &slen),
                         NGX_OAUTH_OK);
        assert_int_equal(slen, ngx_oauth_seal_size(2, len));

        /* the format: 'S', version, kid_len, kid, nonce, cipher, tag */
        assert_int_equal(sealed[0], 'S');
        assert_int_equal(sealed[1], NGX_OAUTH_SEAL_VERSION);
        assert_int_equal(sealed[2], 2);
        assert_memory_equal(sealed + 3, "k1", 2);

        if (len >= 16) {
            assert_memory_not_equal(sealed + 3 + 2 + NGX_OAUTH_NONCE_LEN,
                                    plain, 16);
        }

        assert_int_equal(ngx_oauth_sealed_kid(sealed, slen, &kid),
                         NGX_OAUTH_OK);
        assert_int_equal(kid.len, 2);
        assert_memory_equal(kid.data, "k1", 2);

        plen = 999;
        assert_int_equal(ngx_oauth_open(&kr, &aad, sealed, slen, out, &plen),
                         NGX_OAUTH_OK);
        assert_int_equal(plen, len);

        if (len != 0) {
            assert_memory_equal(out, plain, len);
        }

        free(plain);
        free(out);
        free(sealed);
    }

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_seal_empty_aad(void **state)
{
    size_t               slen, plen;
    unsigned char        sealed[128], out[128];
    ngx_oauth_aad_t      aad, other;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64);

    /* empty fields are allowed and still bound: "" differs from "x" */
    memset(&aad, 0, sizeof(aad));
    other = test_aad("", "", "", "x");

    assert_int_equal(test_seal(&kr, &aad, "v", sealed, &slen), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_open(&kr, &aad, sealed, slen, out, &plen),
                     NGX_OAUTH_OK);
    assert_int_equal(plen, 1);
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);
}


static void
test_seal_bad_args(void **state)
{
    size_t               slen, plen;
    unsigned char        sealed[128], out[128];
    ngx_oauth_aad_t      aad, bad;
    ngx_oauth_keyring_t  kr, empty;

    test_ring(&kr, "k1:" KEY_A_B64);
    memset(&empty, 0, sizeof(empty));
    aad = test_aad("o", "p", "a", "f");

    slen = 77;
    assert_int_equal(test_seal(&empty, &aad, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(slen, 0);
    assert_int_equal(test_seal(NULL, &aad, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(test_seal(&kr, NULL, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(test_seal(&kr, &aad, "x", NULL, &slen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(test_seal(&kr, &aad, "x", sealed, NULL),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_seal(&kr, &aad, NULL, 5, sealed, &slen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_seal(&kr, &aad, (const unsigned char *) "",
                                    (size_t) INT_MAX + 1, sealed, &slen),
                     NGX_OAUTH_TOO_LARGE);

    bad = aad;
    bad.account.data = NULL;
    assert_int_equal(test_seal(&kr, &bad, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);

    bad = aad;
    bad.field.len = (size_t) 0x80000000;
    assert_int_equal(test_seal(&kr, &bad, "x", sealed, &slen),
                     NGX_OAUTH_TOO_LARGE);

    /* a corrupted ring (bad active key id) is refused, not trusted */
    empty = kr;
    empty.keys[0].kid_len = 0;
    assert_int_equal(test_seal(&empty, &aad, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);
    empty.keys[0].kid_len = NGX_OAUTH_KID_MAX + 1;
    assert_int_equal(test_seal(&empty, &aad, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);
    empty.nkeys = NGX_OAUTH_KEYS_MAX + 1;
    assert_int_equal(test_seal(&empty, &aad, "x", sealed, &slen),
                     NGX_OAUTH_INVALID);

    assert_int_equal(test_seal(&kr, &aad, "x", sealed, &slen), NGX_OAUTH_OK);

    plen = 5;
    assert_int_equal(ngx_oauth_open(NULL, &aad, sealed, slen, out, &plen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(plen, 0);
    assert_int_equal(ngx_oauth_open(&kr, NULL, sealed, slen, out, &plen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_open(&kr, &aad, NULL, slen, out, &plen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_open(&kr, &aad, sealed, slen, NULL, &plen),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_open(&kr, &aad, sealed, slen, out, NULL),
                     NGX_OAUTH_INVALID);

    bad = aad;
    bad.owner.data = NULL;
    assert_int_equal(ngx_oauth_open(&kr, &bad, sealed, slen, out, &plen),
                     NGX_OAUTH_INVALID);

    ngx_oauth_keyring_wipe(&kr);
}


/* T49: one flipped bit anywhere makes the value unusable */

static void
test_tamper_every_bit(void **state)
{
    int                  rc;
    size_t               i, slen, plen;
    unsigned char        sealed[128], copy[128], out[128];
    unsigned             bit;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\nk2:" KEY_B_STD "\n");
    aad = test_aad("alice", "google", "a@example.com", "refresh");

    assert_int_equal(test_seal(&kr, &aad, "1//refresh-token", sealed, &slen),
                     NGX_OAUTH_OK);

    for (i = 0; i < slen; i++) {
        for (bit = 0; bit < 8; bit++) {
            memcpy(copy, sealed, slen);
            copy[i] ^= (unsigned char) (1u << bit);
            memset(out, 0xaa, sizeof(out));

            rc = ngx_oauth_open(&kr, &aad, copy, slen, out, &plen);

            assert_int_not_equal(rc, NGX_OAUTH_OK);
            assert_int_equal(plen, 0);

            if (i < 2) {
                /* magic, version */
                assert_int_equal(rc, NGX_OAUTH_INVALID);

            } else if (i < 5) {
                /*
                 * kid_len and the key id: an id not in the ring, or bad
                 * characters (a longer kid_len takes in nonce bytes)
                 */
                assert_true(rc == NGX_OAUTH_UNKNOWN_KEY
                            || rc == NGX_OAUTH_INVALID);

            } else {
                assert_int_equal(rc, NGX_OAUTH_DENIED);
                assert_true(test_all_zero(out, slen - 5 - 12 - 16));
            }
        }
    }

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_tamper_parts(void **state)
{
    size_t               slen, len;
    unsigned char        sealed[128], copy[128];
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("alice", "github", "1", "access");

    assert_int_equal(test_seal(&kr, &aad, "gho_secret", sealed, &slen),
                     NGX_OAUTH_OK);
    len = slen;

    /* ciphertext */
    memcpy(copy, sealed, len);
    copy[3 + 2 + 12] ^= 0x01;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_DENIED);

    /* tag, first and last byte */
    memcpy(copy, sealed, len);
    copy[len - 16] ^= 0x80;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_DENIED);
    memcpy(copy, sealed, len);
    copy[len - 1] ^= 0x01;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_DENIED);

    /* nonce */
    memcpy(copy, sealed, len);
    copy[3 + 2] ^= 0x01;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_DENIED);
    memcpy(copy, sealed, len);
    copy[3 + 2 + 11] ^= 0x40;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_DENIED);

    /* kid: another id not in the ring */
    memcpy(copy, sealed, len);
    copy[4] = '9';
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_UNKNOWN_KEY);

    /* kid: a byte outside the charset is malformed */
    memcpy(copy, sealed, len);
    copy[4] = '\n';
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_INVALID);

    /* magic and version */
    memcpy(copy, sealed, len);
    copy[0] = 's';
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_INVALID);
    memcpy(copy, sealed, len);
    copy[1] = 2;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_INVALID);
    memcpy(copy, sealed, len);
    copy[1] = 0;
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_INVALID);

    /* the untouched value still opens */
    memcpy(copy, sealed, len);
    test_open_expect(&kr, &aad, copy, len, NGX_OAUTH_OK);

    ngx_oauth_keyring_wipe(&kr);
}


/* the key id is authenticated: renaming it to another key fails */

static void
test_tamper_kid_same_key(void **state)
{
    size_t               slen;
    unsigned char        sealed[128];
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "ka:" KEY_A_B64 "\nkb:" KEY_A_B64 "\n");
    aad = test_aad("o", "p", "a", "access");

    assert_int_equal(test_seal(&kr, &aad, "token", sealed, &slen),
                     NGX_OAUTH_OK);
    test_open_expect(&kr, &aad, sealed, slen, NGX_OAUTH_OK);

    sealed[4] = 'b';
    test_open_expect(&kr, &aad, sealed, slen, NGX_OAUTH_DENIED);

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_truncated(void **state)
{
    int                  rc;
    size_t               i, slen, plen;
    unsigned char        sealed[128], out[128];
    unsigned char       *copy;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("o", "p", "a", "access");

    assert_int_equal(test_seal(&kr, &aad, "some-access-token", sealed, &slen),
                     NGX_OAUTH_OK);

    for (i = 0; i < slen; i++) {
        /* an exact-size heap copy: ASan catches any read past the end */
        copy = malloc(i ? i : 1);
        assert_non_null(copy);
        memcpy(copy, sealed, i);

        rc = ngx_oauth_open(&kr, &aad, copy, i, out, &plen);

        if (i < ngx_oauth_seal_size(2, 0)) {
            assert_int_equal(rc, NGX_OAUTH_INVALID);

        } else {
            assert_int_equal(rc, NGX_OAUTH_DENIED);
        }

        assert_int_equal(plen, 0);
        free(copy);
    }

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_oversized_garbage(void **state)
{
    int                  rc;
    size_t               i, len, slen, plen;
    unsigned char        sealed[256], big[4096], out[4096];
    ngx_oauth_str_t      kid;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("o", "p", "a", "access");

    assert_int_equal(test_seal(&kr, &aad, "token", sealed, &slen),
                     NGX_OAUTH_OK);

    /* extended by one byte, and by many */
    memcpy(big, sealed, slen);
    big[slen] = 0;
    test_open_expect(&kr, &aad, big, slen + 1, NGX_OAUTH_DENIED);
    memset(big + slen, 'A', sizeof(big) - slen);
    test_open_expect(&kr, &aad, big, sizeof(big), NGX_OAUTH_DENIED);

    /* kid_len past the end, kid_len 0, kid_len 255 */
    memcpy(big, sealed, slen);
    big[2] = 255;
    test_open_expect(&kr, &aad, big, slen, NGX_OAUTH_INVALID);
    test_open_expect(&kr, &aad, big, sizeof(big), NGX_OAUTH_INVALID);
    big[2] = 0;
    test_open_expect(&kr, &aad, big, slen, NGX_OAUTH_INVALID);
    big[2] = NGX_OAUTH_KID_MAX + 1;
    test_open_expect(&kr, &aad, big, sizeof(big), NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_sealed_kid(big, slen, &kid),
                     NGX_OAUTH_INVALID);
    assert_int_equal(kid.len, 0);
    assert_null(kid.data);
    assert_int_equal(ngx_oauth_sealed_kid(sealed, 2, &kid),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_sealed_kid(NULL, 0, &kid), NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_sealed_kid(sealed, slen, NULL),
                     NGX_OAUTH_INVALID);

    /* random garbage, with and without a valid header */
    for (i = 0; i < 2000; i++) {
        len = i % 200;
        assert_int_equal(ngx_oauth_random(big, len), NGX_OAUTH_OK);

        if (i % 2 && len >= 5) {
            memcpy(big, "S\001\002k1", 5);
        }

        rc = ngx_oauth_open(&kr, &aad, big, len, out, &plen);
        assert_int_not_equal(rc, NGX_OAUTH_OK);
        assert_int_equal(plen, 0);
    }

    ngx_oauth_keyring_wipe(&kr);
}


/* T50: the value is bound to owner, provider, account and field */

static void
test_aad_binding(void **state)
{
    size_t               slen;
    unsigned char        sealed[128];
    ngx_oauth_aad_t      aad, other;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("alice", "github", "42", "access");

    assert_int_equal(test_seal(&kr, &aad, "gho_token", sealed, &slen),
                     NGX_OAUTH_OK);
    test_open_expect(&kr, &aad, sealed, slen, NGX_OAUTH_OK);

    other = test_aad("bob", "github", "42", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    other = test_aad("alice", "gitlab", "42", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    other = test_aad("alice", "github", "43", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    other = test_aad("alice", "github", "42", "refresh");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    /* a prefix or an extension of a field is not the field */
    other = test_aad("alic", "github", "42", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);
    other = test_aad("alice", "github", "42", "access ");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_aad_ambiguity(void **state)
{
    size_t               slen;
    unsigned char        sealed[128];
    ngx_oauth_aad_t      aad, other;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");

    aad = test_aad("ab", "c", "x", "access");
    assert_int_equal(test_seal(&kr, &aad, "t", sealed, &slen), NGX_OAUTH_OK);
    test_open_expect(&kr, &aad, sealed, slen, NGX_OAUTH_OK);

    other = test_aad("a", "bc", "x", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    other = test_aad("abc", "", "x", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    /* the same across the last fields */
    aad = test_aad("o", "p", "acc", "ess");
    assert_int_equal(test_seal(&kr, &aad, "t", sealed, &slen), NGX_OAUTH_OK);
    other = test_aad("o", "p", "ac", "cess");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);
    other = test_aad("o", "p", "", "access");
    test_open_expect(&kr, &other, sealed, slen, NGX_OAUTH_DENIED);

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_unknown_key(void **state)
{
    size_t               slen;
    unsigned char        sealed[128];
    ngx_oauth_str_t      kid;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr, other;

    test_ring(&kr, "old:" KEY_A_B64 "\n");
    test_ring(&other, "new:" KEY_A_B64 "\n");
    aad = test_aad("o", "p", "a", "access");

    assert_int_equal(test_seal(&kr, &aad, "t", sealed, &slen), NGX_OAUTH_OK);

    /* same key bytes, another id: the id decides */
    test_open_expect(&other, &aad, sealed, slen, NGX_OAUTH_UNKNOWN_KEY);

    assert_int_equal(ngx_oauth_sealed_kid(sealed, slen, &kid), NGX_OAUTH_OK);
    assert_int_equal(kid.len, 3);
    assert_memory_equal(kid.data, "old", 3);

    ngx_oauth_keyring_wipe(&kr);
    ngx_oauth_keyring_wipe(&other);
}


/* T52: rotation: new writes under the new active key, old values open */

static void
test_rotation(void **state)
{
    size_t               slen1, slen2, plen;
    unsigned char        v1[128], v2[128], out[128];
    ngx_oauth_str_t      kid;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  r1, r2, r3;

    test_ring(&r1, "2024-01:" KEY_A_B64 "\n");
    test_ring(&r2, "2025-01:" KEY_B_URL "\n2024-01:" KEY_A_B64 "\n");
    test_ring(&r3, "2025-01:" KEY_B_STD "\n");
    aad = test_aad("o", "p", "a", "refresh");

    assert_int_equal(test_seal(&r1, &aad, "rt-1", v1, &slen1), NGX_OAUTH_OK);
    assert_int_equal(test_seal(&r2, &aad, "rt-2", v2, &slen2), NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_sealed_kid(v2, slen2, &kid), NGX_OAUTH_OK);
    assert_int_equal(kid.len, 7);
    assert_memory_equal(kid.data, "2025-01", 7);

    /* the old value opens under the secondary key of the new ring */
    assert_int_equal(ngx_oauth_open(&r2, &aad, v1, slen1, out, &plen),
                     NGX_OAUTH_OK);
    assert_int_equal(plen, 4);
    assert_memory_equal(out, "rt-1", 4);

    /* rewrap, then the old key can go */
    assert_int_equal(ngx_oauth_seal(&r2, &aad, out, plen, v1, &slen1),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_open(&r3, &aad, v1, slen1, out, &plen),
                     NGX_OAUTH_OK);
    assert_memory_equal(out, "rt-1", 4);
    assert_int_equal(ngx_oauth_open(&r3, &aad, v2, slen2, out, &plen),
                     NGX_OAUTH_OK);
    assert_memory_equal(out, "rt-2", 4);

    /* a ring that lost the new key: the new value is unknown, not corrupt */
    test_open_expect(&r1, &aad, v2, slen2, NGX_OAUTH_UNKNOWN_KEY);

    ngx_oauth_keyring_wipe(&r1);
    ngx_oauth_keyring_wipe(&r2);
    ngx_oauth_keyring_wipe(&r3);
}


static int
test_cmp_nonce(const void *a, const void *b)
{
    return memcmp(a, b, NGX_OAUTH_NONCE_LEN);
}


/* T51: 10^6 seals of one plaintext, no repeated nonce */

static void
test_nonce_unique(void **state)
{
    size_t               i, slen;
    unsigned char        sealed[64], first[64];
    unsigned char       *nonces;
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("o", "p", "a", "access");

    nonces = malloc((size_t) TEST_NSEALS * NGX_OAUTH_NONCE_LEN);
    assert_non_null(nonces);

    assert_int_equal(test_seal(&kr, &aad, "same", first, &slen),
                     NGX_OAUTH_OK);

    for (i = 0; i < TEST_NSEALS; i++) {
        assert_int_equal(test_seal(&kr, &aad, "same", sealed, &slen),
                         NGX_OAUTH_OK);
        memcpy(nonces + i * NGX_OAUTH_NONCE_LEN, sealed + 5,
               NGX_OAUTH_NONCE_LEN);

        /* same plaintext, same key: the ciphertext differs every time */
        assert_memory_not_equal(sealed + 5, first + 5, slen - 5);
    }

    qsort(nonces, TEST_NSEALS, NGX_OAUTH_NONCE_LEN, test_cmp_nonce);

    for (i = 1; i < TEST_NSEALS; i++) {
        assert_int_not_equal(memcmp(nonces + (i - 1) * NGX_OAUTH_NONCE_LEN,
                                    nonces + i * NGX_OAUTH_NONCE_LEN,
                                    NGX_OAUTH_NONCE_LEN),
                             0);
    }

    free(nonces);
    ngx_oauth_keyring_wipe(&kr);
}


/* T51: the generator fails: no seal, no token, nothing half-written */

static void
test_rng_failure(void **state)
{
    int                  rc;
    char                 token[NGX_OAUTH_STATE_LEN + 1];
    size_t               slen;
    unsigned char        sealed[128], buf[16];
    ngx_oauth_aad_t      aad;
    ngx_oauth_keyring_t  kr;

    test_ring(&kr, "k1:" KEY_A_B64 "\n");
    aad = test_aad("o", "p", "a", "access");

    memset(sealed, 0xaa, sizeof(sealed));
    memset(token, 'x', sizeof(token));
    slen = 99;

    test_rand_fail = 1;

    rc = test_seal(&kr, &aad, "secret", sealed, &slen);
    assert_int_equal(rc, NGX_OAUTH_ERROR);
    assert_int_equal(slen, 0);
    assert_true(test_all_zero(sealed, ngx_oauth_seal_size(2, 6)));

    assert_int_equal(ngx_oauth_random(buf, sizeof(buf)), NGX_OAUTH_ERROR);

    assert_int_equal(ngx_oauth_random_token(token), NGX_OAUTH_ERROR);
    assert_int_equal(token[0], '\0');

    test_rand_fail = 0;

    assert_int_equal(test_seal(&kr, &aad, "secret", sealed, &slen),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_random_token(token), NGX_OAUTH_OK);

    ngx_oauth_keyring_wipe(&kr);
}


/* a failed assertion must not leave the generator broken for the rest */

static int
test_rng_teardown(void **state)
{
    test_rand_fail = 0;

    return 0;
}


/* random, tokens, PKCE, sha256 */

static void
test_random(void **state)
{
    unsigned char  a[64], b[64];

    assert_int_equal(ngx_oauth_random(NULL, 0), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_random(NULL, 1), NGX_OAUTH_INVALID);

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(ngx_oauth_random(a, sizeof(a)), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_random(b, sizeof(b)), NGX_OAUTH_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_false(test_all_zero(a, sizeof(a)));
}


static void
test_random_token(void **state)
{
    char    a[NGX_OAUTH_STATE_LEN + 1], b[NGX_OAUTH_STATE_LEN + 1];
    size_t  i;

    assert_int_equal(ngx_oauth_random_token(NULL), NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_random_token(a), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_random_token(b), NGX_OAUTH_OK);

    assert_int_equal(strlen(a), 43);
    assert_int_equal(strlen(b), 43);
    assert_string_not_equal(a, b);

    for (i = 0; i < 43; i++) {
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "abcdefghijklmnopqrstuvwxyz0123456789-_",
                               a[i]));
    }
}


static void
test_pkce(void **state)
{
    char         out[NGX_OAUTH_CHALLENGE_LEN + 1], v[130];
    const char  *verifier;

    /* RFC 7636 appendix B */
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    assert_int_equal(ngx_oauth_pkce_challenge(verifier, strlen(verifier),
                                              out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");

    /* RFC 7636 4.1: 43..128 unreserved characters */
    memset(v, 'a', sizeof(v));
    assert_int_equal(ngx_oauth_pkce_challenge(v, 42, out), NGX_OAUTH_INVALID);
    assert_int_equal(out[0], '\0');
    assert_int_equal(ngx_oauth_pkce_challenge(v, 43, out), NGX_OAUTH_OK);
    assert_int_equal(strlen(out), 43);
    assert_int_equal(ngx_oauth_pkce_challenge(v, 128, out), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pkce_challenge(v, 129, out),
                     NGX_OAUTH_INVALID);

    memcpy(v, "-._~", 4);
    assert_int_equal(ngx_oauth_pkce_challenge(v, 43, out), NGX_OAUTH_OK);
    v[10] = '+';
    assert_int_equal(ngx_oauth_pkce_challenge(v, 43, out), NGX_OAUTH_INVALID);
    v[10] = '\0';
    assert_int_equal(ngx_oauth_pkce_challenge(v, 43, out), NGX_OAUTH_INVALID);
    v[10] = '=';
    assert_int_equal(ngx_oauth_pkce_challenge(v, 43, out), NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_pkce_challenge(NULL, 43, out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_pkce_challenge(verifier, 43, NULL),
                     NGX_OAUTH_INVALID);

    /* a random verifier round trip: the challenge is 43 chars */
    assert_int_equal(ngx_oauth_random_token(v), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_pkce_challenge(v, strlen(v), out),
                     NGX_OAUTH_OK);
    assert_int_equal(strlen(out), NGX_OAUTH_CHALLENGE_LEN);
}


static void
test_hex_encode(void **state)
{
    char  out[9];

    static const unsigned char  in[] = { 0x00, 0x0f, 0xa5, 0xff };

    memset(out, 'x', sizeof(out));
    ngx_oauth_hex_encode(in, sizeof(in), out);

    assert_memory_equal(out, "000fa5ff", 8);
    assert_int_equal(out[8], 'x');      /* no NUL: the caller ends it */
}


static void
test_sha256(void **state)
{
    unsigned char  out[NGX_OAUTH_SHA256_LEN];

    /* FIPS 180-2 appendix B.1 */
    static const unsigned char  abc[] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
        0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
        0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
    };

    static const unsigned char  empty[] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
        0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
        0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55
    };

    assert_int_equal(ngx_oauth_sha256((const unsigned char *) "abc", 3, out),
                     NGX_OAUTH_OK);
    assert_memory_equal(out, abc, sizeof(abc));

    assert_int_equal(ngx_oauth_sha256((const unsigned char *) "", 0, out),
                     NGX_OAUTH_OK);
    assert_memory_equal(out, empty, sizeof(empty));

    assert_int_equal(ngx_oauth_sha256(NULL, 0, out), NGX_OAUTH_OK);
    assert_memory_equal(out, empty, sizeof(empty));

    assert_int_equal(ngx_oauth_sha256(NULL, 1, out), NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_sha256((const unsigned char *) "a", 1, NULL),
                     NGX_OAUTH_INVALID);
}


/* base64 */

typedef struct {
    const char  *plain;
    const char  *std;
    const char  *url;
} test_b64_vector_t;


/* RFC 4648 section 10 */
static const test_b64_vector_t  test_rfc4648[] = {
    { "", "", "" },
    { "f", "Zg==", "Zg" },
    { "fo", "Zm8=", "Zm8" },
    { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" },
    { "fooba", "Zm9vYmE=", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy", "Zm9vYmFy" }
};


static void
test_base64_encode(void **state)
{
    char           out[64];
    size_t         i, n, len;
    unsigned char  raw[3];

    for (i = 0; i < sizeof(test_rfc4648) / sizeof(test_rfc4648[0]); i++) {
        len = strlen(test_rfc4648[i].plain);

        memset(out, 'x', sizeof(out));
        n = ngx_oauth_base64url_encode(
                (const unsigned char *) test_rfc4648[i].plain, len, out);
        assert_int_equal(n, strlen(test_rfc4648[i].url));
        assert_int_equal(n, ngx_oauth_base64url_encoded_len(len));
        assert_string_equal(out, test_rfc4648[i].url);

        memset(out, 'x', sizeof(out));
        n = ngx_oauth_base64_encode(
                (const unsigned char *) test_rfc4648[i].plain, len, out);
        assert_int_equal(n, strlen(test_rfc4648[i].std));
        assert_int_equal(n, ngx_oauth_base64_encoded_len(len));
        assert_string_equal(out, test_rfc4648[i].std);
    }

    /* the two alphabets differ in 62 and 63 only */
    raw[0] = 0xfb;
    raw[1] = 0xff;
    raw[2] = 0xbf;

    assert_int_equal(ngx_oauth_base64_encode(raw, 3, out), 4);
    assert_string_equal(out, "+/+/");
    assert_int_equal(ngx_oauth_base64url_encode(raw, 3, out), 4);
    assert_string_equal(out, "-_-_");
    assert_int_equal(ngx_oauth_base64_encode(raw, 2, out), 4);
    assert_string_equal(out, "+/8=");
    assert_int_equal(ngx_oauth_base64url_encode(raw, 2, out), 3);
    assert_string_equal(out, "-_8");

    assert_int_equal(ngx_oauth_base64url_encode(NULL, 0, out), 0);
    assert_string_equal(out, "");
}


static void
test_base64_decode(void **state)
{
    size_t         i, n, len;
    unsigned char  out[64];

    for (i = 0; i < sizeof(test_rfc4648) / sizeof(test_rfc4648[0]); i++) {
        len = strlen(test_rfc4648[i].plain);

        n = 99;
        assert_int_equal(ngx_oauth_base64_decode(test_rfc4648[i].std,
                                                 strlen(test_rfc4648[i].std),
                                                 out, &n),
                         NGX_OAUTH_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, test_rfc4648[i].plain, len);

        n = 99;
        assert_int_equal(ngx_oauth_base64_decode(test_rfc4648[i].url,
                                                 strlen(test_rfc4648[i].url),
                                                 out, &n),
                         NGX_OAUTH_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, test_rfc4648[i].plain, len);
    }

    /* both alphabets, even mixed */
    assert_int_equal(ngx_oauth_base64_decode("+/-_", 4, out, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);

    assert_int_equal(ngx_oauth_base64_decode(NULL, 0, NULL, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 0);
}


static void
test_base64_decode_invalid(void **state)
{
    size_t         i, n;
    unsigned char  out[64];

    static const char  *bad[] = {
        "Z",             /* a length of 4n+1 */
        "Zm9vY",
        "Zg=",           /* padding without a full group */
        "Zg===",
        "Z===",
        "====",
        "=",
        "==",
        "=Zg=",          /* padding not at the end */
        "Zm=8",
        "Zm8=Zm8=",
        "Zm9v Zg",       /* no whitespace */
        " Zm9v",
        "Zm9v\n",
        "Zm9v\r\n",
        "Zm9v\t",
        "Zm*v",          /* other characters */
        "Zm9v.",
        "Zm9v!",
        "Zm9\xc3\xa9",
        "Zh==",          /* nonzero unused bits: not canonical */
        "Zm9=",
        "Zm9vYh",
        "Zm9vYmF"
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 99;
        assert_int_equal(ngx_oauth_base64_decode(bad[i], strlen(bad[i]), out,
                                                 &n),
                         NGX_OAUTH_INVALID);
        assert_int_equal(n, 0);
    }

    /* an embedded NUL */
    assert_int_equal(ngx_oauth_base64_decode("Zm\0v", 4, out, &n),
                     NGX_OAUTH_INVALID);

    /* bad arguments */
    assert_int_equal(ngx_oauth_base64_decode("Zm9v", 4, out, NULL),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_base64_decode(NULL, 4, out, &n),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_base64_decode("Zm9v", 4, NULL, &n),
                     NGX_OAUTH_INVALID);
}


static void
test_base64_roundtrip(void **state)
{
    char           enc[512];
    size_t         len, n, m;
    unsigned char  raw[256], dec[512];

    for (len = 0; len <= sizeof(raw); len++) {
        assert_int_equal(ngx_oauth_random(raw, len), NGX_OAUTH_OK);

        n = ngx_oauth_base64url_encode(raw, len, enc);
        assert_true(ngx_oauth_base64_decoded_max(n) >= len);
        assert_int_equal(ngx_oauth_base64_decode(enc, n, dec, &m),
                         NGX_OAUTH_OK);
        assert_int_equal(m, len);
        assert_memory_equal(dec, raw, len);

        n = ngx_oauth_base64_encode(raw, len, enc);
        assert_int_equal(n % 4, 0);
        assert_int_equal(ngx_oauth_base64_decode(enc, n, dec, &m),
                         NGX_OAUTH_OK);
        assert_int_equal(m, len);
        assert_memory_equal(dec, raw, len);
    }
}


/* equal and wipe */

static void
test_equal_wipe(void **state)
{
    unsigned char  a[32], b[32];

    memset(a, 7, sizeof(a));
    memset(b, 7, sizeof(b));

    assert_int_equal(ngx_oauth_equal(a, b, sizeof(a)), 1);
    assert_int_equal(ngx_oauth_equal(a, b, 0), 1);
    assert_int_equal(ngx_oauth_equal(NULL, NULL, 0), 1);

    b[31] = 8;
    assert_int_equal(ngx_oauth_equal(a, b, sizeof(a)), 0);
    assert_int_equal(ngx_oauth_equal(a, b, 31), 1);
    b[0] = 8;
    assert_int_equal(ngx_oauth_equal(a, b, 1), 0);

    ngx_oauth_wipe(a, sizeof(a));
    assert_true(test_all_zero(a, sizeof(a)));
    ngx_oauth_wipe(NULL, 10);
    ngx_oauth_wipe(b, 0);
    assert_int_equal(b[0], 8);
}


/* keyring parsing */

static int
test_parse(ngx_oauth_keyring_t *kr, const char *text, char *err,
    size_t errlen)
{
    return ngx_oauth_keyring_parse(kr, (const unsigned char *) text,
                                   strlen(text), err, errlen);
}


/* a failed parse leaves an empty ring and a message without the key */

static void
test_parse_fails(const char *text, const char *line, const char *secret)
{
    char                 err[256];
    ngx_oauth_keyring_t  kr;

    memset(&kr, 0x55, sizeof(kr));

    assert_int_not_equal(test_parse(&kr, text, err, sizeof(err)),
                         NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 0);
    assert_true(test_all_zero((unsigned char *) &kr, sizeof(kr)));
    assert_true(strlen(err) > 0);

    if (line != NULL) {
        assert_non_null(strstr(err, line));
    }

    if (secret != NULL) {
        assert_null(strstr(err, secret));
    }
}


static void
test_keyring_parse(void **state)
{
    char                    err[256];
    ngx_oauth_keyring_t     kr;
    const ngx_oauth_key_t  *k;

    static const unsigned char  key_a[32] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    };

    /* one key, no newline at the end */
    assert_int_equal(test_parse(&kr, "k1:" KEY_A_B64, err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 1);
    assert_int_equal(kr.keys[0].kid_len, 2);
    assert_string_equal(kr.keys[0].kid, "k1");
    assert_memory_equal(kr.keys[0].key, key_a, 32);

    /* comments, blank lines, CRLF, trailing blanks; the first is active */
    assert_int_equal(test_parse(&kr,
                                "# keys of example.com\r\n"
                                "\r\n"
                                "   \t\n"
                                "2025.B_x-1:" KEY_B_URL " \t\r\n"
                                "  # old key\n"
                                "2024:" KEY_A_B64 "\r\n"
                                "\n",
                                err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 2);
    assert_string_equal(kr.keys[0].kid, "2025.B_x-1");
    assert_string_equal(kr.keys[1].kid, "2024");
    assert_memory_equal(kr.keys[1].key, key_a, 32);
    assert_int_equal(kr.keys[0].key[0], 0xe0);
    assert_int_equal(kr.keys[0].key[31], 0xff);

    k = ngx_oauth_keyring_find(&kr, (const unsigned char *) "2024", 4);
    assert_ptr_equal(k, &kr.keys[1]);
    k = ngx_oauth_keyring_find(&kr, (const unsigned char *) "2025.B_x-1", 10);
    assert_ptr_equal(k, &kr.keys[0]);
    assert_null(ngx_oauth_keyring_find(&kr, (const unsigned char *) "202", 3));
    assert_null(ngx_oauth_keyring_find(&kr, (const unsigned char *) "20245",
                                       5));
    assert_null(ngx_oauth_keyring_find(&kr, (const unsigned char *) "x", 0));
    assert_null(ngx_oauth_keyring_find(&kr, NULL, 4));
    assert_null(ngx_oauth_keyring_find(NULL, (const unsigned char *) "2024",
                                       4));

    /* the standard alphabet and the url-safe one give the same key */
    assert_int_equal(test_parse(&kr, "a:" KEY_B_STD "\nb:" KEY_B_URL "\n",
                                err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_memory_equal(kr.keys[0].key, kr.keys[1].key, 32);

    /* padding is optional */
    assert_int_equal(test_parse(&kr, "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
                                "GBkaGxwdHh8", err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_memory_equal(kr.keys[0].key, key_a, 32);

    /* a 32-character key id */
    assert_int_equal(test_parse(&kr, "abcdefghijklmnopqrstuvwxyz012345:"
                                KEY_A_B64, err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.keys[0].kid_len, 32);

    /* 16 keys */
    assert_int_equal(test_parse(&kr,
                                "a:" KEY_A_B64 "\nb:" KEY_A_B64 "\n"
                                "c:" KEY_A_B64 "\nd:" KEY_A_B64 "\n"
                                "e:" KEY_A_B64 "\nf:" KEY_A_B64 "\n"
                                "g:" KEY_A_B64 "\nh:" KEY_A_B64 "\n"
                                "i:" KEY_A_B64 "\nj:" KEY_A_B64 "\n"
                                "k:" KEY_A_B64 "\nl:" KEY_A_B64 "\n"
                                "m:" KEY_A_B64 "\nn:" KEY_A_B64 "\n"
                                "o:" KEY_A_B64 "\np:" KEY_A_B64 "\n",
                                err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 16);

    /* no error buffer at all */
    assert_int_equal(ngx_oauth_keyring_parse(&kr, (const unsigned char *) "",
                                             0, NULL, 0),
                     NGX_OAUTH_INVALID);

    ngx_oauth_keyring_wipe(&kr);
    assert_int_equal(kr.nkeys, 0);
    assert_true(test_all_zero((unsigned char *) &kr, sizeof(kr)));
    ngx_oauth_keyring_wipe(NULL);
}


static void
test_keyring_parse_errors(void **state)
{
    char                 err[256];
    ngx_oauth_keyring_t  kr;

    /* T48: empty, comment-only */
    test_parse_fails("", "no key", NULL);
    test_parse_fails("\n\n", "no key", NULL);
    test_parse_fails("# only a comment\n  # another\r\n", "no key", NULL);

    assert_int_equal(ngx_oauth_keyring_parse(&kr, NULL, 0, err, sizeof(err)),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_keyring_parse(&kr, NULL, 5, err, sizeof(err)),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_keyring_parse(NULL,
                                             (const unsigned char *) "a", 1,
                                             err, sizeof(err)),
                     NGX_OAUTH_INVALID);

    /* T48: 31, 33 and 64 bytes */
    test_parse_fails("k:" KEY_31_B64 "\n", "line 1:", KEY_31_B64);
    test_parse_fails("# c\nk:" KEY_33_B64 "\n", "line 2:", KEY_33_B64);
    test_parse_fails("k:" KEY_64_B64 "\n", "line 1:", KEY_64_B64);
    test_parse_fails("k:\n", "line 1:", NULL);

    /* bad base64, the key is never echoed */
    test_parse_fails("k1:" KEY_A_B64 "\n\nk2:4OHi4+Tl5ufo6err7O3u7/Dx8vP0*fb3"
                     "+Pn6+/z9/v8=\n", "line 3:", "4OHi4+Tl5ufo");
    test_parse_fails("k: " KEY_A_B64 "\n", "line 1:", "AAECAwQF");
    test_parse_fails("k:" KEY_A_B64 " x\n", "line 1:", "AAECAwQF");
    test_parse_fails("k:" KEY_A_B64 "=\n", "line 1:", "AAECAwQF");

    /* hex instead of base64: 64 characters */
    test_parse_fails("k:000102030405060708090a0b0c0d0e0f"
                     "101112131415161718191a1b1c1d1e1f\n", "line 1:",
                     "0001020304");

    /* bad key ids */
    test_parse_fails(":" KEY_A_B64 "\n", "line 1:", "AAECAwQF");
    test_parse_fails("k 1:" KEY_A_B64 "\n", "line 1:", "AAECAwQF");
    test_parse_fails("k/1:" KEY_A_B64 "\n", "line 1:", "AAECAwQF");
    test_parse_fails("k\"1:" KEY_A_B64 "\n", "line 1:", "AAECAwQF");
    test_parse_fails("abcdefghijklmnopqrstuvwxyz0123456:" KEY_A_B64 "\n",
                     "line 1:", "AAECAwQF");
    test_parse_fails("k\xc3\xa9:" KEY_A_B64 "\n", "line 1:", "AAECAwQF");

    /* no colon: a bare key is refused and not echoed */
    test_parse_fails(KEY_A_B64 "\n", "line 1:", "AAECAwQF");

    /* duplicated key id */
    test_parse_fails("k1:" KEY_A_B64 "\nk2:" KEY_B_STD "\nk1:" KEY_B_URL "\n",
                     "line 3: duplicate key id \"k1\"", "4OHi4");

    /* 17 keys */
    test_parse_fails("a:" KEY_A_B64 "\nb:" KEY_A_B64 "\n"
                     "c:" KEY_A_B64 "\nd:" KEY_A_B64 "\n"
                     "e:" KEY_A_B64 "\nf:" KEY_A_B64 "\n"
                     "g:" KEY_A_B64 "\nh:" KEY_A_B64 "\n"
                     "i:" KEY_A_B64 "\nj:" KEY_A_B64 "\n"
                     "k:" KEY_A_B64 "\nl:" KEY_A_B64 "\n"
                     "m:" KEY_A_B64 "\nn:" KEY_A_B64 "\n"
                     "o:" KEY_A_B64 "\np:" KEY_A_B64 "\n"
                     "q:" KEY_A_B64 "\n",
                     "line 17:", "AAECAwQF");

    /* a small error buffer is truncated, not overrun */
    memset(err, 'x', sizeof(err));
    assert_int_equal(ngx_oauth_keyring_parse(&kr,
                                             (const unsigned char *) "bad", 3,
                                             err, 8),
                     NGX_OAUTH_INVALID);
    assert_int_equal(strlen(err), 7);
    assert_int_equal(err[8], 'x');

    /* an embedded NUL in a key line */
    assert_int_equal(ngx_oauth_keyring_parse(&kr,
                                             (const unsigned char *)
                                             "k\0:" KEY_A_B64,
                                             sizeof("k\0:" KEY_A_B64) - 1,
                                             err, sizeof(err)),
                     NGX_OAUTH_INVALID);
}


/* keyring files (T48) */

static void
test_keyring_load(void **state)
{
    int                  rc;
    char                 path[512], err[512], text[200];
    ngx_oauth_keyring_t  kr;

    snprintf(text, sizeof(text), "k2:%s\r\nk1:%s\r\n", KEY_B_STD, KEY_A_B64);

    assert_int_equal(test_write_file("good", text, strlen(text), 0600, path,
                                     sizeof(path)),
                     0);
    assert_int_equal(ngx_oauth_keyring_load(&kr, path, err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 2);
    assert_string_equal(kr.keys[0].kid, "k2");
    assert_string_equal(kr.keys[1].kid, "k1");

    assert_int_equal(test_write_file("good0400", text, strlen(text), 0400,
                                     path, sizeof(path)),
                     0);
    assert_int_equal(ngx_oauth_keyring_load(&kr, path, err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 2);

    /* a symlink to a good file is followed */
    snprintf(text, sizeof(text), "%s/good", test_dir);
    snprintf(path, sizeof(path), "%s/link-good", test_dir);
    assert_int_equal(symlink(text, path), 0);
    assert_int_equal(ngx_oauth_keyring_load(&kr, path, err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 2);

    /* unreadable: only root gets past the kernel */
    assert_int_equal(test_write_file("noread", "k:" KEY_A_B64, 46, 0200,
                                     path, sizeof(path)),
                     0);
    rc = ngx_oauth_keyring_load(&kr, path, err, sizeof(err));

    if (geteuid() == 0) {
        assert_int_equal(rc, NGX_OAUTH_OK);

    } else {
        assert_int_equal(rc, NGX_OAUTH_ERROR);
        assert_non_null(strstr(err, "cannot open"));
    }

    ngx_oauth_keyring_wipe(&kr);
}


static void
test_load_fails(const char *path, int expect, const char *msg)
{
    char                 err[512];
    ngx_oauth_keyring_t  kr;

    memset(&kr, 0x55, sizeof(kr));

    assert_int_equal(ngx_oauth_keyring_load(&kr, path, err, sizeof(err)),
                     expect);
    assert_int_equal(kr.nkeys, 0);
    assert_true(test_all_zero((unsigned char *) &kr, sizeof(kr)));

    if (msg != NULL) {
        assert_non_null(strstr(err, msg));
    }

    /* the path is named; no key material ever is */
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "AAECAwQF"));
    assert_null(strstr(err, "4OHi4"));
}


static void
test_keyring_load_errors(void **state)
{
    char                 path[512], link[512], err[512], *big;
    size_t               i, len;
    ngx_oauth_keyring_t  kr;

    static const mode_t  modes[] = {
        0640, 0604, 0620, 0602, 0644, 0660, 0666, 0610, 0601, 0740
    };

    /* T48: group or others may read or write */
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        assert_int_equal(test_write_file("perm", "k:" KEY_A_B64 "\n", 47,
                                         modes[i], path, sizeof(path)),
                         0);
        test_load_fails(path, NGX_OAUTH_INVALID, "group or others");
    }

    /* missing */
    snprintf(path, sizeof(path), "%s/missing", test_dir);
    test_load_fails(path, NGX_OAUTH_NOT_FOUND, "cannot open");

    /* a directory */
    snprintf(path, sizeof(path), "%s/dir", test_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    test_load_fails(path, NGX_OAUTH_INVALID, "not a regular file");

    /* a symlink to /dev/zero, and /dev/null itself */
    snprintf(link, sizeof(link), "%s/zero", test_dir);
    assert_int_equal(symlink("/dev/zero", link), 0);
    test_load_fails(link, NGX_OAUTH_INVALID, "not a regular file");
    test_load_fails("/dev/null", NGX_OAUTH_INVALID, "not a regular file");

    /* a FIFO must neither hang nor be read */
    snprintf(path, sizeof(path), "%s/fifo", test_dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    test_load_fails(path, NGX_OAUTH_INVALID, "not a regular file");

    /* empty and comment-only files */
    assert_int_equal(test_write_file("empty", "", 0, 0600, path,
                                     sizeof(path)),
                     0);
    test_load_fails(path, NGX_OAUTH_INVALID, "no key");

    assert_int_equal(test_write_file("comment", "# nothing\n", 10, 0600, path,
                                     sizeof(path)),
                     0);
    test_load_fails(path, NGX_OAUTH_INVALID, "no key");

    /* a short key on line 2 */
    assert_int_equal(test_write_file("short",
                                     "# c\r\nk:" KEY_31_B64 "\r\n",
                                     sizeof("# c\r\nk:" KEY_31_B64 "\r\n")
                                     - 1, 0600, path, sizeof(path)),
                     0);
    test_load_fails(path, NGX_OAUTH_INVALID, "line 2:");

    /* larger than 64 KiB, even when all but the key is comment */
    len = 65537;
    big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    memcpy(big, "k:" KEY_A_B64 "\n", 47);
    big[len - 1] = '\n';
    assert_int_equal(test_write_file("big", big, len, 0600, path,
                                     sizeof(path)),
                     0);
    test_load_fails(path, NGX_OAUTH_TOO_LARGE, "larger than");

    /* exactly 64 KiB is fine */
    big[65535] = '\n';
    assert_int_equal(test_write_file("big64", big, 65536, 0600, path,
                                     sizeof(path)),
                     0);
    assert_int_equal(ngx_oauth_keyring_load(&kr, path, err, sizeof(err)),
                     NGX_OAUTH_OK);
    assert_int_equal(kr.nkeys, 1);
    ngx_oauth_keyring_wipe(&kr);

    free(big);

    /* bad arguments */
    assert_int_equal(ngx_oauth_keyring_load(&kr, NULL, err, sizeof(err)),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_keyring_load(NULL, path, err, sizeof(err)),
                     NGX_OAUTH_INVALID);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_seal_roundtrip),
        cmocka_unit_test(test_seal_empty_aad),
        cmocka_unit_test(test_seal_bad_args),
        cmocka_unit_test(test_tamper_every_bit),
        cmocka_unit_test(test_tamper_parts),
        cmocka_unit_test(test_tamper_kid_same_key),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_oversized_garbage),
        cmocka_unit_test(test_aad_binding),
        cmocka_unit_test(test_aad_ambiguity),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_nonce_unique),
        cmocka_unit_test_teardown(test_rng_failure, test_rng_teardown),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_token),
        cmocka_unit_test(test_pkce),
        cmocka_unit_test(test_hex_encode),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_base64_encode),
        cmocka_unit_test(test_base64_decode),
        cmocka_unit_test(test_base64_decode_invalid),
        cmocka_unit_test(test_base64_roundtrip),
        cmocka_unit_test(test_equal_wipe),
        cmocka_unit_test(test_keyring_parse),
        cmocka_unit_test(test_keyring_parse_errors),
        cmocka_unit_test(test_keyring_load),
        cmocka_unit_test(test_keyring_load_errors),
    };

    return cmocka_run_group_tests(tests, test_group_setup,
                                  test_group_teardown);
}
