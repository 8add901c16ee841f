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
static int ngx_oauth_sigv4_hmac(const ngx_oauth_sigv4_t *req,
    const ngx_oauth_buf_t *sts, unsigned char *sig);
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


/* the canonical query: pairs decoded, re-encoded (RFC 3986), sorted */

typedef struct {
    ngx_oauth_buf_t   items[NGX_OAUTH_SIGN_PARAMS_MAX];
    size_t            n;
} ngx_oauth_sigv4_query_t;


static int
ngx_oauth_sigv4_param(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    ngx_oauth_sigv4_query_t  *q = data;

    if (q->n == NGX_OAUTH_SIGN_PARAMS_MAX) {
        return NGX_OAUTH_INVALID;
    }

    ngx_oauth_buf_add_url_escaped(&q->items[q->n], name->data, name->len);
    ngx_oauth_buf_add_byte(&q->items[q->n], '=');
    ngx_oauth_buf_add_url_escaped(&q->items[q->n], value->data, value->len);

    if (q->items[q->n].failed) {
        return NGX_OAUTH_NOMEM;
    }

    q->n++;

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_sigv4_cmp(const void *a, const void *b)
{
    int                     rc;
    size_t                  n;
    const ngx_oauth_buf_t  *x = a, *y = b;

    /* "name=value" with both escaped: "=" (0x3d) sorts the names first */

    n = x->len < y->len ? x->len : y->len;
    rc = n ? memcmp(x->data, y->data, n) : 0;

    return rc ? rc : (x->len > y->len) - (x->len < y->len);
}


static int
ngx_oauth_sigv4_header_cmp(const void *a, const void *b)
{
    const ngx_oauth_buf_t  *x = a, *y = b;

    return strcmp((const char *) x->data, (const char *) y->data);
}


/* "name:value" lower-cased name, value trimmed and inner spaces folded */

static void
ngx_oauth_sigv4_header(ngx_oauth_buf_t *b, const ngx_oauth_pair_t *h)
{
    size_t                i;
    int                   space;
    const unsigned char  *v, *end;

    for (i = 0; i < h->name.len; i++) {
        ngx_oauth_buf_add_byte(b, (h->name.data[i] >= 'A'
                                   && h->name.data[i] <= 'Z')
                                  ? h->name.data[i] + 32 : h->name.data[i]);
    }

    ngx_oauth_buf_add_byte(b, ':');

    v = h->value.data;
    end = v + h->value.len;

    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }

    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    space = 0;

    for ( /* void */ ; v < end; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }

        if (space) {
            ngx_oauth_buf_add_byte(b, ' ');
            space = 0;
        }

        ngx_oauth_buf_add_byte(b, *v);
    }
}


static int
ngx_oauth_sigv4_canonical(const ngx_oauth_sigv4_t *req, ngx_oauth_buf_t *cr,
    ngx_oauth_buf_t *signed_headers)
{
    int                       rc;
    size_t                    i, n;
    ngx_oauth_buf_t          *hd;
    ngx_oauth_pair_t          date;
    ngx_oauth_sigv4_query_t  *q;

    q = calloc(1, sizeof(ngx_oauth_sigv4_query_t));
    hd = calloc(req->nheaders + 1, sizeof(ngx_oauth_buf_t));

    if (q == NULL || hd == NULL) {
        free(q);
        free(hd);
        return NGX_OAUTH_NOMEM;
    }

    rc = ngx_oauth_query_foreach(req->query.data, req->query.len,
                                 ngx_oauth_sigv4_param, q);
    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    qsort(q->items, q->n, sizeof(ngx_oauth_buf_t), ngx_oauth_sigv4_cmp);

    ngx_oauth_buf_add(cr, req->method.data, req->method.len);
    ngx_oauth_buf_add_byte(cr, '\n');
    ngx_oauth_buf_add(cr, req->path.len ? req->path.data
                                        : (const unsigned char *) "/",
                      req->path.len ? req->path.len : 1);
    ngx_oauth_buf_add_byte(cr, '\n');

    for (i = 0; i < q->n; i++) {
        if (i) {
            ngx_oauth_buf_add_byte(cr, '&');
        }

        ngx_oauth_buf_add(cr, q->items[i].data, q->items[i].len);
    }

    ngx_oauth_buf_add_byte(cr, '\n');

    n = req->nheaders;

    for (i = 0; i < n; i++) {
        ngx_oauth_sigv4_header(&hd[i], &req->headers[i]);
    }

    date.name.data = (unsigned char *) "x-amz-date";
    date.name.len = sizeof("x-amz-date") - 1;
    date.value = req->amz_date;
    ngx_oauth_sigv4_header(&hd[n++], &date);

    for (i = 0; i < n; i++) {
        if (hd[i].failed || hd[i].data == NULL) {
            rc = NGX_OAUTH_NOMEM;
            goto done;
        }
    }

    qsort(hd, n, sizeof(ngx_oauth_buf_t), ngx_oauth_sigv4_header_cmp);

    for (i = 0; i < n; i++) {
        ngx_oauth_buf_add(cr, hd[i].data, hd[i].len);
        ngx_oauth_buf_add_byte(cr, '\n');

        if (i) {
            ngx_oauth_buf_add_byte(signed_headers, ';');
        }

        ngx_oauth_buf_add(signed_headers, hd[i].data,
                          (size_t) ((unsigned char *)
                                    strchr((char *) hd[i].data, ':')
                                    - hd[i].data));
    }

    ngx_oauth_buf_add_byte(cr, '\n');
    ngx_oauth_buf_add(cr, signed_headers->data, signed_headers->len);
    ngx_oauth_buf_add_byte(cr, '\n');
    ngx_oauth_buf_add(cr, req->payload_hash.data, req->payload_hash.len);

    rc = (cr->failed || signed_headers->failed) ? NGX_OAUTH_NOMEM
                                                : NGX_OAUTH_OK;

done:

    for (i = 0; i < q->n; i++) {
        ngx_oauth_buf_free(&q->items[i]);
    }

    for (i = 0; i < req->nheaders + 1; i++) {
        ngx_oauth_buf_free(&hd[i]);
    }

    free(q);
    free(hd);

    return rc;
}


