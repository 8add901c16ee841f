/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_endpoint.h"
#include "ngx_oauth_template.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_json.h"


/*
 * Until the call starts, f->data points to this, where start puts the
 * caller's handler and data; they are given back to f before the
 * caller's handler runs.
 */

typedef struct {
    ngx_http_oauth_fetch_handler_pt   handler;
    void                             *data;
    ngx_http_oauth_provider_t        *provider;   /* for the metrics */
    ngx_uint_t                        call;       /* NGX_HTTP_OAUTH_CALL_* */
} ngx_http_oauth_endpoint_call_t;


static ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_create(
    ngx_pool_t *pool, ngx_log_t *log, ngx_http_oauth_provider_t *p,
    ngx_uint_t call);
static ngx_uint_t ngx_http_oauth_endpoint_token_call(
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    ngx_oauth_buf_t *body);
static void ngx_http_oauth_endpoint_done(ngx_http_oauth_fetch_t *f);
static ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_client(
    ngx_pool_t *pool, ngx_log_t *log, ngx_http_oauth_provider_t *p,
    ngx_str_t *endpoint, ngx_uint_t auth, const ngx_oauth_pair_t *vars,
    size_t nvars, ngx_oauth_buf_t *body);
static ngx_uint_t ngx_http_oauth_endpoint_public_only(
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint);
static ngx_int_t ngx_http_oauth_endpoint_url(ngx_pool_t *pool,
    ngx_str_t *endpoint, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_str_t *url);
static ngx_int_t ngx_http_oauth_endpoint_json(ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_oauth_buf_t *body);
static ngx_int_t ngx_http_oauth_endpoint_copy(ngx_pool_t *pool,
    ngx_oauth_buf_t *b, ngx_str_t *s);
static ngx_oauth_pair_t *ngx_http_oauth_endpoint_vars(ngx_pool_t *pool,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars,
    size_t nvars, size_t *n);
static ngx_int_t ngx_http_oauth_endpoint_revoke_body(ngx_pool_t *pool,
    ngx_http_oauth_provider_t *p, ngx_oauth_pair_t *all, size_t n,
    ngx_http_oauth_fetch_t *f);
static ngx_int_t ngx_http_oauth_endpoint_revoke_auth(ngx_pool_t *pool,
    ngx_http_oauth_provider_t *p, ngx_oauth_pair_t *all, size_t n,
    ngx_http_oauth_fetch_t *f);
static ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_api_get(
    ngx_pool_t *pool, ngx_log_t *log, ngx_http_oauth_provider_t *p,
    ngx_str_t *endpoint, ngx_uint_t call, const ngx_oauth_pair_t *vars,
    size_t nvars, ngx_str_t *credential);
static ngx_int_t ngx_http_oauth_endpoint_headers(ngx_pool_t *pool,
    ngx_http_oauth_fetch_t *f, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars);
