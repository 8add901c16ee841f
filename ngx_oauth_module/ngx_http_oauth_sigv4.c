/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_sigv4.h"
#include "ngx_oauth_sign.h"
#include "ngx_oauth_sigv4.h"


/* SHA-256 of nothing: a request without a body */
#define NGX_HTTP_OAUTH_SIGV4_EMPTY                                           \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define NGX_HTTP_OAUTH_SIGV4_UNSIGNED  "UNSIGNED-PAYLOAD"


static ngx_int_t ngx_http_oauth_sigv4_keys(ngx_str_t *keys, ngx_str_t *id,
    ngx_str_t *secret, ngx_str_t *token);
static ngx_int_t ngx_http_oauth_sigv4_host(ngx_str_t *base_url,
    ngx_str_t *host);
static ngx_int_t ngx_http_oauth_sigv4_path(ngx_http_request_t *r,
    ngx_str_t *path, ngx_str_t *query);
static ngx_oauth_pair_t *ngx_http_oauth_sigv4_headers(ngx_http_request_t *r,
    ngx_str_t *host, ngx_http_oauth_sigv4_t *out, size_t *n, size_t *names);
static void ngx_http_oauth_sigv4_pair(ngx_oauth_pair_t *p, const char *name,
    ngx_str_t *value);


ngx_uint_t
ngx_http_oauth_sigv4_needs_body(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *pr)
{
    if (pr->aws_unsigned_payload) {
        return 0;
    }

    return r->headers_in.content_length_n > 0 || r->headers_in.chunked;
}


/*
 * The body as nginx read it: in memory, or partly in its temporary file,
 * which is read back here (as nginx reads files, from the page cache it
 * has just been written to).
 */

