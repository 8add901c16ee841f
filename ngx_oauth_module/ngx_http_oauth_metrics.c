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
#define NGX_HTTP_OAUTH_FAILURES  23      /* ngx_http_oauth_failure_names */


typedef struct {
    ngx_atomic_t                 buckets[NGX_HTTP_OAUTH_BUCKETS];
    ngx_atomic_t                 sum_ms;
    ngx_atomic_t                 count;
} ngx_http_oauth_histogram_t;


typedef struct {
    ngx_atomic_t                 started;
    ngx_atomic_t                 flows[2];        /* connected, error */
    ngx_atomic_t                 failures[NGX_HTTP_OAUTH_FAILURES];
    ngx_atomic_t                 refreshes[NGX_HTTP_OAUTH_REFRESH_ERROR + 1];
    ngx_atomic_t                 injections[NGX_HTTP_OAUTH_INJECT_LAST];
    ngx_http_oauth_histogram_t   calls[NGX_HTTP_OAUTH_CALL_LAST];
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
    /* of requests whose provider is not known (an unknown name) */
    ngx_atomic_t                 injections[NGX_HTTP_OAUTH_INJECT_LAST];
    /* of callbacks whose flow, and so provider, is not known */
    ngx_atomic_t                 failures[NGX_HTTP_OAUTH_FAILURES];
    ngx_http_oauth_histogram_t   calls;           /* every call */
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
static void ngx_http_oauth_metrics_observe(ngx_http_oauth_histogram_t *h,
    ngx_uint_t bucket, ngx_msec_t elapsed);
static u_char *ngx_http_oauth_metrics_failures(u_char *p,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_shm_t *shm);
static u_char *ngx_http_oauth_metrics_injections(u_char *p,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_shm_t *shm);
static u_char *ngx_http_oauth_metrics_calls(u_char *p,
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_shm_t *shm);
static u_char *ngx_http_oauth_metrics_histogram(u_char *p,
    ngx_http_oauth_histogram_t *h, const char *name, ngx_str_t *provider,
    const char *call);
static u_char *ngx_http_oauth_metrics_circuits(u_char *p,
    ngx_http_oauth_main_conf_t *omcf, ngx_pool_t *pool);
static ngx_uint_t ngx_http_oauth_metrics_series(
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_shm_t *shm);
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

/* the callback's oauth_error codes; "other" last, for a code not here */

static const char  *ngx_http_oauth_failure_names[NGX_HTTP_OAUTH_FAILURES] = {
    "invalid_state", "expired_state", "browser_mismatch", "owner_mismatch",
    "issuer_mismatch", "wrong_callback", "access_denied", "provider_error",
    "invalid_request", "invalid_signature", "token_request_failed",
    "invalid_token_response", "unsupported_token_type", "token_error",
    "userinfo_failed", "lookup_failed", "missing_account",
    "invalid_account", "unknown_provider", "store_full", "store_error",
    "store_unavailable", "other"
};

static const char  *ngx_http_oauth_call_names[] = {
    "token", "refresh", "exchange", "userinfo", "revoke", "lookup"
};

static const char  *ngx_http_oauth_circuit_names[] = {
    "closed", "open", "half_open"
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

        for (j = 0; j < NGX_HTTP_OAUTH_FAILURES; j++) {
            shm->failures[j] = old->failures[j];
        }

        shm->calls = old->calls;

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

    for (i = 0; i < NGX_HTTP_OAUTH_FAILURES; i++) {
        c->failures[i] = old->failures[i];
    }

    for (i = 0; i <= NGX_HTTP_OAUTH_REFRESH_ERROR; i++) {
        c->refreshes[i] = old->refreshes[i];
    }

    for (i = 0; i < NGX_HTTP_OAUTH_INJECT_LAST; i++) {
        c->injections[i] = old->injections[i];
    }

    for (i = 0; i < NGX_HTTP_OAUTH_CALL_LAST; i++) {
        c->calls[i] = old->calls[i];
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


/*
 * A callback that did not connect, by its oauth_error code; without a
 * provider (an unknown state, a removed provider) under provider="".
 */

void
ngx_http_oauth_metrics_connect_failure(ngx_http_oauth_provider_t *p,
    const char *reason)
{
    size_t                      len;
    ngx_uint_t                  i;
    ngx_http_oauth_counters_t  *c;

    if (ngx_http_oauth_shm == NULL) {
        return;
    }

    len = ngx_strlen(reason);

    for (i = 0; i < NGX_HTTP_OAUTH_FAILURES - 1; i++) {
        if (ngx_strlen(ngx_http_oauth_failure_names[i]) == len
            && ngx_strncmp(ngx_http_oauth_failure_names[i], reason, len) == 0)
        {
            break;
        }
    }

    c = ngx_http_oauth_counters(p);

    (void) ngx_atomic_fetch_add(c ? &c->failures[i]
                                  : &ngx_http_oauth_shm->failures[i],
                                1);
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


/* on every proxied request: one atomic increment, nothing else */

void
ngx_http_oauth_metrics_inject(ngx_http_oauth_provider_t *p,
    ngx_uint_t result)
{
    ngx_http_oauth_counters_t  *c;

    if (ngx_http_oauth_shm == NULL || result >= NGX_HTTP_OAUTH_INJECT_LAST) {
        return;
    }

    c = ngx_http_oauth_counters(p);

    (void) ngx_atomic_fetch_add(c ? &c->injections[result]
                                  : &ngx_http_oauth_shm->injections[result],
                                1);
}


void
ngx_http_oauth_metrics_fetch(ngx_http_oauth_provider_t *p, ngx_uint_t call,
    ngx_msec_t elapsed)
{
    ngx_uint_t                  i;
    ngx_http_oauth_counters_t  *c;

    if (ngx_http_oauth_shm == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_OAUTH_BUCKETS - 1; i++) {
        if (elapsed <= ngx_http_oauth_bounds[i]) {
            break;
        }
    }

    ngx_http_oauth_metrics_observe(&ngx_http_oauth_shm->calls, i, elapsed);

    c = ngx_http_oauth_counters(p);

    if (c && call < NGX_HTTP_OAUTH_CALL_LAST) {
        ngx_http_oauth_metrics_observe(&c->calls[call], i, elapsed);
    }
}


static void
ngx_http_oauth_metrics_observe(ngx_http_oauth_histogram_t *h,
    ngx_uint_t bucket, ngx_msec_t elapsed)
{
    (void) ngx_atomic_fetch_add(&h->buckets[bucket], 1);
    (void) ngx_atomic_fetch_add(&h->sum_ms, elapsed);
    (void) ngx_atomic_fetch_add(&h->count, 1);
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

    /*
     * every line is short; a provider name is at most 64 bytes; a
     * histogram series (12 lines) only for a provider and endpoint that
     * had a call, and one for all calls
     */

    size = 4096 + 1024
           + (n + 1) * (40 + NGX_HTTP_OAUTH_FAILURES)
             * (NGX_OAUTH_PROVIDER_MAX + 128)
           + (ngx_http_oauth_metrics_series(omcf, shm) + 1)
             * (NGX_HTTP_OAUTH_BUCKETS + 2) * (NGX_OAUTH_PROVIDER_MAX + 128)
           + NGX_HTTP_OAUTH_WEBHOOK_METRICS_LEN;

    body = ngx_pnalloc(r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_oauth_metrics_counters(body, omcf, shm);
    p = ngx_http_oauth_metrics_gauges(p, omcf, g.counts);
    p = ngx_http_oauth_metrics_circuits(p, omcf, r->pool);
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
    ngx_uint_t                  i, j, n;
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

    p = ngx_http_oauth_metrics_failures(p, omcf, shm);

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

    p = ngx_http_oauth_metrics_injections(p, omcf, shm);

    return ngx_http_oauth_metrics_calls(p, omcf, shm);
}


/*
 * Callbacks that did not connect, by provider and reason: a series
 * appears with its first failure (23 reasons a provider would be many
 * lines of zeros); those without a known flow under provider="".
 */

static u_char *
ngx_http_oauth_metrics_failures(u_char *p, ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_shm_t *shm)
{
    ngx_str_t                   none = ngx_null_string;
    ngx_uint_t                  i, j, n;
    ngx_atomic_uint_t           v;
    ngx_http_oauth_provider_t  *pr;

    n = ngx_min(omcf->providers.nelts, shm->nproviders);
    pr = omcf->providers.elts;

    p = ngx_http_oauth_metrics_head(p, "oauth_connect_failures_total",
                                    "Callbacks that did not connect, by "
                                    "provider and reason.", "counter");

    for (i = 0; i <= n; i++) {
        for (j = 0; j < NGX_HTTP_OAUTH_FAILURES; j++) {
            v = (i < n) ? shm->providers[i].failures[j] : shm->failures[j];

            if (v) {
                p = ngx_sprintf(p, "oauth_connect_failures_total{provider="
                                "\"%V\",reason=\"%s\"} %uA\n",
                                i < n ? &pr[i].name : &none,
                                ngx_http_oauth_failure_names[j], v);
            }
        }
    }

    return p;
}


/*
 * Injections by provider and result; those of a name that no provider
 * has (oauth_token $variable) under provider="", once there are any.
 */

static u_char *
ngx_http_oauth_metrics_injections(u_char *p, ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_shm_t *shm)
{
    ngx_str_t                   none = ngx_null_string;
    ngx_uint_t                  i, j, n, any;
    ngx_http_oauth_provider_t  *pr;

    n = ngx_min(omcf->providers.nelts, shm->nproviders);
    pr = omcf->providers.elts;

    p = ngx_http_oauth_metrics_head(p, "oauth_token_injections_total",
                                    "Requests through oauth_token, by "
                                    "provider and result.", "counter");

    for (i = 0; i < n; i++) {
        for (j = 0; j < NGX_HTTP_OAUTH_INJECT_LAST; j++) {
            p = ngx_sprintf(p, "oauth_token_injections_total{provider=\"%V\","
                            "result=\"%s\"} %uA\n", &pr[i].name,
                            ngx_http_oauth_inject_names[j],
                            shm->providers[i].injections[j]);
        }
    }

    any = 0;

    for (j = 0; j < NGX_HTTP_OAUTH_INJECT_LAST; j++) {
        any += shm->injections[j];
    }

    for (j = 0; any && j < NGX_HTTP_OAUTH_INJECT_LAST; j++) {
        p = ngx_sprintf(p, "oauth_token_injections_total{provider=\"%V\","
                        "result=\"%s\"} %uA\n", &none,
                        ngx_http_oauth_inject_names[j], shm->injections[j]);
    }

    return p;
}


/*
 * Outbound calls: by provider and endpoint, a series once a call was
 * made; and all of them together, the histogram of earlier versions.
 */

static u_char *
ngx_http_oauth_metrics_calls(u_char *p, ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_shm_t *shm)
{
    ngx_uint_t                  i, j, n;
    ngx_http_oauth_provider_t  *pr;

    n = ngx_min(omcf->providers.nelts, shm->nproviders);
    pr = omcf->providers.elts;

    p = ngx_http_oauth_metrics_head(p, "oauth_outbound_duration_seconds",
                                    "Calls to providers, by provider and "
                                    "endpoint.", "histogram");

    for (i = 0; i < n; i++) {
        for (j = 0; j < NGX_HTTP_OAUTH_CALL_LAST; j++) {
            if (shm->providers[i].calls[j].count) {
                p = ngx_http_oauth_metrics_histogram(p,
                                    &shm->providers[i].calls[j],
                                    "oauth_outbound_duration_seconds",
                                    &pr[i].name, ngx_http_oauth_call_names[j]);
            }
        }
    }

    p = ngx_http_oauth_metrics_head(p,
                                    "oauth_outbound_request_duration_seconds",
                                    "Calls to token, userinfo and "
                                    "revocation endpoints.", "histogram");

    return ngx_http_oauth_metrics_histogram(p, &shm->calls,
                                    "oauth_outbound_request_duration_seconds",
                                    NULL, NULL);
}


/* one histogram series; without provider, one without labels */

static u_char *
ngx_http_oauth_metrics_histogram(u_char *p, ngx_http_oauth_histogram_t *h,
    const char *name, ngx_str_t *provider, const char *call)
{
    u_char      labels[NGX_OAUTH_PROVIDER_MAX + 64], *end;
    ngx_uint_t  j, cum;

    end = labels;

    if (provider) {
        end = ngx_snprintf(labels, sizeof(labels),
                           "provider=\"%V\",endpoint=\"%s\",",
                           provider, call);
    }

    cum = 0;

    for (j = 0; j < NGX_HTTP_OAUTH_BUCKETS; j++) {
        cum += h->buckets[j];
        p = ngx_sprintf(p, "%s_bucket{%*sle=\"%s\"} %ui\n", name,
                        (size_t) (end - labels), labels,
                        ngx_http_oauth_le[j], cum);
    }

    if (provider) {
        end[-1] = '}';

        return ngx_sprintf(p, "%s_sum{%*s %uA.%03uA\n%s_count{%*s %uA\n",
                           name, (size_t) (end - labels), labels,
                           h->sum_ms / 1000, h->sum_ms % 1000,
                           name, (size_t) (end - labels), labels, h->count);
    }

    return ngx_sprintf(p, "%s_sum %uA.%03uA\n%s_count %uA\n", name,
                       h->sum_ms / 1000, h->sum_ms % 1000, name, h->count);
}


/* the histogram series the scrape will show, to size its buffer */

static ngx_uint_t
ngx_http_oauth_metrics_series(ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_shm_t *shm)
{
    ngx_uint_t  i, j, n, series;

    n = ngx_min(omcf->providers.nelts, shm->nproviders);
    series = 0;

    for (i = 0; i < n; i++) {
        for (j = 0; j < NGX_HTTP_OAUTH_CALL_LAST; j++) {
            series += (shm->providers[i].calls[j].count != 0);
        }
    }

    return series;
}


/* what is now: stored connections by status */

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

    return p;
}


/*
 * The circuit of each provider: its state as a label, 1 on the current
 * one and 0 on the others; and oauth_circuit_open of earlier versions.
 */

static u_char *
ngx_http_oauth_metrics_circuits(u_char *p, ngx_http_oauth_main_conf_t *omcf,
    ngx_pool_t *pool)
{
    ngx_uint_t                  i, j, n, *state;
    ngx_http_oauth_provider_t  *pr;

    n = omcf->providers.nelts;
    pr = omcf->providers.elts;

    /* read once: both families show the same moment */

    state = ngx_palloc(pool, sizeof(ngx_uint_t) * (n + 1));
    if (state == NULL) {
        return p;
    }

    for (i = 0; i < n; i++) {
        state[i] = ngx_http_oauth_circuit_state(omcf, &pr[i].name);

        if (state[i] > NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN) {
            state[i] = NGX_HTTP_OAUTH_CIRCUIT_CLOSED;
        }
    }

    p = ngx_http_oauth_metrics_head(p, "oauth_circuit_state",
                                    "The provider's circuit breaker: 1 on "
                                    "its current state.", "gauge");

    for (i = 0; i < n; i++) {
        for (j = 0; j <= NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN; j++) {
            p = ngx_sprintf(p, "oauth_circuit_state{provider=\"%V\","
                            "state=\"%s\"} %s\n", &pr[i].name,
                            ngx_http_oauth_circuit_names[j],
                            state[i] == j ? "1" : "0");
        }
    }

    p = ngx_http_oauth_metrics_head(p, "oauth_circuit_open",
                                    "Whether the provider's circuit is "
                                    "open (1) or half open (0.5); see "
                                    "oauth_circuit_state.", "gauge");

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "oauth_circuit_open{provider=\"%V\"} %s\n",
                        &pr[i].name,
                        state[i] == NGX_HTTP_OAUTH_CIRCUIT_OPEN ? "1"
                        : state[i] == NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN ? "0.5"
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
