/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_http.h"
#include "ngx_http_oauth_housekeeping.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_json.h"


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
static char *ngx_http_oauth_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_audit_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_http_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_uint_t ngx_http_oauth_count(ngx_str_t *s, u_char c);
static char *ngx_http_oauth_allowed_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_start(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oauth_callback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
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


static ngx_conf_num_bounds_t  ngx_http_oauth_sec_bounds = {
    ngx_conf_check_num_bounds, 1, 365 * 86400
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
      ngx_http_oauth_http_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, catalog_file),
      ngx_conf_set_str_slot },

    { ngx_string("oauth_state_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_http_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, state_ttl),
      ngx_conf_set_sec_slot },

    { ngx_string("oauth_refresh_ahead"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_http_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, refresh_ahead),
      ngx_conf_set_sec_slot },

    { ngx_string("oauth_background_refresh"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_http_oauth_http_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, background_refresh),
      ngx_conf_set_flag_slot },

    { ngx_string("oauth_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_audit_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("oauth_http_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_http_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, http_timeout),
      ngx_conf_set_msec_slot },

    { ngx_string("oauth_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oauth_http_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oauth_main_conf_t, trusted_certificate),
      ngx_conf_set_str_slot },

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
      ngx_http_oauth_callback,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

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


/*
 * Responses made by the module itself: never cached, never framed, and
 * never carrying anything but what the caller passed in.
 */

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


ngx_int_t
ngx_http_oauth_add_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(name);
    h->key.data = (u_char *) name;
    h->value.len = ngx_strlen(value);
    h->value.data = (u_char *) value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_oauth_token_add_variables(cf);
}


static ngx_int_t
ngx_http_oauth_postconfiguration(ngx_conf_t *cf)
{
    return ngx_http_oauth_token_init(cf);
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

    ngx_conf_init_size_value(omcf->store_max_size, 1024 * 1024 * 1024);
    ngx_conf_init_value(omcf->store_sync, 1);
    ngx_conf_init_value(omcf->state_ttl, 600);
    ngx_conf_init_value(omcf->refresh_ahead, 300);
    ngx_conf_init_value(omcf->background_refresh, 1);
    ngx_conf_init_msec_value(omcf->http_timeout, 10000);
    ngx_conf_init_uint_value(omcf->circuit_failures, 5);
    ngx_conf_init_value(omcf->circuit_reset, 30);

    if (omcf->providers.nelts) {
        omcf->enabled = 1;
    }

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

    /*
     * set by ngx_pcalloc():
     *
     *     olcf->start = NULL;
     *     olcf->token = NULL;
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

    if (geteuid() == 0 && ccf && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
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

    ngx_http_oauth_http_exit_process(cycle);

    if (omcf->store) {
        ngx_oauth_store_close(omcf->store);
        omcf->store = NULL;
    }
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
    omcf->enabled = 1;

    if (omcf->store_path.len == 0) {
        return "has an empty path";
    }

    if (ngx_conf_full_name(cf->cycle, &omcf->store_path, 0) != NGX_OK) {
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
    omcf->enabled = 1;

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

    omcf->enabled = 1;

    omcf->audit_log = ngx_conf_open_file(cf->cycle, &value[1]);
    if (omcf->audit_log == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a built-in slot that also marks the module as used */

static char *
ngx_http_oauth_http_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    char           *rv;
    ngx_command_t   slot;

    /*
     * cmd->post names the built-in setter; the setter itself must see no
     * post handler, so it gets a copy of the command without one.
     */

    slot = *cmd;
    slot.post = NULL;

    rv = ((char *(*)(ngx_conf_t *, ngx_command_t *, void *)) cmd->post)(
             cf, &slot, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    omcf->enabled = 1;

    if (cmd->offset == offsetof(ngx_http_oauth_main_conf_t, state_ttl)
        || cmd->offset
           == offsetof(ngx_http_oauth_main_conf_t, refresh_ahead))
    {
        time_t  *t = (time_t *) ((char *) conf + cmd->offset);

        if (*t < ngx_http_oauth_sec_bounds.low
            || *t > ngx_http_oauth_sec_bounds.high)
        {
            return "must be between 1s and 365d";
        }
    }

    if (cmd->offset == offsetof(ngx_http_oauth_main_conf_t, http_timeout)
        && omcf->http_timeout == 0)
    {
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
ngx_http_oauth_count(ngx_str_t *s, u_char c)
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
            || ngx_http_oauth_count(&value[i], '/') != 2
            || ngx_http_oauth_count(&value[i], '?')
            || ngx_http_oauth_count(&value[i], '#'))
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

    ngx_str_t                   *value;
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_oauth_main_conf_t  *omcf;

    if (olcf->start) {
        return "is duplicate";
    }

    value = cf->args->elts;

    olcf->start = ngx_http_oauth_compile(cf, &value[1]);
    if (olcf->start == NULL) {
        return NGX_CONF_ERROR;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module);
    omcf->enabled = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_oauth_start_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_callback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_oauth_main_conf_t  *omcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate";
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module);
    omcf->enabled = 1;

    clcf->handler = ngx_http_oauth_callback_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_loc_conf_t *olcf = conf;

    ngx_str_t                   *value, account;
    ngx_http_oauth_main_conf_t  *omcf;

    if (olcf->token) {
        return "is duplicate";
    }

    value = cf->args->elts;

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
    omcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_circuit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (omcf->circuit_failures != NGX_CONF_UNSET_UINT) {
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

    if (omcf->circuit_failures == NGX_CONF_UNSET_UINT) {
        omcf->circuit_failures = 5;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/* oauth_api and oauth_metrics: content handlers named in cmd->post */

static char *
ngx_http_oauth_content(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_oauth_main_conf_t  *omcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate";
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oauth_module);
    omcf->enabled = 1;

    clcf->handler = (ngx_http_handler_pt) cmd->post;

    return NGX_CONF_OK;
}
