
/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_oauth_crypto.h"


#define NGX_OAUTH_SEAL_MAGIC      'S'
#define NGX_OAUTH_KEYFILE_MAX     65536

/* 32 bytes are 43 characters of base64 unpadded, 44 padded */
#define NGX_OAUTH_KEY_B64_MAX     44
#define NGX_OAUTH_KEY_B64_BUF                                                \
    ngx_oauth_base64_decoded_max(NGX_OAUTH_KEY_B64_MAX)

#define NGX_OAUTH_VERIFIER_MIN    43
#define NGX_OAUTH_VERIFIER_MAX    128

/*
 * Associated data fields are length-prefixed with 4 bytes; the cap also
 * keeps every length within the int that EVP takes.
 */
#define NGX_OAUTH_AAD_FIELD_MAX   0x7fffffff


typedef struct {
    const unsigned char  *header;
    size_t                header_len;
    const unsigned char  *kid;
    size_t                kid_len;
    const unsigned char  *nonce;
    const unsigned char  *cipher;
    size_t                cipher_len;
    const unsigned char  *tag;
} ngx_oauth_sealed_t;


static int ngx_oauth_sealed_parse(const unsigned char *p, size_t len,
    ngx_oauth_sealed_t *s);
static int ngx_oauth_aad_check(const ngx_oauth_aad_t *aad);
static int ngx_oauth_gcm_start(int enc, const ngx_oauth_key_t *key,
    const unsigned char *nonce, const unsigned char *header,
    size_t header_len, const ngx_oauth_aad_t *aad, EVP_CIPHER_CTX **ctx);
static int ngx_oauth_keyfile_check(int fd, const char *path, char *err,
    size_t errlen);
static int ngx_oauth_keyfile_read(int fd, const char *path,
    unsigned char *buf, size_t *len, char *err, size_t errlen);
static int ngx_oauth_aad_update(EVP_CIPHER_CTX *ctx,
    const unsigned char *header, size_t header_len,
    const ngx_oauth_aad_t *aad);
static int ngx_oauth_aad_field(EVP_CIPHER_CTX *ctx,
    const ngx_oauth_str_t *field);
static int ngx_oauth_keyring_line(ngx_oauth_keyring_t *kr,
    const unsigned char *p, size_t len, size_t line, char *err,
    size_t errlen);
static int ngx_oauth_kid_valid(const unsigned char *kid, size_t len);
static int ngx_oauth_base64_value(unsigned char c);
static size_t ngx_oauth_base64_encode_internal(const unsigned char *src,
    size_t len, char *out, const char *alphabet, int pad);
static void ngx_oauth_error(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 3, 4)))
#endif
    ;


static const char  ngx_oauth_base64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char  ngx_oauth_base64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


int
ngx_oauth_keyring_parse(ngx_oauth_keyring_t *kr, const unsigned char *text,
    size_t len, char *err, size_t errlen)
{
    int                   rc;
    size_t                line;
    const unsigned char  *p, *end, *eol, *last, *next;

    ngx_oauth_error(err, errlen, "%s", "");

    if (kr == NULL || (text == NULL && len != 0)) {
        ngx_oauth_error(err, errlen, "no key ring text");
        return NGX_OAUTH_INVALID;
    }

    /* a ring that failed to parse must hold no key at all */
    ngx_oauth_keyring_wipe(kr);

    rc = NGX_OAUTH_OK;
    line = 0;

    /* text may be NULL when len is 0: no pointer arithmetic on it then */
    p = (len != 0) ? text : NULL;
    end = (len != 0) ? text + len : NULL;

    while (p != end) {
        line++;

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            eol = end;
            next = end;

        } else {
            next = eol + 1;
        }

        /* blank edges are tolerated, "\r\n" included */

        while (p < eol && (*p == ' ' || *p == '\t')) {
            p++;
        }

        last = eol;
        while (last > p
               && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'))
        {
            last--;
        }

        if (last != p && *p != '#') {
            rc = ngx_oauth_keyring_line(kr, p, last - p, line, err, errlen);
            if (rc != NGX_OAUTH_OK) {
                goto failed;
            }
        }

        p = next;
    }

    if (kr->nkeys == 0) {
        ngx_oauth_error(err, errlen, "no key found: expected lines of "
                        "KID:BASE64 (openssl rand -base64 32)");
        rc = NGX_OAUTH_INVALID;
        goto failed;
    }

    return NGX_OAUTH_OK;

failed:

    ngx_oauth_keyring_wipe(kr);

    return rc;
}


