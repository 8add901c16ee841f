/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_refresh.h"
#include "ngx_http_oauth_circuit.h"
#include "ngx_http_oauth_util.h"
#include "ngx_http_oauth_webhook.h"


/*
 * Counters live in a shared memory zone so that every worker's counts add
 * up in one scrape; gauges of connections are read from the store when
 * scraped.  Prometheus text exposition format 0.0.4.
 */


#define NGX_HTTP_OAUTH_BUCKETS   10


typedef struct {
    ngx_atomic_t                 started;
    ngx_atomic_t                 flows[2];        /* connected, error */
    ngx_atomic_t                 refreshes[NGX_HTTP_OAUTH_REFRESH_ERROR + 1];
    size_t                       name_len;        /* whose they are */
    u_char                       name[NGX_OAUTH_PROVIDER_MAX];
} ngx_http_oauth_counters_t;


/*
 * One block per configuration, in the zone; a reload makes a new block
 * (the providers may have changed), carries the counts over by provider
 * name and frees the block of the reload before, whose workers are gone
 * by then.  Old workers still count in the block they were started with.
 */

typedef struct ngx_http_oauth_shm_s  ngx_http_oauth_shm_t;

struct ngx_http_oauth_shm_s {
    ngx_http_oauth_shm_t        *retired;         /* the block before */
    ngx_uint_t                   nproviders;
    ngx_atomic_t                 injections[NGX_HTTP_OAUTH_INJECT_LAST];
    ngx_atomic_t                 buckets[NGX_HTTP_OAUTH_BUCKETS];
    ngx_atomic_t                 sum_ms;
    ngx_atomic_t                 count;
    ngx_http_oauth_counters_t    providers[1];
};


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_uint_t                  *counts;         /* provider x status */
} ngx_http_oauth_gauge_t;


static ngx_int_t ngx_http_oauth_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_oauth_metrics_carry(ngx_http_oauth_counters_t *c,
    ngx_http_oauth_counters_t *old);
static u_char *ngx_http_oauth_metrics_head(u_char *p, const char *name,
    const char *help, const char *type);
static u_char *ngx_http_oauth_metrics_counters(u_char *p,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_shm_t *shm);
static u_char *ngx_http_oauth_metrics_gauges(u_char *p,
    ngx_http_oauth_main_conf_t *omcf, ngx_uint_t *counts);
static u_char *ngx_http_oauth_metrics_store(ngx_http_request_t *r,
    ngx_http_oauth_main_conf_t *omcf, u_char *p);
static int ngx_http_oauth_metrics_count(const ngx_oauth_conn_t *conn,
    void *data);


static ngx_http_oauth_shm_t  *ngx_http_oauth_shm;

static ngx_msec_t  ngx_http_oauth_bounds[NGX_HTTP_OAUTH_BUCKETS - 1] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};

static const char  *ngx_http_oauth_le[NGX_HTTP_OAUTH_BUCKETS] = {
    "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"
};

static const char  *ngx_http_oauth_inject_names[] = {
    "ok", "unauthenticated", "not_connected", "account_required",
    "reauthorization_required", "provider_unavailable", "error"
};

static const char  *ngx_http_oauth_refresh_names[] = {
    "ok", "refused", "unavailable", "gone", "error"
};


