/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_util.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_pattern.h"


/*
 * oauth_provider blocks: every field is first taken from the block, then
 * what the block left unset comes from the preset in the catalog, then the
 * whole provider is checked.  A field is unset while its data is NULL.
 */


#define NGX_HTTP_OAUTH_F_STR      0
#define NGX_HTTP_OAUTH_F_URL      1
#define NGX_HTTP_OAUTH_F_PATH     2


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   type;
    size_t                       offset;
} ngx_http_oauth_field_t;


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_http_oauth_provider_t   *provider;
} ngx_http_oauth_block_ctx_t;


extern const u_char  ngx_http_oauth_catalog[];
extern const size_t  ngx_http_oauth_catalog_len;


static char *ngx_http_oauth_provider_line(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_oauth_provider_list(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, ngx_str_t *value, ngx_uint_t n);
static ngx_int_t ngx_http_oauth_preset_prefix(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, json_t *v);
static ngx_int_t ngx_http_oauth_preset_pairs(ngx_conf_t *cf, json_t *v,
    ngx_array_t **list);
static ngx_int_t ngx_http_oauth_enum_value(ngx_conf_enum_t *e,
    const char *s, ngx_uint_t *v);
static ngx_int_t ngx_http_oauth_preset_enum(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, json_t *e, const char *key,
    ngx_conf_enum_t *values, ngx_uint_t *v);
static ngx_int_t ngx_http_oauth_provider_preset(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, json_t *catalog);
static ngx_int_t ngx_http_oauth_provider_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_provider_quirks(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_json_str(ngx_conf_t *cf, json_t *obj,
    const char *key, ngx_str_t *s);
static ngx_int_t ngx_http_oauth_cstr(ngx_conf_t *cf, const char *str,
    ngx_str_t *s);
static char *ngx_http_oauth_provider_url(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, ngx_str_t *name, ngx_str_t *url);
static ngx_int_t ngx_http_oauth_pattern_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, ngx_http_oauth_conn_param_t *cp);
static ngx_int_t ngx_http_oauth_host_suffix(u_char *name, u_char *close,
    u_char *host_end);
static ngx_int_t ngx_http_oauth_placeholders(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const char *what, ngx_str_t *url,
    ngx_uint_t scope);
static void ngx_http_oauth_pattern_cleanup(void *data);


static ngx_http_oauth_field_t  ngx_http_oauth_fields[] = {

    { ngx_string("display_name"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, display_name) },

    { ngx_string("client_id"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, client_id) },

    { ngx_string("client_secret"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, client_secret) },

    { ngx_string("redirect_uri"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, redirect_uri) },

    { ngx_string("authorization_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, authorization_url) },

    { ngx_string("token_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, token_url) },

    { ngx_string("revocation_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, revocation_url) },

    { ngx_string("userinfo_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, userinfo_url) },

    { ngx_string("issuer"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, issuer) },

    { ngx_string("account_id"), NGX_HTTP_OAUTH_F_PATH,
      offsetof(ngx_http_oauth_provider_t, account_id) },

    { ngx_string("account_name"), NGX_HTTP_OAUTH_F_PATH,
      offsetof(ngx_http_oauth_provider_t, account_name) },

    { ngx_string("api_base_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, api_base_url) },

    { ngx_string("scope_separator"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, scope_separator) },

    { ngx_string("code_param"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, code_param) },

    { ngx_string("client_id_param"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, client_id_param) },

    { ngx_string("user_agent"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, user_agent) },

    { ngx_string("token_path"), NGX_HTTP_OAUTH_F_PATH,
      offsetof(ngx_http_oauth_provider_t, token_path) },

    { ngx_string("exchange_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, exchange_url) },

    { ngx_string("refresh_url"), NGX_HTTP_OAUTH_F_URL,
      offsetof(ngx_http_oauth_provider_t, refresh_url) },

    { ngx_string("revocation_method"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, revocation_method) },

    { ngx_string("revocation_auth"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, revocation_auth) },

    { ngx_string("revocation_body"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, revocation_body) },

    { ngx_string("callback_hmac"), NGX_HTTP_OAUTH_F_STR,
      offsetof(ngx_http_oauth_provider_t, callback_hmac) },

    { ngx_null_string, 0, 0 }
};


/* the values "kind" and "token_auth" take, in the block and in a preset */

static ngx_conf_enum_t  ngx_http_oauth_kinds[] = {
    { ngx_string("oauth2"), NGX_OAUTH_KIND_OAUTH2 },
    { ngx_string("api_key"), NGX_OAUTH_KIND_API_KEY },
    { ngx_string("basic"), NGX_OAUTH_KIND_BASIC },
    { ngx_string("header"), NGX_OAUTH_KIND_HEADER },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_oauth_token_auths[] = {
    { ngx_string("basic"), NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC },
    { ngx_string("post"), NGX_HTTP_OAUTH_TOKEN_AUTH_POST },
    { ngx_null_string, 0 }
};


char *
ngx_http_oauth_provider_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    char                        *rv;
    u_char                      *c;
    ngx_str_t                   *value;
    ngx_conf_t                   save;
    ngx_http_oauth_block_ctx_t   ctx;
    ngx_http_oauth_provider_t   *p;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > NGX_OAUTH_PROVIDER_MAX) {
        return "needs a name of 1 to 64 characters";
    }

    for (c = value[1].data; c < value[1].data + value[1].len; c++) {
        if (!(ngx_http_oauth_isalnum(*c)
              || *c == '_' || *c == '-' || *c == '.'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid provider name \"%V\": use letters, "
                               "digits, \"_\", \"-\" and \".\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "oauth_provider name \"off\" is reserved: "
                           "\"oauth_token off\" means no provider");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oauth_provider_find(omcf, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate oauth_provider \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    p = ngx_array_push(&omcf->providers);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(p, sizeof(ngx_http_oauth_provider_t));

    p->name = value[1];
    p->kind = NGX_CONF_UNSET_UINT;
    p->pkce = NGX_CONF_UNSET;
    p->token_auth = NGX_CONF_UNSET_UINT;
    p->refresh = NGX_CONF_UNSET;
    p->file = cf->conf_file->file.name.data;
    p->line = cf->conf_file->line;

    ctx.omcf = omcf;
    ctx.provider = p;

    save = *cf;
    cf->ctx = &ctx;
    cf->handler = ngx_http_oauth_provider_line;
    cf->handler_conf = conf;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    return rv;
}


static char *
ngx_http_oauth_provider_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_oauth_block_ctx_t *ctx = cf->ctx;

    ngx_str_t                  *value, *s;
    ngx_uint_t                  n;
    ngx_http_oauth_field_t     *f;
    ngx_http_oauth_provider_t  *p;

    p = ctx->provider;
    value = cf->args->elts;
    n = cf->args->nelts;

    for (f = ngx_http_oauth_fields; f->name.len; f++) {

        if (value[0].len != f->name.len
            || ngx_strncmp(value[0].data, f->name.data, f->name.len) != 0)
        {
            continue;
        }

        if (n != 2) {
            goto args;
        }

        s = (ngx_str_t *) ((char *) p + f->offset);

        /* client_secret_file fills client_secret: not a duplicate */

        if (f->offset == offsetof(ngx_http_oauth_provider_t, client_secret)
            && p->client_secret_file.data)
        {
            goto both_secrets;
        }

        if (s->data) {
            goto duplicate;
        }

        if (value[1].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" must not be empty", &value[0]);
            return NGX_CONF_ERROR;
        }

        *s = value[1];

        if (f->type == NGX_HTTP_OAUTH_F_URL) {
            return ngx_http_oauth_provider_url(cf, p, &value[0], s);
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "client_secret_file") == 0) {

        if (n != 2) {
            goto args;
        }

        if (p->client_secret_file.data) {
            goto duplicate;
        }

        if (p->client_secret.data) {
            goto both_secrets;
        }

        p->client_secret_file = value[1];

        if (ngx_http_oauth_read_secret(cf, &value[1], &p->client_secret)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    return ngx_http_oauth_provider_list(cf, p, value, n);

args:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of arguments in \"%V\" of "
                       "oauth_provider \"%V\"", &value[0], &p->name);
    return NGX_CONF_ERROR;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is duplicate in oauth_provider \"%V\"",
                       &value[0], &p->name);
    return NGX_CONF_ERROR;

both_secrets:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"client_secret\" and \"client_secret_file\" are "
                       "mutually exclusive in oauth_provider \"%V\"",
                       &p->name);
    return NGX_CONF_ERROR;
}


/* the directives that are not one plain string */

static char *
ngx_http_oauth_provider_list(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_str_t                    *s, *name;
    ngx_uint_t                    i;
    ngx_http_oauth_pair_t        *pair;
    ngx_array_t                 **list;
    ngx_http_oauth_keep_field_t  *kf;
    ngx_http_oauth_conn_param_t  *cp;

    name = &value[0];

    if (ngx_strcmp(name->data, "preset") == 0) {
        if (n != 2) {
            goto args;
        }

        if (p->preset.data) {
            goto duplicate;
        }

        p->preset = value[1];
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "kind") == 0) {
        if (n != 2) {
            goto args;
        }

        if (p->kind != NGX_CONF_UNSET_UINT) {
            goto duplicate;
        }

        if (ngx_http_oauth_enum_value(ngx_http_oauth_kinds,
                                      (char *) value[1].data, &p->kind)
            != NGX_OK)
        {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "pkce") == 0
        || ngx_strcmp(name->data, "refresh") == 0)
    {
        ngx_flag_t  *fp;

        if (n != 2) {
            goto args;
        }

        fp = (name->data[0] == 'p') ? &p->pkce : &p->refresh;

        if (*fp != NGX_CONF_UNSET) {
            goto duplicate;
        }

        if (ngx_strcmp(value[1].data, "on") == 0) {
            *fp = 1;

        } else if (ngx_strcmp(value[1].data, "off") == 0) {
            *fp = 0;

        } else {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "token_auth") == 0) {
        if (n != 2) {
            goto args;
        }

        if (p->token_auth != NGX_CONF_UNSET_UINT) {
            goto duplicate;
        }

        if (ngx_http_oauth_enum_value(ngx_http_oauth_token_auths,
                                      (char *) value[1].data, &p->token_auth)
            != NGX_OK)
        {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "scope") == 0) {
        if (n < 2) {
            goto args;
        }

        if (p->scopes) {
            goto duplicate;
        }

        p->scopes = ngx_array_create(cf->pool, n - 1, sizeof(ngx_str_t));
        if (p->scopes == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 1; i < n; i++) {
            s = ngx_array_push(p->scopes);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = value[i];
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "token_header") == 0) {
        if (n != 2 && n != 3) {
            goto args;
        }

        if (p->token_header.data) {
            goto duplicate;
        }

        for (i = 0; i < value[1].len; i++) {
            if (!(ngx_http_oauth_isalnum(value[1].data[i])
                  || value[1].data[i] == '-' || value[1].data[i] == '_'))
            {
                goto invalid;
            }
        }

        if (value[1].len == 0) {
            goto invalid;
        }

        p->token_header = value[1];

        if (n == 3) {
            p->token_prefix = value[2];
            p->token_prefix_set = 1;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "authorization_param") == 0
        || ngx_strcmp(name->data, "token_param") == 0
        || ngx_strcmp(name->data, "token_header_param") == 0)
    {
        if (n != 3) {
            goto args;
        }

        list = (name->data[0] == 'a') ? &p->authorization_params
               : (name->len == sizeof("token_param") - 1) ? &p->token_params
               : &p->token_headers;

        if (*list == NULL) {
            *list = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_http_oauth_pair_t));
            if (*list == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        if (value[1].len == 0) {
            goto invalid;
        }

        pair = ngx_array_push(*list);
        if (pair == NULL) {
            return NGX_CONF_ERROR;
        }

        pair->name = value[1];
        pair->value = value[2];

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "keep_callback_param") == 0) {
        if (n != 2 || value[1].len == 0) {
            goto args;
        }

        if (p->keep_callback_params == NULL) {
            p->keep_callback_params = ngx_array_create(cf->pool, 2,
                                                       sizeof(ngx_str_t));
            if (p->keep_callback_params == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        s = ngx_array_push(p->keep_callback_params);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[1];

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "keep_token_field") == 0) {
        if ((n != 2 && n != 4) || value[1].len == 0) {
            goto args;
        }

        if (n == 4 && (ngx_strcmp(value[2].data, "as") != 0
                       || value[3].len == 0))
        {
            goto invalid;
        }

        if (p->keep_token_fields == NULL) {
            p->keep_token_fields = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_oauth_keep_field_t));
            if (p->keep_token_fields == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        kf = ngx_array_push(p->keep_token_fields);
        if (kf == NULL) {
            return NGX_CONF_ERROR;
        }

        kf->path = value[1];
        kf->as = (n == 4) ? value[3] : value[1];

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(name->data, "connection_param") == 0) {
        if (n < 2 || n > 4 || value[1].len == 0) {
            goto args;
        }

        if (p->connection_params == NULL) {
            p->connection_params = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_oauth_conn_param_t));
            if (p->connection_params == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        cp = ngx_array_push(p->connection_params);
        if (cp == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(cp, sizeof(ngx_http_oauth_conn_param_t));
        cp->name = value[1];

        for (i = 2; i < n; i++) {
            if (ngx_strcmp(value[i].data, "required") == 0) {
                cp->required = 1;
                continue;
            }

            if (ngx_strncmp(value[i].data, "pattern=", 8) == 0) {
                cp->pattern.len = value[i].len - 8;
                cp->pattern.data = value[i].data + 8;

                /* checked here, where the error can name this line */

                if (ngx_http_oauth_pattern_check(cf, NULL, cp) != NGX_OK) {
                    return NGX_CONF_ERROR;
                }

                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"connection_param\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in oauth_provider \"%V\"",
                       name, &p->name);
    return NGX_CONF_ERROR;

args:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of arguments in \"%V\" of "
                       "oauth_provider \"%V\"", name, &p->name);
    return NGX_CONF_ERROR;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is duplicate in oauth_provider \"%V\"",
                       name, &p->name);
    return NGX_CONF_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" of oauth_provider "
                       "\"%V\"", &value[1], name, &p->name);
    return NGX_CONF_ERROR;
}


static void
ngx_http_oauth_pattern_cleanup(void *data)
{
    ngx_oauth_pattern_free(data);
}


/*
 * connection_param patterns are POSIX EREs compiled once, here, and freed
 * with the configuration; one that does not compile must fail "nginx -t".
 * With p NULL the error is about the directive being parsed, else about a
 * pattern a preset gave.
 */

static ngx_int_t
ngx_http_oauth_pattern_check(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    ngx_http_oauth_conn_param_t *cp)
{
    int                  rc;
    char                 err[128];
    u_char              *c;
    ngx_pool_cleanup_t  *cln;

    if (cp->compiled) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    c = ngx_pnalloc(cf->pool, cp->pattern.len + 1);
    if (c == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(c, cp->pattern.data, cp->pattern.len);
    c[cp->pattern.len] = '\0';

    cp->pattern.data = c;

    err[0] = '\0';

    if (cp->pattern.len) {
        rc = ngx_oauth_pattern_compile(&cp->compiled, (const char *) c, err,
                                       sizeof(err));

        if (rc == NGX_OAUTH_OK) {
            cln->handler = ngx_http_oauth_pattern_cleanup;
            cln->data = cp->compiled;
            return NGX_OK;
        }

        cp->compiled = NULL;

        if (rc != NGX_OAUTH_INVALID) {
            return NGX_ERROR;
        }

    } else {
        ngx_cpystrn((u_char *) err, (u_char *) "empty pattern", sizeof(err));
    }

    if (p == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid pattern \"%V\" in \"connection_param\" "
                           "\"%V\": %s", &cp->pattern, &cp->name, err);

    } else {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid pattern \"%V\" of \"connection_param\" "
                      "\"%V\" in oauth_provider \"%V\" in %s:%ui: %s",
                      &cp->pattern, &cp->name, &p->name, p->file, p->line,
                      err);
    }

    return NGX_ERROR;
}


/*
 * An endpoint written in the block is checked on its own line: https://,
 * or http:// to a loopback host, and for redirect_uri an absolute URL
 * without placeholders.  Endpoints from a preset are checked later.
 */

static char *
ngx_http_oauth_provider_url(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    ngx_str_t *name, ngx_str_t *url)
{
    ngx_uint_t   redirect;
    const char  *why;

    redirect = (name->len == sizeof("redirect_uri") - 1
                && ngx_strncmp(name->data, "redirect_uri", name->len) == 0);

    if (redirect && ngx_strlcasestrn(url->data, url->data + url->len,
                                     (u_char *) "://", 3 - 1)
                    == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"redirect_uri\" \"%V\" of oauth_provider \"%V\" "
                           "must be an absolute https:// URL", url,
                           &p->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_oauth_url_check_endpoint(url->data, url->len,
                                     redirect ? 0 : NGX_OAUTH_URL_TEMPLATE,
                                     &why)
        != NGX_OAUTH_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V\" in oauth_provider \"%V\": "
                           "%s", name, url, &p->name, why);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The {NAME} placeholders of a URL template must name something the
 * module will have when it expands the URL, or every flow would fail at
 * request time: at start only connection params exist; the token and
 * userinfo calls also have the params kept from the callback; revocation
 * and the API base URL also have the fields kept from the token response.
 */

#define NGX_HTTP_OAUTH_PH_START     0
#define NGX_HTTP_OAUTH_PH_CALLBACK  1
#define NGX_HTTP_OAUTH_PH_STORED    2

/*
 * A placeholder in the host of an endpoint chooses where the client secret,
 * the code and the PKCE verifier go.  It is allowed only as the leftmost
 * label in front of a fixed suffix of at least two labels
 * ("{shop}.myshopify.com"): whatever the value, the host stays under the
 * suffix.  Anywhere else in the authority (the whole host, a port) only a
 * connection_param whose pattern the operator wrote may fill it.
 */

static ngx_int_t
ngx_http_oauth_host_suffix(u_char *name, u_char *close, u_char *host_end)
{
    u_char      *c;
    ngx_uint_t   labels, len;

    if (*(name - 2) != '/' || close + 1 >= host_end || close[1] != '.') {
        return 0;
    }

    labels = 0;
    len = 0;

    for (c = close + 2; c < host_end; c++) {
        if (*c == '.') {
            if (len == 0) {
                return 0;
            }

            labels++;
            len = 0;
            continue;
        }

        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
              || (*c >= '0' && *c <= '9') || *c == '-'))
        {
            return 0;
        }

        len++;
    }

    if (len) {
        labels++;
    }

    return labels >= 2 && len > 0;
}


static ngx_int_t
ngx_http_oauth_placeholders(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    const char *what, ngx_str_t *url, ngx_uint_t scope)
{
    u_char                       *c, *end, *name, *host, *host_end;
    size_t                        len;
    ngx_str_t                    *kcp;
    ngx_uint_t                    i, found, conn, in_host, fixed;
    ngx_http_oauth_keep_field_t  *kf;
    ngx_http_oauth_conn_param_t  *cp;

    end = url->data + url->len;

    /* the authority: from after "://" to the first "/", "?" or "#" */

    host = ngx_strlcasestrn(url->data, end, (u_char *) "://", 3 - 1);
    host = host ? host + 3 : end;

    for (host_end = host; host_end < end; host_end++) {
        if (*host_end == '/' || *host_end == '?' || *host_end == '#') {
            break;
        }
    }

    for (c = url->data; c < end; c++) {

        if (*c != '{') {
            continue;
        }

        name = c + 1;

        for (c = name; c < end && *c != '}'; c++) { /* void */ }

        len = c - name;

        /* the client's own id: GitHub's DELETE /applications/{client_id} */

        found = (len == sizeof("client_id") - 1
                 && ngx_strncmp(name, "client_id", len) == 0);

        in_host = (name > host && name < host_end);
        fixed = in_host && ngx_http_oauth_host_suffix(name, c, host_end);

        if (p->connection_params) {
            cp = p->connection_params->elts;

            for (i = 0; !found && i < p->connection_params->nelts; i++) {
                found = (cp[i].name.len == len
                         && ngx_strncmp(cp[i].name.data, name, len) == 0);

                if (found && in_host && !fixed && !cp[i].explicit_pattern) {
                    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                                  "oauth_provider \"%V\" in %s:%ui: \"%s\" "
                                  "lets \"{%*s}\" choose the host: put it "
                                  "in front of a fixed domain "
                                  "(\"{%*s}.example.com\") or give the "
                                  "connection_param a pattern= that allows "
                                  "only your hosts", &p->name, p->file,
                                  p->line, what, len, name, len, name);
                    return NGX_ERROR;
                }
            }
        }

        conn = found;

        if (scope >= NGX_HTTP_OAUTH_PH_CALLBACK && p->keep_callback_params) {
            kcp = p->keep_callback_params->elts;

            for (i = 0; !found && i < p->keep_callback_params->nelts; i++) {
                found = (kcp[i].len == len
                         && ngx_strncmp(kcp[i].data, name, len) == 0);
            }
        }

        if (scope >= NGX_HTTP_OAUTH_PH_STORED && p->keep_token_fields) {
            kf = p->keep_token_fields->elts;

            for (i = 0; !found && i < p->keep_token_fields->nelts; i++) {
                found = (kf[i].as.len == len
                         && ngx_strncmp(kf[i].as.data, name, len) == 0);
            }
        }

        if (found && !conn && in_host) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"%s\" uses "
                          "\"{%*s}\" in the host: only a connection_param "
                          "may choose a host, never a value the callback "
                          "or the provider sends", &p->name, p->file,
                          p->line, what, len, name);
            return NGX_ERROR;
        }

        if (!found) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"%s\" uses "
                          "\"{%*s}\", which is not a %s", &p->name, p->file,
                          p->line, what, len, name,
                          scope == NGX_HTTP_OAUTH_PH_START
                          ? "connection_param"
                          : scope == NGX_HTTP_OAUTH_PH_CALLBACK
                          ? "connection_param or keep_callback_param"
                          : "connection_param, keep_callback_param or "
                            "keep_token_field");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


char *
ngx_http_oauth_providers_init(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf)
{
    u_char                     *buf;
    json_t                     *catalog, *extra, *v;
    ngx_uint_t                  i;
    const char                 *key;
    json_error_t                jerr;
    ngx_http_oauth_provider_t  *p;

    catalog = json_loadb((const char *) ngx_http_oauth_catalog,
                         ngx_http_oauth_catalog_len, 0, &jerr);

    if (catalog == NULL || !json_is_object(catalog)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth: the built-in provider catalog is invalid");
        json_decref(catalog);
        return NGX_CONF_ERROR;
    }

    if (omcf->catalog_file.len) {
        if (ngx_conf_full_name(cf->cycle, &omcf->catalog_file, 1)
            != NGX_OK)
        {
            goto failed;
        }

        buf = omcf->catalog_file.data;

        extra = json_load_file((const char *) buf, 0, &jerr);

        if (extra == NULL || !json_is_object(extra)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth: \"oauth_provider_catalog\" \"%s\": %s "
                          "at line %d", buf,
                          extra ? "not a JSON object" : jerr.text,
                          jerr.line);
            json_decref(extra);
            goto failed;
        }

        /* the operator's entries add to or replace built-in ones */

        json_object_foreach(extra, key, v) {
            if (!json_is_object(v)
                || json_object_set(catalog, key, v) != 0)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "oauth: \"oauth_provider_catalog\" \"%s\": "
                              "entry \"%s\" is not an object", buf, key);
                json_decref(extra);
                goto failed;
            }
        }

        json_decref(extra);
    }

    p = omcf->providers.elts;

    for (i = 0; i < omcf->providers.nelts; i++) {
        p[i].index = i;

        if (p[i].preset.data
            && ngx_http_oauth_provider_preset(cf, &p[i], catalog) != NGX_OK)
        {
            goto failed;
        }

        if (ngx_http_oauth_provider_check(cf, &p[i]) != NGX_OK) {
            goto failed;
        }
    }

    json_decref(catalog);

    return NGX_CONF_OK;

failed:

    json_decref(catalog);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_oauth_json_str(ngx_conf_t *cf, json_t *obj, const char *key,
    ngx_str_t *s)
{
    json_t      *v;
    const char  *str;

    if (s->data) {
        return NGX_OK;          /* the block set it */
    }

    v = json_object_get(obj, key);
    if (v == NULL) {
        return NGX_OK;
    }

    str = json_string_value(v);
    if (str == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_oauth_cstr(cf, str, s);
}


/* a NUL-terminated copy, so values can be handed to C functions */

static ngx_int_t
ngx_http_oauth_cstr(ngx_conf_t *cf, const char *str, ngx_str_t *s)
{
    s->len = ngx_strlen(str);
    s->data = ngx_pnalloc(cf->pool, s->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, str, s->len + 1);

    return NGX_OK;
}


/*
 * A preset's {"NAME": "VALUE"} object merged into the block's list: the
 * block's line of the same name replaces the preset's ("NAME off" removes
 * it, see ngx_http_oauth_pairs_off()), the others are added.
 */

static ngx_int_t
ngx_http_oauth_preset_pairs(ngx_conf_t *cf, json_t *v, ngx_array_t **list)
{
    json_t                 *x;
    ngx_uint_t              i, own;
    const char             *key;
    ngx_http_oauth_pair_t  *pair;

    if (!json_is_object(v)) {
        return NGX_OK;
    }

    if (*list == NULL) {
        *list = ngx_array_create(cf->pool, 4,
                                 sizeof(ngx_http_oauth_pair_t));
        if (*list == NULL) {
            return NGX_ERROR;
        }
    }

    own = (*list)->nelts;

    json_object_foreach(v, key, x) {
        pair = (*list)->elts;

        for (i = 0; i < own; i++) {
            if (ngx_strcmp(pair[i].name.data, key) == 0) {
                break;
            }
        }

        if (i < own) {
            continue;
        }

        pair = ngx_array_push(*list);
        if (pair == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(pair, sizeof(ngx_http_oauth_pair_t));

        if (!json_is_string(x)
            || ngx_http_oauth_cstr(cf, json_string_value(x), &pair->value)
               != NGX_OK
            || ngx_http_oauth_cstr(cf, key, &pair->name) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* whether a kept-param list has the name already */

static ngx_uint_t
ngx_http_oauth_kept_name(ngx_array_t *list, const char *name)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    s = list->elts;

    for (i = 0; i < list->nelts; i++) {
        if (s[i].len == ngx_strlen(name)
            && ngx_strncmp(s[i].data, name, s[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* whether one of the block's first n kept token fields is kept as kf's */

static ngx_uint_t
ngx_http_oauth_kept_field(ngx_array_t *list, ngx_uint_t n,
    ngx_http_oauth_keep_field_t *kf)
{
    ngx_uint_t                    i;
    ngx_http_oauth_keep_field_t  *f;

    f = list->elts;

    for (i = 0; i < n; i++) {
        if (f[i].as.len == kf->as.len
            && ngx_strncmp(f[i].as.data, kf->as.data, kf->as.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * What the operator must write in the block for the preset to work:
 * "user_agent" (Reddit), "scope" (Slack: no default the app surely has)
 * or "authorization_param:NAME" (the SP-API's application_id); said at
 * "nginx -t" rather than at the first connect.
 */

static ngx_int_t
ngx_http_oauth_preset_requires(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    json_t *v)
{
    size_t                  i;
    json_t                 *x;
    ngx_uint_t              k, found;
    const char             *need, *name;
    ngx_http_oauth_pair_t  *ap;

    if (!json_is_array(v)) {
        return NGX_OK;
    }

    json_array_foreach(v, i, x) {
        need = json_string_value(x);
        if (need == NULL) {
            continue;
        }

        found = 0;

        if (ngx_strcmp(need, "user_agent") == 0) {
            found = (p->user_agent.data != NULL);

        } else if (ngx_strcmp(need, "scope") == 0) {
            found = (p->scopes != NULL && p->scopes->nelts > 0);

        } else if (ngx_strncmp(need, "authorization_param:",
                               sizeof("authorization_param:") - 1)
                   == 0)
        {
            name = need + sizeof("authorization_param:") - 1;
            ap = p->authorization_params ? p->authorization_params->elts
                                         : NULL;

            for (k = 0; ap && k < p->authorization_params->nelts; k++) {
                found |= (ngx_strcmp(ap[k].name.data, name) == 0);
            }

        } else {
            found = 1;
        }

        if (!found) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: preset \"%V\" "
                          "needs \"%s\" in the block", &p->name, p->file,
                          p->line, &p->preset, need);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "NAME off" lines have done their work: they are not sent */

static void
ngx_http_oauth_pairs_off(ngx_array_t *list)
{
    ngx_uint_t              i, n;
    ngx_http_oauth_pair_t  *pair;

    if (list == NULL) {
        return;
    }

    pair = list->elts;
    n = 0;

    for (i = 0; i < list->nelts; i++) {
        if (pair[i].value.len == 3
            && ngx_strncmp(pair[i].value.data, "off", 3) == 0)
        {
            continue;
        }

        pair[n++] = pair[i];
    }

    list->nelts = n;
}


/*
 * Scopes the module itself needs (for the account lookup) stay asked for
 * when the block's "scope" replaces the preset's.
 */

static ngx_int_t
ngx_http_oauth_preset_scopes(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    json_t *v)
{
    size_t       i;
    json_t      *x;
    ngx_str_t   *s;
    ngx_uint_t   k;
    const char  *scope;

    if (p->scopes == NULL || !json_is_array(v)) {
        return NGX_OK;
    }

    json_array_foreach(v, i, x) {
        scope = json_string_value(x);
        if (scope == NULL) {
            return NGX_ERROR;
        }

        s = p->scopes->elts;

        for (k = 0; k < p->scopes->nelts; k++) {
            if (s[k].len == ngx_strlen(scope)
                && ngx_strncmp(s[k].data, scope, s[k].len) == 0)
            {
                break;
            }
        }

        if (k < p->scopes->nelts) {
            continue;
        }

        s = ngx_array_push(p->scopes);
        if (s == NULL || ngx_http_oauth_cstr(cf, scope, s) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * "token_header Authorization;" in a block whose preset sends "Bearer "
 * (or "token ") before the token would send it bare or with another
 * prefix: the provider then refuses every call.  The prefix is written
 * out, "" when none is wanted.
 */

static ngx_int_t
ngx_http_oauth_preset_prefix(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    json_t *v)
{
    const char  *name, *prefix;

    if (p->token_header.data == NULL || p->token_prefix_set
        || !json_is_object(v))
    {
        return NGX_OK;
    }

    name = json_string_value(json_object_get(v, "name"));
    prefix = json_string_value(json_object_get(v, "prefix"));

    if (name == NULL || prefix == NULL || prefix[0] == '\0'
        || ngx_strlen(name) != p->token_header.len
        || ngx_strncasecmp(p->token_header.data, (u_char *) name,
                           p->token_header.len)
           != 0)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "oauth_provider \"%V\" in %s:%ui: \"token_header %V\" "
                  "has no prefix, but preset \"%V\" sends \"%s\" before "
                  "the token: write token_header %V \"%s\"; (or \"\" for "
                  "none)", &p->name, p->file, p->line, &p->token_header,
                  &p->preset, prefix, &p->token_header, prefix);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_oauth_enum_value(ngx_conf_enum_t *e, const char *s, ngx_uint_t *v)
{
    for ( /* void */ ; e->name.len; e++) {
        if (ngx_strcmp(e->name.data, s) == 0) {
            *v = e->value;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * A preset's "kind" or "token_auth" is refused as the block's is when the
 * value is not one the module knows; the block's own value wins.
 */

static ngx_int_t
ngx_http_oauth_preset_enum(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    json_t *e, const char *key, ngx_conf_enum_t *values, ngx_uint_t *v)
{
    json_t      *j;
    ngx_uint_t   value;

    j = json_object_get(e, key);

    if (j == NULL) {
        return NGX_OK;
    }

    if (!json_is_string(j)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "preset \"%V\" of oauth_provider \"%V\" in %s:%ui: "
                      "\"%s\" is not a string", &p->preset, &p->name,
                      p->file, p->line, key);
        return NGX_ERROR;
    }

    if (ngx_http_oauth_enum_value(values, json_string_value(j), &value)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "preset \"%V\" of oauth_provider \"%V\" in %s:%ui: "
                      "invalid value \"%s\" in \"%s\"", &p->preset,
                      &p->name, p->file, p->line, json_string_value(j), key);
        return NGX_ERROR;
    }

    if (*v == NGX_CONF_UNSET_UINT) {
        *v = value;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_provider_preset(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    json_t *catalog)
{
    u_char                       *name;
    json_t                       *e, *v, *o, *x;
    size_t                        i;
    ngx_str_t                    *s;
    ngx_uint_t                    own;
    ngx_http_oauth_field_t       *f;
    ngx_http_oauth_keep_field_t  *kf;
    ngx_http_oauth_conn_param_t  *cp;

    name = ngx_pnalloc(cf->pool, p->preset.len + 1);
    if (name == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(name, p->preset.data, p->preset.len + 1);

    e = json_object_get(catalog, (char *) name);

    if (e == NULL || !json_is_object(e)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown preset \"%V\" in oauth_provider \"%V\" "
                      "in %s:%ui", &p->preset, &p->name, p->file, p->line);
        return NGX_ERROR;
    }

    for (f = ngx_http_oauth_fields; f->name.len; f++) {
        s = (ngx_str_t *) ((char *) p + f->offset);

        if (ngx_http_oauth_json_str(cf, e, (char *) f->name.data, s)
            != NGX_OK)
        {
            goto invalid;
        }
    }

    if (ngx_http_oauth_preset_enum(cf, p, e, "kind", ngx_http_oauth_kinds,
                                   &p->kind)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_preset_requires(cf, p, json_object_get(e,
                                                              "requires"))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    v = json_object_get(e, "pkce");
    if (p->pkce == NGX_CONF_UNSET && json_is_boolean(v)) {
        p->pkce = json_is_true(v);
    }

    v = json_object_get(e, "refresh");
    if (p->refresh == NGX_CONF_UNSET && json_is_boolean(v)) {
        p->refresh = json_is_true(v);
    }

    if (ngx_http_oauth_preset_enum(cf, p, e, "token_auth",
                                   ngx_http_oauth_token_auths,
                                   &p->token_auth)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_preset_scopes(cf, p, json_object_get(e,
                                                            "scope_required"))
        != NGX_OK)
    {
        goto invalid;
    }

    v = json_object_get(e, "scope");
    if (p->scopes == NULL && json_is_array(v) && json_array_size(v)) {
        p->scopes = ngx_array_create(cf->pool, json_array_size(v),
                                     sizeof(ngx_str_t));
        if (p->scopes == NULL) {
            return NGX_ERROR;
        }

        json_array_foreach(v, i, x) {
            s = ngx_array_push(p->scopes);
            if (s == NULL) {
                return NGX_ERROR;
            }

            if (!json_is_string(x)) {
                goto invalid;
            }

            if (ngx_http_oauth_cstr(cf, json_string_value(x), s) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    v = json_object_get(e, "token_header");

    if (ngx_http_oauth_preset_prefix(cf, p, v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (p->token_header.data == NULL && json_is_object(v)) {
        if (ngx_http_oauth_json_str(cf, v, "name", &p->token_header)
            != NGX_OK
            || ngx_http_oauth_json_str(cf, v, "prefix", &p->token_prefix)
               != NGX_OK)
        {
            goto invalid;
        }

        p->token_prefix_set = 1;
    }

    /* name-value lists merge (SPEC section 11, "Preset lists merge") */

    if (ngx_http_oauth_preset_pairs(cf, json_object_get(e,
                                        "authorization_params"),
                                    &p->authorization_params)
        != NGX_OK
        || ngx_http_oauth_preset_pairs(cf, json_object_get(e,
                                                           "token_params"),
                                       &p->token_params)
           != NGX_OK
        || ngx_http_oauth_preset_pairs(cf, json_object_get(e,
                                                           "token_headers"),
                                       &p->token_headers)
           != NGX_OK)
    {
        goto invalid;
    }

    v = json_object_get(e, "connection_params");
    if (p->connection_params == NULL && json_is_array(v)) {
        p->connection_params = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_oauth_conn_param_t));
        if (p->connection_params == NULL) {
            return NGX_ERROR;
        }

        json_array_foreach(v, i, o) {
            cp = ngx_array_push(p->connection_params);
            if (cp == NULL) {
                return NGX_ERROR;
            }

            ngx_memzero(cp, sizeof(ngx_http_oauth_conn_param_t));

            if (!json_is_object(o)
                || ngx_http_oauth_json_str(cf, o, "name", &cp->name)
                   != NGX_OK
                || cp->name.len == 0
                || ngx_http_oauth_json_str(cf, o, "pattern", &cp->pattern)
                   != NGX_OK
                || ngx_http_oauth_json_str(cf, o, "strip_suffix", &cp->strip)
                   != NGX_OK)
            {
                goto invalid;
            }

            cp->required = json_is_true(json_object_get(o, "required"));
        }
    }

    /* what to keep adds to the preset's, as name-value lists do */

    v = json_object_get(e, "keep_callback_params");
    if (json_is_array(v)) {
        if (p->keep_callback_params == NULL) {
            p->keep_callback_params = ngx_array_create(cf->pool, 2,
                                                       sizeof(ngx_str_t));
            if (p->keep_callback_params == NULL) {
                return NGX_ERROR;
            }
        }

        json_array_foreach(v, i, x) {
            if (!json_is_string(x)) {
                goto invalid;
            }

            if (ngx_http_oauth_kept_name(p->keep_callback_params,
                                         json_string_value(x)))
            {
                continue;
            }

            s = ngx_array_push(p->keep_callback_params);
            if (s == NULL) {
                return NGX_ERROR;
            }

            if (ngx_http_oauth_cstr(cf, json_string_value(x), s) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    v = json_object_get(e, "keep_token_fields");
    if (json_is_array(v)) {
        own = 0;

        if (p->keep_token_fields == NULL) {
            p->keep_token_fields = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_oauth_keep_field_t));
            if (p->keep_token_fields == NULL) {
                return NGX_ERROR;
            }

        } else {
            own = p->keep_token_fields->nelts;
        }

        json_array_foreach(v, i, o) {
            kf = ngx_array_push(p->keep_token_fields);
            if (kf == NULL) {
                return NGX_ERROR;
            }

            ngx_memzero(kf, sizeof(ngx_http_oauth_keep_field_t));

            if (!json_is_object(o)
                || ngx_http_oauth_json_str(cf, o, "path", &kf->path)
                   != NGX_OK
                || kf->path.len == 0
                || ngx_http_oauth_json_str(cf, o, "as", &kf->as) != NGX_OK)
            {
                goto invalid;
            }

            if (kf->as.len == 0) {
                kf->as = kf->path;
            }

            /* the block keeps a field under this name already */

            if (ngx_http_oauth_kept_field(p->keep_token_fields, own, kf)) {
                p->keep_token_fields->nelts--;
            }
        }
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "preset \"%V\" of oauth_provider \"%V\" in %s:%ui has a "
                  "malformed catalog entry", &p->preset, &p->name,
                  p->file, p->line);

    return NGX_ERROR;
}


/*
 * The quirk fields: names that go into requests are plain tokens, the
 * revocation style is one the module knows, and an account taken from a
 * callback parameter is a kept one.
 */

static ngx_int_t
ngx_http_oauth_provider_quirks(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    u_char                 *c;
    ngx_str_t              *s, name;
    ngx_uint_t              i, k;
    const char             *bad;
    ngx_http_oauth_pair_t  *h;

    bad = NULL;

    for (i = 0; bad == NULL && i < 3; i++) {
        s = (i == 0) ? &p->code_param
            : (i == 1) ? &p->client_id_param : &p->revocation_method;

        for (k = 0; k < s->len; k++) {
            if (!(ngx_http_oauth_isalnum(s->data[k]) || s->data[k] == '_'
                  || s->data[k] == '-' || s->data[k] == '.'))
            {
                bad = (i == 0) ? "code_param"
                      : (i == 1) ? "client_id_param" : "revocation_method";
                break;
            }
        }
    }

    for (c = p->user_agent.data;
         bad == NULL && c && c < p->user_agent.data + p->user_agent.len;
         c++)
    {
        if (*c < 0x20 || *c == 0x7f) {
            bad = "user_agent";
        }
    }

    if (p->callback_hmac.len
        && ngx_strcmp(p->callback_hmac.data, "shopify") != 0)
    {
        bad = "callback_hmac";
    }

    if (bad == NULL && p->revocation_auth.len
        && ngx_strcmp(p->revocation_auth.data, "client") != 0
        && ngx_strcmp(p->revocation_auth.data, "basic") != 0
        && ngx_strcmp(p->revocation_auth.data, "bearer") != 0
        && ngx_strcmp(p->revocation_auth.data, "secret") != 0
        && ngx_strcmp(p->revocation_auth.data, "none") != 0)
    {
        bad = "revocation_auth";
    }

    if (p->token_headers) {
        h = p->token_headers->elts;

        for (i = 0; bad == NULL && i < p->token_headers->nelts; i++) {
            for (k = 0; k < h[i].name.len; k++) {
                if (!(ngx_http_oauth_isalnum(h[i].name.data[k])
                      || h[i].name.data[k] == '-' || h[i].name.data[k] == '_'
                      || h[i].name.data[k] == '.'))
                {
                    bad = "token_header_param";
                    break;
                }
            }
        }
    }

    if (bad) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: invalid \"%s\"",
                      &p->name, p->file, p->line, bad);
        return NGX_ERROR;
    }

    if (p->client_id_param.data == NULL) {
        ngx_str_set(&p->client_id_param, "client_id");
    }

    /* "account_id callback:realmId": the parameter must be kept */

    if (p->account_id.len > sizeof("callback:") - 1
        && ngx_strncmp(p->account_id.data, "callback:",
                       sizeof("callback:") - 1)
           == 0)
    {
        name.data = p->account_id.data + sizeof("callback:") - 1;
        name.len = p->account_id.len - (sizeof("callback:") - 1);

        if (p->keep_callback_params == NULL) {
            p->keep_callback_params = ngx_array_create(cf->pool, 1,
                                                       sizeof(ngx_str_t));
            if (p->keep_callback_params == NULL) {
                return NGX_ERROR;
            }
        }

        s = p->keep_callback_params->elts;

        for (i = 0; i < p->keep_callback_params->nelts; i++) {
            if (s[i].len == name.len
                && ngx_strncmp(s[i].data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (i == p->keep_callback_params->nelts) {
            s = ngx_array_push(p->keep_callback_params);
            if (s == NULL) {
                return NGX_ERROR;
            }

            *s = name;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_provider_check(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    ngx_str_t                     *u;
    ngx_uint_t                     i;
    const char                    *why, *what;
    ngx_http_oauth_conn_param_t   *cp;

    ngx_conf_init_uint_value(p->kind, NGX_OAUTH_KIND_OAUTH2);
    ngx_conf_init_value(p->pkce, 1);
    ngx_conf_init_value(p->refresh, 1);
    ngx_conf_init_uint_value(p->token_auth, NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC);

    if (p->display_name.data == NULL) {
        p->display_name = p->name;
    }

    if (p->scope_separator.data == NULL) {
        ngx_str_set(&p->scope_separator, " ");
    }

    if (p->token_header.data == NULL) {
        ngx_str_set(&p->token_header, "Authorization");
    }

    if (!p->token_prefix_set) {
        if (p->kind == NGX_OAUTH_KIND_BASIC) {
            ngx_str_set(&p->token_prefix, "Basic ");

        } else if (p->kind == NGX_OAUTH_KIND_OAUTH2
                   || (p->kind == NGX_OAUTH_KIND_API_KEY
                       && p->token_header.len == sizeof("Authorization") - 1
                       && ngx_strncasecmp(p->token_header.data,
                                          (u_char *) "Authorization",
                                          p->token_header.len)
                          == 0))
        {
            /* an API key in Authorization is a bearer credential */

            ngx_str_set(&p->token_prefix, "Bearer ");

        } else {
            ngx_str_set(&p->token_prefix, "");
        }
    }

    ngx_http_oauth_pairs_off(p->authorization_params);
    ngx_http_oauth_pairs_off(p->token_params);
    ngx_http_oauth_pairs_off(p->token_headers);

    if (ngx_http_oauth_provider_quirks(cf, p) != NGX_OK) {
        return NGX_ERROR;
    }

    if (p->connection_params) {
        cp = p->connection_params->elts;

        for (i = 0; i < p->connection_params->nelts; i++) {
            if (cp[i].pattern.len == 0) {
                ngx_str_set(&cp[i].pattern, "^[A-Za-z0-9._-]{1,128}$");

            } else {
                cp[i].explicit_pattern = 1;
            }

            if (ngx_http_oauth_pattern_check(cf, p, &cp[i]) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    if (p->kind == NGX_OAUTH_KIND_OAUTH2) {
        what = p->client_id.data == NULL ? "client_id"
               : p->redirect_uri.data == NULL ? "redirect_uri"
               : p->authorization_url.data == NULL ? "authorization_url"
               : p->token_url.data == NULL ? "token_url"
               : p->account_id.data == NULL ? "account_id"
               : NULL;

        if (what) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui needs \"%s\"",
                          &p->name, p->file, p->line, what);
            return NGX_ERROR;
        }

        if (p->client_secret.data == NULL) {
            ngx_str_set(&p->client_secret, "");
        }
    }

    /*
     * Every endpoint must be https://, or http:// to loopback; templates
     * are checked with their {NAME} placeholders in place.
     */

    for (i = 0; i < 8; i++) {
        u = (i == 0) ? &p->redirect_uri
            : (i == 1) ? &p->authorization_url
            : (i == 2) ? &p->token_url
            : (i == 3) ? &p->revocation_url
            : (i == 4) ? &p->userinfo_url
            : (i == 5) ? &p->api_base_url
            : (i == 6) ? &p->exchange_url
            : &p->refresh_url;

        if (u->data == NULL) {
            continue;
        }

        if (ngx_oauth_url_check_endpoint(u->data, u->len,
                                         i ? NGX_OAUTH_URL_TEMPLATE : 0,
                                         &why)
            != NGX_OAUTH_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"%s\" \"%V\" "
                          "%s", &p->name, p->file, p->line,
                          i == 0 ? "redirect_uri"
                          : i == 1 ? "authorization_url"
                          : i == 2 ? "token_url"
                          : i == 3 ? "revocation_url"
                          : i == 4 ? "userinfo_url"
                          : i == 5 ? "api_base_url"
                          : i == 6 ? "exchange_url" : "refresh_url",
                          u, why);
            return NGX_ERROR;
        }
    }

    if ((p->authorization_url.data
         && ngx_http_oauth_placeholders(cf, p, "authorization_url",
                                        &p->authorization_url,
                                        NGX_HTTP_OAUTH_PH_START)
            != NGX_OK)
        || (p->token_url.data
            && ngx_http_oauth_placeholders(cf, p, "token_url", &p->token_url,
                                           NGX_HTTP_OAUTH_PH_CALLBACK)
               != NGX_OK)
        || (p->userinfo_url.data
            && ngx_http_oauth_placeholders(cf, p, "userinfo_url",
                                           &p->userinfo_url,
                                           NGX_HTTP_OAUTH_PH_CALLBACK)
               != NGX_OK)
        || (p->revocation_url.data
            && ngx_http_oauth_placeholders(cf, p, "revocation_url",
                                           &p->revocation_url,
                                           NGX_HTTP_OAUTH_PH_STORED)
               != NGX_OK)
        || (p->api_base_url.data
            && ngx_http_oauth_placeholders(cf, p, "api_base_url",
                                           &p->api_base_url,
                                           NGX_HTTP_OAUTH_PH_STORED)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_http_oauth_provider_t *
ngx_http_oauth_provider_find(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_oauth_provider_t  *p;

    p = omcf->providers.elts;

    for (i = 0; i < omcf->providers.nelts; i++) {
        if (p[i].name.len == name->len
            && ngx_strncmp(p[i].name.data, name->data, name->len) == 0)
        {
            return &p[i];
        }
    }

    return NULL;
}
