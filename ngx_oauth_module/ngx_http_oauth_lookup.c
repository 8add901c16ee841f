/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_lookup.h"
#include "ngx_http_oauth_endpoint.h"
#include "ngx_http_oauth_util.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_template.h"
#include "ngx_oauth_url.h"


/*
 * A looked-up value becomes a kept param, used in URLs and headers like
 * a callback's: it is held to the same length, and has no control
 * character.
 */
#define NGX_HTTP_OAUTH_LOOKUP_VALUE_MAX  256
#define NGX_HTTP_OAUTH_LOOKUP_NAME_MAX   64


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_oauth_provider_t      *provider;
    ngx_oauth_str_t                *token;
    ngx_array_t                    *kept;      /* ngx_oauth_pair_t */
    ngx_uint_t                      next;      /* in provider->lookups */
    ngx_http_oauth_lookup_done_pt   done;
    void                           *data;
} ngx_http_oauth_lookup_ctx_t;


/* the names a template may use, for ngx_oauth_template_names() */
typedef struct {
    ngx_http_oauth_provider_t      *provider;
    ngx_uint_t                      stored;    /* token fields too */
    ngx_str_t                       bad;
} ngx_http_oauth_lookup_names_t;


static ngx_int_t ngx_http_oauth_lookup_name_ok(ngx_str_t *name);
static char *ngx_http_oauth_lookup_header(ngx_conf_t *cf,
    ngx_http_oauth_lookup_t *lk, ngx_str_t *arg);
static ngx_int_t ngx_http_oauth_lookup_header_ok(
    ngx_http_oauth_provider_t *p, ngx_str_t *name);
static int ngx_http_oauth_lookup_name(void *data, const unsigned char *name,
    size_t len);
static ngx_uint_t ngx_http_oauth_lookup_kept_name(
    ngx_http_oauth_provider_t *p, u_char *name, size_t len,
    ngx_uint_t stored);