static int
ngx_oauth_keyring_line(ngx_oauth_keyring_t *kr, const unsigned char *p,
    size_t len, size_t line, char *err, size_t errlen)
{
    int                   rc;
    size_t                kid_len, b64_len, n;
    unsigned char         buf[NGX_OAUTH_KEY_B64_BUF];
    ngx_oauth_key_t      *key;
    const unsigned char  *colon;

    n = 0;
    rc = NGX_OAUTH_INVALID;

    colon = memchr(p, ':', len);
    if (colon == NULL) {
        ngx_oauth_error(err, errlen, "line %zu: expected KID:BASE64", line);
        goto done;
    }

    kid_len = colon - p;
    b64_len = len - kid_len - 1;

    if (!ngx_oauth_kid_valid(p, kid_len)) {
        ngx_oauth_error(err, errlen, "line %zu: key id must be 1 to %d "
                        "characters of A-Z a-z 0-9 . _ -", line,
                        NGX_OAUTH_KID_MAX);
        goto done;
    }

    /* the key id passed the charset check: it is safe to print */

    if (ngx_oauth_keyring_find(kr, p, kid_len) != NULL) {
        ngx_oauth_error(err, errlen, "line %zu: duplicate key id \"%.*s\"",
                        line, (int) kid_len, (const char *) p);
        goto done;
    }

    if (kr->nkeys == NGX_OAUTH_KEYS_MAX) {
        ngx_oauth_error(err, errlen, "line %zu: more than %d keys", line,
                        NGX_OAUTH_KEYS_MAX);
        goto done;
    }

    /* too long to be 32 bytes: not worth decoding */

    if (b64_len <= NGX_OAUTH_KEY_B64_MAX) {
        if (ngx_oauth_base64_decode((const char *) colon + 1, b64_len, buf,
                                    &n)
            != NGX_OAUTH_OK)
        {
            ngx_oauth_error(err, errlen, "line %zu: key is not valid base64",
                            line);
            goto done;
        }
    }

    if (b64_len > NGX_OAUTH_KEY_B64_MAX || n != NGX_OAUTH_KEY_LEN) {
        ngx_oauth_error(err, errlen, "line %zu: key must be %d bytes of "
                        "base64 (openssl rand -base64 32)", line,
                        NGX_OAUTH_KEY_LEN);
        goto done;
    }

    key = &kr->keys[kr->nkeys++];

    key->kid_len = kid_len;
    memcpy(key->kid, p, kid_len);
    key->kid[kid_len] = '\0';
    memcpy(key->key, buf, NGX_OAUTH_KEY_LEN);

    rc = NGX_OAUTH_OK;

done:

    ngx_oauth_wipe(buf, sizeof(buf));

    return rc;
}


/*
 * Keeps the pages that hold the keys out of core dumps (a crashed worker's
 * core is often readable by more people than the key file) and, where the
 * memlock limit allows, out of swap.  Both are best effort, so their
 * results are deliberately ignored: a refusal leaves the keys as usable
 * and as exposed as any other memory.  The pages around the keyring may
 * hold other data; keeping those out of a core as well costs nothing.
 */

static void
ngx_oauth_keyring_protect(ngx_oauth_keyring_t *kr)
{
    long       ps;
    uintptr_t  start, end;

    ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) {
        return;
    }

    start = (uintptr_t) kr & ~((uintptr_t) ps - 1);
    end = ((uintptr_t) kr + sizeof(ngx_oauth_keyring_t) + ps - 1)
          & ~((uintptr_t) ps - 1);

#ifdef MADV_DONTDUMP
    (void) madvise((void *) start, end - start, MADV_DONTDUMP);
#endif

    (void) mlock((void *) start, end - start);
}


