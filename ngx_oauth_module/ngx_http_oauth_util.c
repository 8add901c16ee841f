/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_util.h"


static void ngx_http_oauth_secret_wipe(void *data);


ngx_int_t
ngx_http_oauth_owner(ngx_http_request_t *r, ngx_http_oauth_loc_conf_t *olcf,
    ngx_str_t *owner)
{
    if (olcf->owner == NULL) {
        ngx_str_null(owner);
        return NGX_DECLINED;
    }

    if (ngx_http_complex_value(r, olcf->owner, owner) != NGX_OK) {
        return NGX_ERROR;
    }

    if (owner->len == 0 || owner->len > NGX_OAUTH_OWNER_MAX) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth: owner is %s",
                       owner->len ? "too long" : "empty");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_oauth_store_ready(ngx_http_request_t *r,
    ngx_http_oauth_main_conf_t *omcf)
{
    if (omcf->store == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: the store is not open in this worker");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_oauth_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_oauth_add_header(r, "Cache-Control", "no-store") != NGX_OK
        || ngx_http_oauth_add_header(r, "X-Content-Type-Options", "nosniff")
           != NGX_OK
        || ngx_http_oauth_add_header(r, "Referrer-Policy", "no-referrer")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->pos, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_oauth_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    u_char     *body, *last;
    size_t      len;
    ngx_str_t   type = ngx_string("application/json");

    /* RFC 9110 section 15.5.2: a 401 names how to authenticate */

    if (status == NGX_HTTP_UNAUTHORIZED
        && ngx_http_oauth_challenge(r, code) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth_error_page(r, status)) {
        return status;
    }

    /* code and message are static texts of the module, safe in JSON */

    len = sizeof("{\"error\":\"\",\"message\":\"\"}\n") - 1
          + ngx_strlen(code) + ngx_strlen(message);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_sprintf(body, "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                       code, message);

    return ngx_http_oauth_send(r, status, &type, body, last - body);
}


ngx_table_elt_t *
ngx_http_oauth_push_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(name);
    h->key.data = (u_char *) name;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


ngx_int_t
ngx_http_oauth_add_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_str_t  v;

    v.len = ngx_strlen(value);
    v.data = (u_char *) value;

    return ngx_http_oauth_push_header(r, name, &v) ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_oauth_set_location(ngx_http_request_t *r, ngx_str_t *url)
{
    ngx_http_clear_location(r);

    r->headers_out.location = ngx_http_oauth_push_header(r, "Location", url);

    return r->headers_out.location ? NGX_OK : NGX_ERROR;
}


void *
ngx_http_oauth_cleanup_data(ngx_http_request_t *r,
    ngx_pool_cleanup_pt handler)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == handler) {
            return cln->data;
        }
    }

    return NULL;
}


ngx_uint_t
ngx_http_oauth_has_control(const u_char *data, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            return 1;
        }
    }

    return 0;
}


/*
 * The module's credential is not the client's to send: the challenge
 * names the realm and the error code, which a script reads without
 * parsing the body.
 */

ngx_int_t
ngx_http_oauth_challenge(ngx_http_request_t *r, const char *code)
{
    u_char     *p;
    ngx_str_t   v;

    v.len = sizeof("Bearer realm=\"oauth\", error=\"\"") - 1
            + ngx_strlen(code);

    v.data = ngx_pnalloc(r->pool, v.len);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(v.data, "Bearer realm=\"oauth\", error=\"%s\"", code);
    v.len = p - v.data;

    r->headers_out.www_authenticate = ngx_http_oauth_push_header(r,
                                                   "WWW-Authenticate", &v);

    return r->headers_out.www_authenticate ? NGX_OK : NGX_ERROR;
}


/*
 * "error_page 401 ..." in the location: nginx's own error page handling
 * answers (a redirect to a connect page, a styled page), as it does for
 * any other handler's status.  Not from within an error page already.
 */

