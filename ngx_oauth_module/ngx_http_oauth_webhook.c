/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_http.h"
#include "ngx_http_oauth_pg.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_util.h"
#include "ngx_http_oauth_webhook.h"
#include "ngx_oauth_url.h"


/*
 * Webhooks: every connection change writes its event into the outbox in
 * the store, in the transaction of the change.  One worker at a time
 * (the holder of a lease in the store) POSTs the events, one at a time,
 * through the non-blocking HTTP client; a 2xx removes an event, anything
 * else retries it with exponential backoff and jitter until it is older
 * than retry=, then it is dropped.  A request never waits for a webhook.
 */

#define NGX_HTTP_OAUTH_WEBHOOK_TICK       1000     /* ms between polls */
#define NGX_HTTP_OAUTH_WEBHOOK_LEASE      10       /* s a lease lasts */
#define NGX_HTTP_OAUTH_WEBHOOK_RELEASE_WAIT  250   /* ms at exit, at most */
#define NGX_HTTP_OAUTH_WEBHOOK_BACKOFF    3600     /* s, longest wait */
#define NGX_HTTP_OAUTH_WEBHOOK_RETRY      86400    /* s, retry= default */
#define NGX_HTTP_OAUTH_WEBHOOK_MAX        10000    /* max_events= default */


typedef struct {
    ngx_atomic_t                 written;
    ngx_atomic_t                 delivered;
    ngx_atomic_t                 retried;
    ngx_atomic_t                 dropped_full;
    ngx_atomic_t                 dropped_expired;
    ngx_atomic_t                 fleet_depth;   /* as the fleet's */
    ngx_atomic_t                 fleet_oldest;  /* holder last saw */
} ngx_http_oauth_webhook_counters_t;


/* the worker's delivery: at most one event in flight */

typedef struct {
    ngx_event_t                  tick;
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_pool_t                  *pool;       /* of the POST in flight */
    ngx_http_oauth_fetch_t      *fetch;
    uint64_t                     holder;
    uint64_t                     seq;
    ngx_str_t                    id;         /* in pool */
    ngx_str_t                    type;       /* in pool */
    time_t                       created;
    uint32_t                     attempts;
    ngx_http_oauth_pg_query_t   *query;      /* fleet: the poll in flight */
    u_char                       fleet_holder[NGX_INT64_LEN + 64];
    unsigned                     leased:1;
} ngx_http_oauth_webhook_worker_t;


static char *ngx_http_oauth_webhook_param(ngx_conf_t *cf,
    ngx_http_oauth_webhook_t *wh, ngx_str_t *v);
static char *ngx_http_oauth_webhook_events(ngx_conf_t *cf,
    ngx_http_oauth_webhook_t *wh, u_char *p, u_char *last);
static ngx_int_t ngx_http_oauth_webhook_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_oauth_webhook_shared_event(ngx_log_t *log,
    ngx_oauth_event_t *ev);
static void ngx_http_oauth_webhook_added(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log, ngx_oauth_event_add_t *add);
static ngx_http_oauth_webhook_counters_t *ngx_http_oauth_webhook_counters(
    ngx_http_oauth_main_conf_t *omcf);
static void ngx_http_oauth_webhook_tick(ngx_event_t *ev);
static void ngx_http_oauth_webhook_schedule(ngx_msec_t delay);
static ngx_int_t ngx_http_oauth_webhook_send(
    ngx_http_oauth_webhook_worker_t *w, ngx_oauth_outbox_rec_t *rec);
static ngx_int_t ngx_http_oauth_webhook_header(ngx_pool_t *pool,
    ngx_array_t *headers, const char *name, u_char *value, size_t len);
static void ngx_http_oauth_webhook_done(ngx_http_oauth_fetch_t *f);
static void ngx_http_oauth_webhook_failed(ngx_http_oauth_webhook_worker_t *w,
    const char *why);
static void ngx_http_oauth_webhook_next(
    ngx_http_oauth_webhook_worker_t *w);
static void ngx_http_oauth_webhook_release(
    ngx_http_oauth_webhook_worker_t *w);
static int ngx_http_oauth_webhook_settle(ngx_http_oauth_webhook_worker_t *w,
    int keep, time_t next_at, uint32_t attempts);
static void ngx_http_oauth_webhook_fleet_tick(
    ngx_http_oauth_webhook_worker_t *w);
