/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_oauth_sign.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_crypto.h"


#define NGX_OAUTH_SIGN_PARAMS_MAX  64


typedef struct {
    ngx_oauth_buf_t   names[NGX_OAUTH_SIGN_PARAMS_MAX];
    ngx_oauth_buf_t   values[NGX_OAUTH_SIGN_PARAMS_MAX];
    size_t            n;
    unsigned char     hmac[NGX_OAUTH_HMAC_LEN * 2];
    size_t            nhmac;
    int               hmac_bad;
} ngx_oauth_sign_query_t;


static int ngx_oauth_sign_collect(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value);
static int ngx_oauth_sign_cmp(const void *a, const void *b);
static void ngx_oauth_sign_escaped(ngx_oauth_buf_t *b,
    const ngx_oauth_buf_t *s, int name);


int
ngx_oauth_hmac_sha256(const unsigned char *key, size_t key_len,
    const unsigned char *data, size_t len, unsigned char *out)
{
    unsigned int  n;

    n = NGX_OAUTH_HMAC_LEN;

    if (HMAC(EVP_sha256(), key, (int) key_len, data, len, out, &n) == NULL
        || n != NGX_OAUTH_HMAC_LEN)
    {
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_sign_collect(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    ngx_oauth_sign_query_t  *q = data;

    if (name->len == 4 && memcmp(name->data, "hmac", 4) == 0) {
        if (q->nhmac || value->len != sizeof(q->hmac)) {
            q->hmac_bad = 1;
            return NGX_OAUTH_OK;
        }

        memcpy(q->hmac, value->data, value->len);
        q->nhmac = value->len;

        return NGX_OAUTH_OK;
    }

    if (name->len == 9 && memcmp(name->data, "signature", 9) == 0) {
        return NGX_OAUTH_OK;
    }

    if (q->n == NGX_OAUTH_SIGN_PARAMS_MAX) {
        return NGX_OAUTH_INVALID;
    }

    ngx_oauth_buf_add(&q->names[q->n], name->data, name->len);
    ngx_oauth_buf_add(&q->values[q->n], value->data, value->len);

    if (q->names[q->n].failed || q->values[q->n].failed) {
        return NGX_OAUTH_NOMEM;
    }

    q->n++;

    return NGX_OAUTH_OK;
}


/* pairs sorted by name; the index array keeps names and values together */

static const ngx_oauth_sign_query_t  *ngx_oauth_sign_sorting;

static int
ngx_oauth_sign_cmp(const void *a, const void *b)
{
    int                     rc;
    size_t                  i, j, n;
    const ngx_oauth_buf_t  *x, *y;

    i = *(const size_t *) a;
    j = *(const size_t *) b;

    x = &ngx_oauth_sign_sorting->names[i];
    y = &ngx_oauth_sign_sorting->names[j];

    n = x->len < y->len ? x->len : y->len;
    rc = n ? memcmp(x->data, y->data, n) : 0;

    if (rc == 0) {
        rc = (x->len > y->len) - (x->len < y->len);
    }

    return rc;
}


static void
ngx_oauth_sign_escaped(ngx_oauth_buf_t *b, const ngx_oauth_buf_t *s,
    int name)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '%') {
            ngx_oauth_buf_add(b, "%25", 3);

        } else if (s->data[i] == '&') {
            ngx_oauth_buf_add(b, "%26", 3);

        } else if (name && s->data[i] == '=') {
            ngx_oauth_buf_add(b, "%3D", 3);

        } else {
            ngx_oauth_buf_add_byte(b, s->data[i]);
        }
    }
}