int
ngx_oauth_keyring_load(ngx_oauth_keyring_t *kr, const char *path,
    char *err, size_t errlen)
{
    int             fd, rc, e;
    char            msg[256];
    size_t          len;
    unsigned char  *buf;

    fd = -1;
    buf = NULL;
    len = 0;

    ngx_oauth_error(err, errlen, "%s", "");

    if (kr == NULL || path == NULL) {
        ngx_oauth_error(err, errlen, "no key file");
        return NGX_OAUTH_INVALID;
    }

    ngx_oauth_keyring_wipe(kr);

    /* O_NONBLOCK: a FIFO put in place of the file must not hang startup */

    fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1) {
        e = errno;
        ngx_oauth_error(err, errlen, "cannot open key file \"%s\": %s",
                        path, strerror(e));
        rc = (e == ENOENT) ? NGX_OAUTH_NOT_FOUND : NGX_OAUTH_ERROR;
        goto done;
    }

    rc = ngx_oauth_keyfile_check(fd, path, err, errlen);
    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    /* one byte more than allowed: detects a file that grew after fstat() */

    buf = malloc(NGX_OAUTH_KEYFILE_MAX + 1);
    if (buf == NULL) {
        ngx_oauth_error(err, errlen, "no memory to read key file \"%s\"",
                        path);
        rc = NGX_OAUTH_NOMEM;
        goto done;
    }

    rc = ngx_oauth_keyfile_read(fd, path, buf, &len, err, errlen);
    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    rc = ngx_oauth_keyring_parse(kr, buf, len, msg, sizeof(msg));
    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_error(err, errlen, "key file \"%s\", %s", path, msg);

    } else {
        ngx_oauth_keyring_protect(kr);
    }

done:

    if (buf != NULL) {
        ngx_oauth_wipe(buf, NGX_OAUTH_KEYFILE_MAX + 1);
        free(buf);
    }

    if (fd != -1) {
        (void) close(fd);
    }

    return rc;
}


/* a regular file, for its owner's eyes only, of a key file's size */

static int
ngx_oauth_keyfile_check(int fd, const char *path, char *err, size_t errlen)
{
    struct stat  st;

    if (fstat(fd, &st) == -1) {
        ngx_oauth_error(err, errlen, "cannot stat key file \"%s\": %s",
                        path, strerror(errno));
        return NGX_OAUTH_ERROR;
    }

    if (!S_ISREG(st.st_mode)) {
        ngx_oauth_error(err, errlen, "key file \"%s\" is not a regular file",
                        path);
        return NGX_OAUTH_INVALID;
    }

    if (st.st_mode & 077) {
        ngx_oauth_error(err, errlen, "key file \"%s\" is accessible by group "
                        "or others (mode %04o): chmod 600 it", path,
                        (unsigned) (st.st_mode & 07777));
        return NGX_OAUTH_INVALID;
    }

    if (st.st_size > NGX_OAUTH_KEYFILE_MAX) {
        ngx_oauth_error(err, errlen, "key file \"%s\" is larger than %d bytes",
                        path, NGX_OAUTH_KEYFILE_MAX);
        return NGX_OAUTH_TOO_LARGE;
    }

    return NGX_OAUTH_OK;
}


/* buf holds NGX_OAUTH_KEYFILE_MAX + 1 bytes */

static int
ngx_oauth_keyfile_read(int fd, const char *path, unsigned char *buf,
    size_t *len, char *err, size_t errlen)
{
    int      e;
    size_t   n;
    ssize_t  r;

    n = 0;

    while (n < NGX_OAUTH_KEYFILE_MAX + 1) {
        r = read(fd, buf + n, NGX_OAUTH_KEYFILE_MAX + 1 - n);

        if (r == -1) {
            e = errno;

            if (e == EINTR) {
                continue;
            }

            ngx_oauth_error(err, errlen, "cannot read key file \"%s\": %s",
                            path, strerror(e));
            return NGX_OAUTH_ERROR;
        }

        if (r == 0) {
            break;
        }

        n += r;
    }

    if (n > NGX_OAUTH_KEYFILE_MAX) {
        ngx_oauth_error(err, errlen, "key file \"%s\" is larger than %d bytes",
                        path, NGX_OAUTH_KEYFILE_MAX);
        return NGX_OAUTH_TOO_LARGE;
    }

    *len = n;

    return NGX_OAUTH_OK;
}


