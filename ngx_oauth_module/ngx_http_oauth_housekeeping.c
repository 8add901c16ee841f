/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_housekeeping.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_refresh.h"


/*
 * The housekeeping timer: each worker looks at the store now and then,
 * purges the flows that expired, says when the store file was replaced
 * under it, and refreshes what is due; the leases make sure only one
 * worker calls the provider for a connection.
 */


/*
 * Due connections are read in batches, and refreshed a few at a time:
 * a process that dies (a crash, kill -9) loses the answers of the calls
 * it has out, and with providers that rotate refresh tokens each lost
 * answer costs a grant.  Spread out, a crash costs at most this many.
 */

#define NGX_HTTP_OAUTH_BG_BATCH       16
#define NGX_HTTP_OAUTH_BG_PARALLEL    2


typedef struct {
    ngx_oauth_str_t              owner;
    ngx_oauth_str_t              provider;
    ngx_oauth_str_t              account;
} ngx_http_oauth_due_t;


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;
    time_t                       now;
    ngx_uint_t                   n;
    ngx_uint_t                   next;     /* the next one to start */
    ngx_http_oauth_due_t         due[NGX_HTTP_OAUTH_BG_BATCH];
} ngx_http_oauth_scan_t;


static void ngx_http_oauth_housekeeping_handler(ngx_event_t *ev);
static void ngx_http_oauth_store_watch(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log);
static void ngx_http_oauth_flow_purge(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log);
static void ngx_http_oauth_background_refresh(
    ngx_http_oauth_main_conf_t *omcf, ngx_log_t *log);
static int ngx_http_oauth_background_scan(const ngx_oauth_conn_t *conn,
    void *data);
static ngx_int_t ngx_http_oauth_background_copy(ngx_pool_t *pool,
    const ngx_oauth_str_t *src, ngx_oauth_str_t *dst);
static void ngx_http_oauth_background_next(void);
static void ngx_http_oauth_background_done(ngx_http_oauth_refresh_t *rf);


static ngx_event_t             ngx_http_oauth_housekeeper;
static ngx_uint_t              ngx_http_oauth_background_running;

/* the batch being worked through, NULL when none */
static ngx_http_oauth_scan_t  *ngx_http_oauth_background_batch;


ngx_int_t
ngx_http_oauth_housekeeping_init(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf)
{
    /* the same timer purges flows, so it runs even without refreshing */

    if (omcf->store == NULL) {
        return NGX_OK;
    }

    ngx_http_oauth_housekeeper.handler = ngx_http_oauth_housekeeping_handler;
    ngx_http_oauth_housekeeper.data = omcf;
    ngx_http_oauth_housekeeper.log = cycle->log;
    ngx_http_oauth_housekeeper.cancelable = 1;

    /* workers start together: spread their first looks */

    ngx_add_timer(&ngx_http_oauth_housekeeper, 500 + (ngx_random() % 1000));

    return NGX_OK;
}


static void
ngx_http_oauth_housekeeping_handler(ngx_event_t *ev)
{
    time_t                       interval;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* look again well within the window, but not busily */

    interval = omcf->background_refresh ? omcf->refresh_ahead / 4
                                        : omcf->state_ttl;
    interval = ngx_max(interval, 1);
    interval = ngx_min(interval, 30);

    ngx_http_oauth_store_watch(omcf, ev->log);
    ngx_http_oauth_flow_purge(omcf, ev->log);
    ngx_http_oauth_shared_flow_purge(omcf, interval);

    if (omcf->background_refresh && omcf->providers.nelts) {
        ngx_http_oauth_background_refresh(omcf, ev->log);
    }

    ngx_add_timer(ev, interval * 1000 + ngx_random() % 500);
}


/*
 * A store file deleted or replaced under running workers is not the one
 * they use: they go on with the old, unlinked one until a reload, and
 * what they write is lost with it.  Said once, loudly.
 */

static void
ngx_http_oauth_store_watch(ngx_http_oauth_main_conf_t *omcf, ngx_log_t *log)
{
    ngx_file_info_t  fi;

    if (omcf->store_gone) {
        return;
    }

    if (ngx_file_info(omcf->store_path.data, &fi) == NGX_FILE_ERROR) {
        if (ngx_errno != NGX_ENOENT) {
            return;
        }

    } else if (ngx_file_uniq(&fi) == omcf->store_uniq) {
        return;
    }

    omcf->store_gone = 1;

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "oauth: store \"%V\" was deleted or replaced while in "
                  "use; this worker keeps the old file until a reload",
                  &omcf->store_path);
}


/*
 * Flows are purged one oauth_state_ttl after they expire: until then a
 * late callback still finds its flow and is sent back to the app with
 * expired_state rather than a bare invalid_state.
 */