ngx_int_t
ngx_http_oauth_metrics_zone(ngx_conf_t *cf, ngx_http_oauth_main_conf_t *omcf)
{
    size_t           size;
    ngx_str_t        name = ngx_string("oauth_metrics");
    ngx_shm_zone_t  *zone;

    /* room for this configuration's block and the two before it */

    size = sizeof(ngx_http_oauth_shm_t)
           + omcf->providers.nelts * sizeof(ngx_http_oauth_counters_t);

    size = 3 * ngx_align(size, ngx_pagesize) + 8 * ngx_pagesize;

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_oauth_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_oauth_metrics_init_zone;
    zone->data = omcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                       size;
    ngx_uint_t                   i, j;
    ngx_slab_pool_t             *shpool;
    ngx_http_oauth_shm_t        *old, *shm;
    ngx_http_oauth_counters_t   *c;
    ngx_http_oauth_provider_t   *p;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* data: the zone is kept over a reload; shpool->data, its block */

    old = data ? shpool->data : NULL;

    size = sizeof(ngx_http_oauth_shm_t)
           + omcf->providers.nelts * sizeof(ngx_http_oauth_counters_t);

    ngx_shmtx_lock(&shpool->mutex);

    if (old && old->retired) {
        ngx_slab_free_locked(shpool, old->retired);
        old->retired = NULL;
    }

    shm = ngx_slab_calloc_locked(shpool, size);

    ngx_shmtx_unlock(&shpool->mutex);

    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm->nproviders = omcf->providers.nelts;

    p = omcf->providers.elts;

    for (i = 0; i < shm->nproviders; i++) {
        c = &shm->providers[i];
        c->name_len = ngx_min(p[i].name.len, NGX_OAUTH_PROVIDER_MAX);
        ngx_memcpy(c->name, p[i].name.data, c->name_len);
    }

    /*
     * A reload keeps counting: a provider's counters follow its name, not
     * its place in the configuration, and a removed provider's go.
     */

    if (old) {
        shm->retired = old;

        for (j = 0; j < NGX_HTTP_OAUTH_INJECT_LAST; j++) {
            shm->injections[j] = old->injections[j];
        }

        for (j = 0; j < NGX_HTTP_OAUTH_BUCKETS; j++) {
            shm->buckets[j] = old->buckets[j];
        }

        shm->sum_ms = old->sum_ms;
        shm->count = old->count;

        for (i = 0; i < shm->nproviders; i++) {
            c = &shm->providers[i];

            for (j = 0; j < old->nproviders; j++) {
                if (old->providers[j].name_len == c->name_len
                    && ngx_memcmp(old->providers[j].name, c->name,
                                  c->name_len)
                       == 0)
                {
                    ngx_http_oauth_metrics_carry(c, &old->providers[j]);
                    break;
                }
            }
        }
    }

    ngx_http_oauth_shm = shm;
    shpool->data = shm;

    return NGX_OK;
}


static void
ngx_http_oauth_metrics_carry(ngx_http_oauth_counters_t *c,
    ngx_http_oauth_counters_t *old)
{
    ngx_uint_t  i;

    c->started = old->started;

    for (i = 0; i < 2; i++) {
        c->flows[i] = old->flows[i];
    }

    for (i = 0; i <= NGX_HTTP_OAUTH_REFRESH_ERROR; i++) {
        c->refreshes[i] = old->refreshes[i];
    }
}


static ngx_http_oauth_counters_t *
ngx_http_oauth_counters(ngx_http_oauth_provider_t *p)
{
    if (ngx_http_oauth_shm == NULL || p == NULL
        || p->index >= ngx_http_oauth_shm->nproviders)
    {
        return NULL;
    }

    return &ngx_http_oauth_shm->providers[p->index];
}


void
ngx_http_oauth_metrics_flow(ngx_http_oauth_provider_t *p, ngx_int_t event)
{
    ngx_http_oauth_counters_t  *c;

    c = ngx_http_oauth_counters(p);
    if (c == NULL) {
        return;
    }

    if (event < 0) {
        (void) ngx_atomic_fetch_add(&c->started, 1);

    } else {
        (void) ngx_atomic_fetch_add(&c->flows[event ? 1 : 0], 1);
    }
}


void
ngx_http_oauth_metrics_refresh(ngx_http_oauth_provider_t *p,
    ngx_uint_t result)
{
    ngx_http_oauth_counters_t  *c;

    c = ngx_http_oauth_counters(p);

    if (c && result <= NGX_HTTP_OAUTH_REFRESH_ERROR) {
        (void) ngx_atomic_fetch_add(&c->refreshes[result], 1);
    }
}


void
ngx_http_oauth_metrics_inject(ngx_uint_t result)
{
    if (ngx_http_oauth_shm && result < NGX_HTTP_OAUTH_INJECT_LAST) {
        (void) ngx_atomic_fetch_add(&ngx_http_oauth_shm->injections[result],
                                    1);
    }
}