void
ngx_oauth_keyring_wipe(ngx_oauth_keyring_t *kr)
{
    if (kr != NULL) {
        ngx_oauth_wipe(kr, sizeof(ngx_oauth_keyring_t));
    }
}


const ngx_oauth_key_t *
ngx_oauth_keyring_find(const ngx_oauth_keyring_t *kr,
    const unsigned char *kid, size_t kid_len)
{
    size_t  i;

    if (kr == NULL || kid == NULL || kid_len == 0) {
        return NULL;
    }

    for (i = 0; i < kr->nkeys && i < NGX_OAUTH_KEYS_MAX; i++) {
        if (kr->keys[i].kid_len == kid_len
            && memcmp(kr->keys[i].kid, kid, kid_len) == 0)
        {
            return &kr->keys[i];
        }
    }

    return NULL;
}


int
ngx_oauth_seal(const ngx_oauth_keyring_t *kr, const ngx_oauth_aad_t *aad,
    const unsigned char *plain, size_t plen, unsigned char *out,
    size_t *outlen)
{
    int                     n, rc;
    size_t                  size, header_len;
    unsigned char          *p, *nonce, *cipher;
    EVP_CIPHER_CTX         *ctx;
    const ngx_oauth_key_t  *key;

    if (outlen != NULL) {
        *outlen = 0;
    }

    if (kr == NULL || kr->nkeys == 0 || kr->nkeys > NGX_OAUTH_KEYS_MAX
        || out == NULL || outlen == NULL || (plain == NULL && plen != 0))
    {
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_aad_check(aad);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (plen > INT_MAX) {
        return NGX_OAUTH_TOO_LARGE;
    }

    key = &kr->keys[0];

    if (!ngx_oauth_kid_valid((const unsigned char *) key->kid, key->kid_len))
    {
        return NGX_OAUTH_INVALID;
    }

    ctx = NULL;
    rc = NGX_OAUTH_ERROR;
    header_len = 3 + key->kid_len;
    size = ngx_oauth_seal_size(key->kid_len, plen);

    p = out;
    *p++ = NGX_OAUTH_SEAL_MAGIC;
    *p++ = NGX_OAUTH_SEAL_VERSION;
    *p++ = (unsigned char) key->kid_len;
    memcpy(p, key->kid, key->kid_len);
    p += key->kid_len;

    nonce = p;
    cipher = nonce + NGX_OAUTH_NONCE_LEN;

    /* never a fixed or zero nonce: no randomness, no seal */

    if (ngx_oauth_random(nonce, NGX_OAUTH_NONCE_LEN) != NGX_OAUTH_OK) {
        goto done;
    }

    rc = ngx_oauth_gcm_start(1, key, nonce, out, header_len, aad, &ctx);
    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    rc = NGX_OAUTH_ERROR;
    n = 0;

    if (plen != 0) {
        if (EVP_EncryptUpdate(ctx, cipher, &n, plain, (int) plen) != 1
            || (size_t) n != plen)
        {
            goto done;
        }
    }

    /* GCM is a stream mode: Final adds no bytes, only computes the tag */

    if (EVP_EncryptFinal_ex(ctx, cipher + plen, &n) != 1 || n != 0) {
        goto done;
    }

    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, NGX_OAUTH_TAG_LEN,
                            cipher + plen)
        != 1)
    {
        goto done;
    }

    *outlen = size;
    rc = NGX_OAUTH_OK;

done:

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_wipe(out, size);
    }

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