static void ngx_http_oauth_webhook_fleet_next(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_webhook_fleet_capped(
    ngx_http_oauth_webhook_worker_t *w, PGresult *res);
static void ngx_http_oauth_webhook_fleet_settled(void *data, PGresult *res,
    const char *err);


static ngx_http_oauth_webhook_worker_t  ngx_http_oauth_webhook_worker;

static u_char  ngx_http_oauth_webhook_lease_owner[] = {
    '\0', 'w', 'e', 'b', 'h', 'o', 'o', 'k'
};

static ngx_oauth_str_t  ngx_http_oauth_webhook_who = {
    sizeof(ngx_http_oauth_webhook_lease_owner),
    ngx_http_oauth_webhook_lease_owner
};

static ngx_oauth_str_t  ngx_http_oauth_webhook_what = {
    sizeof("outbox") - 1, (u_char *) "outbox"
};

static ngx_oauth_str_t  ngx_http_oauth_webhook_which = {
    sizeof("deliver") - 1, (u_char *) "deliver"
};


/*
 * The fleet's outbox (oauth_shared_store): one statement per poll takes
 * or keeps the delivery lease (a row of oauth_leases with an empty owner,
 * which no connection has), drops the oldest events over the cap, and
 * picks the oldest event that is due and has no older one of its
 * connection still waiting (events of a connection go out in order).
 * No row back: another worker of the fleet holds the lease.
 */

static const char  ngx_http_oauth_webhook_fleet_sql[] =
    "WITH l AS (INSERT INTO oauth_leases "
      "(owner, provider, account, holder, lease_until) "
      "VALUES ('', 'webhook', 'outbox', $1::text, "
        "now() + interval '10 s') "
      "ON CONFLICT (owner, provider, account) DO UPDATE "
      "SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until "
      "WHERE oauth_leases.lease_until < now() "
        "OR oauth_leases.holder = EXCLUDED.holder "
      "RETURNING 1), "
    "cap AS (DELETE FROM oauth_events WHERE EXISTS (SELECT 1 FROM l) "
      "AND seq <= (SELECT seq FROM oauth_events ORDER BY seq DESC "
        "OFFSET $2::text::bigint LIMIT 1) RETURNING seq) "
    "SELECT (SELECT count(*) FROM cap)::text, e.seq::text, e.id, e.type, "
      "e.body, extract(epoch FROM e.created_at)::bigint::text, "
      "e.attempts::text, (SELECT count(*) FROM oauth_events)::text, "
      "(SELECT extract(epoch FROM min(created_at))::bigint "
        "FROM oauth_events)::text "
    "FROM l LEFT JOIN LATERAL (SELECT * FROM oauth_events e "
      "WHERE e.next_at <= now() AND e.seq NOT IN (SELECT seq FROM cap) "
      "AND NOT EXISTS (SELECT 1 FROM oauth_events o "
        "WHERE o.owner = e.owner AND o.provider = e.provider "
        "AND o.account = e.account AND o.seq < e.seq "
        "AND o.seq NOT IN (SELECT seq FROM cap)) "
      "ORDER BY e.seq LIMIT 1) e ON true";

/* a clean exit hands the lease over at once, not after its 10 s */

static const char  ngx_http_oauth_webhook_fleet_release_sql[] =
    "DELETE FROM oauth_leases WHERE owner = '' AND provider = 'webhook' "
    "AND account = 'outbox' AND holder = $1::text";

static const char  ngx_http_oauth_webhook_fleet_delete_sql[] =
    "DELETE FROM oauth_events WHERE seq = $1::text::bigint";

static const char  ngx_http_oauth_webhook_fleet_retry_sql[] =
    "UPDATE oauth_events SET attempts = $2::text::int, "
      "next_at = to_timestamp($3::text::bigint) "
    "WHERE seq = $1::text::bigint";


/* configuration */

char *
ngx_http_oauth_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    char                      *rv;
    ngx_str_t                 *value, name;
    ngx_uint_t                 i;
    const char                *why;
    ngx_http_oauth_webhook_t  *wh;

    if (omcf->webhook != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_oauth_url_check_endpoint(value[1].data, value[1].len, 0, &why)
        != NGX_OAUTH_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"oauth_webhook\" URL \"%V\": %s",
                           &value[1], why);
        return NGX_CONF_ERROR;
    }

    wh = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth_webhook_t));
    if (wh == NULL) {
        return NGX_CONF_ERROR;
    }

    wh->url = value[1];
    wh->events = (1 << NGX_OAUTH_EVENT_TYPES) - 1;
    wh->retry = NGX_HTTP_OAUTH_WEBHOOK_RETRY;
    wh->max_events = NGX_HTTP_OAUTH_WEBHOOK_MAX;

    for (i = 2; i < cf->args->nelts; i++) {
        rv = ngx_http_oauth_webhook_param(cf, wh, &value[i]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    /* counters of every worker, kept over a reload */

    ngx_str_set(&name, "oauth_webhook");

    wh->zone = ngx_shared_memory_add(cf, &name, 4 * ngx_pagesize,
                                     &ngx_http_oauth_module);
    if (wh->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    wh->zone->init = ngx_http_oauth_webhook_init_zone;

    omcf->webhook = wh;
    omcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_webhook_param(ngx_conf_t *cf, ngx_http_oauth_webhook_t *wh,
    ngx_str_t *v)
{
    ngx_int_t  n;
    ngx_str_t  s;

    if (v->len > sizeof("secret_file=") - 1
        && ngx_strncmp(v->data, "secret_file=", sizeof("secret_file=") - 1)
           == 0)
    {
        if (wh->secret.data) {
            goto duplicate;
        }

        s.data = v->data + sizeof("secret_file=") - 1;
        s.len = v->len - (sizeof("secret_file=") - 1);

        if (ngx_http_oauth_read_secret(cf, &s, &wh->secret) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (v->len > sizeof("events=") - 1
        && ngx_strncmp(v->data, "events=", sizeof("events=") - 1) == 0)
    {
        return ngx_http_oauth_webhook_events(cf, wh,
                                             v->data + sizeof("events=") - 1,
                                             v->data + v->len);
    }

    if (v->len > sizeof("retry=") - 1
        && ngx_strncmp(v->data, "retry=", sizeof("retry=") - 1) == 0)
    {
        s.data = v->data + sizeof("retry=") - 1;
        s.len = v->len - (sizeof("retry=") - 1);

        n = ngx_parse_time(&s, 1);

        if (n == NGX_ERROR || n < 1 || n > 7 * 86400) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth_webhook\" \"%V\": must be between "
                               "1s and 7d", v);
            return NGX_CONF_ERROR;
        }

        wh->retry = (time_t) n;
        return NGX_CONF_OK;
    }

    if (v->len > sizeof("max_events=") - 1
        && ngx_strncmp(v->data, "max_events=", sizeof("max_events=") - 1)
           == 0)
    {
        n = ngx_atoi(v->data + sizeof("max_events=") - 1,
                     v->len - (sizeof("max_events=") - 1));

        if (n == NGX_ERROR || n < 1 || n > 10000000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth_webhook\" \"%V\": must be between "
                               "1 and 10000000", v);
            return NGX_CONF_ERROR;
        }

        wh->max_events = (ngx_uint_t) n;
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"oauth_webhook\" parameter \"%V\"", v);
    return NGX_CONF_ERROR;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"oauth_webhook\" parameter \"%V\" is duplicate", v);
    return NGX_CONF_ERROR;
}


/* events=connection.created,connection.deleted: only those are written */

static char *
ngx_http_oauth_webhook_events(ngx_conf_t *cf, ngx_http_oauth_webhook_t *wh,
    u_char *p, u_char *last)
{
    int      type;
    u_char  *comma;

    wh->events = 0;

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        type = ngx_oauth_event_type_parse(p, comma - p);

        if (type < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"oauth_webhook\": unknown event type "
                               "\"%*s\"", comma - p, p);
            return NGX_CONF_ERROR;
        }

        wh->events |= 1 << type;
        p = comma + 1;
    }

    if (wh->events == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"oauth_webhook\": \"events=\" names no event");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_oauth_webhook_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                    *shpool;
    ngx_http_oauth_webhook_counters_t  *c;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a reload keeps the zone, and the counts in it */

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    c = ngx_slab_calloc(shpool, sizeof(ngx_http_oauth_webhook_counters_t));
    if (c == NULL) {
        return NGX_ERROR;
    }

    shpool->data = c;
    shm_zone->data = c;

    return NGX_OK;
}