static ngx_int_t ngx_http_oauth_endpoint_body(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p, ngx_str_t *tpl,
    ngx_oauth_pair_t *all, size_t n, ngx_http_oauth_fetch_t *f);


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_token(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_oauth_buf_t *body)
{
    return ngx_http_oauth_endpoint_client(pool, log, p, &p->token_url,
                                          p->token_auth, vars, nvars, body);
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_refresh(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_oauth_buf_t *body)
{
    /* Keap: the client in the body for the code, in Basic for a refresh */

    return ngx_http_oauth_endpoint_client(pool, log, p, &p->token_url,
                                          p->refresh_token_auth, vars, nvars,
                                          body);
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_revoke(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_oauth_buf_t *body)
{
    /*
     * the token_param lines go here too: a provider that wants one at
     * its token endpoint (an audience, a tenant) wants it here as well
     */

    return ngx_http_oauth_endpoint_client(pool, log, p, &p->revocation_url,
                                          p->token_auth, vars, nvars, body);
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_credentials(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_uint_t call)
{
    size_t                   n;
    ngx_str_t               *endpoint;
    ngx_oauth_buf_t          body = ngx_oauth_buf_init;
    ngx_oauth_pair_t        *all, *body_vars;
    ngx_http_oauth_fetch_t  *f;

    /* a refresh goes to refresh_url, which is token_url unless set */

    endpoint = (call == NGX_HTTP_OAUTH_CALL_REFRESH && p->refresh_url.len)
               ? &p->refresh_url : &p->token_url;

    if (p->token_body.len == 0) {
        ngx_oauth_buf_add_form_pair(&body, "grant_type", 10,
                                    "client_credentials", 18);

        f = ngx_http_oauth_endpoint_client(pool, log, p, endpoint,
                                           p->token_auth, vars, nvars,
                                           &body);
        ngx_oauth_buf_free(&body);

        return f;
    }

    all = ngx_http_oauth_endpoint_vars(pool, p, vars, nvars, &n);
    f = ngx_http_oauth_endpoint_create(pool, log, p, call);

    if (all == NULL || f == NULL
        || ngx_http_oauth_endpoint_url(pool, endpoint, vars, nvars, &f->url)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build token_url",
                      &p->name);
        return NULL;
    }

    /* the secret is a variable of token_body only: never of a URL */

    body_vars = ngx_palloc(pool, sizeof(ngx_oauth_pair_t) * (n + 1));
    if (body_vars == NULL) {
        return NULL;
    }

    ngx_memcpy(body_vars, all, sizeof(ngx_oauth_pair_t) * n);

    body_vars[n].name.data = (u_char *) "client_secret";
    body_vars[n].name.len = sizeof("client_secret") - 1;
    body_vars[n].value.data = p->client_secret.data;
    body_vars[n].value.len = p->client_secret.len;

    if (ngx_http_oauth_endpoint_body(pool, log, p, &p->token_body,
                                     body_vars, n + 1, f)
        != NGX_OK)
    {
        return NULL;
    }

    f->public_only = ngx_http_oauth_endpoint_public_only(p, endpoint);
    f->user_agent = p->user_agent;
    f->post = 1;

    if (ngx_http_oauth_endpoint_headers(pool, f, p, vars, nvars) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build "
                      "token_header_param", &p->name);
        return NULL;
    }

    return f;
}


/*
 * token_body expanded into f's body: JSON when it is an object, else
 * form.  A placeholder with no value (Wix: a callback without its
 * instanceId) is logged by name, never the values.
 */

static ngx_int_t
ngx_http_oauth_endpoint_body(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_str_t *tpl, ngx_oauth_pair_t *all,
    size_t n, ngx_http_oauth_fetch_t *f)
{
    int              rc;
    ngx_int_t        ok;
    ngx_uint_t       json;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;
    ngx_oauth_str_t  missing;

    json = (tpl->data[0] == '{');

    ngx_str_null(&missing);

    rc = ngx_oauth_template_expand(&b, tpl->data, tpl->len, all, n,
                                   json ? NGX_OAUTH_TPL_JSON
                                        : NGX_OAUTH_TPL_FORM,
                                   &missing);

    ok = (rc == NGX_OAUTH_OK)
         ? ngx_http_oauth_endpoint_copy(pool, &b, &f->body) : NGX_ERROR;

    ngx_oauth_buf_free(&b);

    if (rc == NGX_OAUTH_NOT_FOUND) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": no value for \"{%*s}\" "
                      "of token_body", &p->name, missing.len, missing.data);
        return NGX_ERROR;
    }

    if (ok != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build token_body",
                      &p->name);
        return NGX_ERROR;
    }

    if (json) {
        ngx_str_set(&f->body_type, "application/json");
    }

    return NGX_OK;
}


/* a POST to endpoint with the client's authentication and token_param */

static ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_client(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint, ngx_uint_t auth,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_oauth_buf_t *body)
{
    ngx_str_t                url;
    ngx_uint_t               i, json, call;
    ngx_oauth_buf_t          user = ngx_oauth_buf_init;
    ngx_oauth_buf_t          pass = ngx_oauth_buf_init;
    ngx_http_oauth_pair_t   *tp;
    ngx_http_oauth_fetch_t  *f;

    f = NULL;

    if (ngx_http_oauth_endpoint_url(pool, endpoint, vars, nvars, &url)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build token_url",
                      &p->name);
        return NULL;
    }

    if (auth == NGX_HTTP_OAUTH_TOKEN_AUTH_POST) {
        ngx_oauth_buf_add_form_pair(body, p->client_id_param.data,
                                    p->client_id_param.len,
                                    p->client_id.data, p->client_id.len);

        if (p->client_secret.len) {
            ngx_oauth_buf_add_form_pair(body, "client_secret", 13,
                                        p->client_secret.data,
                                        p->client_secret.len);
        }

    } else {
        /* RFC 6749 section 2.3.1: form-encoded, then Basic */

        ngx_oauth_buf_add_form_escaped(&user, p->client_id.data,
                                       p->client_id.len);
        ngx_oauth_buf_add_form_escaped(&pass, p->client_secret.data,
                                       p->client_secret.len);
    }

    if (p->token_params) {
        tp = p->token_params->elts;

        for (i = 0; i < p->token_params->nelts; i++) {
            ngx_oauth_buf_add_form_pair(body, tp[i].name.data,
                                        tp[i].name.len, tp[i].value.data,
                                        tp[i].value.len);
        }
    }

    if (body->failed || user.failed || pass.failed) {
        goto done;
    }

    /* the call is told from the form, before any JSON encoding */

    call = ngx_http_oauth_endpoint_token_call(p, endpoint, body);
    json = (p->token_json && call != NGX_HTTP_OAUTH_CALL_REVOKE);

    if (json && ngx_http_oauth_endpoint_json(log, p, body) != NGX_OK) {
        goto done;
    }

    f = ngx_http_oauth_endpoint_create(pool, log, p, call);
    if (f == NULL) {
        goto done;
    }

    f->url = url;
    f->public_only = ngx_http_oauth_endpoint_public_only(p, endpoint);
    f->user_agent = p->user_agent;

    if (ngx_http_oauth_endpoint_copy(pool, body, &f->body) != NGX_OK) {
        f = NULL;
        goto done;
    }

    if (json) {
        ngx_str_set(&f->body_type, "application/json");
    }

    if (auth == NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC
        && (ngx_http_oauth_endpoint_copy(pool, &user, &f->user) != NGX_OK
            || ngx_http_oauth_endpoint_copy(pool, &pass, &f->password)
               != NGX_OK))
    {
        f = NULL;
        goto done;
    }

    f->post = 1;

    /* extra headers a provider wants on its token endpoint (Walmart) */

    if (endpoint == &p->token_url
        && ngx_http_oauth_endpoint_headers(pool, f, p, vars, nvars)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build "
                      "token_header_param", &p->name);
        f = NULL;
    }

done:

    ngx_oauth_buf_free(&user);
    ngx_oauth_buf_free(&pass);

    return f;
}


/* token_encoding json: the form built so far, as a JSON object */