void
ngx_http_oauth_metrics_fetch(ngx_msec_t elapsed)
{
    ngx_uint_t  i;

    if (ngx_http_oauth_shm == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_OAUTH_BUCKETS - 1; i++) {
        if (elapsed <= ngx_http_oauth_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_oauth_shm->buckets[i], 1);
    (void) ngx_atomic_fetch_add(&ngx_http_oauth_shm->sum_ms, elapsed);
    (void) ngx_atomic_fetch_add(&ngx_http_oauth_shm->count, 1);
}


ngx_int_t
ngx_http_oauth_metrics_handler(ngx_http_request_t *r)
{
    u_char                      *p, *body;
    size_t                       size;
    ngx_str_t                    type = ngx_string("text/plain; "
                                                   "version=0.0.4");
    ngx_uint_t                   n;
    ngx_http_oauth_shm_t        *shm;
    ngx_http_oauth_gauge_t       g;
    ngx_http_oauth_main_conf_t  *omcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);
    shm = ngx_http_oauth_shm;

    if (shm == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    n = omcf->providers.nelts;

    g.omcf = omcf;
    g.counts = ngx_pcalloc(r->pool, sizeof(ngx_uint_t) * (n + 1) * 4);
    if (g.counts == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (omcf->store
        && ngx_oauth_store_conn_each(omcf->store, NULL, NULL,
                                     ngx_http_oauth_metrics_count, &g)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: metrics cannot read the store");
    }

    /* every line is short; a provider name is at most 64 bytes */

    size = 4096 + 1024 + (n + 1) * 24 * (NGX_OAUTH_PROVIDER_MAX + 128)
           + NGX_HTTP_OAUTH_BUCKETS * 128
           + NGX_HTTP_OAUTH_WEBHOOK_METRICS_LEN;

    body = ngx_pnalloc(r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_oauth_metrics_counters(body, omcf, shm);
    p = ngx_http_oauth_metrics_gauges(p, omcf, g.counts);
    p = ngx_http_oauth_webhook_metrics(omcf, p);
    p = ngx_http_oauth_metrics_store(r, omcf, p);

    return ngx_http_oauth_send(r, NGX_HTTP_OK, &type, body, p - body);
}


static u_char *
ngx_http_oauth_metrics_head(u_char *p, const char *name, const char *help,
    const char *type)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                       name, help, name, type);
}


/* the counters in shared memory: flows, refreshes, injections, calls */

static u_char *
ngx_http_oauth_metrics_counters(u_char *p, ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_shm_t *shm)
{
    ngx_uint_t                  i, j, n, cum;
    ngx_http_oauth_provider_t  *pr;
    ngx_http_oauth_counters_t  *c;

    n = ngx_min(omcf->providers.nelts, shm->nproviders);
    pr = omcf->providers.elts;

    p = ngx_http_oauth_metrics_head(p, "oauth_flows_started_total",
                                    "Authorization flows started.",
                                    "counter");

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "oauth_flows_started_total{provider=\"%V\"} "
                        "%uA\n", &pr[i].name, shm->providers[i].started);
    }

    p = ngx_http_oauth_metrics_head(p, "oauth_flows_completed_total",
                                    "Authorization flows completed, by "
                                    "result.", "counter");

    for (i = 0; i < n; i++) {
        c = &shm->providers[i];
        p = ngx_sprintf(p, "oauth_flows_completed_total{provider=\"%V\","
                        "result=\"connected\"} %uA\n"
                        "oauth_flows_completed_total{provider=\"%V\","
                        "result=\"error\"} %uA\n",
                        &pr[i].name, c->flows[0], &pr[i].name, c->flows[1]);
    }

    p = ngx_http_oauth_metrics_head(p, "oauth_refreshes_total",
                                    "Token refreshes, by result.",
                                    "counter");

    for (i = 0; i < n; i++) {
        for (j = 0; j <= NGX_HTTP_OAUTH_REFRESH_ERROR; j++) {
            p = ngx_sprintf(p, "oauth_refreshes_total{provider=\"%V\","
                            "result=\"%s\"} %uA\n", &pr[i].name,
                            ngx_http_oauth_refresh_names[j],
                            shm->providers[i].refreshes[j]);
        }
    }

    p = ngx_http_oauth_metrics_head(p, "oauth_token_injections_total",
                                    "Requests through oauth_token, by "
                                    "result.", "counter");

    for (j = 0; j < NGX_HTTP_OAUTH_INJECT_LAST; j++) {
        p = ngx_sprintf(p, "oauth_token_injections_total{result=\"%s\"} "
                        "%uA\n", ngx_http_oauth_inject_names[j],
                        shm->injections[j]);
    }

    p = ngx_http_oauth_metrics_head(p,
                                    "oauth_outbound_request_duration_seconds",
                                    "Calls to token, userinfo and "
                                    "revocation endpoints.", "histogram");

    cum = 0;

    for (j = 0; j < NGX_HTTP_OAUTH_BUCKETS; j++) {
        cum += shm->buckets[j];
        p = ngx_sprintf(p, "oauth_outbound_request_duration_seconds_bucket"
                        "{le=\"%s\"} %ui\n", ngx_http_oauth_le[j], cum);
    }

    return ngx_sprintf(p, "oauth_outbound_request_duration_seconds_sum "
                       "%uA.%03uA\n"
                       "oauth_outbound_request_duration_seconds_count %uA\n",
                       shm->sum_ms / 1000, shm->sum_ms % 1000, shm->count);
}