ngx_uint_t
ngx_http_oauth_error_page(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *ep;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->error_page || clcf->error_pages == NULL || r->uri_changes == 0) {
        return 0;
    }

    ep = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if (ep[i].status == (ngx_int_t) status) {
            return 1;
        }
    }

    return 0;
}


/* whether a browser navigated here (it takes text/html), not a script */

ngx_uint_t
ngx_http_oauth_wants_html(ngx_http_request_t *r)
{
    ngx_str_t  *accept;

#if (NGX_HTTP_HEADERS)
    accept = r->headers_in.accept ? &r->headers_in.accept->value : NULL;
#else
    accept = NULL;
#endif

    return accept != NULL
           && ngx_strlcasestrn(accept->data, accept->data + accept->len,
                               (u_char *) "text/html", 9 - 1)
              != NULL;
}


/* a small page for a person; title and text are static, safe in HTML */

ngx_int_t
ngx_http_oauth_send_page(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *title, const char *text)
{
    u_char     *body, *last;
    size_t      len;
    ngx_str_t   type = ngx_string("text/html; charset=utf-8");

    static const char  page[] =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>%s</title></head>\n<body><h1>%s</h1>\n<p>%s</p>\n"
        "<p><a href=\"/\">Back to the start page</a></p>\n"
        "<!-- oauth_error: %s -->\n</body></html>\n";

    if (ngx_http_oauth_error_page(r, status)) {
        return status;
    }

    len = sizeof(page) + 2 * ngx_strlen(title) + ngx_strlen(text)
          + ngx_strlen(code);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_snprintf(body, len, page, title, title, text, code);

    return ngx_http_oauth_send(r, status, &type, body, last - body);
}


/*
 * Read the way ngx_ssl_session_ticket_keys() reads keys: full path, size
 * checked; and a file that others may read is refused.  The buffer is the
 * secret's own memory, wiped by a pool cleanup, so no copy is left behind.
 */

ngx_int_t
ngx_http_oauth_read_secret(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret)
{
    size_t               len;
    ssize_t              n;
    ngx_int_t            rc;
    ngx_str_t            name, *buf;
    ngx_file_t           file;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = name;
    file.log = cf->log;

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    buf = NULL;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto done;
    }

    if (ngx_file_access(&fi) & 0007) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must not be accessible to others "
                           "(mode 0600 or 0640)", &name);
        goto done;
    }

    if (ngx_file_size(&fi) == 0
        || ngx_file_size(&fi) > NGX_HTTP_OAUTH_SECRET_FILE_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold 1 to %uz bytes", &name,
                           (size_t) NGX_HTTP_OAUTH_SECRET_FILE_MAX);
        goto done;
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        goto done;
    }

    buf = cln->data;
    buf->len = (size_t) ngx_file_size(&fi);

    buf->data = ngx_pnalloc(cf->pool, buf->len);
    if (buf->data == NULL) {
        buf->len = 0;
        goto done;
    }

    cln->handler = ngx_http_oauth_secret_wipe;

    n = ngx_read_file(&file, buf->data, buf->len, 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_file_n " \"%V\" failed", &name);
        goto done;
    }

    /* one secret, optionally followed by a newline */

    len = n;

    while (len && (buf->data[len - 1] == '\n' || buf->data[len - 1] == '\r'))
    {
        len--;
    }

    if (len == 0 || ngx_strlchr(buf->data, buf->data + len, '\n')) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold the secret on one line", &name);
        goto done;
    }

    secret->data = buf->data;
    secret->len = len;

    rc = NGX_OK;

done:

    if (rc != NGX_OK && buf != NULL) {
        ngx_http_oauth_secret_wipe(buf);
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &name);
    }

    return rc;
}


static void
ngx_http_oauth_secret_wipe(void *data)
{
    ngx_str_t  *s = data;

    if (s->data) {
        ngx_explicit_memzero(s->data, s->len);
    }
}
