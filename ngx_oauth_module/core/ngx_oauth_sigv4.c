/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * AWS Signature Version 4: the canonical request (method, path, query,
 * headers, payload hash), the string to sign and its signature under the
 * key derived from the secret, date, region and service.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_sigv4.h"
#include "ngx_oauth_sign.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_crypto.h"


#define NGX_OAUTH_SIGV4_PARAMS_MAX  64


/*
 * One canonical query pair ("name=value", both escaped) or header
 * ("name:value"); index keeps the order given, which repeated headers'
 * values are joined in.
 */
typedef struct {
    ngx_oauth_buf_t   text;
    size_t            name_len;
    size_t            index;
} ngx_oauth_sigv4_item_t;


typedef struct {
    ngx_oauth_sigv4_item_t   items[NGX_OAUTH_SIGV4_PARAMS_MAX];
    size_t                   n;
} ngx_oauth_sigv4_query_t;


static int ngx_oauth_sigv4_param(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value);
static int ngx_oauth_sigv4_query(const ngx_oauth_sigv4_t *req,
    ngx_oauth_buf_t *cr);
static int ngx_oauth_sigv4_item_cmp(const void *a, const void *b);
static int ngx_oauth_sigv4_headers(const ngx_oauth_sigv4_t *req,
    ngx_oauth_buf_t *cr, ngx_oauth_buf_t *signed_headers);
static void ngx_oauth_sigv4_header(ngx_oauth_sigv4_item_t *it,
    const ngx_oauth_pair_t *h, size_t index);
static int ngx_oauth_sigv4_path(const ngx_oauth_sigv4_t *req,
    ngx_oauth_buf_t *cr);
static int ngx_oauth_sigv4_segment(ngx_oauth_buf_t *cr,
    const unsigned char *seg, size_t len, int twice, unsigned char *tmp);
static int ngx_oauth_sigv4_canonical(const ngx_oauth_sigv4_t *req,
    ngx_oauth_buf_t *cr, ngx_oauth_buf_t *signed_headers);
static int ngx_oauth_sigv4_hmac(const ngx_oauth_sigv4_t *req,
    const ngx_oauth_buf_t *sts, unsigned char *sig);


/* the canonical query: pairs decoded, re-encoded (RFC 3986), sorted */

