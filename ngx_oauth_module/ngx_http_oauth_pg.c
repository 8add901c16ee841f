/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <poll.h>

#include "ngx_http_oauth_pg.h"
#include "ngx_http_oauth_socket.h"


/*
 * libpq on nginx's events, as the libcurl client is: the socket libpq
 * owns is wrapped in an nginx connection for its events only (libpq
 * closes it, never nginx), the connection is made with PQconnectStart
 * and PQconnectPoll, and queries are sent with PQsendQueryParams in
 * non-blocking mode and read with PQconsumeInput, PQisBusy and
 * PQgetResult.  A query whose deadline passes fails; if it was on the
 * wire the connection is dropped and made again (PQcancel would block).
 */


#define NGX_HTTP_OAUTH_PG_IDLE        0
#define NGX_HTTP_OAUTH_PG_CONNECTING  1
#define NGX_HTTP_OAUTH_PG_SETUP_STATE 2
#define NGX_HTTP_OAUTH_PG_READY       3
#define NGX_HTTP_OAUTH_PG_BACKOFF     4

#define NGX_HTTP_OAUTH_PG_BACKOFF_MIN 100
#define NGX_HTTP_OAUTH_PG_BACKOFF_MAX 2000


struct ngx_http_oauth_pg_query_s {
    ngx_queue_t                  queue;
    const char                  *sql;
    int                          n;
    const char                  *values[NGX_HTTP_OAUTH_PG_PARAMS_MAX];
    int                          lens[NGX_HTTP_OAUTH_PG_PARAMS_MAX];
    int                          formats[NGX_HTTP_OAUTH_PG_PARAMS_MAX];
    ngx_uint_t                   flags;
    ngx_http_oauth_pg_done_pt    done;
    void                        *data;
    PGresult                    *res;        /* the first result */
    ngx_event_t                  deadline;
    unsigned                     queued:1;
    unsigned                     active:1;
};


typedef struct {
    ngx_http_oauth_pg_conf_t     conf;
    PGconn                      *conn;
    ngx_connection_t            *c;
    ngx_uint_t                   state;
    ngx_queue_t                  queue;
    ngx_http_oauth_pg_query_t   *active;
    ngx_event_t                  retry;
    ngx_msec_t                   backoff;
    ngx_log_t                   *log;
    unsigned                     flushing:1;
    unsigned                     said_down:1;
} ngx_http_oauth_pg_t;


static void ngx_http_oauth_pg_connect(ngx_event_t *ev);
static void ngx_http_oauth_pg_connect_timeout(ngx_event_t *ev);
static void ngx_http_oauth_pg_event(ngx_event_t *ev);
static void ngx_http_oauth_pg_poll(void);
static ngx_int_t ngx_http_oauth_pg_wrap(void);
static ngx_int_t ngx_http_oauth_pg_want(ngx_uint_t rd, ngx_uint_t wr);
static void ngx_http_oauth_pg_release(void);
static void ngx_http_oauth_pg_down(const char *why);
static void ngx_http_oauth_pg_read(void);
static void ngx_http_oauth_pg_next(void);
static void ngx_http_oauth_pg_finish(ngx_http_oauth_pg_query_t *q,
    const char *err);
static void ngx_http_oauth_pg_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_oauth_pg_exit_wait(ngx_msec_t deadline);


static ngx_http_oauth_pg_t  ngx_http_oauth_pg;


ngx_int_t
ngx_http_oauth_pg_init_process(ngx_cycle_t *cycle,
    ngx_http_oauth_pg_conf_t *conf)
{
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    ngx_memzero(pg, sizeof(ngx_http_oauth_pg_t));

    pg->conf = *conf;
    pg->log = cycle->log;
    pg->backoff = NGX_HTTP_OAUTH_PG_BACKOFF_MIN;

    ngx_queue_init(&pg->queue);

    pg->retry.handler = ngx_http_oauth_pg_connect;
    pg->retry.log = cycle->log;
    pg->retry.data = pg;
    pg->retry.cancelable = 1;

    /* from the event loop, never while the worker starts */

    ngx_add_timer(&pg->retry, 1);

    return NGX_OK;
}