static ngx_int_t
ngx_http_oauth_endpoint_json(ngx_log_t *log, ngx_http_oauth_provider_t *p,
    ngx_oauth_buf_t *body)
{
    int              rc;
    ngx_oauth_buf_t  json = ngx_oauth_buf_init;

    rc = ngx_oauth_json_from_form(&json, body->data, body->len);

    ngx_oauth_buf_free(body);
    *body = json;

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot encode the token "
                      "request as JSON: %s", &p->name, ngx_oauth_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The variables of the quirk templates: the caller's, then client_id and
 * a fresh random "uuid" (a correlation id per request).
 */

static ngx_oauth_pair_t *
ngx_http_oauth_endpoint_vars(ngx_pool_t *pool, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars, size_t *n)
{
    u_char            *u, *q, rnd[16];
    ngx_oauth_pair_t  *all;

    all = ngx_palloc(pool, sizeof(ngx_oauth_pair_t) * (nvars + 2));
    u = ngx_pnalloc(pool, 36);

    if (all == NULL || u == NULL
        || ngx_oauth_random(rnd, sizeof(rnd)) != NGX_OAUTH_OK)
    {
        return NULL;
    }

    if (nvars) {
        ngx_memcpy(all, vars, sizeof(ngx_oauth_pair_t) * nvars);
    }

    rnd[6] = (rnd[6] & 0x0f) | 0x40;
    rnd[8] = (rnd[8] & 0x3f) | 0x80;

    /* an RFC 9562 version 4 UUID, 8-4-4-4-12 */

    q = ngx_hex_dump(u, rnd, 4);
    *q++ = '-';
    q = ngx_hex_dump(q, rnd + 4, 2);
    *q++ = '-';
    q = ngx_hex_dump(q, rnd + 6, 2);
    *q++ = '-';
    q = ngx_hex_dump(q, rnd + 8, 2);
    *q++ = '-';
    (void) ngx_hex_dump(q, rnd + 10, 6);

    all[nvars].name.data = (u_char *) "client_id";
    all[nvars].name.len = sizeof("client_id") - 1;
    all[nvars].value.data = p->client_id.data;
    all[nvars].value.len = p->client_id.len;

    all[nvars + 1].name.data = (u_char *) "uuid";
    all[nvars + 1].name.len = sizeof("uuid") - 1;
    all[nvars + 1].value.data = u;
    all[nvars + 1].value.len = 36;

    *n = nvars + 2;

    return all;
}


/* token_header_param lines, expanded, added to the fetch's headers */

static ngx_int_t
ngx_http_oauth_endpoint_headers(ngx_pool_t *pool, ngx_http_oauth_fetch_t *f,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars,
    size_t nvars)
{
    size_t                  n;
    ngx_int_t               rc;
    ngx_uint_t              i;
    ngx_table_elt_t        *h;
    ngx_oauth_buf_t         b = ngx_oauth_buf_init;
    ngx_oauth_pair_t       *all;
    ngx_http_oauth_pair_t  *th;

    if (p->token_headers == NULL || p->token_headers->nelts == 0) {
        return NGX_OK;
    }

    all = ngx_http_oauth_endpoint_vars(pool, p, vars, nvars, &n);
    if (all == NULL) {
        return NGX_ERROR;
    }

    if (f->headers == NULL) {
        f->headers = ngx_array_create(pool, p->token_headers->nelts,
                                      sizeof(ngx_table_elt_t));
        if (f->headers == NULL) {
            return NGX_ERROR;
        }
    }

    th = p->token_headers->elts;
    rc = NGX_OK;

    for (i = 0; rc == NGX_OK && i < p->token_headers->nelts; i++) {
        ngx_oauth_buf_reset(&b);

        h = ngx_array_push(f->headers);

        if (h == NULL
            || ngx_oauth_template_expand(&b, th[i].value.data,
                                         th[i].value.len, all, n,
                                         NGX_OAUTH_TPL_RAW, NULL)
               != NGX_OAUTH_OK)
        {
            rc = NGX_ERROR;
            break;
        }

        ngx_memzero(h, sizeof(ngx_table_elt_t));
        h->key = th[i].name;
        rc = ngx_http_oauth_endpoint_copy(pool, &b, &h->value);
    }

    ngx_oauth_buf_free(&b);

    return rc;
}


ngx_uint_t
ngx_http_oauth_endpoint_revoke_custom(ngx_http_oauth_provider_t *p)
{
    return p->revocation_method.len || p->revocation_body.len
           || (p->revocation_auth.len
               && ngx_strcmp(p->revocation_auth.data, "client") != 0);
}


/*
 * A revocation the provider's way: GitHub's DELETE of the grant with the
 * client's Basic and a JSON body, Dropbox's POST with the token as
 * Bearer, Intuit's JSON body, Stripe's deauthorize with the secret key.
 */

ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_revoke_grant(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars,
    size_t nvars)
{
    size_t                   n;
    ngx_oauth_pair_t        *all;
    ngx_http_oauth_fetch_t  *f;

    all = ngx_http_oauth_endpoint_vars(pool, p, vars, nvars, &n);

    f = ngx_http_oauth_endpoint_create(pool, log, p,
                                       NGX_HTTP_OAUTH_CALL_REVOKE);

    if (all == NULL || f == NULL
        || ngx_http_oauth_endpoint_url(pool, &p->revocation_url, all, n,
                                       &f->url)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build revocation_url",
                      &p->name);
        return NULL;
    }

    f->public_only = ngx_http_oauth_endpoint_public_only(p,
                                                         &p->revocation_url);

    if (p->revocation_body.len
        && ngx_http_oauth_endpoint_revoke_body(pool, p, all, n, f) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build "
                      "revocation_body", &p->name);
        return NULL;
    }

    if (p->revocation_method.len) {
        f->method = p->revocation_method;
    }

    f->post = (f->method.len == 0);
    f->user_agent = p->user_agent;

    if (ngx_http_oauth_endpoint_revoke_auth(pool, p, all, n, f) != NGX_OK) {
        return NULL;
    }

    return f;
}