int
ngx_oauth_open(const ngx_oauth_keyring_t *kr, const ngx_oauth_aad_t *aad,
    const unsigned char *sealed, size_t slen, unsigned char *plain,
    size_t *plen)
{
    int                     n, rc;
    size_t                  written;
    unsigned char           tag[NGX_OAUTH_TAG_LEN];
    EVP_CIPHER_CTX         *ctx;
    ngx_oauth_sealed_t      s;
    const ngx_oauth_key_t  *key;

    if (plen != NULL) {
        *plen = 0;
    }

    if (kr == NULL || plain == NULL || plen == NULL) {
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_aad_check(aad);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    rc = ngx_oauth_sealed_parse(sealed, slen, &s);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (s.cipher_len > INT_MAX) {
        return NGX_OAUTH_TOO_LARGE;
    }

    key = ngx_oauth_keyring_find(kr, s.kid, s.kid_len);
    if (key == NULL) {
        return NGX_OAUTH_UNKNOWN_KEY;
    }

    written = 0;

    /* EVP wants a writable tag buffer; the input stays const */
    memcpy(tag, s.tag, NGX_OAUTH_TAG_LEN);

    rc = ngx_oauth_gcm_start(0, key, s.nonce, s.header, s.header_len, aad,
                             &ctx);
    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    rc = NGX_OAUTH_ERROR;

    /*
     * GCM writes plaintext before the tag is checked: from here on,
     * every failure wipes what may have been written.
     */

    written = s.cipher_len;
    n = 0;

    if (s.cipher_len != 0) {
        if (EVP_DecryptUpdate(ctx, plain, &n, s.cipher, (int) s.cipher_len)
            != 1
            || (size_t) n != s.cipher_len)
        {
            goto done;
        }
    }

    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, NGX_OAUTH_TAG_LEN, tag)
        != 1)
    {
        goto done;
    }

    if (EVP_DecryptFinal_ex(ctx, plain + s.cipher_len, &n) != 1) {
        rc = NGX_OAUTH_DENIED;
        goto done;
    }

    *plen = s.cipher_len;
    rc = NGX_OAUTH_OK;

done:

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_wipe(plain, written);
    }

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


int
ngx_oauth_sealed_kid(const unsigned char *sealed, size_t slen,
    ngx_oauth_str_t *kid)
{
    int                 rc;
    ngx_oauth_sealed_t  s;

    if (kid == NULL) {
        return NGX_OAUTH_INVALID;
    }

    kid->len = 0;
    kid->data = NULL;

    rc = ngx_oauth_sealed_parse(sealed, slen, &s);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    kid->len = s.kid_len;
    kid->data = (unsigned char *) s.kid;

    return NGX_OAUTH_OK;
}


/*
 * An AES-256-GCM context to encrypt (enc 1) or decrypt (enc 0) under key
 * and nonce, the associated data already in: the header of the sealed
 * value and aad.
 */

static int
ngx_oauth_gcm_start(int enc, const ngx_oauth_key_t *key,
    const unsigned char *nonce, const unsigned char *header,
    size_t header_len, const ngx_oauth_aad_t *aad, EVP_CIPHER_CTX **ctx)
{
    EVP_CIPHER_CTX  *c;

    *ctx = NULL;

    c = EVP_CIPHER_CTX_new();
    if (c == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    *ctx = c;

    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN,
                               NGX_OAUTH_NONCE_LEN, NULL)
           != 1
        || EVP_CipherInit_ex(c, NULL, NULL, key->key, nonce, enc) != 1)
    {
        return NGX_OAUTH_ERROR;
    }

    return ngx_oauth_aad_update(c, header, header_len, aad);
}


/*
 * Length checks come before every slice.  The key id is checked against
 * the key id charset so that a caller may log what this returns.
 */

static int
ngx_oauth_sealed_parse(const unsigned char *p, size_t len,
    ngx_oauth_sealed_t *s)
{
    size_t  kid_len, overhead;

    if (p == NULL || len < 3) {
        return NGX_OAUTH_INVALID;
    }

    if (p[0] != NGX_OAUTH_SEAL_MAGIC || p[1] != NGX_OAUTH_SEAL_VERSION) {
        return NGX_OAUTH_INVALID;
    }

    kid_len = p[2];
    overhead = ngx_oauth_seal_size(kid_len, 0);

    if (len < overhead || !ngx_oauth_kid_valid(p + 3, kid_len)) {
        return NGX_OAUTH_INVALID;
    }

    s->header = p;
    s->header_len = 3 + kid_len;
    s->kid = p + 3;
    s->kid_len = kid_len;
    s->nonce = p + 3 + kid_len;
    s->cipher = s->nonce + NGX_OAUTH_NONCE_LEN;
    s->cipher_len = len - overhead;
    s->tag = s->cipher + s->cipher_len;

    return NGX_OAUTH_OK;
}


/* no associated data means no binding: refused rather than guessed */