void
ngx_http_oauth_pg_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                *qe;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q;

    if (pg->log == NULL) {
        return;
    }

    if (pg->retry.timer_set) {
        ngx_del_timer(&pg->retry);
    }

    while (!ngx_queue_empty(&pg->queue)) {
        qe = ngx_queue_head(&pg->queue);
        q = ngx_queue_data(qe, ngx_http_oauth_pg_query_t, queue);
        ngx_http_oauth_pg_finish(q, "worker exiting");
    }

    ngx_http_oauth_pg_release();

    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }

    pg->state = NGX_HTTP_OAUTH_PG_IDLE;
}


ngx_int_t
ngx_http_oauth_pg_exit_query(const char *sql, ngx_uint_t n,
    const char **values, ngx_msec_t timeout)
{
    ngx_msec_t                  deadline;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q;

    if (pg->conn == NULL || pg->state != NGX_HTTP_OAUTH_PG_READY) {
        return NGX_DECLINED;
    }

    ngx_time_update();
    deadline = ngx_current_msec + timeout;

    /* the query on the wire (a cancelled one too) ends first */

    if (pg->active) {
        if (ngx_http_oauth_pg_exit_wait(deadline) != NGX_OK) {
            return NGX_ERROR;
        }

        q = pg->active;
        pg->active = NULL;
        ngx_http_oauth_pg_finish(q, "worker exiting");
    }

    if (PQsendQueryParams(pg->conn, sql, (int) n, NULL, values, NULL, NULL,
                          0)
        == 0)
    {
        return NGX_ERROR;
    }

    return ngx_http_oauth_pg_exit_wait(deadline);
}


/* sends what is buffered and reads every result, until the deadline */

static ngx_int_t
ngx_http_oauth_pg_exit_wait(ngx_msec_t deadline)
{
    int                   rc, flushed;
    PGresult             *res;
    ngx_int_t             ok;
    struct pollfd         pfd;
    ngx_msec_int_t        left;
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    ok = NGX_OK;
    flushed = 0;

    for ( ;; ) {
        if (!flushed) {
            rc = PQflush(pg->conn);

            if (rc < 0) {
                return NGX_ERROR;
            }

            flushed = (rc == 0);
        }

        if (flushed) {
            if (PQconsumeInput(pg->conn) == 0) {
                return NGX_ERROR;
            }

            while (!PQisBusy(pg->conn)) {
                res = PQgetResult(pg->conn);

                if (res == NULL) {
                    return ok;
                }

                if (PQresultStatus(res) != PGRES_COMMAND_OK
                    && PQresultStatus(res) != PGRES_TUPLES_OK)
                {
                    ok = NGX_ERROR;
                }

                PQclear(res);
            }
        }

        ngx_time_update();
        left = (ngx_msec_int_t) (deadline - ngx_current_msec);

        if (left <= 0) {
            return NGX_ERROR;
        }

        pfd.fd = PQsocket(pg->conn);
        pfd.events = flushed ? POLLIN : (POLLIN | POLLOUT);
        pfd.revents = 0;

        if (poll(&pfd, 1, (int) left) == -1 && ngx_errno != NGX_EINTR) {
            return NGX_ERROR;
        }
    }
}


void
ngx_http_oauth_pg_ready(void)
{
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    if (pg->state != NGX_HTTP_OAUTH_PG_SETUP_STATE) {
        return;
    }

    pg->state = NGX_HTTP_OAUTH_PG_READY;
    pg->backoff = NGX_HTTP_OAUTH_PG_BACKOFF_MIN;

    if (pg->said_down) {
        ngx_log_error(NGX_LOG_NOTICE, pg->log, 0,
                      "oauth: shared store is back");
        pg->said_down = 0;
    }

    ngx_http_oauth_pg_next();
}


ngx_uint_t
ngx_http_oauth_pg_up(void)
{
    return ngx_http_oauth_pg.state == NGX_HTTP_OAUTH_PG_READY;
}