/* revocation_body expanded: JSON when it is an object (or null), else form */

static ngx_int_t
ngx_http_oauth_endpoint_revoke_body(ngx_pool_t *pool,
    ngx_http_oauth_provider_t *p, ngx_oauth_pair_t *all, size_t n,
    ngx_http_oauth_fetch_t *f)
{
    ngx_int_t        rc;
    ngx_uint_t       json;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    json = (p->revocation_body.data[0] == '{'
            || ngx_strcmp(p->revocation_body.data, "null") == 0);

    rc = NGX_ERROR;

    if (ngx_oauth_template_expand(&b, p->revocation_body.data,
                                  p->revocation_body.len, all, n,
                                  json ? NGX_OAUTH_TPL_JSON
                                       : NGX_OAUTH_TPL_FORM,
                                  NULL)
        == NGX_OAUTH_OK)
    {
        rc = ngx_http_oauth_endpoint_copy(pool, &b, &f->body);
    }

    ngx_oauth_buf_free(&b);

    if (rc == NGX_OK && json) {
        ngx_str_set(&f->body_type, "application/json");
    }

    return rc;
}


/*
 * revocation_auth: none; the client's id and secret as Basic ("basic",
 * "client"); or a Bearer: the connection's own token ("bearer") or the
 * client secret ("secret").
 */