ngx_int_t
ngx_http_oauth_sigv4_hash_body(ngx_http_request_t *r, u_char *hex)
{
    off_t                off;
    size_t               len;
    ssize_t              n;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_oauth_sha256_t  *h;
    u_char               buf[4096];

    h = ngx_oauth_sha256_new();
    if (h == NULL) {
        return NGX_ERROR;
    }

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            if (ngx_oauth_sha256_update(h, b->pos, b->last - b->pos)
                != NGX_OAUTH_OK)
            {
                goto failed;
            }

            continue;
        }

        if (!b->in_file) {
            continue;
        }

        for (off = b->file_pos; off < b->file_last; off += n) {
            len = (size_t) ngx_min((off_t) sizeof(buf), b->file_last - off);

            n = ngx_read_file(b->file, buf, len, off);

            if (n <= 0 || ngx_oauth_sha256_update(h, buf, n) != NGX_OAUTH_OK)
            {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "oauth: cannot read the request body to sign "
                              "it");
                goto failed;
            }
        }
    }

    if (ngx_oauth_sha256_final_hex(h, (char *) hex) != NGX_OAUTH_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;

failed:

    ngx_oauth_sha256_free(h);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_oauth_sigv4_sign(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *pr, ngx_str_t *keys, ngx_str_t *base_url,
    u_char *payload_hash, ngx_http_oauth_sigv4_t *out)
{
    u_char             *date;
    size_t              n, names, size;
    ngx_tm_t            tm;
    ngx_str_t           id, secret, host, path, query;
    ngx_oauth_pair_t   *headers;
    ngx_oauth_sigv4_t   req;

    if (ngx_http_oauth_sigv4_keys(keys, &id, &secret, &out->security_token)
        != NGX_OK
        || ngx_http_oauth_sigv4_host(base_url, &host) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": the stored AWS keys or "
                      "api_base_url cannot sign a request", &pr->name);
        return NGX_DECLINED;
    }

    if (ngx_http_oauth_sigv4_path(r, &path, &query) != NGX_OK) {
        return NGX_ERROR;
    }

    date = ngx_pnalloc(r->pool, sizeof("YYYYMMDDTHHMMSSZ"));
    if (date == NULL) {
        return NGX_ERROR;
    }

    ngx_gmtime(ngx_time(), &tm);

    out->amz_date.data = date;
    out->amz_date.len = ngx_sprintf(date, "%4d%02d%02dT%02d%02d%02dZ",
                                    tm.ngx_tm_year, tm.ngx_tm_mon,
                                    tm.ngx_tm_mday, tm.ngx_tm_hour,
                                    tm.ngx_tm_min, tm.ngx_tm_sec)
                        - date;

    if (pr->aws_unsigned_payload) {
        ngx_str_set(&out->content_sha256, NGX_HTTP_OAUTH_SIGV4_UNSIGNED);

    } else if (payload_hash) {
        out->content_sha256.data = payload_hash;
        out->content_sha256.len = 64;

    } else {
        ngx_str_set(&out->content_sha256, NGX_HTTP_OAUTH_SIGV4_EMPTY);
    }

    headers = ngx_http_oauth_sigv4_headers(r, &host, out, &n, &names);
    if (headers == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&req, sizeof(ngx_oauth_sigv4_t));

    req.method.data = r->method_name.data;
    req.method.len = r->method_name.len;
    req.path.data = path.data;
    req.path.len = path.len;
    req.query.data = query.data;
    req.query.len = query.len;
    req.headers = headers;
    req.nheaders = n;
    req.payload_hash.data = out->content_sha256.data;
    req.payload_hash.len = out->content_sha256.len;
    req.access_key.data = id.data;
    req.access_key.len = id.len;
    req.secret_key.data = secret.data;
    req.secret_key.len = secret.len;
    req.region.data = pr->aws_region.data;
    req.region.len = pr->aws_region.len;
    req.service.data = pr->aws_service.data;
    req.service.len = pr->aws_service.len;
    req.amz_date.data = out->amz_date.data;
    req.amz_date.len = out->amz_date.len;

    /* "AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
     * SignedHeaders=..., Signature=" and 64 hex digits */

    size = 160 + id.len + pr->aws_region.len + pr->aws_service.len + names;

    out->authorization.data = ngx_pnalloc(r->pool, size);
    if (out->authorization.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_oauth_sigv4_sign(&req, (char *) out->authorization.data, size)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": the request cannot be signed "
                      "(its query?)", &pr->name);
        return NGX_DECLINED;
    }

    out->authorization.len = ngx_strlen(out->authorization.data);

    return NGX_OK;
}


/* "id:secret[:session token]", as the API stored them */

static ngx_int_t
ngx_http_oauth_sigv4_keys(ngx_str_t *keys, ngx_str_t *id, ngx_str_t *secret,
    ngx_str_t *token)
{
    u_char  *p, *last, *c;

    p = keys->data;
    last = p + keys->len;

    c = ngx_strlchr(p, last, ':');
    if (c == NULL || c == p) {
        return NGX_DECLINED;
    }

    id->data = p;
    id->len = c - p;

    p = c + 1;
    c = ngx_strlchr(p, last, ':');

    secret->data = p;
    secret->len = (c ? c : last) - p;

    token->len = 0;
    token->data = NULL;

    if (c) {
        token->data = c + 1;
        token->len = last - (c + 1);
    }

    return (secret->len && (c == NULL || token->len)) ? NGX_OK
                                                      : NGX_DECLINED;
}


/* the authority of api_base_url: what proxy_pass to it sends as Host */

static ngx_int_t
ngx_http_oauth_sigv4_host(ngx_str_t *base_url, ngx_str_t *host)
{
    u_char  *p, *last;

    p = base_url->data;
    last = p + base_url->len;

    p = ngx_strlcasestrn(p, last, (u_char *) "://", 3 - 1);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    p += 3;
    host->data = p;

    while (p < last && *p != '/' && *p != '?' && *p != '#') {
        p++;
    }

    host->len = p - host->data;

    return host->len ? NGX_OK : NGX_DECLINED;
}


/*
 * The path and query that proxy_pass without a URI part sends: the
 * client's own while the URI is unchanged, else the URI (escaped as the
 * proxy escapes it) and the arguments.
 */