ngx_http_oauth_pg_query_t *
ngx_http_oauth_pg_query(const char *sql, ngx_uint_t n, const u_char **values,
    const ssize_t *lens, ngx_uint_t flags, ngx_http_oauth_pg_done_pt done,
    void *data, const char **err)
{
    u_char                     *p;
    size_t                      size, len[NGX_HTTP_OAUTH_PG_PARAMS_MAX];
    ngx_uint_t                  i;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q;

    *err = NULL;

    if (pg->log == NULL || n > NGX_HTTP_OAUTH_PG_PARAMS_MAX) {
        *err = "shared store not configured";
        return NULL;
    }

    if (pg->state == NGX_HTTP_OAUTH_PG_BACKOFF
        && !(flags & NGX_HTTP_OAUTH_PG_QUEUE_DOWN))
    {
        *err = "shared store unavailable";
        return NULL;
    }

    size = sizeof(ngx_http_oauth_pg_query_t);

    for (i = 0; i < n; i++) {
        len[i] = values[i] == NULL ? 0
                 : lens[i] < 0 ? ngx_strlen(values[i]) : (size_t) lens[i];
        size += len[i] + 1;
    }

    q = ngx_calloc(size, pg->log);
    if (q == NULL) {
        *err = "no memory";
        return NULL;
    }

    p = (u_char *) (q + 1);

    q->sql = sql;
    q->n = (int) n;
    q->flags = flags;
    q->done = done;
    q->data = data;

    /* parameters go in binary: raw bytes for text and bytea alike */

    for (i = 0; i < n; i++) {
        q->formats[i] = 1;
        q->lens[i] = (int) len[i];

        if (values[i] == NULL) {
            q->values[i] = NULL;
            continue;
        }

        q->values[i] = (char *) p;
        p = ngx_cpymem(p, values[i], len[i]);
        *p++ = '\0';
    }

    q->deadline.handler = ngx_http_oauth_pg_timeout;
    q->deadline.data = q;
    q->deadline.log = pg->log;
    q->deadline.cancelable = 1;

    ngx_add_timer(&q->deadline, pg->conf.timeout);

    if (flags & NGX_HTTP_OAUTH_PG_SETUP) {
        ngx_queue_insert_head(&pg->queue, &q->queue);

    } else {
        ngx_queue_insert_tail(&pg->queue, &q->queue);
    }

    q->queued = 1;

    if (pg->state == NGX_HTTP_OAUTH_PG_IDLE) {
        if (!pg->retry.timer_set) {
            ngx_add_timer(&pg->retry, 1);
        }

    } else if (pg->state == NGX_HTTP_OAUTH_PG_READY
               || pg->state == NGX_HTTP_OAUTH_PG_SETUP_STATE)
    {
        ngx_http_oauth_pg_next();
    }

    return q;
}


void
ngx_http_oauth_pg_cancel(ngx_http_oauth_pg_query_t *q)
{
    if (q->active) {

        /* its result still comes; it is read and dropped */

        q->done = NULL;
        q->data = NULL;

        return;
    }

    q->done = NULL;
    ngx_http_oauth_pg_finish(q, NULL);
}


static void
ngx_http_oauth_pg_connect(ngx_event_t *ev)
{
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    if (ngx_exiting || ngx_terminate || pg->conn) {
        return;
    }

    pg->conn = PQconnectStart((const char *) pg->conf.conninfo.data);

    if (pg->conn == NULL) {
        ngx_http_oauth_pg_down("no memory");
        return;
    }

    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        ngx_http_oauth_pg_down(PQerrorMessage(pg->conn));
        return;
    }

    pg->state = NGX_HTTP_OAUTH_PG_CONNECTING;

    /* the connect shares the first query's deadline */

    if (ngx_http_oauth_pg_wrap() != NGX_OK
        || ngx_http_oauth_pg_want(0, 1) != NGX_OK)
    {
        ngx_http_oauth_pg_down("cannot watch the socket");
        return;
    }

    /* a connect that hangs is given up as a query would be */

    pg->retry.handler = ngx_http_oauth_pg_connect_timeout;
    ngx_add_timer(&pg->retry, pg->conf.timeout);
}


static void
ngx_http_oauth_pg_connect_timeout(ngx_event_t *ev)
{
    ngx_http_oauth_pg_down("connect timed out");
}


/* the nginx connection around libpq's socket, for its events only */