int
ngx_oauth_shopify_hmac_check(const unsigned char *query, size_t len,
    const unsigned char *secret, size_t secret_len)
{
    int                      rc;
    size_t                   i, order[NGX_OAUTH_SIGN_PARAMS_MAX];
    unsigned char            mac[NGX_OAUTH_HMAC_LEN], hex[2 * sizeof(mac)];
    ngx_oauth_buf_t          msg = ngx_oauth_buf_init;
    ngx_oauth_sign_query_t  *q;


    q = calloc(1, sizeof(ngx_oauth_sign_query_t));
    if (q == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    rc = ngx_oauth_query_foreach(query, len, ngx_oauth_sign_collect, q);

    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    rc = NGX_OAUTH_DENIED;

    if (q->hmac_bad || q->nhmac == 0) {
        goto done;
    }

    for (i = 0; i < q->n; i++) {
        order[i] = i;
    }

    ngx_oauth_sign_sorting = q;
    qsort(order, q->n, sizeof(size_t), ngx_oauth_sign_cmp);
    ngx_oauth_sign_sorting = NULL;

    for (i = 0; i < q->n; i++) {
        if (i) {
            ngx_oauth_buf_add_byte(&msg, '&');
        }

        ngx_oauth_sign_escaped(&msg, &q->names[order[i]], 1);
        ngx_oauth_buf_add_byte(&msg, '=');
        ngx_oauth_sign_escaped(&msg, &q->values[order[i]], 0);
    }

    if (msg.failed
        || ngx_oauth_hmac_sha256(secret, secret_len,
                                 msg.data ? msg.data : (unsigned char *) "",
                                 msg.len, mac)
           != NGX_OAUTH_OK)
    {
        rc = NGX_OAUTH_ERROR;
        goto done;
    }

    ngx_oauth_hex_encode(mac, sizeof(mac), (char *) hex);

    /* hex digits from Shopify are lower case; upper case is not refused */

    for (i = 0; i < sizeof(hex); i++) {
        if (q->hmac[i] >= 'A' && q->hmac[i] <= 'F') {
            q->hmac[i] += 'a' - 'A';
        }
    }

    if (CRYPTO_memcmp(hex, q->hmac, sizeof(hex)) == 0) {
        rc = NGX_OAUTH_OK;
    }

done:

    for (i = 0; i < q->n; i++) {
        ngx_oauth_buf_free(&q->names[i]);
        ngx_oauth_buf_free(&q->values[i]);
    }

    ngx_oauth_buf_free(&msg);
    ngx_oauth_wipe(mac, sizeof(mac));
    free(q);

    return rc;
}


int
ngx_oauth_sha256_hex(const unsigned char *data, size_t len, char *hex)
{
    unsigned char  md[32];


    if (ngx_oauth_sha256(data, len, md) != NGX_OAUTH_OK) {
        return NGX_OAUTH_ERROR;
    }

    ngx_oauth_hex_encode(md, sizeof(md), hex);
    hex[64] = '\0';

    return NGX_OAUTH_OK;
}


struct ngx_oauth_sha256_s {
    EVP_MD_CTX  *md;
};


ngx_oauth_sha256_t *
ngx_oauth_sha256_new(void)
{
    ngx_oauth_sha256_t  *h;

    h = calloc(1, sizeof(ngx_oauth_sha256_t));
    if (h == NULL) {
        return NULL;
    }

    h->md = EVP_MD_CTX_new();

    if (h->md == NULL || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        ngx_oauth_sha256_free(h);
        return NULL;
    }

    return h;
}


int
ngx_oauth_sha256_update(ngx_oauth_sha256_t *h, const unsigned char *data,
    size_t len)
{
    if (len && EVP_DigestUpdate(h->md, data, len) != 1) {
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


int
ngx_oauth_sha256_final_hex(ngx_oauth_sha256_t *h, char *hex)
{
    int            rc;
    size_t         i;
    unsigned int   n;
    unsigned char  md[EVP_MAX_MD_SIZE];

    static const char  digits[] = "0123456789abcdef";

    rc = NGX_OAUTH_ERROR;

    if (EVP_DigestFinal_ex(h->md, md, &n) == 1 && n == 32) {
        for (i = 0; i < 32; i++) {
            hex[2 * i] = digits[md[i] >> 4];
            hex[2 * i + 1] = digits[md[i] & 0x0f];
        }

        hex[64] = '\0';
        rc = NGX_OAUTH_OK;
    }

    ngx_oauth_sha256_free(h);

    return rc;
}


void
ngx_oauth_sha256_free(ngx_oauth_sha256_t *h)
{
    if (h) {
        EVP_MD_CTX_free(h->md);
        free(h);
    }
}