static ngx_int_t
ngx_http_oauth_sigv4_path(ngx_http_request_t *r, ngx_str_t *path,
    ngx_str_t *query)
{
    u_char     *q;
    uintptr_t   escape;

    *query = r->args;

    if (r->valid_unparsed_uri) {
        q = ngx_strlchr(r->unparsed_uri.data,
                        r->unparsed_uri.data + r->unparsed_uri.len, '?');

        path->data = r->unparsed_uri.data;
        path->len = (q ? q : r->unparsed_uri.data + r->unparsed_uri.len)
                    - r->unparsed_uri.data;

        return NGX_OK;
    }

    escape = 0;

    if (r->quoted_uri || r->internal) {
        escape = 2 * ngx_escape_uri(NULL, r->uri.data, r->uri.len,
                                    NGX_ESCAPE_URI);
    }

    if (escape == 0) {
        *path = r->uri;
        return NGX_OK;
    }

    path->data = ngx_pnalloc(r->pool, r->uri.len + escape);
    if (path->data == NULL) {
        return NGX_ERROR;
    }

    path->len = (u_char *) ngx_escape_uri(path->data, r->uri.data,
                                          r->uri.len, NGX_ESCAPE_URI)
                - path->data;

    return NGX_OK;
}


/*
 * The headers to sign: host, the module's x-amz-* ones, and the client's
 * Content-Type and x-amz-* headers (those AWS wants signed); x-amz-date
 * the core adds.  *names: their names' length, for the Authorization.
 */

static ngx_oauth_pair_t *
ngx_http_oauth_sigv4_headers(ngx_http_request_t *r, ngx_str_t *host,
    ngx_http_oauth_sigv4_t *out, size_t *n, size_t *names)
{
    size_t             i, k;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h;
    ngx_oauth_pair_t  *hd;

    k = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        k += part->nelts;
    }

    hd = ngx_palloc(r->pool, sizeof(ngx_oauth_pair_t) * (k + 3));
    if (hd == NULL) {
        return NULL;
    }

    ngx_http_oauth_sigv4_pair(&hd[0], "host", host);
    ngx_http_oauth_sigv4_pair(&hd[1], "x-amz-content-sha256",
                              &out->content_sha256);
    k = 2;

    if (out->security_token.len) {
        ngx_http_oauth_sigv4_pair(&hd[k++], "x-amz-security-token",
                                  &out->security_token);
    }

    *names = sizeof("host;x-amz-content-sha256;x-amz-security-token;"
                    "x-amz-date");

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {

            /* the module's own replace the client's (token_headers) */

            if (h[i].key.len == sizeof("x-amz-date") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "x-amz-date",
                                   h[i].key.len) == 0)
            {
                continue;
            }

            if (h[i].key.len == sizeof("x-amz-content-sha256") - 1
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "x-amz-content-sha256",
                                   h[i].key.len) == 0)
            {
                continue;
            }

            if (h[i].key.len == sizeof("x-amz-security-token") - 1
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "x-amz-security-token",
                                   h[i].key.len) == 0)
            {
                continue;
            }

            if ((h[i].key.len > 6
                 && ngx_strncasecmp(h[i].key.data, (u_char *) "x-amz-", 6)
                    == 0)
                || (h[i].key.len == sizeof("content-type") - 1
                    && ngx_strncasecmp(h[i].key.data,
                                       (u_char *) "content-type",
                                       h[i].key.len) == 0))
            {
                hd[k].name.data = h[i].key.data;
                hd[k].name.len = h[i].key.len;
                hd[k].value.data = h[i].value.data;
                hd[k].value.len = h[i].value.len;
                *names += h[i].key.len + 1;
                k++;
            }
        }
    }

    *n = k;

    return hd;
}


static void
ngx_http_oauth_sigv4_pair(ngx_oauth_pair_t *p, const char *name,
    ngx_str_t *value)
{
    p->name.data = (unsigned char *) name;
    p->name.len = ngx_strlen(name);
    p->value.data = value->data;
    p->value.len = value->len;
}
