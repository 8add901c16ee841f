/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_CRYPTO_H_INCLUDED_
#define _NGX_OAUTH_CRYPTO_H_INCLUDED_


#include "ngx_oauth_core.h"


#define NGX_OAUTH_KEY_LEN          32
#define NGX_OAUTH_KID_MAX          32     /* [A-Za-z0-9._-], 1..32 chars */
#define NGX_OAUTH_KEYS_MAX         16
#define NGX_OAUTH_NONCE_LEN        12
#define NGX_OAUTH_TAG_LEN          16
#define NGX_OAUTH_SEAL_VERSION     1

/* 256-bit random values encoded in base64url without padding: 43 chars */
#define NGX_OAUTH_STATE_LEN        43
#define NGX_OAUTH_VERIFIER_LEN     43
#define NGX_OAUTH_CHALLENGE_LEN    43
#define NGX_OAUTH_SHA256_LEN       32

/* sealed: 'S' | version | kid_len | kid | nonce | ciphertext | tag */
#define ngx_oauth_seal_size(kid_len, plain_len)                              \
    (3 + (kid_len) + NGX_OAUTH_NONCE_LEN + (plain_len) + NGX_OAUTH_TAG_LEN)

#define ngx_oauth_base64url_encoded_len(n)  (((n) * 4 + 2) / 3)
#define ngx_oauth_base64_encoded_len(n)     (((n) + 2) / 3 * 4)
#define ngx_oauth_base64_decoded_max(n)     (((n) + 3) / 4 * 3)


typedef struct {
    size_t          kid_len;
    char            kid[NGX_OAUTH_KID_MAX + 1];
    unsigned char   key[NGX_OAUTH_KEY_LEN];
} ngx_oauth_key_t;


/* keys[0] is the active key: it seals; every key opens */
typedef struct {
    size_t           nkeys;
    ngx_oauth_key_t  keys[NGX_OAUTH_KEYS_MAX];
} ngx_oauth_keyring_t;


/* associated data: where a sealed value lives */
typedef struct {
    ngx_oauth_str_t  owner;
    ngx_oauth_str_t  provider;
    ngx_oauth_str_t  account;
    ngx_oauth_str_t  field;       /* "access", "refresh", "pkce", ... */
} ngx_oauth_aad_t;


/*
 * Keyring text: one "KID:BASE64" a line (32 bytes after decoding), blank
 * lines and "#" comments ignored, at least one key, no duplicate KIDs,
 * at most NGX_OAUTH_KEYS_MAX.  On error a message with the line number
 * goes into err; the message never contains key material.
 */
int ngx_oauth_keyring_parse(ngx_oauth_keyring_t *kr,
    const unsigned char *text, size_t len, char *err, size_t errlen);

/*
 * Reads and parses a key file: refuses a file that is not a regular file,
 * is readable or writable by group or others, or is larger than 64 KiB.
 * The read buffer is wiped.
 */
int ngx_oauth_keyring_load(ngx_oauth_keyring_t *kr, const char *path,
    char *err, size_t errlen);

void ngx_oauth_keyring_wipe(ngx_oauth_keyring_t *kr);

const ngx_oauth_key_t *ngx_oauth_keyring_find(const ngx_oauth_keyring_t *kr,
    const unsigned char *kid, size_t kid_len);

/*
 * Seals plain under the active key.  out must hold
 * ngx_oauth_seal_size(keys[0].kid_len, plen) bytes; *outlen gets the size.
 */
int ngx_oauth_seal(const ngx_oauth_keyring_t *kr, const ngx_oauth_aad_t *aad,
    const unsigned char *plain, size_t plen, unsigned char *out,
    size_t *outlen);

/*
 * Opens a sealed value.  plain must hold slen bytes (more than enough);
 * *plen gets the size.  NGX_OAUTH_INVALID for a malformed value,
 * NGX_OAUTH_UNKNOWN_KEY, NGX_OAUTH_DENIED when the tag or the associated
 * data do not verify; on any error plain is wiped.
 */
int ngx_oauth_open(const ngx_oauth_keyring_t *kr, const ngx_oauth_aad_t *aad,
    const unsigned char *sealed, size_t slen, unsigned char *plain,
    size_t *plen);

/* the key id a sealed value names, without opening it */
int ngx_oauth_sealed_kid(const unsigned char *sealed, size_t slen,
    ngx_oauth_str_t *kid);

/* CSPRNG; NGX_OAUTH_ERROR when the generator fails (never ignored) */
int ngx_oauth_random(unsigned char *buf, size_t len);

/* 43 chars of base64url from 32 random bytes, NUL-terminated (44 bytes) */
int ngx_oauth_random_token(char *out);

/* PKCE S256: challenge = base64url(sha256(verifier)), 43 chars + NUL */
int ngx_oauth_pkce_challenge(const char *verifier, size_t len, char *out);

int ngx_oauth_sha256(const unsigned char *data, size_t len,
    unsigned char *out);

/* 2 * len lower-case hex digits into out, no NUL */
void ngx_oauth_hex_encode(const unsigned char *src, size_t len, char *out);

/* returns the encoded length; out needs base64url_encoded_len(len) + 1 */
size_t ngx_oauth_base64url_encode(const unsigned char *src, size_t len,
    char *out);

/*
 * Decodes standard or url-safe base64, padding optional; no whitespace.
 * NGX_OAUTH_INVALID on any other character, a bad length or bad padding,
 * or nonzero unused bits in the last character (one encoding per value).
 */
int ngx_oauth_base64_decode(const char *src, size_t len, unsigned char *out,
    size_t *outlen);

/*
 * standard base64 with padding, for keygen and Basic auth; returns the
 * encoded length; out needs base64_encoded_len(len) + 1 (NUL-terminated)
 */
size_t ngx_oauth_base64_encode(const unsigned char *src, size_t len,
    char *out);

/* constant time: 1 when equal */
int ngx_oauth_equal(const void *a, const void *b, size_t len);

void ngx_oauth_wipe(void *p, size_t len);


#endif /* _NGX_OAUTH_CRYPTO_H_INCLUDED_ */