static ngx_int_t
ngx_http_oauth_pg_wrap(void)
{
    int                   fd;
    ngx_connection_t     *c;
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    fd = PQsocket(pg->conn);

    if (pg->c && pg->c->fd == fd) {
        return NGX_OK;
    }

    /* libpq moved to another address: its old socket is closed already */

    ngx_http_oauth_pg_release();

    if (fd < 0) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, pg->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->read->handler = ngx_http_oauth_pg_event;
    c->write->handler = ngx_http_oauth_pg_event;
    c->read->log = pg->log;
    c->write->log = pg->log;
    c->data = pg;

    pg->c = c;

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_pg_want(ngx_uint_t rd, ngx_uint_t wr)
{
    return ngx_http_oauth_socket_watch(ngx_http_oauth_pg.c, rd, wr);
}


static void
ngx_http_oauth_pg_release(void)
{
    ngx_connection_t     *c;
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    c = pg->c;

    if (c == NULL) {
        return;
    }

    pg->c = NULL;

    /* the descriptor is libpq's to close */

    ngx_http_oauth_socket_release(c);
}


/*
 * The connection is lost or could not be made: the query on the wire
 * fails, queued ones wait for the next connection (or their deadline),
 * and a new connection is tried after a backoff.
 */

static void
ngx_http_oauth_pg_down(const char *why)
{
    size_t                      len;
    ngx_queue_t                *qe, *next;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q;

    len = ngx_strlen(why);

    while (len && (why[len - 1] == '\n' || why[len - 1] == ' ')) {
        len--;
    }

    if (!pg->said_down) {
        ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                      "oauth: shared store unavailable: %*s, retrying",
                      len, why);
        pg->said_down = 1;

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pg->log, 0,
                       "oauth pg: still down: %*s", len, why);
    }

    ngx_http_oauth_pg_release();

    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }

    pg->flushing = 0;

    if (pg->active) {
        q = pg->active;
        pg->active = NULL;
        ngx_http_oauth_pg_finish(q, "shared store connection lost");
    }

    /* setup queries belong to the connection that is gone */

    for (qe = ngx_queue_head(&pg->queue);
         qe != ngx_queue_sentinel(&pg->queue);
         qe = next)
    {
        next = ngx_queue_next(qe);
        q = ngx_queue_data(qe, ngx_http_oauth_pg_query_t, queue);

        if (q->flags & NGX_HTTP_OAUTH_PG_SETUP) {
            ngx_http_oauth_pg_finish(q, "shared store connection lost");
        }
    }

    pg->state = NGX_HTTP_OAUTH_PG_BACKOFF;

    if (pg->retry.timer_set) {
        ngx_del_timer(&pg->retry);
    }

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    pg->retry.handler = ngx_http_oauth_pg_connect;
    ngx_add_timer(&pg->retry, pg->backoff);

    pg->backoff = ngx_min(pg->backoff * 2, NGX_HTTP_OAUTH_PG_BACKOFF_MAX);
}


static void
ngx_http_oauth_pg_event(ngx_event_t *ev)
{
    ngx_http_oauth_pg_t  *pg = &ngx_http_oauth_pg;

    if (pg->conn == NULL || pg->c == NULL) {
        return;
    }

    if (pg->state == NGX_HTTP_OAUTH_PG_CONNECTING) {
        ngx_http_oauth_pg_poll();
        return;
    }

    if (pg->flushing) {
        switch (PQflush(pg->conn)) {
        case 0:
            pg->flushing = 0;
            if (ngx_http_oauth_pg_want(1, 0) != NGX_OK) {
                ngx_http_oauth_pg_down("cannot watch the socket");
                return;
            }
            break;
        case 1:
            break;
        default:
            ngx_http_oauth_pg_down(PQerrorMessage(pg->conn));
            return;
        }
    }

    ngx_http_oauth_pg_read();
}


static void
ngx_http_oauth_pg_poll(void)
{
    PostgresPollingStatusType   st;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;

    st = PQconnectPoll(pg->conn);

    switch (st) {

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (ngx_http_oauth_pg_wrap() != NGX_OK
            || ngx_http_oauth_pg_want(st == PGRES_POLLING_READING,
                                      st == PGRES_POLLING_WRITING)
               != NGX_OK)
        {
            ngx_http_oauth_pg_down("cannot watch the socket");
        }
        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_http_oauth_pg_down(PQerrorMessage(pg->conn));
        return;
    }

    if (pg->retry.timer_set) {
        ngx_del_timer(&pg->retry);
    }

    if (PQsetnonblocking(pg->conn, 1) != 0
        || ngx_http_oauth_pg_wrap() != NGX_OK
        || ngx_http_oauth_pg_want(1, 0) != NGX_OK)
    {
        ngx_http_oauth_pg_down("cannot set up the connection");
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, pg->log, 0,
                   "oauth pg: connected");

    pg->state = NGX_HTTP_OAUTH_PG_SETUP_STATE;

    pg->conf.up(pg->conf.data);
}