static ngx_http_oauth_webhook_counters_t *
ngx_http_oauth_webhook_counters(ngx_http_oauth_main_conf_t *omcf)
{
    if (omcf->webhook == NULL || omcf->webhook->zone == NULL) {
        return NULL;
    }

    return omcf->webhook->zone->data;
}


/* writing events */

int
ngx_http_oauth_webhook_conn_put(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log, ngx_oauth_conn_t *conn, const uint64_t *expect,
    ngx_int_t type)
{
    int                    rc;
    ngx_oauth_event_t      ev;
    ngx_oauth_event_add_t  add;

    if (omcf->webhook == NULL || type < 0
        || !(omcf->webhook->events & (1 << type)))
    {
        return ngx_oauth_store_conn_put(omcf->store, conn, expect);
    }

    if (ngx_oauth_event_init(&ev, type, ngx_time()) != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "oauth: webhook event: no random bytes");
        return NGX_OAUTH_ERROR;
    }

    ev.owner = conn->owner;
    ev.provider = conn->provider;
    ev.account = conn->account;
    ev.status = ngx_oauth_status_name(conn->status);
    ev.error = conn->last_error;

    if (omcf->shared) {
        if (ngx_http_oauth_webhook_shared_event(log, &ev) != NGX_OK) {
            return NGX_OAUTH_ERROR;
        }

        rc = ngx_oauth_store_conn_put(omcf->store, conn, expect);

        if (rc != NGX_OAUTH_OK) {
            ngx_http_oauth_shared_event(NULL, NULL, NULL);
        }

        return rc;
    }

    ngx_memzero(&add, sizeof(ngx_oauth_event_add_t));
    add.event = &ev;
    add.max = omcf->webhook->max_events;

    rc = ngx_oauth_store_conn_put_event(omcf->store, conn, expect, &add);

    if (rc == NGX_OAUTH_OK) {
        ngx_http_oauth_webhook_added(omcf, log, &add);
    }

    return rc;
}