static int
ngx_oauth_sigv4_param(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    ngx_oauth_sigv4_item_t   *it;
    ngx_oauth_sigv4_query_t  *q = data;

    if (q->n == NGX_OAUTH_SIGV4_PARAMS_MAX) {
        return NGX_OAUTH_INVALID;
    }

    it = &q->items[q->n];

    ngx_oauth_buf_add_url_escaped(&it->text, name->data, name->len);
    it->name_len = it->text.len;
    ngx_oauth_buf_add_byte(&it->text, '=');
    ngx_oauth_buf_add_url_escaped(&it->text, value->data, value->len);

    if (it->text.failed) {
        return NGX_OAUTH_NOMEM;
    }

    it->index = q->n++;

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_sigv4_query(const ngx_oauth_sigv4_t *req, ngx_oauth_buf_t *cr)
{
    int                       rc;
    size_t                    i;
    ngx_oauth_sigv4_query_t  *q;

    q = calloc(1, sizeof(ngx_oauth_sigv4_query_t));
    if (q == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    rc = ngx_oauth_query_foreach(req->query.data, req->query.len,
                                 ngx_oauth_sigv4_param, q);

    if (rc == NGX_OAUTH_OK) {
        qsort(q->items, q->n, sizeof(ngx_oauth_sigv4_item_t),
              ngx_oauth_sigv4_item_cmp);

        for (i = 0; i < q->n; i++) {
            if (i) {
                ngx_oauth_buf_add_byte(cr, '&');
            }

            ngx_oauth_buf_add(cr, q->items[i].text.data, q->items[i].text.len);
        }

        ngx_oauth_buf_add_byte(cr, '\n');
    }

    for (i = 0; i < q->n; i++) {
        ngx_oauth_buf_free(&q->items[i].text);
    }

    free(q);

    return rc;
}


/*
 * By name, then by value for query pairs: "a-b" sorts before "a" as
 * text but after it as a name, so the names are compared alone first.
 * Headers of one name keep the order given (their index).
 */

static int
ngx_oauth_sigv4_item_cmp(const void *a, const void *b)
{
    int                            rc;
    size_t                         n, xl, yl;
    const ngx_oauth_sigv4_item_t  *x = a, *y = b;

    n = x->name_len < y->name_len ? x->name_len : y->name_len;
    rc = n ? memcmp(x->text.data, y->text.data, n) : 0;

    if (rc || x->name_len != y->name_len) {
        return rc ? rc : (x->name_len > y->name_len ? 1 : -1);
    }

    if (x->text.data[x->name_len] == ':') {
        return (x->index > y->index) - (x->index < y->index);
    }

    xl = x->text.len - x->name_len;
    yl = y->text.len - y->name_len;
    n = xl < yl ? xl : yl;
    rc = memcmp(x->text.data + x->name_len, y->text.data + y->name_len, n);

    return rc ? rc : (xl > yl) - (xl < yl);
}


/*
 * The canonical headers, a line each, sorted by name, the values of a
 * repeated name joined by ","; then a blank line and the signed names.
 */

static int
ngx_oauth_sigv4_headers(const ngx_oauth_sigv4_t *req, ngx_oauth_buf_t *cr,
    ngx_oauth_buf_t *signed_headers)
{
    int                      rc;
    size_t                   i, n;
    ngx_oauth_pair_t         date;
    ngx_oauth_sigv4_item_t  *hd, *it;

    n = req->nheaders;

    hd = calloc(n + 1, sizeof(ngx_oauth_sigv4_item_t));
    if (hd == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    for (i = 0; i < n; i++) {
        ngx_oauth_sigv4_header(&hd[i], &req->headers[i], i);
    }

    date.name.data = (unsigned char *) "x-amz-date";
    date.name.len = sizeof("x-amz-date") - 1;
    date.value = req->amz_date;
    ngx_oauth_sigv4_header(&hd[n], &date, n);
    n++;

    rc = NGX_OAUTH_OK;

    for (i = 0; i < n; i++) {
        if (hd[i].text.failed || hd[i].text.data == NULL) {
            rc = NGX_OAUTH_NOMEM;
            goto done;
        }
    }

    qsort(hd, n, sizeof(ngx_oauth_sigv4_item_t), ngx_oauth_sigv4_item_cmp);

    for (i = 0; i < n; i++) {
        it = &hd[i];

        if (i && it->name_len == hd[i - 1].name_len
            && memcmp(it->text.data, hd[i - 1].text.data, it->name_len) == 0)
        {
            ngx_oauth_buf_add_byte(cr, ',');
            ngx_oauth_buf_add(cr, it->text.data + it->name_len + 1,
                              it->text.len - it->name_len - 1);
            continue;
        }

        if (i) {
            ngx_oauth_buf_add_byte(cr, '\n');
            ngx_oauth_buf_add_byte(signed_headers, ';');
        }

        ngx_oauth_buf_add(cr, it->text.data, it->text.len);
        ngx_oauth_buf_add(signed_headers, it->text.data, it->name_len);
    }

    ngx_oauth_buf_add_cstr(cr, "\n\n");
    ngx_oauth_buf_add(cr, signed_headers->data, signed_headers->len);
    ngx_oauth_buf_add_byte(cr, '\n');

done:

    for (i = 0; i < n; i++) {
        ngx_oauth_buf_free(&hd[i].text);
    }

    free(hd);

    return rc;
}


/* "name:value": the name lower-cased, the value trimmed, spaces folded */

static void
ngx_oauth_sigv4_header(ngx_oauth_sigv4_item_t *it, const ngx_oauth_pair_t *h,
    size_t index)
{
    size_t                i;
    int                   space;
    const unsigned char  *v, *end;

    for (i = 0; i < h->name.len; i++) {
        ngx_oauth_buf_add_byte(&it->text, (h->name.data[i] >= 'A'
                                           && h->name.data[i] <= 'Z')
                                          ? h->name.data[i] + 32
                                          : h->name.data[i]);
    }

    it->name_len = h->name.len;
    it->index = index;
    ngx_oauth_buf_add_byte(&it->text, ':');

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
            ngx_oauth_buf_add_byte(&it->text, ' ');
            space = 0;
        }

        ngx_oauth_buf_add_byte(&it->text, *v);
    }
}


/*
 * The canonical path.  S3 signs its keys as they are, empty segments and
 * dots included; other services sign the path normalized (RFC 3986 dot
 * segments removed, empty segments dropped) with each segment encoded
 * twice, as AWS documents.  Segments are decoded first, so that the
 * client's choice of which characters to escape does not matter.
 */

static int
ngx_oauth_sigv4_path(const ngx_oauth_sigv4_t *req, ngx_oauth_buf_t *cr)
{
    int                   s3, rc;
    size_t                i, n, k;
    unsigned char        *tmp;
    ngx_oauth_str_t      *seg;
    const unsigned char  *p, *q, *end;

    if (req->path.len == 0) {
        return ngx_oauth_buf_add_byte(cr, '/');
    }

    if (req->path.data[0] != '/') {
        return NGX_OAUTH_INVALID;
    }

    s3 = req->service.len >= 2 && memcmp(req->service.data, "s3", 2) == 0;
    end = req->path.data + req->path.len;

    for (n = 0, p = req->path.data; p < end; p++) {
        n += (*p == '/');
    }

    seg = calloc(n, sizeof(ngx_oauth_str_t));
    tmp = malloc(req->path.len);

    if (seg == NULL || tmp == NULL) {
        rc = NGX_OAUTH_NOMEM;
        goto done;
    }

    for (k = 0, p = req->path.data + 1; /* void */ ; p = q + 1) {
        q = memchr(p, '/', end - p);
        q = q ? q : end;

        if (!s3 && (q - p == 0 || (q - p == 1 && p[0] == '.'))) {
            /* void */

        } else if (!s3 && q - p == 2 && p[0] == '.' && p[1] == '.') {
            k -= (k > 0);

        } else {
            seg[k].data = (unsigned char *) p;
            seg[k++].len = q - p;
        }

        if (q == end) {
            break;
        }
    }

    rc = ngx_oauth_buf_add_byte(cr, '/');

    for (i = 0; i < k && rc == NGX_OAUTH_OK; i++) {
        if (i) {
            ngx_oauth_buf_add_byte(cr, '/');
        }

        rc = ngx_oauth_sigv4_segment(cr, seg[i].data, seg[i].len, !s3, tmp);
    }

    if (rc == NGX_OAUTH_OK && !s3 && k && end[-1] == '/') {
        rc = ngx_oauth_buf_add_byte(cr, '/');
    }

done:

    free(seg);
    free(tmp);

    return rc;
}


static int
ngx_oauth_sigv4_segment(ngx_oauth_buf_t *cr, const unsigned char *seg,
    size_t len, int twice, unsigned char *tmp)
{
    int              rc;
    size_t           n;
    ngx_oauth_buf_t  once = ngx_oauth_buf_init;

    rc = ngx_oauth_url_decode(seg, len, 0, tmp, &n);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (!twice) {
        return ngx_oauth_buf_add_url_escaped(cr, tmp, n);
    }

    rc = ngx_oauth_buf_add_url_escaped(&once, tmp, n);

    if (rc == NGX_OAUTH_OK) {
        rc = ngx_oauth_buf_add_url_escaped(cr, once.data, once.len);
    }

    ngx_oauth_buf_free(&once);

    return rc;
}


static int
ngx_oauth_sigv4_canonical(const ngx_oauth_sigv4_t *req, ngx_oauth_buf_t *cr,
    ngx_oauth_buf_t *signed_headers)
{
    int  rc;

    ngx_oauth_buf_add(cr, req->method.data, req->method.len);
    ngx_oauth_buf_add_byte(cr, '\n');

    rc = ngx_oauth_sigv4_path(req, cr);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    ngx_oauth_buf_add_byte(cr, '\n');

    rc = ngx_oauth_sigv4_query(req, cr);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    rc = ngx_oauth_sigv4_headers(req, cr, signed_headers);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    ngx_oauth_buf_add(cr, req->payload_hash.data, req->payload_hash.len);

    return (cr->failed || signed_headers->failed) ? NGX_OAUTH_NOMEM
                                                  : NGX_OAUTH_OK;
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