/* what is now: stored connections by status, circuits */

static u_char *
ngx_http_oauth_metrics_gauges(u_char *p, ngx_http_oauth_main_conf_t *omcf,
    ngx_uint_t *counts)
{
    ngx_uint_t                  i, j, n;
    ngx_http_oauth_provider_t  *pr;

    n = omcf->providers.nelts;
    pr = omcf->providers.elts;

    p = ngx_http_oauth_metrics_head(p, "oauth_connections",
                                    "Stored connections, by provider and "
                                    "status.", "gauge");

    for (i = 0; i < n; i++) {
        for (j = 0; j < 4; j++) {
            p = ngx_sprintf(p, "oauth_connections{provider=\"%V\","
                            "status=\"%s\"} %ui\n", &pr[i].name,
                            ngx_oauth_status_name(j), counts[i * 4 + j]);
        }
    }

    p = ngx_http_oauth_metrics_head(p, "oauth_circuit_open",
                                    "Whether the provider's circuit is "
                                    "open (1) or half open (0.5).", "gauge");

    for (i = 0; i < n; i++) {
        j = ngx_http_oauth_circuit_state(omcf, &pr[i].name);

        p = ngx_sprintf(p, "oauth_circuit_open{provider=\"%V\"} %s\n",
                        &pr[i].name,
                        j == NGX_HTTP_OAUTH_CIRCUIT_OPEN ? "1"
                        : j == NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN ? "0.5"
                        : "0");
    }

    return p;
}


/*
 * How full the store is: once used + reserve reaches size, new flows
 * and connections get 503 store_full (refreshes, deletes and purges go
 * on).  Alert on oauth_store_free_bytes.
 */

static u_char *
ngx_http_oauth_metrics_store(ngx_http_request_t *r,
    ngx_http_oauth_main_conf_t *omcf, u_char *p)
{
    ngx_oauth_store_usage_t  u;

    if (omcf->store == NULL
        || ngx_oauth_store_usage(omcf->store, &u) != NGX_OAUTH_OK)
    {
        return p;
    }

    return ngx_sprintf(p, "# HELP oauth_store_size_bytes The store's map "
                       "size (oauth_store max_size).\n"
                       "# TYPE oauth_store_size_bytes gauge\n"
                       "oauth_store_size_bytes %uz\n"
                       "# HELP oauth_store_used_bytes Pages of the store "
                       "in use.\n"
                       "# TYPE oauth_store_used_bytes gauge\n"
                       "oauth_store_used_bytes %uz\n"
                       "# HELP oauth_store_free_bytes Room left for new "
                       "flows and connections, the reserve excluded.\n"
                       "# TYPE oauth_store_free_bytes gauge\n"
                       "oauth_store_free_bytes %uz\n"
                       "# HELP oauth_store_reserve_bytes Kept for "
                       "refreshes, deletes and purges.\n"
                       "# TYPE oauth_store_reserve_bytes gauge\n"
                       "oauth_store_reserve_bytes %uz\n",
                       u.size, u.used,
                       u.used + u.reserve < u.size
                       ? u.size - u.used - u.reserve : (size_t) 0,
                       u.reserve);
}


static int
ngx_http_oauth_metrics_count(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_http_oauth_gauge_t *g = data;

    unsigned                    status;
    ngx_str_t                   name;
    ngx_http_oauth_provider_t  *p;

    name.len = conn->provider.len;
    name.data = conn->provider.data;

    p = ngx_http_oauth_provider_find(g->omcf, &name);

    /* the status the API reports */

    status = ngx_oauth_conn_status(conn, ngx_time());

    if (p && status < 4) {
        g->counts[p->index * 4 + status]++;
    }

    return 0;
}