int
ngx_http_oauth_webhook_conn_delete(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log, ngx_oauth_str_t *owner, ngx_oauth_str_t *provider,
    ngx_oauth_str_t *account)
{
    int                    rc;
    ngx_oauth_event_t      ev;
    ngx_oauth_event_add_t  add;

    if (omcf->webhook == NULL
        || !(omcf->webhook->events & (1 << NGX_OAUTH_EVENT_DELETED)))
    {
        return ngx_oauth_store_conn_delete(omcf->store, owner, provider,
                                           account);
    }

    if (ngx_oauth_event_init(&ev, NGX_OAUTH_EVENT_DELETED, ngx_time())
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "oauth: webhook event: no random bytes");
        return NGX_OAUTH_ERROR;
    }

    ev.owner = *owner;
    ev.provider = *provider;
    ev.account = *account;
    ev.status = "deleted";

    if (omcf->shared) {
        if (ngx_http_oauth_webhook_shared_event(log, &ev) != NGX_OK) {
            return NGX_OAUTH_ERROR;
        }

        rc = ngx_oauth_store_conn_delete(omcf->store, owner, provider,
                                         account);

        if (rc != NGX_OAUTH_OK) {
            ngx_http_oauth_shared_event(NULL, NULL, NULL);
        }

        return rc;
    }

    ngx_memzero(&add, sizeof(ngx_oauth_event_add_t));
    add.event = &ev;
    add.max = omcf->webhook->max_events;

    rc = ngx_oauth_store_conn_delete_event(omcf->store, owner, provider,
                                           account, &add);

    if (rc == NGX_OAUTH_OK) {
        ngx_http_oauth_webhook_added(omcf, log, &add);
    }

    return rc;
}


/*
 * In a fleet the event goes to PostgreSQL with the change (the caller
 * reports it to the shared store next), not to this node's outbox: it is
 * written only if PostgreSQL takes the change, and delivered once for
 * the fleet.  Counted as written when PostgreSQL has it.
 */

static ngx_int_t
ngx_http_oauth_webhook_shared_event(ngx_log_t *log, ngx_oauth_event_t *ev)
{
    ngx_str_t        type, body;
    const char      *name;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    if (ngx_oauth_event_json(ev, &b) != NGX_OAUTH_OK
        || b.len > NGX_OAUTH_EVENT_BODY_MAX)
    {
        ngx_oauth_buf_free(&b);
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "oauth: webhook event: cannot build its body");
        return NGX_ERROR;
    }

    name = ngx_oauth_event_type_name(ev->type);

    type.data = (u_char *) name;
    type.len = ngx_strlen(name);
    body.data = b.data;
    body.len = b.len;

    ngx_http_oauth_shared_event(ev, &type, &body);

    ngx_oauth_buf_free(&b);

    return NGX_OK;
}


void
ngx_http_oauth_webhook_written(ngx_http_oauth_main_conf_t *omcf)
{
    ngx_http_oauth_webhook_counters_t  *c;

    c = ngx_http_oauth_webhook_counters(omcf);

    if (c) {
        (void) ngx_atomic_fetch_add(&c->written, 1);
    }
}


static void
ngx_http_oauth_webhook_added(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log, ngx_oauth_event_add_t *add)
{
    ngx_http_oauth_webhook_counters_t  *c;

    c = ngx_http_oauth_webhook_counters(omcf);

    if (c) {
        (void) ngx_atomic_fetch_add(&c->written, 1);
    }

    if (add->dropped == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "oauth: webhook outbox full (max_events=%ui): "
                  "%uz oldest events dropped",
                  omcf->webhook->max_events, add->dropped);

    if (c) {
        (void) ngx_atomic_fetch_add(&c->dropped_full, add->dropped);
    }
}


/* delivery */

ngx_int_t
ngx_http_oauth_webhook_init_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf)
{
    ngx_http_oauth_webhook_worker_t  *w;

    w = &ngx_http_oauth_webhook_worker;

    ngx_memzero(w, sizeof(ngx_http_oauth_webhook_worker_t));

    if (omcf->webhook == NULL || omcf->store == NULL) {
        return NGX_OK;
    }

    w->omcf = omcf;
    w->holder = ((uint64_t) ngx_pid << 32) | 0x77;

    /* the fleet lease's holder: this host and worker */

    ngx_snprintf(w->fleet_holder, sizeof(w->fleet_holder) - 1, "%*s %P%Z",
                 ngx_min(ngx_cycle->hostname.len, 48),
                 ngx_cycle->hostname.data, ngx_pid);

    w->tick.handler = ngx_http_oauth_webhook_tick;
    w->tick.data = w;
    w->tick.log = cycle->log;

    /* an idle delivery timer never holds up a graceful exit */

    w->tick.cancelable = 1;

    /* workers start apart, so that they do not all ask at once */

    ngx_add_timer(&w->tick, 100 + ngx_random() % 500);

    return NGX_OK;
}