static int
ngx_oauth_aad_check(const ngx_oauth_aad_t *aad)
{
    size_t                  i;
    const ngx_oauth_str_t  *f[4];

    if (aad == NULL) {
        return NGX_OAUTH_INVALID;
    }

    f[0] = &aad->owner;
    f[1] = &aad->provider;
    f[2] = &aad->account;
    f[3] = &aad->field;

    for (i = 0; i < 4; i++) {
        if (f[i]->len > NGX_OAUTH_AAD_FIELD_MAX) {
            return NGX_OAUTH_TOO_LARGE;
        }

        if (f[i]->data == NULL && f[i]->len != 0) {
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}


/*
 * AAD = magic | version | kid_len | kid, then owner, provider, account and
 * field, each as a 4-byte big-endian length and its bytes: the lengths
 * make ("ab", "c") and ("a", "bc") different.
 */

static int
ngx_oauth_aad_update(EVP_CIPHER_CTX *ctx, const unsigned char *header,
    size_t header_len, const ngx_oauth_aad_t *aad)
{
    int  n;

    if (EVP_CipherUpdate(ctx, NULL, &n, header, (int) header_len) != 1) {
        return NGX_OAUTH_ERROR;
    }

    if (ngx_oauth_aad_field(ctx, &aad->owner) != NGX_OAUTH_OK
        || ngx_oauth_aad_field(ctx, &aad->provider) != NGX_OAUTH_OK
        || ngx_oauth_aad_field(ctx, &aad->account) != NGX_OAUTH_OK
        || ngx_oauth_aad_field(ctx, &aad->field) != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_aad_field(EVP_CIPHER_CTX *ctx, const ngx_oauth_str_t *field)
{
    int            n;
    unsigned char  len[4];

    len[0] = (unsigned char) (field->len >> 24);
    len[1] = (unsigned char) (field->len >> 16);
    len[2] = (unsigned char) (field->len >> 8);
    len[3] = (unsigned char) field->len;

    if (EVP_CipherUpdate(ctx, NULL, &n, len, sizeof(len)) != 1) {
        return NGX_OAUTH_ERROR;
    }

    if (field->len != 0
        && EVP_CipherUpdate(ctx, NULL, &n, field->data, (int) field->len)
           != 1)
    {
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_kid_valid(const unsigned char *kid, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0 || len > NGX_OAUTH_KID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = kid[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


int
ngx_oauth_random(unsigned char *buf, size_t len)
{
    int  n;

    if (buf == NULL && len != 0) {
        return NGX_OAUTH_INVALID;
    }

    while (len != 0) {
        n = (len > INT_MAX) ? INT_MAX : (int) len;

        if (RAND_bytes(buf, n) != 1) {
            return NGX_OAUTH_ERROR;
        }

        buf += n;
        len -= n;
    }

    return NGX_OAUTH_OK;
}


int
ngx_oauth_random_token(char *out)
{
    int            rc;
    unsigned char  raw[32];

    if (out == NULL) {
        return NGX_OAUTH_INVALID;
    }

    out[0] = '\0';

    rc = ngx_oauth_random(raw, sizeof(raw));

    if (rc == NGX_OAUTH_OK) {
        (void) ngx_oauth_base64url_encode(raw, sizeof(raw), out);
    }

    ngx_oauth_wipe(raw, sizeof(raw));

    return rc;
}


/* RFC 7636 4.1: 43 to 128 characters of [A-Z] [a-z] [0-9] - . _ ~ */

int
ngx_oauth_pkce_challenge(const char *verifier, size_t len, char *out)
{
    int            rc;
    size_t         i;
    unsigned char  c, digest[NGX_OAUTH_SHA256_LEN];

    if (out == NULL) {
        return NGX_OAUTH_INVALID;
    }

    out[0] = '\0';

    if (verifier == NULL || len < NGX_OAUTH_VERIFIER_MIN
        || len > NGX_OAUTH_VERIFIER_MAX)
    {
        return NGX_OAUTH_INVALID;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) verifier[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~')
        {
            continue;
        }

        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_sha256((const unsigned char *) verifier, len, digest);

    if (rc == NGX_OAUTH_OK) {
        (void) ngx_oauth_base64url_encode(digest, sizeof(digest), out);
    }

    return rc;
}


int
ngx_oauth_sha256(const unsigned char *data, size_t len, unsigned char *out)
{
    unsigned int  n;

    if (out == NULL || (data == NULL && len != 0)) {
        return NGX_OAUTH_INVALID;
    }

    if (data == NULL) {
        data = (const unsigned char *) "";
    }

    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1
        || n != NGX_OAUTH_SHA256_LEN)
    {
        ngx_oauth_wipe(out, NGX_OAUTH_SHA256_LEN);
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


void
ngx_oauth_hex_encode(const unsigned char *src, size_t len, char *out)
{
    size_t  i;

    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[src[i] >> 4];
        out[2 * i + 1] = digits[src[i] & 0x0f];
    }
}


size_t
ngx_oauth_base64url_encode(const unsigned char *src, size_t len, char *out)
{
    return ngx_oauth_base64_encode_internal(src, len, out,
                                            ngx_oauth_base64_url, 0);
}


size_t
ngx_oauth_base64_encode(const unsigned char *src, size_t len, char *out)
{
    return ngx_oauth_base64_encode_internal(src, len, out,
                                            ngx_oauth_base64_std, 1);
}


static size_t
ngx_oauth_base64_encode_internal(const unsigned char *src, size_t len,
    char *out, const char *alphabet, int pad)
{
    char      *d;
    uint32_t   v;

    d = out;

    while (len >= 3) {
        v = (uint32_t) src[0] << 16 | (uint32_t) src[1] << 8 | src[2];

        *d++ = alphabet[(v >> 18) & 0x3f];
        *d++ = alphabet[(v >> 12) & 0x3f];
        *d++ = alphabet[(v >> 6) & 0x3f];
        *d++ = alphabet[v & 0x3f];

        src += 3;
        len -= 3;
    }

    if (len != 0) {
        v = (uint32_t) src[0] << 16;

        if (len == 2) {
            v |= (uint32_t) src[1] << 8;
        }

        *d++ = alphabet[(v >> 18) & 0x3f];
        *d++ = alphabet[(v >> 12) & 0x3f];

        if (len == 2) {
            *d++ = alphabet[(v >> 6) & 0x3f];

        } else if (pad) {
            *d++ = '=';
        }

        if (pad) {
            *d++ = '=';
        }
    }

    *d = '\0';

    return d - out;
}


/*
 * Both alphabets, padding optional but correct when present, and the
 * unused low bits of the last character must be zero so that each value
 * has exactly one encoding.
 */

int
ngx_oauth_base64_decode(const char *src, size_t len, unsigned char *out,
    size_t *outlen)
{
    int       v, rc;
    size_t    i, n, pad;
    uint32_t  acc;
    unsigned  bits;

    if (outlen != NULL) {
        *outlen = 0;
    }

    if (outlen == NULL || (len != 0 && (src == NULL || out == NULL))) {
        return NGX_OAUTH_INVALID;
    }

    pad = 0;

    if (len != 0 && src[len - 1] == '=') {
        pad = (len > 1 && src[len - 2] == '=') ? 2 : 1;

        if (len % 4 != 0) {
            return NGX_OAUTH_INVALID;
        }

        len -= pad;
    }

    if (len % 4 == 1) {
        return NGX_OAUTH_INVALID;
    }

    n = 0;
    acc = 0;
    bits = 0;
    rc = NGX_OAUTH_INVALID;

    for (i = 0; i < len; i++) {
        v = ngx_oauth_base64_value((unsigned char) src[i]);
        if (v < 0) {
            goto done;
        }

        acc = (acc << 6) | (uint32_t) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    if (acc != 0) {
        goto done;
    }

    *outlen = n;
    rc = NGX_OAUTH_OK;

done:

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_wipe(out, n);
    }

    return rc;
}


static int
ngx_oauth_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+' || c == '-') {
        return 62;
    }

    if (c == '/' || c == '_') {
        return 63;
    }

    return -1;
}


int
ngx_oauth_equal(const void *a, const void *b, size_t len)
{
    if (len == 0) {
        return 1;
    }

    return CRYPTO_memcmp(a, b, len) == 0;
}


void
ngx_oauth_wipe(void *p, size_t len)
{
    if (p != NULL && len != 0) {
        OPENSSL_cleanse(p, len);
    }
}


static void
ngx_oauth_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  args;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(args, fmt);
    (void) vsnprintf(err, errlen, fmt, args);
    va_end(args);
}
