/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_cors.h"
#include "ngx_http_oauth_util.h"


static ngx_str_t *ngx_http_oauth_cors_header(ngx_http_request_t *r,
    const char *name, size_t len);
static ngx_int_t ngx_http_oauth_cors_find(ngx_http_request_t *r,
    const char *name, size_t len, ngx_str_t **value);
static ngx_str_t *ngx_http_oauth_cors_origin(ngx_http_request_t *r);
static ngx_uint_t ngx_http_oauth_cors_token_list(ngx_str_t *s);


ngx_int_t
ngx_http_oauth_cors_preflight(ngx_http_request_t *r, const char *methods)
{
    ngx_str_t   *origin, *heads;
    ngx_str_t    none = ngx_null_string;

    if (r->method != NGX_HTTP_OPTIONS
        || ngx_http_oauth_cors_header(r, "origin", 6) == NULL
        || ngx_http_oauth_cors_header(r, "access-control-request-method",
                                      29)
           == NULL)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    origin = ngx_http_oauth_cors_origin(r);

    if (origin == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: preflight from an origin not in "
                      "oauth_allowed_origins refused");

        return ngx_http_oauth_send_error(r, NGX_HTTP_FORBIDDEN,
                                         "forbidden_origin",
                                         "this origin may not call here");
    }

    if (ngx_http_oauth_cors_headers(r) != NGX_OK
        || ngx_http_oauth_add_header(r, "Access-Control-Allow-Methods",
                                     methods)
           != NGX_OK
        || ngx_http_oauth_add_header(r, "Access-Control-Max-Age", "600")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the headers the page asked for: its own auth and CSRF headers */

    heads = ngx_http_oauth_cors_header(r, "access-control-request-headers",
                                       30);

    if (heads && heads->len && ngx_http_oauth_cors_token_list(heads)
        && ngx_http_oauth_push_header(r, "Access-Control-Allow-Headers",
                                      heads)
           == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_oauth_send(r, NGX_HTTP_NO_CONTENT, &none, NULL, 0);
}


ngx_int_t
ngx_http_oauth_cors_headers(ngx_http_request_t *r)
{
    ngx_str_t  *origin;

    origin = ngx_http_oauth_cors_origin(r);

    if (origin == NULL) {
        return NGX_OK;
    }

    if (ngx_http_oauth_push_header(r, "Access-Control-Allow-Origin", origin)
        == NULL
        || ngx_http_oauth_add_header(r, "Access-Control-Allow-Credentials",
                                     "true")
           != NGX_OK
        || ngx_http_oauth_add_header(r, "Vary", "Origin") != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the request's Origin when it is one of oauth_allowed_origins exactly */

static ngx_str_t *
ngx_http_oauth_cors_origin(ngx_http_request_t *r)
{
    ngx_str_t  *origin;

    origin = ngx_http_oauth_cors_header(r, "origin", 6);

    if (origin == NULL) {
        return NULL;
    }

    return ngx_http_oauth_cors_allowed(r, origin);
}


ngx_int_t
ngx_http_oauth_cors_request_origin(ngx_http_request_t *r, ngx_str_t **origin)
{
    return ngx_http_oauth_cors_find(r, "origin", 6, origin);
}


ngx_str_t *
ngx_http_oauth_cors_allowed(ngx_http_request_t *r, ngx_str_t *origin)
{
    ngx_str_t                  *allowed;
    ngx_uint_t                  i;
    ngx_http_oauth_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);

    if (olcf->allowed_origins == NULL) {
        return NULL;
    }

    allowed = olcf->allowed_origins->elts;

    for (i = 0; i < olcf->allowed_origins->nelts; i++) {
        if (allowed[i].len == origin->len
            && ngx_strncasecmp(allowed[i].data, origin->data, origin->len)
               == 0)
        {
            return &allowed[i];
        }
    }

    return NULL;
}


/* the value of a request header sent once, or NULL */

static ngx_str_t *
ngx_http_oauth_cors_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_str_t  *value;

    if (ngx_http_oauth_cors_find(r, name, len, &value) != NGX_OK) {
        return NULL;
    }

    return value;
}


/* NGX_OK with the header's value or NULL; NGX_DECLINED when repeated */

static ngx_int_t
ngx_http_oauth_cors_find(ngx_http_request_t *r, const char *name, size_t len,
    ngx_str_t **value)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    *value = NULL;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            if (*value) {
                *value = NULL;
                return NGX_DECLINED;
            }

            *value = &h[i].value;
        }
    }

    return NGX_OK;
}


/* header names, commas and spaces only: nothing else is echoed back */

static ngx_uint_t
ngx_http_oauth_cors_token_list(ngx_str_t *s)
{
    u_char      c;
    ngx_uint_t  i;

    if (s->len > 512) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (!(ngx_http_oauth_isalnum(c) || c == '-' || c == '_' || c == ','
              || c == ' '))
        {
            return 0;
        }
    }

    return 1;
}