static void
ngx_http_oauth_flow_purge(ngx_http_oauth_main_conf_t *omcf, ngx_log_t *log)
{
    size_t  n;

    if (ngx_oauth_store_flow_purge(omcf->store, ngx_time() - omcf->state_ttl,
                                   &n)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: cannot purge expired flows: %s",
                      ngx_oauth_store_error(omcf->store));
    }
}


/* a batch of due connections is read, then refreshed a few at a time */

static void
ngx_http_oauth_background_refresh(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log)
{
    ngx_pool_t             *pool;
    ngx_http_oauth_scan_t  *scan;

    scan = ngx_http_oauth_background_batch;

    if (scan != NULL) {
        if (scan->next < scan->n
            || ngx_http_oauth_background_running)
        {
            return;
        }

        /* the batch is through and nothing of it runs: read the next */

        ngx_http_oauth_background_batch = NULL;
        ngx_destroy_pool(scan->pool);
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return;
    }

    scan = ngx_palloc(pool, sizeof(ngx_http_oauth_scan_t));
    if (scan == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    scan->omcf = omcf;
    scan->pool = pool;
    scan->log = log;
    scan->now = ngx_time();
    scan->n = 0;
    scan->next = 0;

    if (ngx_oauth_store_conn_each(omcf->store, NULL, NULL,
                                  ngx_http_oauth_background_scan, scan)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: background refresher cannot read the store");
    }

    if (scan->n == 0) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_http_oauth_background_batch = scan;

    ngx_http_oauth_background_next();
}


/* starts refreshes of the batch while fewer than the limit run */

static void
ngx_http_oauth_background_next(void)
{
    ngx_str_t                   name;
    ngx_http_oauth_due_t       *due;
    ngx_http_oauth_scan_t      *scan;
    ngx_http_oauth_refresh_t   *rf;
    ngx_http_oauth_provider_t  *p;

    scan = ngx_http_oauth_background_batch;

    while (scan != NULL
           && ngx_http_oauth_background_running < NGX_HTTP_OAUTH_BG_PARALLEL
           && scan->next < scan->n
           && !ngx_exiting && !ngx_terminate && !ngx_quit)
    {
        due = &scan->due[scan->next++];

        name.len = due->provider.len;
        name.data = due->provider.data;

        p = ngx_http_oauth_provider_find(scan->omcf, &name);
        if (p == NULL) {
            continue;
        }

        rf = ngx_http_oauth_refresh_create(scan->omcf, p, &due->owner,
                                           &due->account, scan->log, NULL);
        if (rf == NULL) {
            continue;
        }

        rf->handler = ngx_http_oauth_background_done;
        ngx_http_oauth_background_running++;

        (void) ngx_http_oauth_refresh_start(rf);
    }
}


static int
ngx_http_oauth_background_scan(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_http_oauth_scan_t *scan = data;

    ngx_str_t                   name;
    ngx_http_oauth_due_t       *due;
    ngx_http_oauth_provider_t  *p;

    /*
     * "expired" is a token that could not be refreshed in time because
     * the provider failed: it is retried here too, after its backoff, or
     * an idle connection would stay expired after the provider is back.
     */

    if (conn->kind != NGX_OAUTH_KIND_OAUTH2
        || (conn->status != NGX_OAUTH_STATUS_CONNECTED
            && conn->status != NGX_OAUTH_STATUS_EXPIRED)
        || conn->refresh.len == 0 || conn->retry_at > scan->now)
    {
        return 0;
    }

    name.len = conn->provider.len;
    name.data = conn->provider.data;

    p = ngx_http_oauth_provider_find(scan->omcf, &name);

    if (p == NULL || !p->refresh
        || !ngx_http_oauth_refresh_due(scan->omcf, p,
                                       (ngx_oauth_conn_t *) conn, scan->now))
    {
        return 0;
    }

    /* keep only the key: the refresh reads the record itself */

    due = &scan->due[scan->n];

    if (ngx_http_oauth_background_copy(scan->pool, &conn->owner, &due->owner)
        != NGX_OK
        || ngx_http_oauth_background_copy(scan->pool, &conn->provider,
                                          &due->provider)
           != NGX_OK
        || ngx_http_oauth_background_copy(scan->pool, &conn->account,
                                          &due->account)
           != NGX_OK)
    {
        return 1;
    }

    scan->n++;

    return scan->n == NGX_HTTP_OAUTH_BG_BATCH;
}


static ngx_int_t
ngx_http_oauth_background_copy(ngx_pool_t *pool, const ngx_oauth_str_t *src,
    ngx_oauth_str_t *dst)
{
    dst->data = ngx_pnalloc(pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);
    dst->len = src->len;

    return NGX_OK;
}


static void
ngx_http_oauth_background_done(ngx_http_oauth_refresh_t *rf)
{
    if (ngx_http_oauth_background_running) {
        ngx_http_oauth_background_running--;
    }

    /* refresh_start only arms a timer: safe from inside a finish */

    ngx_http_oauth_background_next();
}