static void ngx_http_oauth_lookup_next(ngx_http_oauth_lookup_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_lookup_fetch(ngx_http_oauth_lookup_ctx_t *ctx,
    ngx_http_oauth_lookup_t *lk);
static ngx_int_t ngx_http_oauth_lookup_headers(ngx_http_request_t *r,
    ngx_http_oauth_fetch_t *f, ngx_http_oauth_lookup_t *lk,
    ngx_oauth_pair_t *vars, size_t nvars);
static void ngx_http_oauth_lookup_done(ngx_http_oauth_fetch_t *f);
static const char *ngx_http_oauth_lookup_value(ngx_http_request_t *r,
    ngx_http_oauth_fetch_t *f, ngx_http_oauth_lookup_t *lk,
    ngx_str_t *value);
static ngx_uint_t ngx_http_oauth_lookup_is_kept(
    ngx_http_oauth_lookup_ctx_t *ctx, ngx_str_t *name);


char *
ngx_http_oauth_lookup_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    char                     *rv;
    ngx_str_t                *value;
    ngx_uint_t                i;
    const char               *why;
    ngx_http_oauth_lookup_t  *lk;

    value = cf->args->elts;

    if (ngx_http_oauth_lookup_name_ok(&value[1]) != NGX_OK) {
        return "has an invalid name: use 1 to 64 letters, digits, \"_\", "
               "\"-\" and \".\"";
    }

    if (p->lookups) {
        lk = p->lookups->elts;

        for (i = 0; i < p->lookups->nelts; i++) {
            if (lk[i].name.len == value[1].len
                && ngx_strncmp(lk[i].name.data, value[1].data,
                               value[1].len)
                   == 0)
            {
                return "is duplicate";
            }
        }

    } else {
        p->lookups = ngx_array_create(cf->pool, 2,
                                      sizeof(ngx_http_oauth_lookup_t));
        if (p->lookups == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    lk = ngx_array_push(p->lookups);
    if (lk == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(lk, sizeof(ngx_http_oauth_lookup_t));
    lk->name = value[1];

    if (cf->args->nelts == 3
        && ngx_strcmp(value[2].data, "off") == 0)
    {
        lk->off = 1;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts < 4) {
        return "needs a name, a URL and a JSON path (or \"off\")";
    }

    lk->url = value[2];
    lk->path = value[3];

    if (ngx_oauth_url_check_endpoint(lk->url.data, lk->url.len,
                                     NGX_OAUTH_URL_TEMPLATE, &why)
        != NGX_OAUTH_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" of \"lookup %V\" in "
                           "oauth_provider \"%V\": %s", &lk->url, &lk->name,
                           &p->name, why);
        return NGX_CONF_ERROR;
    }

    if (lk->path.len == 0
        || ngx_http_oauth_has_control(lk->path.data, lk->path.len))
    {
        return "has an invalid JSON path";
    }

    for (i = 4; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "optional") == 0) {
            lk->optional = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "header=", 7) == 0) {
            rv = ngx_http_oauth_lookup_header(cf, lk, &value[i]);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of \"lookup %V\" in "
                           "oauth_provider \"%V\"", &value[i], &lk->name,
                           &p->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the name of a kept param: it goes into templates as "{NAME}" */

static ngx_int_t
ngx_http_oauth_lookup_name_ok(ngx_str_t *name)
{
    ngx_uint_t  i;

    if (name->len == 0 || name->len > NGX_HTTP_OAUTH_LOOKUP_NAME_MAX) {
        return NGX_ERROR;
    }

    for (i = 0; i < name->len; i++) {
        if (!(ngx_http_oauth_isalnum(name->data[i]) || name->data[i] == '_'
              || name->data[i] == '-' || name->data[i] == '.'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "header=NAME:VALUE": a plain header name, a value without controls */

static char *
ngx_http_oauth_lookup_header(ngx_conf_t *cf, ngx_http_oauth_lookup_t *lk,
    ngx_str_t *arg)
{
    u_char                 *c, *end;
    ngx_http_oauth_pair_t  *h;

    c = arg->data + 7;
    end = arg->data + arg->len;

    if (lk->headers == NULL) {
        lk->headers = ngx_array_create(cf->pool, 1,
                                       sizeof(ngx_http_oauth_pair_t));
        if (lk->headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    h = ngx_array_push(lk->headers);
    if (h == NULL) {
        return NGX_CONF_ERROR;
    }

    h->name.data = c;

    while (c < end && (ngx_http_oauth_isalnum(*c) || *c == '-' || *c == '_'
                       || *c == '.'))
    {
        c++;
    }

    h->name.len = c - h->name.data;
    h->value.data = c + 1;
    h->value.len = (c < end) ? (size_t) (end - c - 1) : 0;

    if (h->name.len == 0 || c == end || *c != ':' || h->value.len == 0
        || ngx_http_oauth_has_control(h->value.data, h->value.len))
    {
        return "has an invalid \"header=\": write header=NAME:VALUE";
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_oauth_lookup_check(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    ngx_uint_t                i, k, n;
    ngx_http_oauth_pair_t    *h;
    ngx_http_oauth_lookup_t  *lk;

    if (p->lookups == NULL) {
        return NGX_OK;
    }

    /* "lookup NAME off" has kept the preset's line out: it goes too */

    lk = p->lookups->elts;
    n = 0;

    for (i = 0; i < p->lookups->nelts; i++) {
        if (!lk[i].off) {
            lk[n++] = lk[i];
        }
    }

    p->lookups->nelts = n;

    if (n && p->kind != NGX_OAUTH_KIND_OAUTH2) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: \"lookup\" needs "
                      "kind oauth2 (it runs at the callback)", &p->name,
                      p->file, p->line);
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {

        /* a token field of that name would be kept twice */

        if (ngx_http_oauth_lookup_kept_name(p, lk[i].name.data,
                                            lk[i].name.len, 2))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"lookup %V\" "
                          "has the name of a keep_token_field", &p->name,
                          p->file, p->line, &lk[i].name);
            return NGX_ERROR;
        }

        if (lk[i].headers == NULL) {
            continue;
        }

        h = lk[i].headers->elts;

        for (k = 0; k < lk[i].headers->nelts; k++) {
            if (ngx_http_oauth_lookup_header_ok(p, &h[k].name) != NGX_OK) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "oauth_provider \"%V\" in %s:%ui: \"lookup "
                              "%V\" cannot set \"%V\": the module sets it",
                              &p->name, p->file, p->line, &lk[i].name,
                              &h[k].name);
                return NGX_ERROR;
            }

            if (ngx_http_oauth_lookup_template_check(cf, p, "lookup",
                                                     &h[k].value, 0)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * A lookup's own header may not be one the fetch builds itself: the
 * token's, the client's Basic, Host, the body's, the User-Agent.
 */

static ngx_int_t
ngx_http_oauth_lookup_header_ok(ngx_http_oauth_provider_t *p,
    ngx_str_t *name)
{
    ngx_uint_t  i;

    static ngx_str_t  own[] = {
        ngx_string("Authorization"), ngx_string("Proxy-Authorization"),
        ngx_string("Host"), ngx_string("Content-Type"),
        ngx_string("Content-Length"), ngx_string("User-Agent"),
        ngx_string("Cookie"), ngx_string("Accept"),
        ngx_null_string
    };

    if (name->len == p->token_header.len
        && ngx_strncasecmp(name->data, p->token_header.data, name->len) == 0)
    {
        return NGX_DECLINED;
    }

    for (i = 0; own[i].len; i++) {
        if (name->len == own[i].len
            && ngx_strncasecmp(name->data, own[i].data, name->len) == 0)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * A header template names client_id and kept params only: never the
 * client secret nor a token, so that no configuration sends one to an
 * upstream or to a lookup by way of a header.  stored: token fields and
 * looked-up values may be named too (api_header, used after the connect).
 */

ngx_int_t
ngx_http_oauth_lookup_template_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const char *what, ngx_str_t *tpl,
    ngx_uint_t stored)
{
    ngx_http_oauth_lookup_names_t  names;

    names.provider = p;
    names.stored = stored;
    ngx_str_null(&names.bad);

    if (ngx_oauth_template_names(tpl->data, tpl->len,
                                 ngx_http_oauth_lookup_name, &names)
        == NGX_OAUTH_OK)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "oauth_provider \"%V\" in %s:%ui: \"%s\" value \"%V\" "
                  "uses \"{%V}\": a header may name only client_id and "
                  "kept params (connection_param, keep_callback_param%s), "
                  "never a secret or a token", &p->name, p->file, p->line,
                  what, tpl, &names.bad,
                  stored ? ", keep_token_field, lookup" : "");

    return NGX_ERROR;
}


static int
ngx_http_oauth_lookup_name(void *data, const unsigned char *name, size_t len)
{
    ngx_http_oauth_lookup_names_t *names = data;

    if ((len == sizeof("client_id") - 1
         && ngx_strncmp(name, "client_id", len) == 0)
        || ngx_http_oauth_lookup_kept_name(names->provider, (u_char *) name,
                                           len, names->stored))
    {
        return NGX_OAUTH_OK;
    }

    names->bad.data = (u_char *) name;
    names->bad.len = len;

    return NGX_OAUTH_INVALID;
}


/*
 * Whether name is a connection_param or a keep_callback_param; with
 * stored 1 also a keep_token_field or a lookup; with stored 2 only a
 * keep_token_field.
 */

static ngx_uint_t
ngx_http_oauth_lookup_kept_name(ngx_http_oauth_provider_t *p, u_char *name,
    size_t len, ngx_uint_t stored)
{
    ngx_uint_t                    i;
    ngx_http_oauth_conn_param_t  *cp;
    ngx_http_oauth_keep_field_t  *kf;

    for (i = 0; stored < 2 && p->connection_params
                && i < p->connection_params->nelts; i++)
    {
        cp = p->connection_params->elts;

        if (cp[i].name.len == len && ngx_strncmp(cp[i].name.data, name, len)
                                     == 0)
        {
            return 1;
        }
    }

    for (i = 0; stored < 2 && p->keep_callback_params
                && p->keep_callback_params != NGX_CONF_UNSET_PTR
                && i < p->keep_callback_params->nelts; i++)
    {
        cp = p->keep_callback_params->elts;

        if (cp[i].name.len == len && ngx_strncmp(cp[i].name.data, name, len)
                                     == 0)
        {
            return 1;
        }
    }

    if (stored == 0) {
        return 0;
    }

    for (i = 0; p->keep_token_fields && i < p->keep_token_fields->nelts;
         i++)
    {
        kf = p->keep_token_fields->elts;

        if (kf[i].as.len == len && ngx_strncmp(kf[i].as.data, name, len)
                                   == 0)
        {
            return 1;
        }
    }

    return stored == 1 && ngx_http_oauth_lookup_has(p, name, len);
}


ngx_uint_t
ngx_http_oauth_lookup_has(ngx_http_oauth_provider_t *p, u_char *name,
    size_t len)
{
    ngx_uint_t                i;
    ngx_http_oauth_lookup_t  *lk;

    if (p->lookups == NULL) {
        return 0;
    }

    lk = p->lookups->elts;

    for (i = 0; i < p->lookups->nelts; i++) {
        if (!lk[i].off && lk[i].name.len == len
            && ngx_strncmp(lk[i].name.data, name, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


void
ngx_http_oauth_lookup_run(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_oauth_str_t *token, ngx_array_t *kept,
    ngx_http_oauth_lookup_done_pt done, void *data)
{
    ngx_http_oauth_lookup_ctx_t  *ctx;

    if (p->lookups == NULL || p->lookups->nelts == 0) {
        done(r, data, NULL);
        return;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth_lookup_ctx_t));
    if (ctx == NULL) {
        done(r, data, "internal_error");
        return;
    }

    ctx->request = r;
    ctx->provider = p;
    ctx->token = token;
    ctx->kept = kept;
    ctx->done = done;
    ctx->data = data;

    ngx_http_oauth_lookup_next(ctx);
}


/*
 * The next lookup to run, or done.  One whose name is kept already (a
 * connection_param the start was given) is not run: the value chosen at
 * the start stands.
 */

static void
ngx_http_oauth_lookup_next(ngx_http_oauth_lookup_ctx_t *ctx)
{
    ngx_http_oauth_lookup_t  *lk;

    lk = ctx->provider->lookups->elts;

    while (ctx->next < ctx->provider->lookups->nelts) {
        if (ngx_http_oauth_lookup_is_kept(ctx, &lk[ctx->next].name)) {
            ctx->next++;
            continue;
        }

        if (ngx_http_oauth_lookup_fetch(ctx, &lk[ctx->next]) == NGX_OK) {
            return;
        }

        /* could not even be sent: it failed */

        if (!lk[ctx->next].optional) {
            ctx->done(ctx->request, ctx->data, "lookup_failed");
            return;
        }

        ctx->next++;
    }

    ctx->done(ctx->request, ctx->data, NULL);
}


static ngx_uint_t
ngx_http_oauth_lookup_is_kept(ngx_http_oauth_lookup_ctx_t *ctx,
    ngx_str_t *name)
{
    ngx_uint_t         i;
    ngx_oauth_pair_t  *kp;

    kp = ctx->kept->elts;

    for (i = 0; i < ctx->kept->nelts; i++) {
        if (kp[i].name.len == name->len
            && ngx_memcmp(kp[i].name.data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the GET of one lookup, with the token and the line's own headers */

static ngx_int_t
ngx_http_oauth_lookup_fetch(ngx_http_oauth_lookup_ctx_t *ctx,
    ngx_http_oauth_lookup_t *lk)
{
    size_t                      n;
    u_char                     *c;
    ngx_str_t                   credential;
    ngx_oauth_pair_t           *vars;
    ngx_http_request_t         *r;
    ngx_http_oauth_fetch_t     *f;
    ngx_http_oauth_provider_t  *p;

    r = ctx->request;
    p = ctx->provider;

    /* kept params and client_id fill the URL and the headers */

    n = ctx->kept->nelts;

    vars = ngx_palloc(r->pool, sizeof(ngx_oauth_pair_t) * (n + 1));
    if (vars == NULL) {
        return NGX_ERROR;
    }

    if (n) {
        ngx_memcpy(vars, ctx->kept->elts, sizeof(ngx_oauth_pair_t) * n);
    }

    vars[n].name.data = (u_char *) "client_id";
    vars[n].name.len = sizeof("client_id") - 1;
    vars[n].value.data = p->client_id.data;
    vars[n].value.len = p->client_id.len;
    n++;

    /* a copy of its own per fetch: the fetch wipes it */

    credential.len = p->token_prefix.len + ctx->token->len;
    credential.data = ngx_pnalloc(r->pool, credential.len);
    if (credential.data == NULL) {
        return NGX_ERROR;
    }

    c = ngx_cpymem(credential.data, p->token_prefix.data,
                   p->token_prefix.len);
    ngx_memcpy(c, ctx->token->data, ctx->token->len);

    f = ngx_http_oauth_endpoint_lookup(r->pool, r->connection->log, p,
                                       &lk->url, vars, n, &credential);

    if (f == NULL
        || ngx_http_oauth_lookup_headers(r, f, lk, vars, n) != NGX_OK
        || ngx_http_oauth_endpoint_start(f, ngx_http_oauth_lookup_done, ctx)
           != NGX_OK)
    {
        ngx_explicit_memzero(credential.data, credential.len);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": lookup \"%V\" could not be "
                      "sent (its URL or a header could not be built)",
                      &p->name, &lk->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the line's header= values, expanded, beside the token's header */

static ngx_int_t
ngx_http_oauth_lookup_headers(ngx_http_request_t *r,
    ngx_http_oauth_fetch_t *f, ngx_http_oauth_lookup_t *lk,
    ngx_oauth_pair_t *vars, size_t nvars)
{
    int                     rc;
    ngx_uint_t              i;
    ngx_table_elt_t        *h;
    ngx_oauth_buf_t         b = ngx_oauth_buf_init;
    ngx_http_oauth_pair_t  *lh;

    if (lk->headers == NULL) {
        return NGX_OK;
    }

    if (f->headers == NULL) {
        f->headers = ngx_array_create(r->pool, lk->headers->nelts,
                                      sizeof(ngx_table_elt_t));
        if (f->headers == NULL) {
            return NGX_ERROR;
        }
    }

    lh = lk->headers->elts;

    for (i = 0; i < lk->headers->nelts; i++) {
        ngx_oauth_buf_reset(&b);

        rc = ngx_oauth_template_expand(&b, lh[i].value.data,
                                       lh[i].value.len, vars, nvars,
                                       NGX_OAUTH_TPL_RAW, NULL);

        h = ngx_array_push(f->headers);

        if (rc != NGX_OAUTH_OK || b.failed || h == NULL) {
            ngx_oauth_buf_free(&b);
            return NGX_ERROR;
        }

        ngx_memzero(h, sizeof(ngx_table_elt_t));
        h->key = lh[i].name;

        /* fetch headers are wiped with the fetch: a copy in the pool */

        h->value.len = b.len;
        h->value.data = ngx_pnalloc(r->pool, b.len + 1);
        if (h->value.data == NULL) {
            ngx_oauth_buf_free(&b);
            return NGX_ERROR;
        }

        ngx_memcpy(h->value.data, b.data, b.len);
        h->value.data[b.len] = '\0';
    }

    ngx_oauth_buf_free(&b);

    return NGX_OK;
}


static void
ngx_http_oauth_lookup_done(ngx_http_oauth_fetch_t *f)
{
    ngx_str_t                     value;
    const char                   *why;
    ngx_oauth_pair_t             *kp;
    ngx_http_request_t           *r;
    ngx_http_oauth_lookup_t      *lk;
    ngx_http_oauth_lookup_ctx_t  *ctx;

    ctx = f->data;
    r = ctx->request;
    lk = ctx->provider->lookups->elts;
    lk = &lk[ctx->next];

    ngx_str_null(&value);

    why = ngx_http_oauth_lookup_value(r, f, lk, &value);

    if (why == NULL) {
        kp = ngx_array_push(ctx->kept);
        if (kp == NULL) {
            ctx->done(r, ctx->data, "internal_error");
            return;
        }

        kp->name.data = lk->name.data;
        kp->name.len = lk->name.len;
        kp->value.data = value.data;
        kp->value.len = value.len;

    } else if (lk->optional) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: provider \"%V\": optional lookup \"%V\" gave "
                      "nothing: %s", &ctx->provider->name, &lk->name, why);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": lookup \"%V\" failed: %s",
                      &ctx->provider->name, &lk->name, why);
        ctx->done(r, ctx->data, "lookup_failed");
        return;
    }

    ctx->next++;

    ngx_http_oauth_lookup_next(ctx);
}


/*
 * The value at the line's path in a 2xx JSON answer, copied to the pool;
 * NULL, or what is wrong with it (for the log: never the value itself).
 */

static const char *
ngx_http_oauth_lookup_value(ngx_http_request_t *r, ngx_http_oauth_fetch_t *f,
    ngx_http_oauth_lookup_t *lk, ngx_str_t *value)
{
    int               rc;
    void             *root;
    u_char           *path, *bar, *end;
    const char       *why;
    ngx_oauth_str_t   v;

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK) {
        return ngx_http_oauth_fetch_result_name(f->result);
    }

    if (f->status < 200 || f->status > 299) {
        return "the answer is not 2xx";
    }

    if (ngx_oauth_json_parse(f->response.data, f->response.len, &root)
        != NGX_OAUTH_OK)
    {
        return "the answer is not JSON";
    }

    /* "0.ref|0.id": the first path that is there */

    rc = NGX_OAUTH_NOT_FOUND;
    path = lk->path.data;
    end = lk->path.data + lk->path.len;

    while (rc == NGX_OAUTH_NOT_FOUND && path < end) {
        bar = ngx_strlchr(path, end, '|');
        bar = bar ? bar : end;

        rc = ngx_oauth_json_get(root, path, bar - path, &v);
        path = bar + 1;
    }

    ngx_oauth_json_free(root);

    if (rc != NGX_OAUTH_OK) {
        return "nothing at its path";
    }

    why = NULL;

    if (v.len == 0) {
        why = "the value is empty";

    } else if (v.len > NGX_HTTP_OAUTH_LOOKUP_VALUE_MAX) {
        why = "the value is too long";

    } else if (ngx_http_oauth_has_control(v.data, v.len)) {
        why = "the value has a control character";

    } else if (ngx_strlcasestrn(v.data, v.data + v.len, (u_char *) "://",
                                3 - 1)
               != NULL
               && ngx_oauth_url_check_endpoint(v.data, v.len, 0, &why)
                  != NGX_OAUTH_OK)
    {
        /* a URL kept must be one the module would send a token to */
    }

    if (why == NULL) {
        value->len = v.len;
        value->data = ngx_pnalloc(r->pool, v.len + 1);

        if (value->data == NULL) {
            why = "out of memory";

        } else {
            ngx_memcpy(value->data, v.data, v.len + 1);
        }
    }

    ngx_oauth_json_str_free(&v);

    return why;
}
