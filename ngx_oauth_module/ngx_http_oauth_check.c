/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_check.h"
#include "ngx_http_oauth_provider.h"


typedef struct {
    ngx_uint_t                   use;        /* NGX_HTTP_OAUTH_USE_* */
    ngx_str_t                    provider;   /* a fixed name, or empty */
    ngx_http_oauth_loc_conf_t   *olcf;
    ngx_http_core_loc_conf_t    *clcf;
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_http_oauth_use_t;


static ngx_int_t ngx_http_oauth_check_use(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_use_t *u);
static ngx_int_t ngx_http_oauth_check_redirect(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_provider_t *p);
static ngx_uint_t ngx_http_oauth_check_serves(ngx_http_oauth_use_t *u,
    ngx_str_t *path);


static const char  *ngx_http_oauth_use_names[] = {
    "oauth_start", "oauth_callback", "oauth_token", "oauth_api"
};


ngx_int_t
ngx_http_oauth_check_note(ngx_conf_t *cf, ngx_uint_t use,
    ngx_http_complex_value_t *provider)
{
    ngx_http_oauth_use_t        *u;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module);

    if (omcf->uses == NULL) {
        omcf->uses = ngx_array_create(cf->pool, 8,
                                      sizeof(ngx_http_oauth_use_t));
        if (omcf->uses == NULL) {
            return NGX_ERROR;
        }
    }

    u = ngx_array_push(omcf->uses);
    if (u == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(u, sizeof(ngx_http_oauth_use_t));

    u->use = use;

    /* a name with variables is checked when a request comes */

    if (provider && provider->lengths == NULL) {
        u->provider = provider->value;
    }

    u->olcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_oauth_module);
    u->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    u->file = cf->conf_file->file.name.data;
    u->line = cf->conf_file->line;

    return NGX_OK;
}


ngx_int_t
ngx_http_oauth_check_locations(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf)
{
    ngx_uint_t                  i;
    ngx_http_oauth_use_t       *u;
    ngx_http_oauth_provider_t  *p;

    if (!omcf->enabled) {
        return NGX_OK;
    }

    u = omcf->uses ? omcf->uses->elts : NULL;

    for (i = 0; u && i < omcf->uses->nelts; i++) {
        if (ngx_http_oauth_check_use(cf, omcf, &u[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    p = omcf->providers.elts;

    for (i = 0; i < omcf->providers.nelts; i++) {
        if (ngx_http_oauth_check_redirect(cf, omcf, &p[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_check_use(ngx_conf_t *cf, ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_use_t *u)
{
    const char                 *name;
    ngx_http_oauth_provider_t  *p;

    name = ngx_http_oauth_use_names[u->use];

    /*
     * Without an owner every request is 401 "unauthenticated": a server
     * that forgot oauth_owner would look like one whose users never
     * signed in.
     */

    if (u->use != NGX_HTTP_OAUTH_USE_CALLBACK && u->olcf->owner == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" needs \"oauth_owner\" (in its location, "
                      "server or http) to know whose connections these "
                      "are in %s:%ui", name, u->file, u->line);
        return NGX_ERROR;
    }

    if (u->provider.len == 0) {
        return NGX_OK;
    }

    p = ngx_http_oauth_provider_find(omcf, &u->provider);

    if (p == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" names an unknown provider \"%V\" (no "
                      "oauth_provider block of that name) in %s:%ui",
                      name, &u->provider, u->file, u->line);
        return NGX_ERROR;
    }

    if (u->use == NGX_HTTP_OAUTH_USE_START
        && p->kind != NGX_OAUTH_KIND_OAUTH2)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" names provider \"%V\", which is not of kind "
                      "oauth2 and has no authorization flow: its "
                      "credentials are set with POST credentials/%V on "
                      "oauth_api in %s:%ui", name, &u->provider,
                      &u->provider, u->file, u->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The provider sends the browser back to redirect_uri: some server must
 * have an oauth_callback location for its path, or every connect ends in
 * a 404 after the user approved.
 */

static ngx_int_t
ngx_http_oauth_check_redirect(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_provider_t *p)
{
    u_char                *s, *end;
    ngx_str_t              path;
    ngx_uint_t             i;
    ngx_http_oauth_use_t  *u;

    if (p->kind != NGX_OAUTH_KIND_OAUTH2 || p->redirect_uri.len == 0) {
        return NGX_OK;
    }

    s = p->redirect_uri.data;
    end = s + p->redirect_uri.len;

    s = ngx_strlcasestrn(s, end, (u_char *) "://", 3 - 1);
    if (s == NULL) {
        return NGX_OK;
    }

    for (s += 3; s < end && *s != '/' && *s != '?' && *s != '#'; s++) {
        /* void */
    }

    path.data = s;

    while (s < end && *s != '?' && *s != '#') {
        s++;
    }

    path.len = s - path.data;

    if (path.len == 0) {
        ngx_str_set(&path, "/");
    }

    u = omcf->uses ? omcf->uses->elts : NULL;

    for (i = 0; u && i < omcf->uses->nelts; i++) {
        if (u[i].use == NGX_HTTP_OAUTH_USE_CALLBACK
            && ngx_http_oauth_check_serves(&u[i], &path))
        {
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "oauth_provider \"%V\" in %s:%ui: no location with "
                  "\"oauth_callback\" in any server serves \"%V\", the path "
                  "of its redirect_uri", &p->name, p->file, p->line, &path);

    return NGX_ERROR;
}


/* whether the callback location matches path, as a request would */

static ngx_uint_t
ngx_http_oauth_check_serves(ngx_http_oauth_use_t *u, ngx_str_t *path)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = u->clcf;

#if (NGX_PCRE)
    if (clcf->regex) {
        return ngx_regex_exec(clcf->regex->regex, path, NULL, 0) >= 0;
    }
#endif

    if (clcf->named || clcf->noname) {
        return 0;
    }

    if (clcf->exact_match) {
        return clcf->name.len == path->len
               && ngx_strncmp(clcf->name.data, path->data, path->len) == 0;
    }

    return clcf->name.len <= path->len
           && ngx_strncmp(clcf->name.data, path->data, clcf->name.len) == 0;
}