int
ngx_oauth_sigv4_sign(const ngx_oauth_sigv4_t *req, char *out, size_t size)
{
    int              rc, n;
    char             hash[65];
    unsigned char    sig[NGX_OAUTH_HMAC_LEN];
    ngx_oauth_buf_t  cr = ngx_oauth_buf_init;
    ngx_oauth_buf_t  sh = ngx_oauth_buf_init;
    ngx_oauth_buf_t  sts = ngx_oauth_buf_init;


    if (req->amz_date.len != 16 || req->amz_date.data[8] != 'T'
        || req->amz_date.data[15] != 'Z')
    {
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_sigv4_canonical(req, &cr, &sh);
    if (rc != NGX_OAUTH_OK) {
        goto done;
    }

    rc = NGX_OAUTH_ERROR;

    if (ngx_oauth_sha256_hex(cr.data, cr.len, hash) != NGX_OAUTH_OK) {
        goto done;
    }

    /* the string to sign; the scope is date/region/service/aws4_request */

    ngx_oauth_buf_add_cstr(&sts, "AWS4-HMAC-SHA256\n");
    ngx_oauth_buf_add(&sts, req->amz_date.data, 16);
    ngx_oauth_buf_add_byte(&sts, '\n');
    ngx_oauth_buf_add(&sts, req->amz_date.data, 8);
    ngx_oauth_buf_add_byte(&sts, '/');
    ngx_oauth_buf_add(&sts, req->region.data, req->region.len);
    ngx_oauth_buf_add_byte(&sts, '/');
    ngx_oauth_buf_add(&sts, req->service.data, req->service.len);
    ngx_oauth_buf_add_cstr(&sts, "/aws4_request\n");
    ngx_oauth_buf_add(&sts, hash, 64);

    if (sts.failed || ngx_oauth_sigv4_hmac(req, &sts, sig) != NGX_OAUTH_OK) {
        goto done;
    }

    n = snprintf(out, size, "AWS4-HMAC-SHA256 Credential=%.*s/%.8s/%.*s/%.*s"
                 "/aws4_request, SignedHeaders=%.*s, Signature=",
                 (int) req->access_key.len, req->access_key.data,
                 (const char *) req->amz_date.data,
                 (int) req->region.len, req->region.data,
                 (int) req->service.len, req->service.data,
                 (int) sh.len, sh.data);

    if (n < 0 || (size_t) n + 2 * sizeof(sig) + 1 > size) {
        rc = NGX_OAUTH_TOO_LARGE;
        goto done;
    }

    ngx_oauth_hex_encode(sig, sizeof(sig), out + n);
    out[n + 2 * sizeof(sig)] = '\0';

    rc = NGX_OAUTH_OK;

done:

    ngx_oauth_wipe(sig, sizeof(sig));
    ngx_oauth_buf_free(&cr);
    ngx_oauth_buf_free(&sh);
    ngx_oauth_buf_free(&sts);

    return rc;
}


/*
 * The signature of the string to sign sts under the signing key
 * HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request")
 */

static int
ngx_oauth_sigv4_hmac(const ngx_oauth_sigv4_t *req, const ngx_oauth_buf_t *sts,
    unsigned char *sig)
{
    int              rc;
    unsigned char    a[NGX_OAUTH_HMAC_LEN], b[NGX_OAUTH_HMAC_LEN];
    ngx_oauth_buf_t  key = ngx_oauth_buf_init;

    ngx_oauth_buf_add_cstr(&key, "AWS4");
    ngx_oauth_buf_add(&key, req->secret_key.data, req->secret_key.len);

    rc = NGX_OAUTH_ERROR;

    if (!key.failed
        && ngx_oauth_hmac_sha256(key.data, key.len, req->amz_date.data, 8,
                                 a)
           == NGX_OAUTH_OK
        && ngx_oauth_hmac_sha256(a, sizeof(a), req->region.data,
                                 req->region.len, b)
           == NGX_OAUTH_OK
        && ngx_oauth_hmac_sha256(b, sizeof(b), req->service.data,
                                 req->service.len, a)
           == NGX_OAUTH_OK
        && ngx_oauth_hmac_sha256(a, sizeof(a),
                                 (const unsigned char *) "aws4_request", 12,
                                 b)
           == NGX_OAUTH_OK
        && ngx_oauth_hmac_sha256(b, sizeof(b), sts->data, sts->len, sig)
           == NGX_OAUTH_OK)
    {
        rc = NGX_OAUTH_OK;
    }

    ngx_oauth_wipe(a, sizeof(a));
    ngx_oauth_wipe(b, sizeof(b));
    ngx_oauth_buf_free(&key);

    return rc;
}
