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
static void ngx_http_oauth_check_debug_log(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf);
static ngx_uint_t ngx_http_oauth_check_debug_level(ngx_conf_t *cf,
    ngx_log_t *log, ngx_str_t *name);
static void ngx_http_oauth_check_copies(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf);
static ngx_module_t *ngx_http_oauth_check_module(ngx_conf_t *cf,
    const char *name);
static ngx_int_t ngx_http_oauth_check_secret_fields(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_check_secret_paths(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const char *directive, ngx_str_t *paths);
static ngx_uint_t ngx_http_oauth_check_is_secret(u_char *s, u_char *end);


static const char  *ngx_http_oauth_use_names[] = {
    "oauth_start", "oauth_callback", "oauth_token", "oauth_api"
};


/* the token response fields that are credentials, never an id or a param */

static ngx_str_t  ngx_http_oauth_secret_fields[] = {
    ngx_string("access_token"),
    ngx_string("refresh_token"),
    ngx_string("id_token"),
    ngx_null_string
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

    for (i = 0; i < omcf->providers.nelts; i++) {
        if (ngx_http_oauth_check_secret_fields(cf, &p[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ngx_http_oauth_check_debug_log(cf, omcf);
    ngx_http_oauth_check_copies(cf, omcf);

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


/*
 * nginx's own debug lines (built --with-debug, as Debian's is) record every
 * request header a proxied request sends, the Authorization header that
 * oauth_token injects included, and the request line of a callback with
 * its code.  The module's lines never carry a secret, but nginx's do: say
 * so once, with the log and the location where it would happen.
 */

static void
ngx_http_oauth_check_debug_log(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf)
{
    ngx_str_t              name;
    ngx_uint_t             i, j, n;
    ngx_log_t             *said[8];
    ngx_http_oauth_use_t  *u;

    n = 0;
    u = omcf->uses ? omcf->uses->elts : NULL;

    for (i = 0; u && i < omcf->uses->nelts; i++) {
        if (u[i].use != NGX_HTTP_OAUTH_USE_TOKEN
            && u[i].use != NGX_HTTP_OAUTH_USE_CALLBACK)
        {
            continue;
        }

        /* once per error log: locations share their parent's */

        for (j = 0; j < n && said[j] != u[i].clcf->error_log; j++) {
            /* void */
        }

        if (j < n
            || !ngx_http_oauth_check_debug_level(cf, u[i].clcf->error_log,
                                                 &name))
        {
            continue;
        }

        if (n < sizeof(said) / sizeof(said[0])) {
            said[n++] = u[i].clcf->error_log;
        }

        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "the error log \"%V\" is at debug level where "
                      "\"%s\" is used in %s:%ui: nginx's own debug lines "
                      "record the Authorization header that oauth_token "
                      "injects and the code of each callback; use a level "
                      "above debug (and no debug_connection) in production",
                      &name, ngx_http_oauth_use_names[u[i].use],
                      u[i].file, u[i].line);
    }
}


/* whether a log of the chain (or debug_connection) writes http debug lines */

static ngx_uint_t
ngx_http_oauth_check_debug_level(ngx_conf_t *cf, ngx_log_t *log,
    ngx_str_t *name)
{
#if (NGX_DEBUG)
    void              ***ctx;
    ngx_event_conf_t    *ecf;

    for ( /* void */ ; log; log = log->next) {
        if (!(log->log_level & NGX_LOG_DEBUG_HTTP)) {
            continue;
        }

        if (log->file && log->file->name.len) {
            *name = log->file->name;

        } else if (log->writer) {
            ngx_str_set(name, "syslog");

        } else {
            ngx_str_set(name, "stderr");
        }

        return 1;
    }

    /* the events block may come after http: then it is not read yet */

    ctx = (void ***) cf->cycle->conf_ctx[ngx_events_module.index];

    if (ctx && *ctx) {
        ecf = (*ctx)[ngx_event_core_module.ctx_index];

        if (ecf && ecf->debug_connection.nelts) {
            ngx_str_set(name, "debug_connection");
            return 1;
        }
    }
#endif

    return 0;
}


/*
 * Copies of a request that oauth_token completed: "mirror" sends the
 * request, injected Authorization header included, to another location;
 * "proxy_cache" keeps one owner's upstream answer and, with nginx's
 * default key ($scheme$proxy_host$request_uri), serves it to every other
 * owner asking for the same URL (T40).  Neither is refused: a mirror to a
 * trusted shadow upstream and a cache keyed with the owner are sound, and
 * nginx does not let another module read a cache key.  Both are said.
 *
 * The mirror module keeps its list as the first member of its location
 * configuration, and the proxy module its ngx_http_upstream_conf_t; both
 * are looked up by name, so that a binary built without them still loads.
 */

static void
ngx_http_oauth_check_copies(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf)
{
    void                      **lc;
    ngx_uint_t                  i;
    ngx_array_t               **mirror;
    ngx_module_t               *mm, *pm;
    ngx_http_oauth_use_t       *u;
    ngx_http_upstream_conf_t   *ucf;

    mm = ngx_http_oauth_check_module(cf, "ngx_http_mirror_module");
    pm = ngx_http_oauth_check_module(cf, "ngx_http_proxy_module");

    u = omcf->uses ? omcf->uses->elts : NULL;

    for (i = 0; u && i < omcf->uses->nelts; i++) {
        if (u[i].use != NGX_HTTP_OAUTH_USE_TOKEN) {
            continue;
        }

        lc = u[i].clcf->loc_conf;

        if (mm) {
            mirror = lc[mm->ctx_index];

            if (mirror && *mirror && *mirror != NGX_CONF_UNSET_PTR) {
                ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                              "\"mirror\" in a location with "
                              "\"oauth_token\" in %s:%ui sends the "
                              "injected token to the mirror's upstream "
                              "too", u[i].file, u[i].line);
            }
        }

#if (NGX_HTTP_CACHE)
        if (pm) {
            ucf = lc[pm->ctx_index];

            if (ucf && ucf->cache == 1) {
                ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                              "\"proxy_cache\" in a location with "
                              "\"oauth_token\" in %s:%ui serves one "
                              "owner's answer to others unless "
                              "\"proxy_cache_key\" includes the owner "
                              "(README \"Security notes\")",
                              u[i].file, u[i].line);
            }
        }
#else
        (void) pm;
        (void) ucf;
#endif
    }
}


static ngx_module_t *
ngx_http_oauth_check_module(ngx_conf_t *cf, const char *name)
{
    ngx_uint_t  i;

    for (i = 0; cf->cycle->modules[i]; i++) {
        if (cf->cycle->modules[i]->type == NGX_HTTP_MODULE
            && ngx_strcmp(cf->cycle->modules[i]->name, name) == 0)
        {
            return cf->cycle->modules[i];
        }
    }

    return NULL;
}


/*
 * A kept token field is shown as $oauth_param_NAME, in the API's answers
 * and in URLs; an account id or name is shown everywhere a connection is.
 * Naming a credential there would copy it out of the sealed record.
 */

static ngx_int_t
ngx_http_oauth_check_secret_fields(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p)
{
    ngx_uint_t                    i;
    ngx_http_oauth_keep_field_t  *kf;

    if (ngx_http_oauth_check_secret_paths(cf, p, "account_id",
                                          &p->account_id)
        != NGX_OK
        || ngx_http_oauth_check_secret_paths(cf, p, "account_name",
                                             &p->account_name)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    kf = p->keep_token_fields ? p->keep_token_fields->elts : NULL;

    for (i = 0; kf && i < p->keep_token_fields->nelts; i++) {
        if (ngx_http_oauth_check_secret_paths(cf, p, "keep_token_field",
                                              &kf[i].path)
            != NGX_OK
            || ngx_http_oauth_check_secret_paths(cf, p, "keep_token_field",
                                                 &kf[i].as)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "a|b.c|callback:x": the last segment of each token response path */

static ngx_int_t
ngx_http_oauth_check_secret_paths(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const char *directive, ngx_str_t *paths)
{
    u_char     *s, *end, *alt, *seg;
    ngx_str_t   name;

    s = paths->data;
    end = s + paths->len;

    while (s && s < end) {
        alt = ngx_strlchr(s, end, '|');
        if (alt == NULL) {
            alt = end;
        }

        if ((size_t) (alt - s) > sizeof("callback:") - 1
            && ngx_strncmp(s, "callback:", sizeof("callback:") - 1) == 0)
        {
            s = alt + 1;
            continue;
        }

        for (seg = alt; seg > s && seg[-1] != '.'; seg--) {
            /* void */
        }

        if (ngx_http_oauth_check_is_secret(seg, alt)) {
            name.data = s;
            name.len = alt - s;

            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"%s\" names "
                          "\"%V\", a credential of the token response: "
                          "it would be shown in variables, the API and "
                          "logs; name an id or another field",
                          &p->name, p->file, p->line, directive, &name);
            return NGX_ERROR;
        }

        s = alt + 1;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_oauth_check_is_secret(u_char *s, u_char *end)
{
    ngx_str_t  *f;

    for (f = ngx_http_oauth_secret_fields; f->len; f++) {
        if ((size_t) (end - s) == f->len
            && ngx_strncasecmp(s, f->data, f->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