static ngx_int_t
ngx_http_oauth_endpoint_revoke_auth(ngx_pool_t *pool,
    ngx_http_oauth_provider_t *p, ngx_oauth_pair_t *all, size_t n,
    ngx_http_oauth_fetch_t *f)
{
    size_t           i;
    ngx_int_t        rc;
    ngx_str_t        token;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    if (p->revocation_auth.len == 0
        || ngx_strcmp(p->revocation_auth.data, "none") == 0)
    {
        return NGX_OK;
    }

    if (ngx_strcmp(p->revocation_auth.data, "basic") == 0
        || ngx_strcmp(p->revocation_auth.data, "client") == 0)
    {
        ngx_oauth_buf_add_form_escaped(&b, p->client_id.data,
                                       p->client_id.len);

        rc = ngx_http_oauth_endpoint_copy(pool, &b, &f->user);

        if (rc == NGX_OK) {
            ngx_oauth_buf_reset(&b);
            ngx_oauth_buf_add_form_escaped(&b, p->client_secret.data,
                                           p->client_secret.len);

            rc = ngx_http_oauth_endpoint_copy(pool, &b, &f->password);
        }

        ngx_oauth_buf_free(&b);

        return rc;
    }

    ngx_str_null(&token);

    if (ngx_strcmp(p->revocation_auth.data, "secret") == 0) {
        token = p->client_secret;

    } else {
        for (i = 0; i < n; i++) {
            if (all[i].name.len == 5
                && ngx_strncmp(all[i].name.data, "token", 5) == 0)
            {
                token.data = all[i].value.data;
                token.len = all[i].value.len;
            }
        }
    }

    if (token.len == 0) {
        return NGX_ERROR;
    }

    ngx_oauth_buf_add(&b, "Bearer ", 7);
    ngx_oauth_buf_add(&b, token.data, token.len);

    rc = ngx_http_oauth_endpoint_copy(pool, &b, &f->authorization);

    ngx_oauth_buf_free(&b);

    return rc;
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_get_token(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars)
{
    size_t                   n;
    ngx_oauth_pair_t        *all;
    ngx_http_oauth_fetch_t  *f;

    all = ngx_palloc(pool, sizeof(ngx_oauth_pair_t) * (nvars + 2));
    if (all == NULL) {
        return NULL;
    }

    n = nvars;

    if (nvars) {
        ngx_memcpy(all, vars, sizeof(ngx_oauth_pair_t) * nvars);
    }

    all[n].name.data = (u_char *) "client_id";
    all[n].name.len = sizeof("client_id") - 1;
    all[n].value.data = p->client_id.data;
    all[n].value.len = p->client_id.len;
    n++;

    all[n].name.data = (u_char *) "client_secret";
    all[n].name.len = sizeof("client_secret") - 1;
    all[n].value.data = p->client_secret.data;
    all[n].value.len = p->client_secret.len;
    n++;

    f = ngx_http_oauth_endpoint_create(pool, log, p,
                                       endpoint == &p->exchange_url
                                       ? NGX_HTTP_OAUTH_CALL_EXCHANGE
                                       : NGX_HTTP_OAUTH_CALL_REFRESH);

    if (f == NULL
        || ngx_http_oauth_endpoint_url(pool, endpoint, all, n, &f->url)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build %s", &p->name,
                      endpoint == &p->exchange_url ? "exchange_url"
                                                   : "refresh_url");
        return NULL;
    }

    f->user_agent = p->user_agent;
    f->wipe_url = 1;
    f->public_only = ngx_http_oauth_endpoint_public_only(p, endpoint);

    return f;
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_userinfo(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_str_t *credential)
{
    return ngx_http_oauth_endpoint_api_get(pool, log, p, &p->userinfo_url,
                                           NGX_HTTP_OAUTH_CALL_USERINFO,
                                           vars, nvars, credential);
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_lookup(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_str_t *credential)
{
    return ngx_http_oauth_endpoint_api_get(pool, log, p, endpoint,
                                           NGX_HTTP_OAUTH_CALL_LOOKUP,
                                           vars, nvars, credential);
}


/* a GET of the provider's API with the token as its API wants it */

static ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_api_get(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint, ngx_uint_t call,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_str_t *credential)
{
    ngx_table_elt_t         *h;
    ngx_http_oauth_fetch_t  *f;

    f = ngx_http_oauth_endpoint_create(pool, log, p, call);
    if (f == NULL) {
        return NULL;
    }

    if (ngx_http_oauth_endpoint_url(pool, endpoint, vars, nvars, &f->url)
        != NGX_OK)
    {
        return NULL;
    }

    f->public_only = ngx_http_oauth_endpoint_public_only(p, endpoint);

    f->user_agent = p->user_agent;

    /* the token goes the way the provider's API wants it */

    if (p->token_header.len == sizeof("Authorization") - 1
        && ngx_strncasecmp(p->token_header.data, (u_char *) "Authorization",
                           p->token_header.len)
           == 0)
    {
        f->authorization = *credential;
        return f;
    }

    f->headers = ngx_array_create(pool, 1, sizeof(ngx_table_elt_t));
    if (f->headers == NULL) {
        return NULL;
    }

    h = ngx_array_push(f->headers);
    if (h == NULL) {
        return NULL;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));
    h->key = p->token_header;
    h->value = *credential;

    return f;
}


ngx_int_t
ngx_http_oauth_endpoint_start(ngx_http_oauth_fetch_t *f,
    ngx_http_oauth_fetch_handler_pt handler, void *data)
{
    ngx_http_oauth_endpoint_call_t  *call;

    call = f->data;
    call->handler = handler;
    call->data = data;

    f->handler = ngx_http_oauth_endpoint_done;

    return ngx_http_oauth_fetch_start(f);
}


static ngx_http_oauth_fetch_t *
ngx_http_oauth_endpoint_create(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_uint_t kind)
{
    ngx_http_oauth_fetch_t          *f;
    ngx_http_oauth_endpoint_call_t  *call;

    call = ngx_pcalloc(pool, sizeof(ngx_http_oauth_endpoint_call_t));
    if (call == NULL) {
        return NULL;
    }

    f = ngx_http_oauth_fetch_create(pool, log);
    if (f == NULL) {
        return NULL;
    }

    call->provider = p;
    call->call = kind;

    f->data = call;

    return f;
}


/*
 * What a POST to the token or revocation endpoint is, for the metrics:
 * the grant says a code exchange from a refresh.
 */

static ngx_uint_t
ngx_http_oauth_endpoint_token_call(ngx_http_oauth_provider_t *p,
    ngx_str_t *endpoint, ngx_oauth_buf_t *body)
{
    static u_char  grant[] = "grant_type=refresh_token";

    if (endpoint == &p->revocation_url) {
        return NGX_HTTP_OAUTH_CALL_REVOKE;
    }

    if (body->len >= sizeof(grant) - 1 && !body->failed
        && ngx_strlcasestrn(body->data, body->data + body->len, grant,
                            sizeof(grant) - 2)
           != NULL)
    {
        return NGX_HTTP_OAUTH_CALL_REFRESH;
    }

    return NGX_HTTP_OAUTH_CALL_TOKEN;
}


static void
ngx_http_oauth_endpoint_done(ngx_http_oauth_fetch_t *f)
{
    ngx_http_oauth_endpoint_call_t  *call;

    call = f->data;

    ngx_http_oauth_metrics_fetch(call->provider, call->call, f->elapsed);

    f->handler = call->handler;
    f->data = call->data;

    /* f may be freed by the handler */

    f->handler(f);
}


/*
 * 1 when a placeholder fills part of the endpoint's host: a user's value
 * picks the host, so the call must not reach the operator's own network
 * (loopback, private and link-local addresses), unless the operator says
 * it may (allow_private_hosts: an internal deployment).
 */

static ngx_uint_t
ngx_http_oauth_endpoint_public_only(ngx_http_oauth_provider_t *p,
    ngx_str_t *endpoint)
{
    u_char  *c, *end;

    if (p->allow_private_hosts) {
        return 0;
    }

    end = endpoint->data + endpoint->len;

    c = ngx_strlcasestrn(endpoint->data, end, (u_char *) "://", 3 - 1);
    if (c == NULL) {
        return 0;
    }

    for (c += 3; c < end; c++) {
        if (*c == '/' || *c == '?' || *c == '#') {
            return 0;
        }

        if (*c == '{') {
            return 1;
        }
    }

    return 0;
}


/* the endpoint with vars, checked as a provider endpoint, into the pool */

static ngx_int_t
ngx_http_oauth_endpoint_url(ngx_pool_t *pool, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_str_t *url)
{
    ngx_int_t         rc;
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_str_t   missing;
    const char       *why;

    rc = NGX_ERROR;

    if (ngx_oauth_url_expand(&b, endpoint->data, endpoint->len, vars, nvars,
                             &missing)
        == NGX_OAUTH_OK
        && ngx_oauth_url_check_endpoint(b.data, b.len, 0, &why)
           == NGX_OAUTH_OK)
    {
        rc = ngx_http_oauth_endpoint_copy(pool, &b, url);
    }

    ngx_oauth_buf_free(&b);

    return rc;
}


/* a NUL-terminated copy of b in the pool; NGX_ERROR if b failed */

static ngx_int_t
ngx_http_oauth_endpoint_copy(ngx_pool_t *pool, ngx_oauth_buf_t *b,
    ngx_str_t *s)
{
    if (b->failed) {
        return NGX_ERROR;
    }

    s->data = ngx_pnalloc(pool, b->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, b->data, b->len);
    s->data[b->len] = '\0';
    s->len = b->len;

    return NGX_OK;
}