/* what the server sent: results, then notifications */

static void
ngx_http_oauth_pg_read(void)
{
    PGresult                   *res;
    PGnotify                   *nt;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q;

    if (PQconsumeInput(pg->conn) == 0) {
        ngx_http_oauth_pg_down(PQerrorMessage(pg->conn));
        return;
    }

    while (pg->active && !PQisBusy(pg->conn)) {
        res = PQgetResult(pg->conn);
        q = pg->active;

        if (res == NULL) {
            pg->active = NULL;
            ngx_http_oauth_pg_finish(q, q->res ? NULL : "no result");
            break;
        }

        if (q->res == NULL) {
            q->res = res;

        } else {
            PQclear(res);
        }
    }

    for ( ;; ) {
        if (pg->conn == NULL) {
            return;
        }

        nt = PQnotifies(pg->conn);
        if (nt == NULL) {
            break;
        }

        if (pg->conf.notify) {
            pg->conf.notify(nt->relname, nt->extra, pg->conf.data);
        }

        PQfreemem(nt);
    }

    if (pg->conn && pg->active == NULL) {
        ngx_http_oauth_pg_next();
    }
}


/* the next query on the wire, if the connection is free */

static void
ngx_http_oauth_pg_next(void)
{
    ngx_queue_t                *qe;
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q;

    if (pg->active || pg->conn == NULL || ngx_queue_empty(&pg->queue)) {
        return;
    }

    qe = ngx_queue_head(&pg->queue);
    q = ngx_queue_data(qe, ngx_http_oauth_pg_query_t, queue);

    if (pg->state == NGX_HTTP_OAUTH_PG_SETUP_STATE
        && !(q->flags & NGX_HTTP_OAUTH_PG_SETUP))
    {
        return;
    }

    if (pg->state != NGX_HTTP_OAUTH_PG_READY
        && pg->state != NGX_HTTP_OAUTH_PG_SETUP_STATE)
    {
        return;
    }

    ngx_queue_remove(qe);
    q->queued = 0;

    if (!PQsendQueryParams(pg->conn, q->sql, q->n, NULL, q->values,
                           q->lens, q->formats, 1))
    {
        ngx_http_oauth_pg_finish(q, PQerrorMessage(pg->conn));
        ngx_http_oauth_pg_down(PQerrorMessage(pg->conn));
        return;
    }

    q->active = 1;
    pg->active = q;

    switch (PQflush(pg->conn)) {
    case 0:
        break;
    case 1:
        pg->flushing = 1;
        if (ngx_http_oauth_pg_want(1, 1) != NGX_OK) {
            ngx_http_oauth_pg_down("cannot watch the socket");
        }
        break;
    default:
        ngx_http_oauth_pg_down(PQerrorMessage(pg->conn));
    }
}


static void
ngx_http_oauth_pg_finish(ngx_http_oauth_pg_query_t *q, const char *err)
{
    PGresult  *res;

    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->queued = 0;
    }

    if (q->deadline.timer_set) {
        ngx_del_timer(&q->deadline);
    }

    res = q->res;
    q->res = NULL;

    if (err == NULL && res
        && PQresultStatus(res) != PGRES_TUPLES_OK
        && PQresultStatus(res) != PGRES_COMMAND_OK)
    {
        err = PQresultErrorMessage(res);
        ngx_log_error(NGX_LOG_ERR, ngx_http_oauth_pg.log, 0,
                      "oauth: shared store query failed: %s", err);
    }

    if (q->done) {
        q->done(q->data, err ? NULL : res, err);
    }

    if (res) {
        PQclear(res);
    }

    ngx_free(q);
}


static void
ngx_http_oauth_pg_timeout(ngx_event_t *ev)
{
    ngx_http_oauth_pg_t        *pg = &ngx_http_oauth_pg;
    ngx_http_oauth_pg_query_t  *q = ev->data;

    ngx_log_error(NGX_LOG_WARN, pg->log, 0,
                  "oauth: shared store query timed out");

    if (!q->active) {
        ngx_http_oauth_pg_finish(q, "shared store timeout");
        return;
    }

    /*
     * On the wire: the connection is stuck behind it.  Its handler hears
     * now; the connection is made again for the queries behind it.
     */

    if (q->done) {
        q->done(q->data, NULL, "shared store timeout");
        q->done = NULL;
    }

    ngx_http_oauth_pg_down("a query timed out");
}