void
ngx_http_oauth_webhook_exit_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf)
{
    ngx_int_t                         rc;
    const char                       *values[1];
    ngx_http_oauth_webhook_worker_t  *w;

    w = &ngx_http_oauth_webhook_worker;

    if (w->omcf == NULL) {
        return;
    }

    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    if (w->query) {
        ngx_http_oauth_pg_cancel(w->query);
        w->query = NULL;
    }

    if (omcf->shared && w->leased) {
        values[0] = (const char *) w->fleet_holder;

        rc = ngx_http_oauth_pg_exit_query(
                 ngx_http_oauth_webhook_fleet_release_sql, 1, values,
                 NGX_HTTP_OAUTH_WEBHOOK_RELEASE_WAIT);

        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "oauth: webhook delivery lease %s",
                      rc == NGX_OK ? "released" : "not released (it runs "
                                     "out in 10 s)");
    }

    /* the event in flight stays in the outbox: sent again, at least once */

    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
        w->fetch = NULL;
    }

    ngx_http_oauth_webhook_release(w);
    w->omcf = NULL;
}


static void
ngx_http_oauth_webhook_schedule(ngx_msec_t delay)
{
    ngx_http_oauth_webhook_worker_t  *w;

    w = &ngx_http_oauth_webhook_worker;

    if (w->omcf == NULL) {
        return;
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        if (w->fetch == NULL) {
            ngx_http_oauth_webhook_release(w);
        }

        return;
    }

    ngx_add_timer(&w->tick, delay);
}


static void
ngx_http_oauth_webhook_tick(ngx_event_t *ev)
{
    ngx_http_oauth_webhook_worker_t *w = ev->data;

    int                          rc;
    time_t                       now;
    ngx_oauth_outbox_rec_t       rec;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = w->omcf;

    if (omcf == NULL || omcf->store == NULL) {
        return;
    }

    /* an exiting worker hands the outbox over at once */

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        if (w->fetch == NULL) {
            ngx_http_oauth_webhook_release(w);
        }

        return;
    }

    if (omcf->shared) {
        ngx_http_oauth_webhook_fleet_tick(w);
        return;
    }

    now = ngx_time();

    /* taken, or kept: a holder that died frees it when it runs out */

    rc = ngx_oauth_store_lease_take(omcf->store, &ngx_http_oauth_webhook_who,
                                    &ngx_http_oauth_webhook_what,
                                    &ngx_http_oauth_webhook_which,
                                    w->holder, now,
                                    now + NGX_HTTP_OAUTH_WEBHOOK_LEASE);

    if (rc != NGX_OAUTH_OK) {
        if (rc != NGX_OAUTH_BUSY) {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "oauth: webhook lease: %s (%s)",
                          ngx_oauth_strerror(rc),
                          ngx_oauth_store_error(omcf->store));
        }

        w->leased = 0;
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    w->leased = 1;

    if (w->fetch) {
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    rc = ngx_oauth_store_outbox_next(omcf->store, now, &rec);

    if (rc == NGX_OAUTH_NOT_FOUND) {
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "oauth: webhook outbox: %s (%s)",
                      ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(omcf->store));
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    if (ngx_http_oauth_webhook_send(w, &rec) != NGX_OK) {
        ngx_http_oauth_webhook_failed(w, "not sent");
    }

    ngx_oauth_outbox_free(&rec);
}


