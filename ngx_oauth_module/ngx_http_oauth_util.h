/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_UTIL_H_INCLUDED_
#define _NGX_HTTP_OAUTH_UTIL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


#define NGX_HTTP_OAUTH_SECRET_FILE_MAX  1023


/*
 * What every handler of the module needs around a request: who the owner
 * is, whether this worker has its store, and the responses the module
 * makes itself.
 */


/*
 * The owner of the request from oauth_owner: NGX_OK, NGX_DECLINED when
 * there is none (not set, empty or too long), NGX_ERROR.
 */
ngx_int_t ngx_http_oauth_owner(ngx_http_request_t *r,
    ngx_http_oauth_loc_conf_t *olcf, ngx_str_t *owner);

/* NGX_OK when this worker has its store open; else logged, NGX_ERROR */
ngx_int_t ngx_http_oauth_store_ready(ngx_http_request_t *r,
    ngx_http_oauth_main_conf_t *omcf);

/*
 * A response of the module's own: never cached, never framed, nothing in
 * it but what the caller passed.  The body is copied.
 */
ngx_int_t ngx_http_oauth_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);

/* {"error":code,"message":message}; both static texts without quotes */
ngx_int_t ngx_http_oauth_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);

/* WWW-Authenticate: Bearer realm="oauth", error="code" (a static text) */
ngx_int_t ngx_http_oauth_challenge(ngx_http_request_t *r, const char *code);

/*
 * Whether the location has an error_page for status: then the module
 * returns the status and nginx's error page answers instead of its body.
 */
ngx_uint_t ngx_http_oauth_error_page(ngx_http_request_t *r,
    ngx_uint_t status);

/* whether the client takes text/html: a browser that navigated here */
ngx_uint_t ngx_http_oauth_wants_html(ngx_http_request_t *r);

/* a small HTML page for a person (static texts), or the error_page */
ngx_int_t ngx_http_oauth_send_page(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *title, const char *text);

/* a response header; name and value must outlive the request */
ngx_table_elt_t *ngx_http_oauth_push_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_oauth_add_header(ngx_http_request_t *r, const char *name,
    const char *value);

/* Location: url, replacing any set before */
ngx_int_t ngx_http_oauth_set_location(ngx_http_request_t *r, ngx_str_t *url);

/* whether data has a control character (below 0x20, or DEL) */
ngx_uint_t ngx_http_oauth_has_control(const u_char *data, size_t len);

/*
 * State kept beside the module's ctx slot (which oauth_token owns): the
 * data of the request pool cleanup with this handler, or NULL.
 */
void *ngx_http_oauth_cleanup_data(ngx_http_request_t *r,
    ngx_pool_cleanup_pt handler);

/*
 * A secret file (client_secret_file, a webhook's secret_file, the shared
 * store's password_file) read at configuration time: 1 to
 * NGX_HTTP_OAUTH_SECRET_FILE_MAX bytes on one line, not readable by others.
 * The secret is in cf->pool and wiped when the configuration goes.
 * NGX_OK, or NGX_ERROR with the reason logged.
 */
ngx_int_t ngx_http_oauth_read_secret(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret);


#endif /* _NGX_HTTP_OAUTH_UTIL_H_INCLUDED_ */
