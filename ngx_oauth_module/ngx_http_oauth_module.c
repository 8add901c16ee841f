/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_api.h"
#include "ngx_http_oauth_check.h"
#include "ngx_http_oauth_webhook.h"
#include "ngx_http_oauth_http.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_housekeeping.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_refresh.h"
#include "ngx_http_oauth_token.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_json.h"


/*
 * The module's configuration and every hook nginx calls: the directive
 * table, conf create/init/merge, the variables (preconfiguration), the
 * phase handlers and the header filter (postconfiguration), and the
 * store's life in the master and the workers.  The handlers themselves
 * live with their concern.
 */


static void *ngx_http_oauth_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_oauth_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_oauth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_oauth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_oauth_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_oauth_init_process(ngx_cycle_t *cycle);
static void ngx_http_oauth_exit_process(ngx_cycle_t *cycle);
static void ngx_http_oauth_keyring_cleanup(void *data);

static char *ngx_http_oauth_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_oauth_store_dir(ngx_conf_t *cf, ngx_str_t *path);
static char *ngx_http_oauth_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_audit_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_sec_bounds_check(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth_msec_nonzero(ngx_conf_t *cf, void *post,
    void *data);
static ngx_uint_t ngx_http_oauth_count_char(ngx_str_t *s, u_char c);
static char *ngx_http_oauth_allowed_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_start(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_set_handler(ngx_conf_t *cf,
    ngx_http_handler_pt handler);
static char *ngx_http_oauth_complex_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_complex_value_t *ngx_http_oauth_compile(ngx_conf_t *cf,
    ngx_str_t *value);
static char *ngx_http_oauth_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_content(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_circuit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_oauth_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_oauth_postconfiguration(ngx_conf_t *cf);


/* nginx's bounds type, with a message in the directive's own units */
static ngx_conf_num_bounds_t  ngx_http_oauth_sec_bounds = {
    ngx_http_oauth_sec_bounds_check, 1, 365 * 86400
};

static ngx_conf_post_t  ngx_http_oauth_msec_nonzero_post = {
    ngx_http_oauth_msec_nonzero
};


static ngx_command_t  ngx_http_oauth_commands[] = {

    { ngx_string("oauth_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_oauth_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_key_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_oauth_provider_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_provider_catalog"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, catalog_file),
      NULL },

    { ngx_string("oauth_state_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, state_ttl),
      &ngx_http_oauth_sec_bounds },

    { ngx_string("oauth_max_flows_per_owner"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, max_flows),
      NULL },

    { ngx_string("oauth_refresh_ahead"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, refresh_ahead),
      &ngx_http_oauth_sec_bounds },

    { ngx_string("oauth_background_refresh"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, background_refresh),
      NULL },

    { ngx_string("oauth_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_audit_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_http_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, http_timeout),
      &ngx_http_oauth_msec_nonzero_post },

    { ngx_string("oauth_shared_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_oauth_shared_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, trusted_certificate),
      NULL },

    { ngx_string("oauth_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_complex_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oauth_loc_conf_t, owner),
      NULL },

    { ngx_string("oauth_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oauth_allowed_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_start"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_start,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_callback"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      ngx_http_oauth_callback_handler },

    { ngx_string("oauth_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      ngx_http_oauth_api_handler },

    { ngx_string("oauth_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_oauth_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      ngx_http_oauth_metrics_handler },

    { ngx_string("oauth_token"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_oauth_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_circuit_breaker"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_oauth_circuit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_webhook"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_oauth_webhook,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_oauth_module_ctx = {
    ngx_http_oauth_preconfiguration,       /* preconfiguration */
    ngx_http_oauth_postconfiguration,      /* postconfiguration */

    ngx_http_oauth_create_main_conf,       /* create main configuration */
    ngx_http_oauth_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_oauth_create_loc_conf,        /* create location configuration */
    ngx_http_oauth_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_oauth_module = {
    NGX_MODULE_V1,
    &ngx_http_oauth_module_ctx,            /* module context */
    ngx_http_oauth_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_oauth_init_module,            /* init module */
    ngx_http_oauth_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_oauth_exit_process,           /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* oauth_token's variables */

static ngx_int_t
ngx_http_oauth_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_oauth_token_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                  n;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * oauth_token after the access phase: auth_request, auth_basic and
     * allow/deny have decided (and set the owner) before any token is
     * looked up, and "satisfy any" cannot skip it.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_oauth_token_handler;

    /* the callback's code is hidden before limit_req can log it */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_oauth_callback_redact_handler;

    /*
     * The log phase handlers run in the order they were added, and the
     * access log's is added before any dynamic module's: oauth_token's is
     * put first, so that no log sees the injected credential.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    n = cmcf->phases[NGX_HTTP_LOG_PHASE].handlers.nelts;
    h = cmcf->phases[NGX_HTTP_LOG_PHASE].handlers.elts;

    ngx_memmove(&h[1], &h[0], (n - 1) * sizeof(ngx_http_handler_pt));

    h[0] = ngx_http_oauth_token_log_handler;

    if (ngx_http_oauth_check_locations(cf,
            ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* an upstream 401 marks the injected token to be refreshed */

    ngx_http_oauth_token_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_oauth_token_header_filter;

    return NGX_OK;
}


static void *
ngx_http_oauth_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth_main_conf_t));
    if (omcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     omcf->store_path = { 0, NULL };
     *     omcf->key_file = { 0, NULL };
     *     omcf->keyring = NULL;
     *     omcf->catalog_file = { 0, NULL };
     *     omcf->trusted_certificate = { 0, NULL };
     *     omcf->audit_log = NULL;
     *     omcf->enabled = 0;
     *     omcf->locations = 0;
     *     omcf->store = NULL;
     */

    if (ngx_array_init(&omcf->providers, cf->pool, 4,
                       sizeof(ngx_http_oauth_provider_t))
        != NGX_OK)
    {
        return NULL;
    }

    omcf->store_max_size = NGX_CONF_UNSET_SIZE;
    omcf->store_sync = NGX_CONF_UNSET;
    omcf->state_ttl = NGX_CONF_UNSET;
    omcf->max_flows = NGX_CONF_UNSET_UINT;
    omcf->refresh_ahead = NGX_CONF_UNSET;
    omcf->background_refresh = NGX_CONF_UNSET;
    omcf->http_timeout = NGX_CONF_UNSET_MSEC;
    omcf->circuit_failures = NGX_CONF_UNSET_UINT;
    omcf->circuit_reset = NGX_CONF_UNSET;

    return omcf;
}


static char *
ngx_http_oauth_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    ngx_core_conf_t  *ccf;

    /*
     * Any oauth_ directive but oauth_owner, oauth_allowed_origins and
     * oauth_circuit_breaker turns the module on; all are parsed by now.
     */

    omcf->enabled = (omcf->store_path.data || omcf->key_file.data
                     || omcf->audit_log || omcf->catalog_file.data
                     || omcf->trusted_certificate.data
                     || omcf->state_ttl != NGX_CONF_UNSET
                     || omcf->refresh_ahead != NGX_CONF_UNSET
                     || omcf->background_refresh != NGX_CONF_UNSET
                     || omcf->http_timeout != NGX_CONF_UNSET_MSEC
                     || omcf->providers.nelts || omcf->locations);

    ngx_conf_init_size_value(omcf->store_max_size, 1024 * 1024 * 1024);
    ngx_conf_init_value(omcf->store_sync, 1);
    ngx_conf_init_value(omcf->state_ttl, 600);
    ngx_conf_init_uint_value(omcf->max_flows, 20);
    ngx_conf_init_value(omcf->refresh_ahead, 300);
    ngx_conf_init_value(omcf->background_refresh, 1);
    ngx_conf_init_msec_value(omcf->http_timeout, 10000);
    ngx_conf_init_uint_value(omcf->circuit_failures, 5);
    ngx_conf_init_value(omcf->circuit_reset, 30);

    if (!omcf->enabled) {
        return NGX_CONF_OK;
    }

    if (omcf->store_path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "oauth: \"oauth_store\" is required when other "
                           "oauth_ directives are used");
        return NGX_CONF_ERROR;
    }

    if (omcf->keyring == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "oauth: \"oauth_key_file\" is required with "
                           "\"oauth_store\"");
        return NGX_CONF_ERROR;
    }

    if (omcf->trusted_certificate.len
        && ngx_conf_full_name(cf->cycle, &omcf->trusted_certificate, 1)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /*
     * Every worker holds one reader slot; old workers still draining
     * after a reload hold theirs too, and ngx-oauth may run alongside.
     */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                           ngx_core_module);

    omcf->max_readers = 126;

    if (ccf && ccf->worker_processes != NGX_CONF_UNSET
        && (ngx_uint_t) ccf->worker_processes * 4 + 16 > omcf->max_readers)
    {
        omcf->max_readers = ccf->worker_processes * 4 + 16;
    }

    if (ngx_http_oauth_providers_init(cf, omcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oauth_metrics_zone(cf, omcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_oauth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_oauth_loc_conf_t  *olcf;

    olcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth_loc_conf_t));
    if (olcf == NULL) {
        return NULL;
    }

    olcf->owner = NGX_CONF_UNSET_PTR;
    olcf->allowed_origins = NGX_CONF_UNSET_PTR;
    olcf->token = NGX_CONF_UNSET_PTR;

    /*
     * set by ngx_pcalloc():
     *
     *     olcf->start = NULL;
     *     olcf->token_account = NULL;
     */

    return olcf;
}


static char *
ngx_http_oauth_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_oauth_loc_conf_t *prev = parent;
    ngx_http_oauth_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->owner, prev->owner, NULL);
    ngx_conf_merge_ptr_value(conf->allowed_origins, prev->allowed_origins,
                             NULL);

    /*
     * oauth_token is inherited by nested locations (and "if" blocks), as
     * auth_request is; "oauth_token off" stops it.  Its account= goes
     * with it.
     */

    if (conf->token == NGX_CONF_UNSET_PTR) {
        conf->token = prev->token;
        conf->token_account = prev->token_account;
    }

    if (conf->token == NGX_CONF_UNSET_PTR) {
        conf->token = NULL;
    }

    return NGX_CONF_OK;
}


/*
 * The master opens the store once to validate it (version tag, stale
 * readers, permissions) and closes it before forking: an LMDB environment
 * must not be used across fork().  Each worker opens its own.
 */

static ngx_int_t
ngx_http_oauth_init_module(ngx_cycle_t *cycle)
{
    int                          stale;
    char                         err[256];
    ngx_uint_t                   level;
    ngx_file_info_t              fi;
    ngx_core_conf_t             *ccf;
    ngx_oauth_store_t           *st;
    ngx_oauth_store_conf_t       sc;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_oauth_module);

    if (omcf == NULL || !omcf->enabled) {
        return NGX_OK;
    }

    /* jansson wipes what it frees: parsed token responses hold secrets */

    ngx_oauth_json_init();

    sc.path = (const char *) omcf->store_path.data;
    sc.max_size = omcf->store_max_size;
    sc.sync = omcf->store_sync;
    sc.max_readers = omcf->max_readers;

    /*
     * A store that vanishes between reloads is recreated empty: that is
     * every connection gone, so it is said loudly.
     */

    if (ngx_file_info(omcf->store_path.data, &fi) == NGX_FILE_ERROR
        && ngx_errno == NGX_ENOENT)
    {
        /* "nginx -t" changes nothing: the start will create it */

        if (ngx_test_config) {
            return NGX_OK;
        }

        level = ngx_is_init_cycle(cycle->old_cycle) ? NGX_LOG_NOTICE
                                                    : NGX_LOG_ALERT;

        ngx_log_error(level, cycle->log, 0,
                      "oauth: store \"%V\" does not exist, creating it "
                      "empty", &omcf->store_path);
    }

    err[0] = '\0';

    if (ngx_oauth_store_open(&st, &sc, &stale, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "oauth: cannot open store \"%V\": %s",
                      &omcf->store_path, err);
        return NGX_ERROR;
    }

    ngx_oauth_store_close(st);

    if (stale) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "oauth: cleared %d stale reader slots in \"%V\"",
                      stale, &omcf->store_path);
    }

    /* the master runs as root: hand the files to the worker user */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (!ngx_test_config && geteuid() == 0 && ccf
        && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && ccf->user != 0)
    {
        u_char  lock[NGX_MAX_PATH];

        if (chown((char *) omcf->store_path.data, ccf->user, ccf->group)
            == -1)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "oauth: chown(\"%V\") failed", &omcf->store_path);
            return NGX_ERROR;
        }

        ngx_snprintf(lock, sizeof(lock), "%V-lock%Z", &omcf->store_path);

        if (chown((char *) lock, ccf->user, ccf->group) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "oauth: chown(\"%s\") failed", lock);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_init_process(ngx_cycle_t *cycle)
{
    int                          stale;
    char                         err[256];
    ngx_oauth_store_conf_t       sc;
    ngx_file_info_t              fi;
    ngx_http_oauth_main_conf_t  *omcf;

    /*
     * Only workers serve requests and refresh: the cache manager and
     * loader leave with exit(), without exit_process, and would abandon a
     * refresh halfway, its rotated refresh token with it.
     */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_oauth_module);

    if (omcf == NULL || !omcf->enabled) {
        return NGX_OK;
    }

    sc.path = (const char *) omcf->store_path.data;
    sc.max_size = omcf->store_max_size;
    sc.sync = omcf->store_sync;
    sc.max_readers = omcf->max_readers;

    err[0] = '\0';

    /*
     * A worker without its store still serves everything else; the
     * module's handlers answer 503 and say why in the log.
     */

    if (ngx_oauth_store_open(&omcf->store, &sc, &stale, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                      "oauth: cannot open store \"%V\" in worker: %s",
                      &omcf->store_path, err);
        omcf->store = NULL;

    } else {
        if (stale) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "oauth: cleared %d stale reader slots in \"%V\"",
                          stale, &omcf->store_path);
        }

        /* remembered so that a file deleted or replaced can be told */

        if (ngx_file_info(omcf->store_path.data, &fi) != NGX_FILE_ERROR) {
            omcf->store_uniq = ngx_file_uniq(&fi);
        }
    }

    if (ngx_http_oauth_http_init_process(cycle, omcf->http_timeout,
                                         &omcf->trusted_certificate)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_shared_init_process(cycle, omcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_webhook_init_process(cycle, omcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_oauth_housekeeping_init(cycle, omcf);
}


static void
ngx_http_oauth_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_oauth_main_conf_t  *omcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_oauth_module);

    if (omcf == NULL || !omcf->enabled) {
        return;
    }

    ngx_http_oauth_webhook_exit_process(cycle, omcf);
    ngx_http_oauth_http_exit_process(cycle);
    ngx_http_oauth_shared_exit_process(cycle, omcf);

    if (omcf->store) {
        ngx_oauth_store_close(omcf->store);
        omcf->store = NULL;
    }
}


static char *
ngx_http_oauth_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    ssize_t     size;
    ngx_str_t  *value, s;
    ngx_uint_t  i;

    if (omcf->store_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    omcf->store_path = value[1];

    if (omcf->store_path.len == 0) {
        return "has an empty path";
    }

    /* every oauth_ file directive is relative to the conf directory */

    if (ngx_conf_full_name(cf->cycle, &omcf->store_path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oauth_store_dir(cf, &omcf->store_path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.len = value[i].len - 9;
            s.data = value[i].data + 9;

            /* ngx_parse_offset(), unlike ngx_parse_size(), knows "g" */

            size = (ssize_t) ngx_parse_offset(&s);

            /* LMDB needs room for its meta pages and our databases */

            if (size == NGX_ERROR || size < 64 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_size \"%V\" in \"%V\", "
                                   "at least 64k", &s, &cmd->name);
                return NGX_CONF_ERROR;
            }

            omcf->store_max_size = size;
            continue;
        }

        if (ngx_strcmp(value[i].data, "sync=on") == 0) {
            omcf->store_sync = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "sync=off") == 0) {
            omcf->store_sync = 0;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The store's directory must be there: nothing creates it, and saying so
 * here gives the file:line that init_module cannot.
 */

static ngx_int_t
ngx_http_oauth_store_dir(ngx_conf_t *cf, ngx_str_t *path)
{
    u_char           *slash, dir[NGX_MAX_PATH];
    ngx_file_info_t   fi;

    for (slash = path->data + path->len - 1; slash > path->data; slash--) {
        if (*slash == '/') {
            break;
        }
    }

    /* "/store.mdb": the root is always there */

    if (slash == path->data || (size_t) (slash - path->data) >= sizeof(dir))
    {
        return NGX_OK;
    }

    ngx_cpystrn(dir, path->data, slash - path->data + 1);

    if (ngx_file_info(dir, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "oauth: cannot open store \"%V\": directory "
                           "\"%s\"", path, dir);
        return NGX_ERROR;
    }

    if (!ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "oauth: cannot open store \"%V\": \"%s\": Not a "
                           "directory", path, dir);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The keyring is read by the master at configuration time, so the file
 * can be readable by root only; workers inherit the keys in memory.
 */

static char *
ngx_http_oauth_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    char                 err[256];
    ngx_str_t           *value;
    ngx_pool_cleanup_t  *cln;

    if (omcf->keyring) {
        return "is duplicate";
    }

    value = cf->args->elts;

    omcf->key_file = value[1];

    if (ngx_conf_full_name(cf->cycle, &omcf->key_file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_oauth_keyring_t));
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(cln->data, sizeof(ngx_oauth_keyring_t));
    cln->handler = ngx_http_oauth_keyring_cleanup;

    err[0] = '\0';

    if (ngx_oauth_keyring_load(cln->data, (char *) omcf->key_file.data,
                               err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\": %s",
                           &cmd->name, &omcf->key_file, err);
        return NGX_CONF_ERROR;
    }

    omcf->keyring = cln->data;

    return NGX_CONF_OK;
}


static void
ngx_http_oauth_keyring_cleanup(void *data)
{
    ngx_oauth_keyring_wipe(data);
}


static char *
ngx_http_oauth_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    ngx_str_t  *value;

    if (omcf->audit_log) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    /* from the conf directory, as the other oauth_ files (not prefix) */

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    omcf->audit_log = ngx_conf_open_file(cf->cycle, &value[1]);
    if (omcf->audit_log == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_sec_bounds_check(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    time_t                 *t = data;

    if (*t < bounds->low || *t > bounds->high) {
        return "must be between 1s and 365d";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_msec_nonzero(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must not be zero";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_complex_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                       *p = conf;
    ngx_str_t                  *value;
    ngx_http_complex_value_t  **cv;

    cv = (ngx_http_complex_value_t **) (p + cmd->offset);

    if (*cv != NGX_CONF_UNSET_PTR && *cv != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "takes a non-empty value";
    }

    *cv = ngx_http_oauth_compile(cf, &value[1]);

    return (*cv == NULL) ? NGX_CONF_ERROR : NGX_CONF_OK;
}


static ngx_http_complex_value_t *
ngx_http_oauth_compile(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}


static ngx_uint_t
ngx_http_oauth_count_char(ngx_str_t *s, u_char c)
{
    ngx_uint_t  i, n;

    for (n = 0, i = 0; i < s->len; i++) {
        n += (s->data[i] == c);
    }

    return n;
}


static char *
ngx_http_oauth_allowed_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_loc_conf_t *olcf = conf;

    char         buf[NGX_OAUTH_ORIGIN_MAX];
    size_t       len;
    ngx_str_t   *value, *origin;
    ngx_uint_t   i;
    const char  *why;

    if (olcf->allowed_origins != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    olcf->allowed_origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                             sizeof(ngx_str_t));
    if (olcf->allowed_origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        /*
         * Origins are kept normalized (scheme://host[:port], lower case,
         * default port dropped) and compared whole: no room for suffix or
         * userinfo tricks.
         */

        if (ngx_oauth_url_origin(value[i].data, value[i].len, buf, &len,
                                 &why)
            != NGX_OAUTH_OK
            || ngx_http_oauth_count_char(&value[i], '/') != 2
            || ngx_http_oauth_count_char(&value[i], '?')
            || ngx_http_oauth_count_char(&value[i], '#'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid origin \"%V\" in \"%V\": expected "
                               "scheme://host[:port]", &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        origin = ngx_array_push(olcf->allowed_origins);
        if (origin == NULL) {
            return NGX_CONF_ERROR;
        }

        origin->len = len;
        origin->data = ngx_pnalloc(cf->pool, len);
        if (origin->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(origin->data, buf, len);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_start(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_loc_conf_t *olcf = conf;

    char       *rv;
    ngx_str_t  *value;

    rv = ngx_http_oauth_set_handler(cf, ngx_http_oauth_start_handler);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    olcf->start = ngx_http_oauth_compile(cf, &value[1]);
    if (olcf->start == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oauth_check_note(cf, NGX_HTTP_OAUTH_USE_START, olcf->start)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_loc_conf_t *olcf = conf;

    ngx_str_t                   *value, account;
    ngx_http_oauth_main_conf_t  *omcf;

    if (olcf->token != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        olcf->token = NULL;
        return NGX_CONF_OK;
    }

    olcf->token = ngx_http_oauth_compile(cf, &value[1]);
    if (olcf->token == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "account=", 8) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\"",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

        account.len = value[2].len - 8;
        account.data = value[2].data + 8;

        olcf->token_account = ngx_http_oauth_compile(cf, &account);
        if (olcf->token_account == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module);
    omcf->locations = 1;

    if (ngx_http_oauth_check_note(cf, NGX_HTTP_OAUTH_USE_TOKEN, olcf->token)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_circuit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (omcf->circuit_failures != NGX_CONF_UNSET_UINT
        || omcf->circuit_reset != NGX_CONF_UNSET)
    {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "failures=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);

            if (n == NGX_ERROR || n < 1 || n > 1000) {
                goto invalid;
            }

            omcf->circuit_failures = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "reset=", 6) == 0) {
            s.len = value[i].len - 6;
            s.data = value[i].data + 6;

            n = ngx_parse_time(&s, 1);

            if (n == NGX_ERROR || n < 1) {
                goto invalid;
            }

            omcf->circuit_reset = n;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/* oauth_callback, oauth_api and oauth_metrics: the handler in cmd->post */

static char *
ngx_http_oauth_content(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv;
    ngx_uint_t   use;

    rv = ngx_http_oauth_set_handler(cf, (ngx_http_handler_pt) cmd->post);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (cmd->post == ngx_http_oauth_metrics_handler) {
        return NGX_CONF_OK;
    }

    use = (cmd->post == ngx_http_oauth_callback_handler)
          ? NGX_HTTP_OAUTH_USE_CALLBACK : NGX_HTTP_OAUTH_USE_API;

    if (ngx_http_oauth_check_note(cf, use, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A location has one content handler: a second one, ours or another
 * module's set before (proxy_pass ...), "is duplicate" in either order.
 */

static char *
ngx_http_oauth_set_handler(ngx_conf_t *cf, ngx_http_handler_pt handler)
{
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_oauth_main_conf_t  *omcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate";
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module);
    omcf->locations = 1;

    clcf->handler = handler;

    return NGX_CONF_OK;
}