static ngx_int_t
ngx_http_oauth_webhook_send(ngx_http_oauth_webhook_worker_t *w,
    ngx_oauth_outbox_rec_t *rec)
{
    char                       sig[NGX_OAUTH_EVENT_SIG_LEN + 1];
    ngx_str_t                  id, type;
    ngx_pool_t                *pool;
    ngx_array_t               *headers;
    ngx_http_oauth_fetch_t    *f;
    ngx_http_oauth_webhook_t  *wh;

    wh = w->omcf->webhook;

    /* rec outlives any failure here: the retry is written from these */

    w->seq = rec->seq;
    w->created = rec->created;
    w->attempts = rec->attempts;
    w->id.data = rec->id.data;
    w->id.len = rec->id.len;
    w->type.data = rec->type.data;
    w->type.len = rec->type.len;

    pool = ngx_create_pool(4096, w->tick.log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    w->pool = pool;

    id.data = ngx_pstrdup(pool, &w->id);
    id.len = w->id.len;
    type.data = ngx_pstrdup(pool, &w->type);
    type.len = w->type.len;

    f = ngx_http_oauth_fetch_create(pool, w->tick.log);
    headers = ngx_array_create(pool, 3, sizeof(ngx_table_elt_t));

    if (id.data == NULL || type.data == NULL || f == NULL
        || headers == NULL)
    {
        return NGX_ERROR;
    }

    w->id = id;
    w->type = type;

    f->url.data = ngx_pstrdup(pool, &wh->url);
    f->url.len = wh->url.len;
    f->body.data = ngx_pstrdup(pool, (ngx_str_t *) &rec->body);
    f->body.len = rec->body.len;
    ngx_str_set(&f->body_type, "application/json");

    if (f->url.data == NULL || f->body.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_webhook_header(pool, headers, "X-OAuth-Event-Id",
                                      w->id.data, w->id.len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* signed when sent: t is the time of this attempt */

    if (wh->secret.len) {
        if (ngx_oauth_event_sign(wh->secret.data, wh->secret.len,
                                 ngx_time(), f->body.data, f->body.len,
                                 sig, sizeof(sig))
            != NGX_OAUTH_OK
            || ngx_http_oauth_webhook_header(pool, headers,
                                             "X-OAuth-Signature",
                                             (u_char *) sig,
                                             ngx_strlen(sig))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    f->headers = headers;
    f->handler = ngx_http_oauth_webhook_done;
    f->data = w;

    if (ngx_http_oauth_fetch_start(f) != NGX_OK) {
        return NGX_ERROR;
    }

    w->fetch = f;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->tick.log, 0,
                   "oauth: webhook event %V (%V), attempt %uD",
                   &w->id, &w->type, w->attempts + 1);

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_webhook_header(ngx_pool_t *pool, ngx_array_t *headers,
    const char *name, u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_array_push(headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);

    h->value.data = ngx_pnalloc(pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, value, len);
    h->value.len = len;

    return NGX_OK;
}


static void
ngx_http_oauth_webhook_done(ngx_http_oauth_fetch_t *f)
{
    ngx_http_oauth_webhook_worker_t *w = f->data;

    int                                 rc;
    u_char                              why[64];
    ngx_http_oauth_webhook_counters_t  *c;

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK
        || f->status < 200 || f->status > 299)
    {
        if (f->result == NGX_HTTP_OAUTH_FETCH_OK) {
            ngx_sprintf(why, "status %ui%Z", f->status);

        } else {
            ngx_sprintf(why, "%s%Z",
                        ngx_http_oauth_fetch_result_name(f->result));
        }

        ngx_http_oauth_webhook_failed(w, (char *) why);
        return;
    }

    rc = ngx_http_oauth_webhook_settle(w, 0, 0, 0);

    if (rc != NGX_OAUTH_OK && rc != NGX_OAUTH_NOT_FOUND) {
        ngx_log_error(NGX_LOG_ERR, w->tick.log, 0,
                      "oauth: webhook event %V delivered but not removed: "
                      "%s (%s)", &w->id, ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(w->omcf->store));
    }

    c = ngx_http_oauth_webhook_counters(w->omcf);

    if (c) {
        (void) ngx_atomic_fetch_add(&c->delivered, 1);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->tick.log, 0,
                   "oauth: webhook event %V (%V) delivered",
                   &w->id, &w->type);

    /* the next one at once: a backlog drains at the receiver's pace */

    ngx_http_oauth_webhook_next(w);
}


/*
 * Backoff: 1s, 2s, 4s, ... at most an hour, each with up to a quarter of
 * jitter, so that the events of many nodes do not come back in a herd;
 * the last try is at retry= after the event was written, then it goes.
 */

static void
ngx_http_oauth_webhook_failed(ngx_http_oauth_webhook_worker_t *w,
    const char *why)
{
    int                                 rc;
    time_t                              now, delay, deadline;
    uint32_t                            attempts;
    ngx_uint_t                          i;
    ngx_http_oauth_webhook_counters_t  *c;

    now = ngx_time();
    attempts = w->attempts + 1;
    deadline = w->created + w->omcf->webhook->retry;
    c = ngx_http_oauth_webhook_counters(w->omcf);

    for (delay = 1, i = 1;
         i < attempts && delay < NGX_HTTP_OAUTH_WEBHOOK_BACKOFF;
         i++)
    {
        delay *= 2;
    }

    delay = ngx_min(delay, NGX_HTTP_OAUTH_WEBHOOK_BACKOFF);
    delay += (time_t) (ngx_random() % (delay / 4 + 1));

    if (now >= deadline) {
        rc = ngx_http_oauth_webhook_settle(w, 0, 0, 0);

        ngx_log_error(NGX_LOG_ERR, w->tick.log, 0,
                      "oauth: webhook event %V (%V) dropped after %uD "
                      "attempts in %T s: %s", &w->id, &w->type, attempts,
                      now - w->created, why);

        if (c && rc == NGX_OAUTH_OK) {
            (void) ngx_atomic_fetch_add(&c->dropped_expired, 1);
        }

    } else {
        rc = ngx_http_oauth_webhook_settle(w, 1,
                                           ngx_min(now + delay, deadline),
                                           attempts);

        ngx_log_error(NGX_LOG_WARN, w->tick.log, 0,
                      "oauth: webhook event %V (%V) not delivered: %s; "
                      "attempt %uD, next in %T s", &w->id, &w->type, why,
                      attempts, ngx_min(now + delay, deadline) - now);

        if (c && rc == NGX_OAUTH_OK) {
            (void) ngx_atomic_fetch_add(&c->retried, 1);
        }
    }

    if (rc != NGX_OAUTH_OK && rc != NGX_OAUTH_NOT_FOUND) {
        ngx_log_error(NGX_LOG_ERR, w->tick.log, 0,
                      "oauth: webhook event %V not rescheduled: %s (%s)",
                      &w->id, ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(w->omcf->store));
    }

    ngx_http_oauth_webhook_next(w);
}


/* an attempt is over, delivered or not: its pool goes, the next comes */

static void
ngx_http_oauth_webhook_next(ngx_http_oauth_webhook_worker_t *w)
{
    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }

    w->fetch = NULL;

    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    ngx_http_oauth_webhook_schedule(1);
}


static void
ngx_http_oauth_webhook_release(ngx_http_oauth_webhook_worker_t *w)
{
    if (!w->leased || w->omcf == NULL || w->omcf->store == NULL) {
        return;
    }

    (void) ngx_oauth_store_lease_drop(w->omcf->store,
                                      &ngx_http_oauth_webhook_who,
                                      &ngx_http_oauth_webhook_what,
                                      &ngx_http_oauth_webhook_which,
                                      w->holder);
    w->leased = 0;
}


/* the event sent last removed (keep 0) or rescheduled */

static int
ngx_http_oauth_webhook_settle(ngx_http_oauth_webhook_worker_t *w, int keep,
    time_t next_at, uint32_t attempts)
{
    u_char           seq[NGX_INT64_LEN + 1], att[NGX_INT64_LEN + 1];
    u_char           at[NGX_INT64_LEN + 1];
    const char      *err;
    const u_char    *values[3];
    ngx_oauth_str_t  id;

    if (w->omcf->shared == NULL) {
        id.data = w->id.data;
        id.len = w->id.len;

        return ngx_oauth_store_outbox_settle(w->omcf->store, w->seq, &id,
                                             keep, next_at, attempts);
    }

    /* on the worker's one connection, ahead of its next poll */

    ngx_sprintf(seq, "%uL%Z", w->seq);
    ngx_sprintf(att, "%uD%Z", attempts);
    ngx_sprintf(at, "%T%Z", next_at);

    values[0] = seq;
    values[1] = att;
    values[2] = at;

    if (ngx_http_oauth_pg_query(keep ? ngx_http_oauth_webhook_fleet_retry_sql
                                : ngx_http_oauth_webhook_fleet_delete_sql,
                                keep ? 3 : 1, values,
                                (ssize_t []) { -1, -1, -1 },
                                NGX_HTTP_OAUTH_PG_QUEUE_DOWN,
                                ngx_http_oauth_webhook_fleet_settled, w,
                                &err)
        == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, w->tick.log, 0,
                      "oauth: webhook event %V not settled in the shared "
                      "store: %s", &w->id, err);
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


static void
ngx_http_oauth_webhook_fleet_settled(void *data, PGresult *res,
    const char *err)
{
    if (res == NULL) {

        /* sent again later: at least once */

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "oauth: webhook event not settled in the shared "
                      "store: %s", err);
    }
}


static void
ngx_http_oauth_webhook_fleet_tick(ngx_http_oauth_webhook_worker_t *w)
{
    u_char        max[NGX_INT64_LEN + 1];
    const char   *err;
    const u_char *values[2];

    if (w->fetch || w->query) {
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    if (!ngx_http_oauth_pg_up()) {
        w->leased = 0;
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    ngx_sprintf(max, "%ui%Z", w->omcf->webhook->max_events);

    values[0] = w->fleet_holder;
    values[1] = max;

    w->query = ngx_http_oauth_pg_query(ngx_http_oauth_webhook_fleet_sql, 2,
                                       values, (ssize_t []) { -1, -1 }, 0,
                                       ngx_http_oauth_webhook_fleet_next, w,
                                       &err);

    if (w->query == NULL) {
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
    }
}


static void
ngx_http_oauth_webhook_fleet_next(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_webhook_worker_t *w = data;

    ngx_oauth_outbox_rec_t  rec;

    w->query = NULL;

    if (res == NULL || PQntuples(res) != 1) {
        if (res == NULL) {
            ngx_log_error(NGX_LOG_WARN, w->tick.log, 0,
                          "oauth: webhook outbox in the shared store: %s",
                          err);
        }

        /* another worker of the fleet delivers */

        w->leased = 0;
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    w->leased = 1;

    ngx_http_oauth_webhook_fleet_capped(w, res);

    if (PQgetisnull(res, 0, 1) || ngx_exiting || ngx_quit || ngx_terminate) {
        ngx_http_oauth_webhook_schedule(NGX_HTTP_OAUTH_WEBHOOK_TICK);
        return;
    }

    ngx_memzero(&rec, sizeof(ngx_oauth_outbox_rec_t));

    rec.seq = (uint64_t) ngx_atoof((u_char *) PQgetvalue(res, 0, 1),
                                   PQgetlength(res, 0, 1));
    rec.id.data = (u_char *) PQgetvalue(res, 0, 2);
    rec.id.len = PQgetlength(res, 0, 2);
    rec.type.data = (u_char *) PQgetvalue(res, 0, 3);
    rec.type.len = PQgetlength(res, 0, 3);
    rec.body.data = (u_char *) PQgetvalue(res, 0, 4);
    rec.body.len = PQgetlength(res, 0, 4);
    rec.created = (time_t) ngx_atotm((u_char *) PQgetvalue(res, 0, 5),
                                     PQgetlength(res, 0, 5));
    rec.attempts = (uint32_t) ngx_atoi((u_char *) PQgetvalue(res, 0, 6),
                                       PQgetlength(res, 0, 6));

    if (ngx_http_oauth_webhook_send(w, &rec) != NGX_OK) {
        ngx_http_oauth_webhook_failed(w, "not sent");
    }
}


/* the oldest events over the cap went; the gauges the holder saw */

static void
ngx_http_oauth_webhook_fleet_capped(ngx_http_oauth_webhook_worker_t *w,
    PGresult *res)
{
    ngx_int_t                           capped, depth;
    ngx_http_oauth_webhook_counters_t  *c;

    c = ngx_http_oauth_webhook_counters(w->omcf);

    capped = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));
    depth = ngx_atoi((u_char *) PQgetvalue(res, 0, 7),
                     PQgetlength(res, 0, 7));

    if (capped > 0) {
        ngx_log_error(NGX_LOG_ERR, w->tick.log, 0,
                      "oauth: webhook outbox full (max_events=%ui): "
                      "%i oldest events dropped",
                      w->omcf->webhook->max_events, capped);
    }

    if (c == NULL) {
        return;
    }

    if (capped > 0) {
        (void) ngx_atomic_fetch_add(&c->dropped_full, capped);
    }

    c->fleet_depth = (depth > capped) ? (ngx_atomic_uint_t) (depth - capped)
                                      : 0;
    c->fleet_oldest = PQgetisnull(res, 0, 8)
                      ? 0
                      : (ngx_atomic_uint_t)
                        ngx_atotm((u_char *) PQgetvalue(res, 0, 8),
                                  PQgetlength(res, 0, 8));
}


/* metrics */

u_char *
ngx_http_oauth_webhook_metrics(ngx_http_oauth_main_conf_t *omcf, u_char *p)
{
    size_t                              depth;
    time_t                              oldest, age;
    ngx_http_oauth_webhook_counters_t  *c;

    c = ngx_http_oauth_webhook_counters(omcf);

    if (c == NULL) {
        return p;
    }

    depth = 0;
    oldest = 0;

    if (omcf->shared) {

        /* the fleet's outbox as this node's delivering worker last saw */

        depth = (size_t) c->fleet_depth;
        oldest = (time_t) c->fleet_oldest;

    } else if (omcf->store) {
        (void) ngx_oauth_store_outbox_stat(omcf->store, &depth, &oldest);
    }

    age = (depth && oldest && ngx_time() > oldest) ? ngx_time() - oldest : 0;

    return ngx_sprintf(p,
        "# HELP oauth_webhook_events_written_total Events written to the "
        "outbox.\n"
        "# TYPE oauth_webhook_events_written_total counter\n"
        "oauth_webhook_events_written_total %uA\n"
        "# HELP oauth_webhook_events_delivered_total Events the receiver "
        "took (2xx).\n"
        "# TYPE oauth_webhook_events_delivered_total counter\n"
        "oauth_webhook_events_delivered_total %uA\n"
        "# HELP oauth_webhook_events_retried_total Failed deliveries that "
        "will be retried.\n"
        "# TYPE oauth_webhook_events_retried_total counter\n"
        "oauth_webhook_events_retried_total %uA\n"
        "# HELP oauth_webhook_events_dropped_total Events given up, by "
        "reason.\n"
        "# TYPE oauth_webhook_events_dropped_total counter\n"
        "oauth_webhook_events_dropped_total{reason=\"outbox_full\"} %uA\n"
        "oauth_webhook_events_dropped_total{reason=\"expired\"} %uA\n"
        "# HELP oauth_webhook_outbox_depth Events waiting in the outbox.\n"
        "# TYPE oauth_webhook_outbox_depth gauge\n"
        "oauth_webhook_outbox_depth %uz\n"
        "# HELP oauth_webhook_outbox_oldest_age_seconds Age of the oldest "
        "waiting event.\n"
        "# TYPE oauth_webhook_outbox_oldest_age_seconds gauge\n"
        "oauth_webhook_outbox_oldest_age_seconds %T\n",
        c->written, c->delivered, c->retried, c->dropped_full,
        c->dropped_expired, depth, age);
}
