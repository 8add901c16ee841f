/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "ngx_oauth_store.h"


#define NGX_OAUTH_STORE_DBS          6
#define NGX_OAUTH_STORE_READERS      126
#define NGX_OAUTH_STORE_OPEN_TRIES   5
#define NGX_OAUTH_STORE_ERR_LEN      256
#define NGX_OAUTH_STORE_HASH_LEN     NGX_OAUTH_FLOW_KEY_LEN
#define NGX_OAUTH_STORE_LEASE_OLD    16      /* holder, deadline */
#define NGX_OAUTH_STORE_LEASE_LEN    24      /* and flags */
#define NGX_OAUTH_STORE_META_KEY_MAX 511

/* the reserve: 1/32 of the map, at least 16 pages (at most a quarter) */
#define NGX_OAUTH_STORE_RESERVE_PART 32
#define NGX_OAUTH_STORE_RESERVE_MIN  16
#define NGX_OAUTH_STORE_VERSION_KEY  "version"

/* conn_write: the version is the stored one + 1, or the given one */
#define NGX_OAUTH_STORE_KEEP_NONE    0
#define NGX_OAUTH_STORE_KEEP_ANY     1
#define NGX_OAUTH_STORE_KEEP_NEWER   2

/* owner length (2) | owner | provider length (1) | provider | account */
#define NGX_OAUTH_STORE_KEY_MAX                                              \
    (2 + NGX_OAUTH_OWNER_MAX + 1 + NGX_OAUTH_PROVIDER_MAX                    \
     + NGX_OAUTH_ACCOUNT_MAX)


/*
 * What a visitor of a cursor walk returns: _NEXT, _STOP, _BAD (a record
 * that does not decode, counted in *bad) or a negative NGX_OAUTH_* code
 * that aborts the walk.
 */
#define NGX_OAUTH_STORE_NEXT  0
#define NGX_OAUTH_STORE_STOP  1
#define NGX_OAUTH_STORE_BAD   2


typedef int (*ngx_oauth_store_visit_pt)(ngx_oauth_store_t *st,
    MDB_cursor *cur, MDB_val *k, MDB_val *v, void *data);


struct ngx_oauth_store_s {
    MDB_env            *env;
    MDB_dbi             meta;
    MDB_dbi             flows;
    MDB_dbi             conns;
    MDB_dbi             leases;
    MDB_dbi             events;         /* the webhook outbox */
    MDB_dbi             spent;          /* taken flows, for a reload */
    pid_t               pid;
    unsigned long       forks;          /* ngx_oauth_store_forks at open */
    char                err[NGX_OAUTH_STORE_ERR_LEN];
};


/*
 * Every transaction checks that the handle was opened in this process.
 * getpid() is a system call each time (glibc no longer caches it), about
 * a microsecond on a proxied request: a counter bumped in every child of
 * fork() tells the same for the price of a load.
 */
static unsigned long  ngx_oauth_store_forks;
static int            ngx_oauth_store_atfork;


static void ngx_oauth_store_forked(void);
static int ngx_oauth_store_env_open(ngx_oauth_store_t *st,
    const ngx_oauth_store_conf_t *conf, char *err, size_t errlen);
static int ngx_oauth_store_check_file(ngx_oauth_store_t *st,
    const char *path, char *err, size_t errlen);
static int ngx_oauth_store_check_mode(const char *path, int fd);
static int ngx_oauth_store_init(ngx_oauth_store_t *st, const char *path,
    char *err, size_t errlen);
static int ngx_oauth_store_tag(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_dbi *const *dbi, const char *path, char *err, size_t errlen);
static int ngx_oauth_store_init_fail(ngx_oauth_store_t *st, int rc,
    const char *what, const char *path, char *err, size_t errlen);
static int ngx_oauth_store_same_process(ngx_oauth_store_t *st);
static int ngx_oauth_store_begin(ngx_oauth_store_t *st, unsigned flags,
    MDB_txn **txn);
static int ngx_oauth_store_commit(ngx_oauth_store_t *st, MDB_txn *txn,
    ngx_oauth_event_add_t *add);
static int ngx_oauth_store_fail(ngx_oauth_store_t *st, int rc,
    const char *what);
static int ngx_oauth_store_flow_key(ngx_oauth_store_t *st,
    const char *state, size_t len, unsigned char *key);
static int ngx_oauth_store_conn_key(unsigned char *key, size_t *len,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static int ngx_oauth_store_conn_prefix(unsigned char *key, size_t *len,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider);
static int ngx_oauth_store_conn_kv(ngx_oauth_store_t *st, unsigned char *key,
    MDB_val *k, const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static int ngx_oauth_store_prefixed(const MDB_val *k,
    const unsigned char *prefix, size_t plen);
static int ngx_oauth_store_str_eq(const ngx_oauth_str_t *a,
    const ngx_oauth_str_t *b);
static int ngx_oauth_store_conn_check(const ngx_oauth_conn_t *conn,
    const MDB_val *key);
static int ngx_oauth_store_meta_key(const char *key, MDB_val *k);
static int ngx_oauth_store_walk(ngx_oauth_store_t *st, MDB_dbi dbi,
    unsigned flags, const unsigned char *prefix, size_t plen,
    ngx_oauth_store_visit_pt visit, void *data, size_t *bad);
static int ngx_oauth_store_walk_txn(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_dbi dbi, const unsigned char *prefix, size_t plen,
    ngx_oauth_store_visit_pt visit, void *data, size_t *bad);
static int ngx_oauth_store_purge_visit(ngx_oauth_store_t *st,
    MDB_cursor *cur, MDB_val *k, MDB_val *v, void *data);
static int ngx_oauth_store_evict_visit(ngx_oauth_store_t *st,
    MDB_cursor *cur, MDB_val *k, MDB_val *v, void *data);
static int ngx_oauth_store_due_visit(ngx_oauth_store_t *st,
    MDB_cursor *cur, MDB_val *k, MDB_val *v, void *data);
static int ngx_oauth_store_put_commit(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_dbi dbi, MDB_val *k, MDB_val *v);
static int ngx_oauth_store_del_commit(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_dbi dbi, MDB_val *k);
static time_t ngx_oauth_store_time(uint64_t v);
static int ngx_oauth_store_room(ngx_oauth_store_t *st, size_t len);
static int ngx_oauth_store_flow_take_txn(ngx_oauth_store_t *st,
    unsigned char *key, ngx_oauth_flow_t *flow, int spent);
static int ngx_oauth_store_spent_put(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_val *k, const ngx_oauth_flow_t *flow);
static int ngx_oauth_store_flow_evict(ngx_oauth_store_t *st, MDB_txn *txn,
    const ngx_oauth_str_t *owner, size_t keep, size_t *evicted);
static int ngx_oauth_store_lease_held(const MDB_val *v, uint64_t holder,
    time_t now);
static int ngx_oauth_store_lease_other(const MDB_val *v, uint64_t holder);
static int ngx_oauth_store_lease_look(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_val *k, uint64_t holder, time_t now, unsigned *was);
static void ngx_oauth_store_put64(unsigned char *p, uint64_t v);
static uint64_t ngx_oauth_store_get64(const unsigned char *p);
static int ngx_oauth_store_conn_write(ngx_oauth_store_t *st,
    ngx_oauth_conn_t *conn, const uint64_t *expect,
    ngx_oauth_event_add_t *add, int keep);
static int ngx_oauth_store_conn_stored(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_val *k, int strict, int *exists, uint64_t *version);
static int ngx_oauth_store_conn_may(ngx_oauth_store_t *st,
    const ngx_oauth_conn_t *conn, const uint64_t *expect, int keep,
    int exists, uint64_t version);
static int ngx_oauth_store_outbox_add(ngx_oauth_store_t *st, MDB_txn *txn,
    ngx_oauth_event_add_t *add);
static int ngx_oauth_store_outbox_blocked(const ngx_oauth_outbox_rec_t *rec,
    const ngx_oauth_outbox_rec_t *list, size_t n);


/* in the order of the MDB_dbi members of ngx_oauth_store_t */
static const char  *ngx_oauth_store_dbs[NGX_OAUTH_STORE_DBS] = {
    "meta", "flows", "conns", "leases", "events", "spent"
};


int
ngx_oauth_store_open(ngx_oauth_store_t **st,
    const ngx_oauth_store_conf_t *conf, int *stale, char *err,
    size_t errlen)
{
    int                 rc, dead;
    ngx_oauth_store_t  *s;

    *st = NULL;

    if (stale != NULL) {
        *stale = 0;
    }

    if (errlen) {
        err[0] = '\0';
    }

    if (conf == NULL || conf->path == NULL || conf->path[0] == '\0') {
        snprintf(err, errlen, "no store path");
        return NGX_OAUTH_INVALID;
    }

    s = calloc(1, sizeof(ngx_oauth_store_t));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NGX_OAUTH_NOMEM;
    }

    s->pid = getpid();

    if (!ngx_oauth_store_atfork
        && pthread_atfork(NULL, NULL, ngx_oauth_store_forked) == 0)
    {
        ngx_oauth_store_atfork = 1;
    }

    s->forks = ngx_oauth_store_forks;

    rc = ngx_oauth_store_env_open(s, conf, err, errlen);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    /* before any transaction touches a page that may lie beyond the end */

    rc = ngx_oauth_store_check_file(s, conf->path, err, errlen);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    /* slots of readers that died (kill -9) hold back page reuse */

    dead = 0;

    rc = mdb_reader_check(s->env, &dead);
    if (rc != 0) {
        snprintf(err, errlen, "mdb_reader_check(\"%s\") failed: %s",
                 conf->path, mdb_strerror(rc));
        rc = NGX_OAUTH_ERROR;
        goto failed;
    }

    rc = ngx_oauth_store_init(s, conf->path, err, errlen);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    if (stale != NULL) {
        *stale = dead;
    }

    *st = s;

    return NGX_OAUTH_OK;

failed:

    if (s->env != NULL) {
        mdb_env_close(s->env);
    }

    free(s);

    return rc;
}


void
ngx_oauth_store_close(ngx_oauth_store_t *st)
{
    if (st == NULL) {
        return;
    }

    mdb_env_close(st->env);
    free(st);
}


const char *
ngx_oauth_store_error(ngx_oauth_store_t *st)
{
    if (st == NULL) {
        return "no store";
    }

    return st->err;
}


int
ngx_oauth_store_reader_check(ngx_oauth_store_t *st, int *stale)
{
    int  rc, dead;

    if (stale != NULL) {
        *stale = 0;
    }

    if (ngx_oauth_store_same_process(st) != NGX_OAUTH_OK) {
        return NGX_OAUTH_ERROR;
    }

    dead = 0;

    rc = mdb_reader_check(st->env, &dead);
    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_reader_check");
    }

    if (stale != NULL) {
        *stale = dead;
    }

    return NGX_OAUTH_OK;
}


int
ngx_oauth_store_flow_put(ngx_oauth_store_t *st, const char *state,
    size_t len, const ngx_oauth_flow_t *flow)
{
    return ngx_oauth_store_flow_add(st, state, len, flow, 0, NULL);
}


int
ngx_oauth_store_flow_add(ngx_oauth_store_t *st, const char *state,
    size_t len, const ngx_oauth_flow_t *flow, size_t max, size_t *evicted)
{
    int             rc, ret;
    size_t          n;
    MDB_val         k, v;
    MDB_txn        *txn;
    unsigned char  *buf, key[NGX_OAUTH_STORE_HASH_LEN];

    if (evicted) {
        *evicted = 0;
    }

    ret = ngx_oauth_store_flow_key(st, state, len, key);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_flow_encode(flow, &buf, &n);
    if (ret != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err), "flow record not encoded");
        return ret;
    }

    txn = NULL;

    ret = ngx_oauth_store_room(st, n);
    if (ret != NGX_OAUTH_OK) {
        goto done;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        goto done;
    }

    /* an owner's oldest pending flows make room for the new one */

    if (max) {
        ret = ngx_oauth_store_flow_evict(st, txn, &flow->owner, max - 1,
                                         evicted);
        if (ret != NGX_OAUTH_OK) {
            goto done;
        }
    }

    k.mv_size = sizeof(key);
    k.mv_data = key;
    v.mv_size = n;
    v.mv_data = buf;

    /* a state is random: one that exists already is never replaced */

    rc = mdb_put(txn, st->flows, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        snprintf(st->err, sizeof(st->err), "flow state exists");
        ret = NGX_OAUTH_CONFLICT;
        goto done;
    }

    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_put");
        goto done;
    }

    /* the transaction is gone after a commit, whatever the result */

    ret = ngx_oauth_store_commit(st, txn, NULL);
    txn = NULL;

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    free(buf);

    return ret;
}


int
ngx_oauth_store_flow_take(ngx_oauth_store_t *st, const char *state,
    size_t len, ngx_oauth_flow_t *flow)
{
    int            ret;
    unsigned char  key[NGX_OAUTH_STORE_HASH_LEN];

    memset(flow, 0, sizeof(ngx_oauth_flow_t));

    ret = ngx_oauth_store_flow_key(st, state, len, key);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    /*
     * The flow goes and its spent record comes in one transaction; on a
     * map too full for the record the flow is taken without it: a reload
     * then gets the plain invalid_state, never store_full.
     */

    ret = ngx_oauth_store_flow_take_txn(st, key, flow, 1);

    if (ret == NGX_OAUTH_FULL) {
        ret = ngx_oauth_store_flow_take_txn(st, key, flow, 0);
    }

    return ret;
}


static int
ngx_oauth_store_flow_take_txn(ngx_oauth_store_t *st, unsigned char *key,
    ngx_oauth_flow_t *flow, int spent)
{
    int       rc, ret, dec;
    MDB_val   k, v;
    MDB_txn  *txn;

    memset(flow, 0, sizeof(ngx_oauth_flow_t));

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    k.mv_size = NGX_OAUTH_STORE_HASH_LEN;
    k.mv_data = key;

    rc = mdb_get(txn, st->flows, &k, &v);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");
        goto done;
    }

    /*
     * decode copies the record out of the map before the delete; a record
     * that does not decode is deleted all the same, and its state fails
     */

    dec = ngx_oauth_flow_decode(v.mv_data, v.mv_size, flow);
    memcpy(flow->state_hash, key, sizeof(flow->state_hash));

    if (spent && dec == NGX_OAUTH_OK) {
        ret = ngx_oauth_store_spent_put(st, txn, &k, flow);
        if (ret != NGX_OAUTH_OK) {
            goto done;
        }
    }

    ret = ngx_oauth_store_del_commit(st, txn, st->flows, &k);
    txn = NULL;

    if (ret != NGX_OAUTH_OK) {
        goto done;
    }

    if (dec != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err), "flow record does not decode");
    }

    ret = dec;

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    if (ret != NGX_OAUTH_OK) {
        ngx_oauth_flow_free(flow);
    }

    return ret;
}


/*
 * What a reload of a spent callback needs, under the flow's key: where
 * it goes back to, how and for which provider, until the flow would have
 * expired.  Nothing secret: no owner, verifier, browser hash or params.
 */

static int
ngx_oauth_store_spent_put(ngx_oauth_store_t *st, MDB_txn *txn, MDB_val *k,
    const ngx_oauth_flow_t *flow)
{
    int                rc, ret;
    size_t             len;
    MDB_val            v;
    unsigned char     *buf;
    ngx_oauth_flow_t   sp;

    memset(&sp, 0, sizeof(ngx_oauth_flow_t));

    sp.provider = flow->provider;
    sp.return_to = flow->return_to;
    sp.mode = flow->mode;
    sp.created = flow->created;
    sp.expires = flow->expires;

    ret = ngx_oauth_flow_encode(&sp, &buf, &len);
    if (ret != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err), "spent flow does not encode");
        return ret;
    }

    v.mv_size = len;
    v.mv_data = buf;

    rc = mdb_put(txn, st->spent, k, &v, 0);

    free(buf);

    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_put");
    }

    return NGX_OAUTH_OK;
}


int
ngx_oauth_store_flow_spent(ngx_oauth_store_t *st, const char *state,
    size_t len, ngx_oauth_flow_t *flow)
{
    int             rc, ret;
    MDB_val         k, v;
    MDB_txn        *txn;
    unsigned char   key[NGX_OAUTH_STORE_HASH_LEN];

    memset(flow, 0, sizeof(ngx_oauth_flow_t));

    ret = ngx_oauth_store_flow_key(st, state, len, key);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    k.mv_size = sizeof(key);
    k.mv_data = key;

    rc = mdb_get(txn, st->spent, &k, &v);

    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");

    } else {
        ret = ngx_oauth_flow_decode(v.mv_data, v.mv_size, flow);
    }

    mdb_txn_abort(txn);

    return ret;
}


typedef struct {
    time_t  now;
    size_t  purged;
    size_t  limit;       /* deletions in this transaction at most */
    size_t  batch;       /* deletions in this transaction so far */
} ngx_oauth_store_purge_t;


static int ngx_oauth_store_purge_db(ngx_oauth_store_t *st, MDB_dbi dbi,
    ngx_oauth_store_purge_t *p);


/* deletions per transaction when the map has room for them */
#define NGX_OAUTH_STORE_PURGE_BATCH  256


int
ngx_oauth_store_flow_purge(ngx_oauth_store_t *st, time_t now,
    size_t *purged)
{
    int                      ret;
    ngx_oauth_store_purge_t  p;

    if (purged != NULL) {
        *purged = 0;
    }

    p.now = now;
    p.purged = 0;

    ret = ngx_oauth_store_purge_db(st, st->flows, &p);

    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    if (purged != NULL) {
        *purged = p.purged;
    }

    /* spent records (flow records too) go with their flows' expiry */

    p.purged = 0;

    return ngx_oauth_store_purge_db(st, st->spent, &p);
}


/*
 * The expired records of dbi, in transactions of a bounded number of
 * deletions: a delete copies the pages it touches, and deleting keys
 * scattered over a nearly full map in one transaction can need more pages
 * than the reserve has (MDB_MAP_FULL).  On a full map the batch is halved
 * down to one deletion, which needs only one path of pages; each commit
 * frees pages for the next.
 */

static int
ngx_oauth_store_purge_db(ngx_oauth_store_t *st, MDB_dbi dbi,
    ngx_oauth_store_purge_t *p)
{
    int     ret;
    size_t  bad;

    p->limit = NGX_OAUTH_STORE_PURGE_BATCH;

    for ( ;; ) {
        p->batch = 0;

        ret = ngx_oauth_store_walk(st, dbi, 0, NULL, 0,
                                   ngx_oauth_store_purge_visit, p, &bad);

        if (ret == NGX_OAUTH_FULL && p->limit > 1) {
            p->purged -= p->batch;
            p->limit /= 2;
            continue;
        }

        if (ret != NGX_OAUTH_OK) {
            return ret;
        }

        if (p->batch < p->limit) {
            return NGX_OAUTH_OK;
        }
    }
}


static int
ngx_oauth_store_purge_visit(ngx_oauth_store_t *st, MDB_cursor *cur,
    MDB_val *k, MDB_val *v, void *data)
{
    ngx_oauth_store_purge_t  *p = data;

    int               rc;
    time_t            expires;
    ngx_oauth_flow_t  flow;

    if (ngx_oauth_flow_decode(v->mv_data, v->mv_size, &flow)
        == NGX_OAUTH_OK)
    {
        expires = flow.expires;
        ngx_oauth_flow_free(&flow);

        if (expires >= p->now) {
            return NGX_OAUTH_STORE_NEXT;
        }
    }

    /* expired, or a record nobody can use */

    rc = mdb_cursor_del(cur, 0);
    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_cursor_del");
    }

    p->purged++;
    p->batch++;

    return (p->batch < p->limit) ? NGX_OAUTH_STORE_NEXT
                                 : NGX_OAUTH_STORE_STOP;
}


int
ngx_oauth_store_conn_get(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, ngx_oauth_conn_t *conn)
{
    int             rc, ret;
    MDB_val         k, v;
    MDB_txn        *txn;
    unsigned char   key[NGX_OAUTH_STORE_KEY_MAX];

    memset(conn, 0, sizeof(ngx_oauth_conn_t));

    ret = ngx_oauth_store_conn_kv(st, key, &k, owner, provider, account);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_get(txn, st->conns, &k, &v);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");
        goto done;
    }

    ret = ngx_oauth_conn_decode(v.mv_data, v.mv_size, conn);
    if (ret != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err),
                 "connection record does not decode");
        goto done;
    }

    /* a record copied under another key must not be believed */

    ret = ngx_oauth_store_conn_check(conn, &k);
    if (ret != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err),
                 "connection record under a wrong key");
        ngx_oauth_conn_free(conn);
    }

done:

    mdb_txn_abort(txn);

    return ret;
}


/*
 * oauth_token without an account on every proxied request: the first key
 * under (owner, provider) and a look at the next, in one transaction,
 * instead of counting with conn_each and reading again with conn_get.
 */

int
ngx_oauth_store_conn_only(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    ngx_oauth_conn_t *conn)
{
    int             rc, ret;
    size_t          plen;
    MDB_val         k, v, k2, v2;
    MDB_txn        *txn;
    MDB_cursor     *cur;
    unsigned char   prefix[NGX_OAUTH_STORE_KEY_MAX];

    memset(conn, 0, sizeof(ngx_oauth_conn_t));

    if (provider == NULL
        || ngx_oauth_store_conn_prefix(prefix, &plen, owner, provider)
           != NGX_OAUTH_OK)
    {
        snprintf(st->err, sizeof(st->err), "invalid connection key");
        return NGX_OAUTH_INVALID;
    }

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_cursor_open(txn, st->conns, &cur);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_open");
        goto done;
    }

    k.mv_size = plen;
    k.mv_data = prefix;

    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    if (rc == 0 && !ngx_oauth_store_prefixed(&k, prefix, plen)) {
        rc = MDB_NOTFOUND;
    }

    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_get");
        goto close;
    }

    rc = mdb_cursor_get(cur, &k2, &v2, MDB_NEXT);

    if (rc == 0 && ngx_oauth_store_prefixed(&k2, prefix, plen)) {
        ret = NGX_OAUTH_CONFLICT;
        goto close;
    }

    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_get");
        goto close;
    }

    if (ngx_oauth_conn_decode(v.mv_data, v.mv_size, conn) != NGX_OAUTH_OK) {
        ret = NGX_OAUTH_CONFLICT;
        goto close;
    }

    if (ngx_oauth_store_conn_check(conn, &k) != NGX_OAUTH_OK) {
        ngx_oauth_conn_free(conn);
        ret = NGX_OAUTH_CONFLICT;
        goto close;
    }

    ret = NGX_OAUTH_OK;

close:

    mdb_cursor_close(cur);

done:

    mdb_txn_abort(txn);

    return ret;
}


int
ngx_oauth_store_conn_put(ngx_oauth_store_t *st, ngx_oauth_conn_t *conn,
    const uint64_t *expect)
{
    return ngx_oauth_store_conn_put_event(st, conn, expect, NULL);
}


int
ngx_oauth_store_conn_put_event(ngx_oauth_store_t *st, ngx_oauth_conn_t *conn,
    const uint64_t *expect, ngx_oauth_event_add_t *add)
{
    return ngx_oauth_store_conn_write(st, conn, expect, add,
                                      NGX_OAUTH_STORE_KEEP_NONE);
}


int
ngx_oauth_store_conn_put_version(ngx_oauth_store_t *st,
    ngx_oauth_conn_t *conn, int newer)
{
    return ngx_oauth_store_conn_write(st, conn, NULL, NULL,
                                      newer ? NGX_OAUTH_STORE_KEEP_NEWER
                                            : NGX_OAUTH_STORE_KEEP_ANY);
}


static int
ngx_oauth_store_conn_write(ngx_oauth_store_t *st, ngx_oauth_conn_t *conn,
    const uint64_t *expect, ngx_oauth_event_add_t *add, int keep)
{
    int               rc, ret, exists, room;
    size_t            n;
    MDB_val           k, v;
    MDB_txn          *txn;
    uint64_t          version;
    unsigned char    *buf, key[NGX_OAUTH_STORE_KEY_MAX];
    ngx_oauth_conn_t  rec;

    buf = NULL;

    ret = ngx_oauth_store_conn_kv(st, key, &k, &conn->owner, &conn->provider,
                                  &conn->account);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    /*
     * Looked at before the write transaction: the free list can only be
     * read in a read-only one.  A connection record is a few KiB.
     */

    room = ngx_oauth_store_room(st, 4096);
    if (room != NGX_OAUTH_OK && room != NGX_OAUTH_FULL) {
        return room;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    /* the read, the check and the write share one write transaction */

    ret = ngx_oauth_store_conn_stored(st, txn, &k, expect != NULL, &exists,
                                      &version);
    if (ret != NGX_OAUTH_OK) {
        goto done;
    }

    ret = ngx_oauth_store_conn_may(st, conn, expect, keep, exists, version);
    if (ret != NGX_OAUTH_OK) {
        goto done;
    }

    /* the caller's struct changes only once the put is committed */

    rec = *conn;
    rec.version = keep ? conn->version : version + 1;

    ret = ngx_oauth_conn_encode(&rec, &buf, &n);
    if (ret != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err), "connection record not encoded");
        goto done;
    }

    /* a new connection may not take the reserve; a changed one may */

    if (!exists && room != NGX_OAUTH_OK) {
        ret = room;
        goto done;
    }

    v.mv_size = n;
    v.mv_data = buf;

    rc = mdb_put(txn, st->conns, &k, &v, 0);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_put");
        goto done;
    }

    ret = ngx_oauth_store_commit(st, txn, add);
    txn = NULL;

    if (ret == NGX_OAUTH_OK) {
        conn->version = rec.version;
    }

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    free(buf);

    return ret;
}


/*
 * Whether a connection is stored under k and its version (0 if not, or
 * if its record does not decode and strict is not set).
 */

static int
ngx_oauth_store_conn_stored(ngx_oauth_store_t *st, MDB_txn *txn, MDB_val *k,
    int strict, int *exists, uint64_t *version)
{
    int               rc;
    MDB_val           v;
    ngx_oauth_conn_t  old;

    *exists = 0;
    *version = 0;

    rc = mdb_get(txn, st->conns, k, &v);

    if (rc == MDB_NOTFOUND) {
        return NGX_OAUTH_OK;
    }

    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_get");
    }

    *exists = 1;

    if (ngx_oauth_conn_decode(v.mv_data, v.mv_size, &old) == NGX_OAUTH_OK) {
        *version = old.version;
        ngx_oauth_conn_free(&old);
        return NGX_OAUTH_OK;
    }

    if (strict) {
        snprintf(st->err, sizeof(st->err),
                 "stored connection record does not decode");
        return NGX_OAUTH_INVALID;
    }

    return NGX_OAUTH_OK;
}


/* whether conn may replace the stored version (exists: one is stored) */

static int
ngx_oauth_store_conn_may(ngx_oauth_store_t *st, const ngx_oauth_conn_t *conn,
    const uint64_t *expect, int keep, int exists, uint64_t version)
{
    if (expect != NULL
        && (*expect == 0 ? exists : (!exists || version != *expect)))
    {
        snprintf(st->err, sizeof(st->err),
                 "connection changed: version %llu, expected %llu",
                 (unsigned long long) version,
                 (unsigned long long) *expect);
        return NGX_OAUTH_CONFLICT;
    }

    /* a copy of another store's record keeps its version, not an older */

    if (keep == NGX_OAUTH_STORE_KEEP_NEWER && exists
        && version > conn->version)
    {
        snprintf(st->err, sizeof(st->err),
                 "connection is newer: version %llu, given %llu",
                 (unsigned long long) version,
                 (unsigned long long) conn->version);
        return NGX_OAUTH_CONFLICT;
    }

    return NGX_OAUTH_OK;
}


int
ngx_oauth_store_conn_delete(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account)
{
    return ngx_oauth_store_conn_delete_event(st, owner, provider, account,
                                             NULL);
}


int
ngx_oauth_store_conn_delete_event(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, ngx_oauth_event_add_t *add)
{
    int             rc, ret;
    MDB_val         k;
    MDB_txn        *txn;
    unsigned char   key[NGX_OAUTH_STORE_KEY_MAX];

    ret = ngx_oauth_store_conn_kv(st, key, &k, owner, provider, account);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_del(txn, st->conns, &k, NULL);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_del");
        goto done;
    }

    /* a lease of a deleted connection would only linger */

    rc = mdb_del(txn, st->leases, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_del");
        goto done;
    }

    ret = ngx_oauth_store_commit(st, txn, add);
    txn = NULL;

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    return ret;
}


/*
 * Pages in use: the map's high-water mark less the pages on LMDB's free
 * list (reused by later writes).  quick: skip the free list when the
 * high-water mark alone leaves more than the reserve.  txn is read-only
 * (LMDB opens no cursor on the free list in a write transaction).
 */

static int
ngx_oauth_store_pages(ngx_oauth_store_t *st, MDB_txn *txn, int quick,
    size_t *total, size_t *used, size_t *reserve)
{
    int          rc;
    size_t       top, nfree;
    MDB_val      k, v;
    MDB_stat     ms;
    MDB_envinfo  info;
    MDB_cursor  *cur;

    rc = mdb_env_info(st->env, &info);
    if (rc == 0) {
        rc = mdb_env_stat(st->env, &ms);
    }

    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_env_info");
    }

    *total = info.me_mapsize / ms.ms_psize;
    *reserve = *total / NGX_OAUTH_STORE_RESERVE_PART;

    if (*reserve < NGX_OAUTH_STORE_RESERVE_MIN) {
        *reserve = (*total / 4 < NGX_OAUTH_STORE_RESERVE_MIN)
                   ? *total / 4 : NGX_OAUTH_STORE_RESERVE_MIN;
    }

    top = info.me_last_pgno + 1;
    *used = top;

    if (quick && *total > top && *total - top > 2 * *reserve) {
        return NGX_OAUTH_OK;
    }

    /* free list records: a page number list, its first word the count */

    rc = mdb_cursor_open(txn, 0, &cur);
    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_cursor_open");
    }

    nfree = 0;

    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (v.mv_size >= sizeof(size_t)) {
            nfree += *(size_t *) v.mv_data;
        }
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        return ngx_oauth_store_fail(st, rc, "mdb_cursor_get");
    }

    *used = (nfree < top) ? top - nfree : 0;

    return NGX_OAUTH_OK;
}


/*
 * Whether a new record of len bytes may be stored: new flows and new
 * connections leave the last pages of the map (the reserve) to the
 * writes that must always commit, refreshes, deletes and purges, so that
 * a store filled by starts still lets its users disconnect and the
 * purge free it.
 */

static int
ngx_oauth_store_room(ngx_oauth_store_t *st, size_t len)
{
    int       ret;
    size_t    total, used, reserve, need;
    MDB_txn  *txn;

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_pages(st, txn, 1, &total, &used, &reserve);

    mdb_txn_abort(txn);

    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    /* the record's pages, and a couple of tree pages on the way to it */

    need = len / 4096 + 2;

    if (used + need + reserve <= total) {
        return NGX_OAUTH_OK;
    }

    snprintf(st->err, sizeof(st->err),
             "store is full: %zu of %zu pages used, the last %zu are kept "
             "for refreshes, deletes and purges", used, total, reserve);

    return NGX_OAUTH_FULL;
}


int
ngx_oauth_store_usage(ngx_oauth_store_t *st, ngx_oauth_store_usage_t *u)
{
    int        ret;
    size_t     total, used, reserve;
    MDB_txn   *txn;
    MDB_stat   ms;

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_pages(st, txn, 0, &total, &used, &reserve);

    mdb_txn_abort(txn);

    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    if (mdb_env_stat(st->env, &ms) != 0) {
        snprintf(st->err, sizeof(st->err), "mdb_env_stat() failed");
        return NGX_OAUTH_ERROR;
    }

    u->size = total * ms.ms_psize;
    u->used = used * ms.ms_psize;
    u->reserve = reserve * ms.ms_psize;

    return NGX_OAUTH_OK;
}


/* the flows of owner beyond keep, oldest first, are deleted in txn */

typedef struct {
    time_t          created;
    unsigned char   key[NGX_OAUTH_STORE_HASH_LEN];
} ngx_oauth_store_aged_t;


static int
ngx_oauth_store_aged_cmp(const void *a, const void *b)
{
    const ngx_oauth_store_aged_t  *x = a, *y = b;

    return (x->created > y->created) - (x->created < y->created);
}


typedef struct {
    const ngx_oauth_str_t   *owner;
    size_t                   n;
    size_t                   size;
    ngx_oauth_store_aged_t  *aged;
} ngx_oauth_store_evict_t;


static int
ngx_oauth_store_flow_evict(ngx_oauth_store_t *st, MDB_txn *txn,
    const ngx_oauth_str_t *owner, size_t keep, size_t *evicted)
{
    int                      rc, ret;
    size_t                   i, bad;
    MDB_val                  k;
    ngx_oauth_store_evict_t  e;

    e.owner = owner;
    e.n = 0;
    e.size = 0;
    e.aged = NULL;

    ret = ngx_oauth_store_walk_txn(st, txn, st->flows, NULL, 0,
                                   ngx_oauth_store_evict_visit, &e, &bad);

    if (ret == NGX_OAUTH_OK && e.n > keep) {
        qsort(e.aged, e.n, sizeof(ngx_oauth_store_aged_t),
              ngx_oauth_store_aged_cmp);

        for (i = 0; i < e.n - keep; i++) {
            k.mv_size = NGX_OAUTH_STORE_HASH_LEN;
            k.mv_data = e.aged[i].key;

            rc = mdb_del(txn, st->flows, &k, NULL);
            if (rc != 0) {
                ret = ngx_oauth_store_fail(st, rc, "mdb_del");
                break;
            }
        }

        if (ret == NGX_OAUTH_OK && evicted) {
            *evicted = e.n - keep;
        }
    }

    free(e.aged);

    return ret;
}


/* collects the key and the age of each flow of e->owner */

static int
ngx_oauth_store_evict_visit(ngx_oauth_store_t *st, MDB_cursor *cur,
    MDB_val *k, MDB_val *v, void *data)
{
    ngx_oauth_store_evict_t  *e = data;

    ngx_oauth_flow_t         f;
    ngx_oauth_store_aged_t  *p;

    if (k->mv_size != NGX_OAUTH_STORE_HASH_LEN
        || ngx_oauth_flow_decode(v->mv_data, v->mv_size, &f)
           != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_STORE_BAD;
    }

    if (!ngx_oauth_store_str_eq(&f.owner, e->owner)) {
        ngx_oauth_flow_free(&f);
        return NGX_OAUTH_STORE_NEXT;
    }

    if (e->n == e->size) {
        e->size = e->size ? e->size * 2 : 32;

        p = realloc(e->aged, e->size * sizeof(ngx_oauth_store_aged_t));
        if (p == NULL) {
            ngx_oauth_flow_free(&f);
            snprintf(st->err, sizeof(st->err), "out of memory");
            return NGX_OAUTH_ERROR;
        }

        e->aged = p;
    }

    e->aged[e->n].created = f.created;
    memcpy(e->aged[e->n].key, k->mv_data, NGX_OAUTH_STORE_HASH_LEN);
    e->n++;

    ngx_oauth_flow_free(&f);

    return NGX_OAUTH_STORE_NEXT;
}


/* one put and the commit; the transaction ends whatever happens */

static int
ngx_oauth_store_put_commit(ngx_oauth_store_t *st, MDB_txn *txn, MDB_dbi dbi,
    MDB_val *k, MDB_val *v)
{
    int  rc;

    rc = mdb_put(txn, dbi, k, v, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return ngx_oauth_store_fail(st, rc, "mdb_put");
    }

    return ngx_oauth_store_commit(st, txn, NULL);
}


/* one delete and the commit; the transaction ends whatever happens */

static int
ngx_oauth_store_del_commit(ngx_oauth_store_t *st, MDB_txn *txn, MDB_dbi dbi,
    MDB_val *k)
{
    int  rc;

    rc = mdb_del(txn, dbi, k, NULL);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return ngx_oauth_store_fail(st, rc, "mdb_del");
    }

    return ngx_oauth_store_commit(st, txn, NULL);
}


/*
 * One cursor walk for every "each": a read-only or a write transaction,
 * optionally limited to keys starting with prefix.  A write walk is
 * committed only when it ran to its end.
 */

static int
ngx_oauth_store_walk(ngx_oauth_store_t *st, MDB_dbi dbi, unsigned flags,
    const unsigned char *prefix, size_t plen, ngx_oauth_store_visit_pt visit,
    void *data, size_t *bad)
{
    int       ret;
    MDB_txn  *txn;

    *bad = 0;

    ret = ngx_oauth_store_begin(st, flags, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_walk_txn(st, txn, dbi, prefix, plen, visit, data,
                                   bad);

    if (ret != NGX_OAUTH_OK || (flags & MDB_RDONLY)) {
        mdb_txn_abort(txn);
        return ret;
    }

    return ngx_oauth_store_commit(st, txn, NULL);
}


/* the walk inside a transaction the caller ends */

static int
ngx_oauth_store_walk_txn(ngx_oauth_store_t *st, MDB_txn *txn, MDB_dbi dbi,
    const unsigned char *prefix, size_t plen, ngx_oauth_store_visit_pt visit,
    void *data, size_t *bad)
{
    int          rc, ret, r;
    MDB_val      k, v;
    MDB_cursor  *cur;

    *bad = 0;

    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_cursor_open");
    }

    if (plen) {
        k.mv_size = plen;
        k.mv_data = (void *) prefix;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }

    ret = NGX_OAUTH_OK;

    /* after mdb_cursor_del() MDB_NEXT gives the item after the deleted */

    for ( /* void */ ; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {

        if (plen && !ngx_oauth_store_prefixed(&k, prefix, plen)) {
            break;
        }

        r = visit(st, cur, &k, &v, data);

        if (r < 0) {
            ret = r;
            break;
        }

        if (r == NGX_OAUTH_STORE_BAD) {
            (*bad)++;
            continue;
        }

        if (r == NGX_OAUTH_STORE_STOP) {
            break;
        }
    }

    if (ret == NGX_OAUTH_OK && rc != 0 && rc != MDB_NOTFOUND) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_get");
    }

    mdb_cursor_close(cur);

    return ret;
}


typedef struct {
    const ngx_oauth_str_t   *provider;
    ngx_oauth_conn_iter_pt   iter;
    void                    *data;
} ngx_oauth_store_conn_walk_t;


static int
ngx_oauth_store_conn_visit(ngx_oauth_store_t *st, MDB_cursor *cur,
    MDB_val *k, MDB_val *v, void *data)
{
    ngx_oauth_store_conn_walk_t  *w = data;

    int               stop;
    ngx_oauth_conn_t  conn;

    if (ngx_oauth_conn_decode(v->mv_data, v->mv_size, &conn)
        != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_STORE_BAD;
    }

    if (ngx_oauth_store_conn_check(&conn, k) != NGX_OAUTH_OK) {
        ngx_oauth_conn_free(&conn);
        return NGX_OAUTH_STORE_BAD;
    }

    /* without an owner the provider is filtered here, not by the key */

    if (w->provider != NULL
        && !ngx_oauth_store_str_eq(&conn.provider, w->provider))
    {
        ngx_oauth_conn_free(&conn);
        return NGX_OAUTH_STORE_NEXT;
    }

    stop = w->iter(&conn, w->data);
    ngx_oauth_conn_free(&conn);

    return stop ? NGX_OAUTH_STORE_STOP : NGX_OAUTH_STORE_NEXT;
}


int
ngx_oauth_store_conn_each(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    ngx_oauth_conn_iter_pt iter, void *data)
{
    int                          ret;
    size_t                       plen, bad;
    unsigned char                prefix[NGX_OAUTH_STORE_KEY_MAX];
    ngx_oauth_store_conn_walk_t  w;

    plen = 0;

    if (owner != NULL) {
        if (ngx_oauth_store_conn_prefix(prefix, &plen, owner, provider)
            != NGX_OAUTH_OK)
        {
            snprintf(st->err, sizeof(st->err), "invalid connection key");
            return NGX_OAUTH_INVALID;
        }

    } else if (provider != NULL
               && (provider->len == 0
                   || provider->len > NGX_OAUTH_PROVIDER_MAX
                   || provider->data == NULL))
    {
        snprintf(st->err, sizeof(st->err), "invalid provider");
        return NGX_OAUTH_INVALID;
    }

    w.provider = (owner == NULL) ? provider : NULL;
    w.iter = iter;
    w.data = data;

    ret = ngx_oauth_store_walk(st, st->conns, MDB_RDONLY, prefix, plen,
                               ngx_oauth_store_conn_visit, &w, &bad);

    if (ret == NGX_OAUTH_OK && bad) {
        snprintf(st->err, sizeof(st->err),
                 "%zu connection records do not decode", bad);
        ret = NGX_OAUTH_INVALID;
    }

    return ret;
}


typedef struct {
    ngx_oauth_flow_iter_pt      iter;
    ngx_oauth_flow_rewrite_pt   rewrite;
    void                       *data;
} ngx_oauth_store_flow_walk_t;


static int
ngx_oauth_store_flow_visit(ngx_oauth_store_t *st, MDB_cursor *cur,
    MDB_val *k, MDB_val *v, void *data)
{
    ngx_oauth_store_flow_walk_t  *w = data;

    int                r, rc;
    size_t             len;
    MDB_val            nv;
    unsigned char     *buf;
    ngx_oauth_flow_t   flow;

    if (ngx_oauth_flow_decode(v->mv_data, v->mv_size, &flow)
        != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_STORE_BAD;
    }

    if (k->mv_size == sizeof(flow.state_hash)) {
        memcpy(flow.state_hash, k->mv_data, sizeof(flow.state_hash));
    }

    if (w->iter) {
        r = w->iter(&flow, w->data);
        ngx_oauth_flow_free(&flow);

        return r ? NGX_OAUTH_STORE_STOP : NGX_OAUTH_STORE_NEXT;
    }

    r = w->rewrite(&flow, w->data);

    if (r <= 0) {
        ngx_oauth_flow_free(&flow);
        return r;
    }

    r = ngx_oauth_flow_encode(&flow, &buf, &len);
    ngx_oauth_flow_free(&flow);

    if (r != NGX_OAUTH_OK) {
        return r;
    }

    nv.mv_size = len;
    nv.mv_data = buf;

    rc = mdb_cursor_put(cur, k, &nv, MDB_CURRENT);
    free(buf);

    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_cursor_put");
    }

    return NGX_OAUTH_STORE_NEXT;
}


int
ngx_oauth_store_flow_each(ngx_oauth_store_t *st, ngx_oauth_flow_iter_pt iter,
    void *data)
{
    int                          ret;
    size_t                       bad;
    ngx_oauth_store_flow_walk_t  w;

    w.iter = iter;
    w.rewrite = NULL;
    w.data = data;

    ret = ngx_oauth_store_walk(st, st->flows, MDB_RDONLY, NULL, 0,
                               ngx_oauth_store_flow_visit, &w, &bad);

    if (ret == NGX_OAUTH_OK && bad) {
        snprintf(st->err, sizeof(st->err),
                 "%zu flow records do not decode", bad);
        ret = NGX_OAUTH_INVALID;
    }

    return ret;
}


int
ngx_oauth_store_flow_rewrite(ngx_oauth_store_t *st,
    ngx_oauth_flow_rewrite_pt fn, void *data)
{
    size_t                       bad;
    ngx_oauth_store_flow_walk_t  w;

    w.iter = NULL;
    w.rewrite = fn;
    w.data = data;

    /* records that do not decode are left for purge */

    return ngx_oauth_store_walk(st, st->flows, 0, NULL, 0,
                                ngx_oauth_store_flow_visit, &w, &bad);
}


int
ngx_oauth_store_lease_take(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, uint64_t holder, time_t now,
    time_t deadline)
{
    return ngx_oauth_store_lease_claim(st, owner, provider, account, holder,
                                       now, deadline, 0, NULL);
}


int
ngx_oauth_store_lease_claim(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, uint64_t holder, time_t now,
    time_t deadline, unsigned flags, unsigned *taken)
{
    int             ret;
    unsigned        was;
    MDB_val         k, v;
    MDB_txn        *txn;
    unsigned char   key[NGX_OAUTH_STORE_KEY_MAX];
    unsigned char   lease[NGX_OAUTH_STORE_LEASE_LEN];

    if (taken) {
        *taken = 0;
    }

    ret = ngx_oauth_store_conn_kv(st, key, &k, owner, provider, account);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    /*
     * Requests waiting on someone else's refresh poll here: a read-only
     * look first, so that a busy lease costs no write transaction (which
     * would queue behind every other process's commit).  A failure to
     * read is left for the write transaction to report.
     */

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_lease_look(st, txn, &k, holder, now, &was);

    mdb_txn_abort(txn);

    if (ret == NGX_OAUTH_BUSY) {
        return ret;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_lease_look(st, txn, &k, holder, now, &was);
    if (ret != NGX_OAUTH_OK) {
        mdb_txn_abort(txn);
        return ret;
    }

    ngx_oauth_store_put64(lease, holder);
    ngx_oauth_store_put64(lease + 8, (uint64_t) (int64_t) deadline);
    ngx_oauth_store_put64(lease + 16, flags & NGX_OAUTH_LEASE_CALLING);

    v.mv_size = sizeof(lease);
    v.mv_data = lease;

    /* ends the transaction either way */

    ret = ngx_oauth_store_put_commit(st, txn, st->leases, &k, &v);

    if (ret == NGX_OAUTH_OK && taken) {
        *taken = was;
    }

    return ret;
}


/*
 * NGX_OAUTH_BUSY when the lease under k keeps holder out; else *was says
 * whether the lease is taken over from another holder and how it was
 * left (0: none, or holder's own).
 */

static int
ngx_oauth_store_lease_look(ngx_oauth_store_t *st, MDB_txn *txn, MDB_val *k,
    uint64_t holder, time_t now, unsigned *was)
{
    int      rc;
    MDB_val  v;

    *was = 0;

    rc = mdb_get(txn, st->leases, k, &v);

    if (rc == MDB_NOTFOUND) {
        return NGX_OAUTH_OK;
    }

    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_get");
    }

    /* a lease value of another size is garbage: take it over */

    if (ngx_oauth_store_lease_held(&v, holder, now)) {
        return NGX_OAUTH_BUSY;
    }

    if (v.mv_size >= NGX_OAUTH_STORE_LEASE_OLD
        && ngx_oauth_store_get64(v.mv_data) != holder)
    {
        *was = NGX_OAUTH_LEASE_TAKEN_OVER;

        if (v.mv_size == NGX_OAUTH_STORE_LEASE_LEN) {
            *was |= (unsigned) ngx_oauth_store_get64(
                        (unsigned char *) v.mv_data + 16);
        }
    }

    return NGX_OAUTH_OK;
}


/*
 * Whether a stored lease keeps holder out: another holder's, before its
 * deadline, and its process alive.  The high 32 bits of a holder are the
 * process id of the holder (nginx workers share one pid namespace), so a
 * worker killed in the middle of a refresh leaves a lease that is free at
 * once rather than at its deadline.  A process of another user (EPERM)
 * counts as alive.
 */

static int
ngx_oauth_store_lease_held(const MDB_val *v, uint64_t holder, time_t now)
{
    pid_t     pid;
    time_t    deadline;
    uint64_t  other;

    if (!ngx_oauth_store_lease_other(v, holder)) {
        return 0;
    }

    other = ngx_oauth_store_get64(v->mv_data);

    deadline = ngx_oauth_store_time(
                   ngx_oauth_store_get64((unsigned char *) v->mv_data + 8));

    if (deadline < now) {
        return 0;
    }

    pid = (pid_t) (other >> 32);

    if (pid > 0 && kill(pid, 0) == -1 && errno == ESRCH) {
        return 0;
    }

    return 1;
}


/* a lease value of a known size whose holder is not holder */

static int
ngx_oauth_store_lease_other(const MDB_val *v, uint64_t holder)
{
    if (v->mv_size != NGX_OAUTH_STORE_LEASE_LEN
        && v->mv_size != NGX_OAUTH_STORE_LEASE_OLD)
    {
        return 0;
    }

    return ngx_oauth_store_get64(v->mv_data) != holder;
}


int
ngx_oauth_store_lease_drop(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, uint64_t holder)
{
    int             rc, ret;
    MDB_val         k, v;
    MDB_txn        *txn;
    unsigned char   key[NGX_OAUTH_STORE_KEY_MAX];

    ret = ngx_oauth_store_conn_kv(st, key, &k, owner, provider, account);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_get(txn, st->leases, &k, &v);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");
        goto done;
    }

    if (ngx_oauth_store_lease_other(&v, holder)) {
        ret = NGX_OAUTH_BUSY;
        goto done;
    }

    ret = ngx_oauth_store_del_commit(st, txn, st->leases, &k);
    txn = NULL;

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    return ret;
}


int
ngx_oauth_store_meta_get(ngx_oauth_store_t *st, const char *key,
    unsigned char *buf, size_t *len)
{
    int       rc, ret;
    MDB_val   k, v;
    MDB_txn  *txn;

    if (ngx_oauth_store_meta_key(key, &k) != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err), "invalid meta key");
        return NGX_OAUTH_INVALID;
    }

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");
        goto done;
    }

    if (v.mv_size > *len) {
        *len = v.mv_size;
        ret = NGX_OAUTH_TOO_LARGE;
        goto done;
    }

    if (v.mv_size) {
        memcpy(buf, v.mv_data, v.mv_size);
    }

    *len = v.mv_size;
    ret = NGX_OAUTH_OK;

done:

    mdb_txn_abort(txn);

    return ret;
}


int
ngx_oauth_store_meta_update(ngx_oauth_store_t *st, const char *key,
    ngx_oauth_meta_update_pt fn, void *data)
{
    int            rc, ret, w;
    size_t         len;
    MDB_val        k, v;
    MDB_txn       *txn;
    unsigned char  buf[256];

    if (ngx_oauth_store_meta_key(key, &k) != NGX_OAUTH_OK
        || strcmp(key, NGX_OAUTH_STORE_VERSION_KEY) == 0)
    {
        snprintf(st->err, sizeof(st->err), "invalid meta key");
        return NGX_OAUTH_INVALID;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_get(txn, st->meta, &k, &v);

    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size > sizeof(buf))) {
        len = 0;

    } else if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");
        goto done;

    } else {
        len = v.mv_size;
        memcpy(buf, v.mv_data, len);
    }

    w = fn(buf, &len, sizeof(buf), data);

    if (w < 0) {
        ret = w;
        goto done;
    }

    if (w == 0) {
        ret = NGX_OAUTH_OK;
        goto done;
    }

    if (len > sizeof(buf)) {
        ret = NGX_OAUTH_TOO_LARGE;
        goto done;
    }

    v.mv_size = len;
    v.mv_data = buf;

    /* ends the transaction either way */

    return ngx_oauth_store_put_commit(st, txn, st->meta, &k, &v);

done:

    mdb_txn_abort(txn);

    return ret;
}


int
ngx_oauth_store_meta_put(ngx_oauth_store_t *st, const char *key,
    const unsigned char *buf, size_t len)
{
    int       ret;
    MDB_val   k, v;
    MDB_txn  *txn;

    if (ngx_oauth_store_meta_key(key, &k) != NGX_OAUTH_OK
        || strcmp(key, NGX_OAUTH_STORE_VERSION_KEY) == 0
        || (len && buf == NULL))
    {
        snprintf(st->err, sizeof(st->err), "invalid meta key or value");
        return NGX_OAUTH_INVALID;
    }

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    v.mv_size = len;
    v.mv_data = (void *) buf;

    /* ends the transaction either way */

    return ngx_oauth_store_put_commit(st, txn, st->meta, &k, &v);
}


int
ngx_oauth_store_copy(ngx_oauth_store_t *st, const char *dest)
{
    int  fd, rc, ret;

    if (ngx_oauth_store_same_process(st) != NGX_OAUTH_OK) {
        return NGX_OAUTH_ERROR;
    }

    if (dest == NULL || dest[0] == '\0') {
        snprintf(st->err, sizeof(st->err), "no backup path");
        return NGX_OAUTH_INVALID;
    }

    /*
     * mdb_env_copy2() would create the file 0666 less the umask: the copy
     * holds the same records as the store, so it gets the same mode
     */

    fd = open(dest, O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600);
    if (fd == -1) {
        snprintf(st->err, sizeof(st->err), "open(\"%s\") failed: %s",
                 dest, strerror(errno));
        return NGX_OAUTH_ERROR;
    }

    rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_env_copyfd2");
        goto failed;
    }

    if (fsync(fd) == -1) {
        snprintf(st->err, sizeof(st->err), "fsync(\"%s\") failed: %s",
                 dest, strerror(errno));
        ret = NGX_OAUTH_ERROR;
        goto failed;
    }

    if (close(fd) == -1) {
        fd = -1;
        snprintf(st->err, sizeof(st->err), "close(\"%s\") failed: %s",
                 dest, strerror(errno));
        ret = NGX_OAUTH_ERROR;
        goto failed;
    }

    return NGX_OAUTH_OK;

failed:

    if (fd != -1) {
        (void) close(fd);
    }

    (void) unlink(dest);

    return ret;
}


/*
 * The webhook outbox: events under an 8-byte big-endian sequence number,
 * so that key order is the order they were written in.  An event is
 * added in the write transaction of the connection change it reports.
 */

#define NGX_OAUTH_OUTBOX_SCAN      1024
#define NGX_OAUTH_OUTBOX_BLOCKED   64


static int
ngx_oauth_store_outbox_add(ngx_oauth_store_t *st, MDB_txn *txn,
    ngx_oauth_event_add_t *add)
{
    int             rc, ret;
    size_t          n;
    MDB_val         k, v;
    MDB_stat        ms;
    uint64_t        seq;
    MDB_cursor     *cur;
    unsigned char  *buf, key[8];

    add->dropped = 0;
    add->seq = 0;

    ret = ngx_oauth_outbox_encode(add->event, &buf, &n);
    if (ret != NGX_OAUTH_OK) {
        snprintf(st->err, sizeof(st->err), "event not encoded");
        return ret;
    }

    rc = mdb_cursor_open(txn, st->events, &cur);
    if (rc != 0) {
        free(buf);
        return ngx_oauth_store_fail(st, rc, "mdb_cursor_open");
    }

    seq = 1;

    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);

    if (rc == 0 && k.mv_size == 8) {
        seq = ngx_oauth_store_get64(k.mv_data) + 1;

    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_get");
        goto done;
    }

    ngx_oauth_store_put64(key, seq);

    k.mv_size = 8;
    k.mv_data = key;
    v.mv_size = n;
    v.mv_data = buf;

    rc = mdb_put(txn, st->events, &k, &v, MDB_APPEND);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_put");
        goto done;
    }

    add->seq = seq;

    /* a receiver that is down for good must not fill the store */

    rc = mdb_stat(txn, st->events, &ms);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_stat");
        goto done;
    }

    while (add->max && ms.ms_entries > add->max) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0) {
            rc = mdb_cursor_del(cur, 0);
        }

        if (rc != 0) {
            ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_del");
            goto done;
        }

        ms.ms_entries--;
        add->dropped++;
    }

    ret = NGX_OAUTH_OK;

done:

    mdb_cursor_close(cur);
    free(buf);

    return ret;
}


/* whether rec's connection is one of the n in list */

static int
ngx_oauth_store_outbox_blocked(const ngx_oauth_outbox_rec_t *rec,
    const ngx_oauth_outbox_rec_t *list, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ngx_oauth_store_str_eq(&rec->owner, &list[i].owner)
            && ngx_oauth_store_str_eq(&rec->provider, &list[i].provider)
            && ngx_oauth_store_str_eq(&rec->account, &list[i].account))
        {
            return 1;
        }
    }

    return 0;
}


typedef struct {
    time_t                   now;
    size_t                   scanned;
    size_t                   nblocked;
    int                      found;
    ngx_oauth_outbox_rec_t  *out;
    ngx_oauth_outbox_rec_t   blocked[NGX_OAUTH_OUTBOX_BLOCKED];
} ngx_oauth_store_due_t;


int
ngx_oauth_store_outbox_next(ngx_oauth_store_t *st, time_t now,
    ngx_oauth_outbox_rec_t *out)
{
    int                    ret;
    size_t                 bad;
    ngx_oauth_store_due_t  d;

    memset(out, 0, sizeof(ngx_oauth_outbox_rec_t));

    d.now = now;
    d.scanned = 0;
    d.nblocked = 0;
    d.found = 0;
    d.out = out;

    ret = ngx_oauth_store_walk(st, st->events, MDB_RDONLY, NULL, 0,
                               ngx_oauth_store_due_visit, &d, &bad);

    if (ret == NGX_OAUTH_OK && !d.found) {
        ret = NGX_OAUTH_NOT_FOUND;
    }

    return ret;
}


/*
 * The first due event whose connection has no earlier event waiting:
 * the events of one connection go out in the order they were written.
 */

static int
ngx_oauth_store_due_visit(ngx_oauth_store_t *st, MDB_cursor *cur,
    MDB_val *k, MDB_val *v, void *data)
{
    ngx_oauth_store_due_t  *d = data;

    int                     ret;
    ngx_oauth_outbox_rec_t  rec;

    if (d->scanned++ == NGX_OAUTH_OUTBOX_SCAN) {
        return NGX_OAUTH_STORE_STOP;
    }

    if (k->mv_size != 8
        || ngx_oauth_outbox_decode(v->mv_data, v->mv_size, &rec, 0)
           != NGX_OAUTH_OK
        || ngx_oauth_store_outbox_blocked(&rec, d->blocked, d->nblocked))
    {
        return NGX_OAUTH_STORE_NEXT;
    }

    if (rec.next_at <= d->now) {
        ret = ngx_oauth_outbox_decode(v->mv_data, v->mv_size, d->out, 1);
        if (ret != NGX_OAUTH_OK) {
            return ret;
        }

        d->out->seq = ngx_oauth_store_get64(k->mv_data);
        d->found = 1;

        return NGX_OAUTH_STORE_STOP;
    }

    if (d->nblocked == NGX_OAUTH_OUTBOX_BLOCKED) {
        return NGX_OAUTH_STORE_STOP;
    }

    d->blocked[d->nblocked++] = rec;

    return NGX_OAUTH_STORE_NEXT;
}


/*
 * Settles an event: retry 0 deletes it (delivered or dropped), else it
 * gets next_at and attempts.  The id must match: NGX_OAUTH_NOT_FOUND when
 * the event is gone (dropped by the cap meanwhile).
 */

int
ngx_oauth_store_outbox_settle(ngx_oauth_store_t *st, uint64_t seq,
    const ngx_oauth_str_t *id, int retry, time_t next_at, uint32_t attempts)
{
    int                     rc, ret;
    MDB_val                 k, v;
    MDB_txn                *txn;
    unsigned char          *buf, key[8];
    ngx_oauth_outbox_rec_t  rec;

    buf = NULL;

    ngx_oauth_store_put64(key, seq);
    k.mv_size = 8;
    k.mv_data = key;

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_get(txn, st->events, &k, &v);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_get");
        goto done;
    }

    if (ngx_oauth_outbox_decode(v.mv_data, v.mv_size, &rec, 0)
        != NGX_OAUTH_OK
        || !ngx_oauth_store_str_eq(&rec.id, id))
    {
        snprintf(st->err, sizeof(st->err), "event %llu was replaced",
                 (unsigned long long) seq);
        ret = NGX_OAUTH_NOT_FOUND;
        goto done;
    }

    if (!retry) {
        ret = ngx_oauth_store_del_commit(st, txn, st->events, &k);
        txn = NULL;
        goto done;
    }

    buf = malloc(v.mv_size);
    if (buf == NULL) {
        ret = NGX_OAUTH_NOMEM;
        goto done;
    }

    memcpy(buf, v.mv_data, v.mv_size);
    (void) ngx_oauth_outbox_reschedule(buf, v.mv_size, next_at, attempts);
    v.mv_data = buf;

    ret = ngx_oauth_store_put_commit(st, txn, st->events, &k, &v);
    txn = NULL;

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    free(buf);

    return ret;
}


typedef struct {
    ngx_oauth_outbox_iter_pt   iter;
    void                      *data;
} ngx_oauth_store_outbox_walk_t;


static int
ngx_oauth_store_outbox_visit(ngx_oauth_store_t *st, MDB_cursor *cur,
    MDB_val *k, MDB_val *v, void *data)
{
    ngx_oauth_store_outbox_walk_t  *w = data;

    ngx_oauth_outbox_rec_t  rec;

    if (k->mv_size != 8
        || ngx_oauth_outbox_decode(v->mv_data, v->mv_size, &rec, 0)
           != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_STORE_BAD;
    }

    rec.seq = ngx_oauth_store_get64(k->mv_data);

    return w->iter(&rec, w->data) ? NGX_OAUTH_STORE_STOP
                                  : NGX_OAUTH_STORE_NEXT;
}


int
ngx_oauth_store_outbox_each(ngx_oauth_store_t *st,
    ngx_oauth_outbox_iter_pt iter, void *data)
{
    int                            ret;
    size_t                         bad;
    ngx_oauth_store_outbox_walk_t  w;

    w.iter = iter;
    w.data = data;

    ret = ngx_oauth_store_walk(st, st->events, MDB_RDONLY, NULL, 0,
                               ngx_oauth_store_outbox_visit, &w, &bad);

    if (ret == NGX_OAUTH_OK && bad) {
        snprintf(st->err, sizeof(st->err), "%zu events do not decode", bad);
        return NGX_OAUTH_INVALID;
    }

    return ret;
}


int
ngx_oauth_store_outbox_stat(ngx_oauth_store_t *st, size_t *count,
    time_t *oldest)
{
    int                     rc, ret;
    MDB_val                 k, v;
    MDB_txn                *txn;
    MDB_stat                ms;
    MDB_cursor             *cur;
    ngx_oauth_outbox_rec_t  rec;

    *count = 0;
    *oldest = 0;

    ret = ngx_oauth_store_begin(st, MDB_RDONLY, &txn);
    if (ret != NGX_OAUTH_OK) {
        return ret;
    }

    rc = mdb_stat(txn, st->events, &ms);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_stat");
        goto done;
    }

    *count = ms.ms_entries;

    rc = mdb_cursor_open(txn, st->events, &cur);
    if (rc != 0) {
        ret = ngx_oauth_store_fail(st, rc, "mdb_cursor_open");
        goto done;
    }

    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    if (rc == 0
        && ngx_oauth_outbox_decode(v.mv_data, v.mv_size, &rec, 0)
           == NGX_OAUTH_OK)
    {
        *oldest = rec.created;
    }

    mdb_cursor_close(cur);
    ret = NGX_OAUTH_OK;

done:

    mdb_txn_abort(txn);

    return ret;
}


static int
ngx_oauth_store_env_open(ngx_oauth_store_t *st,
    const ngx_oauth_store_conf_t *conf, char *err, size_t errlen)
{
    int              rc, i;
    unsigned         flags, readers;
    const char      *what;
    struct stat      sb;
    struct timespec  ts;

    flags = MDB_NOSUBDIR;

    /* never MDB_WRITEMAP nor MDB_NOMETASYNC; MDB_NOSYNC only if asked */

    if (conf->sync == 0) {
        flags |= MDB_NOSYNC;
    }

    readers = conf->max_readers ? conf->max_readers : NGX_OAUTH_STORE_READERS;

    /* LMDB would create the lock file before it fails on a directory */

    if (stat(conf->path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "store \"%s\" is not a regular file",
                 conf->path);
        return NGX_OAUTH_INVALID;
    }

    for (i = 0; /* void */ ; i++) {

        what = "mdb_env_create";

        rc = mdb_env_create(&st->env);
        if (rc != 0) {
            st->env = NULL;
            break;
        }

        what = "mdb_env_set_maxreaders";

        rc = mdb_env_set_maxreaders(st->env, readers);
        if (rc != 0) {
            break;
        }

        what = "mdb_env_set_maxdbs";

        rc = mdb_env_set_maxdbs(st->env, NGX_OAUTH_STORE_DBS);
        if (rc != 0) {
            break;
        }

        if (conf->max_size) {
            what = "mdb_env_set_mapsize";

            rc = mdb_env_set_mapsize(st->env, conf->max_size);
            if (rc != 0) {
                break;
            }
        }

        what = "mdb_env_open";

        rc = mdb_env_open(st->env, conf->path, flags, 0600);
        if (rc == 0) {
            return NGX_OAUTH_OK;
        }

        /* a failed mdb_env_open() leaves a handle only good for closing */

        mdb_env_close(st->env);
        st->env = NULL;

        /*
         * opening can fail while another process (a worker starting
         * beside this one) opens or closes the same file
         */

        if ((rc != EAGAIN && rc != EBUSY && rc != EINTR)
            || i + 1 == NGX_OAUTH_STORE_OPEN_TRIES)
        {
            break;
        }

        ts.tv_sec = 0;
        ts.tv_nsec = 10000000L << i;
        (void) nanosleep(&ts, NULL);
    }

    snprintf(err, errlen, "%s(\"%s\") failed: %s", what, conf->path,
             mdb_strerror(rc));

    if (st->env != NULL) {
        mdb_env_close(st->env);
        st->env = NULL;
    }

    return (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
           ? NGX_OAUTH_INVALID : NGX_OAUTH_ERROR;
}


/*
 * LMDB 0.9 trusts the meta page: a file truncated after it was written
 * would map pages beyond its end and fault on first access
 */

static int
ngx_oauth_store_check_file(ngx_oauth_store_t *st, const char *path,
    char *err, size_t errlen)
{
    int           rc, fd;
    MDB_stat      ms;
    MDB_envinfo   info;
    struct stat   sb;
    uint64_t      need;

    rc = mdb_env_get_fd(st->env, &fd);
    if (rc != 0) {
        snprintf(err, errlen, "mdb_env_get_fd(\"%s\") failed: %s", path,
                 mdb_strerror(rc));
        return NGX_OAUTH_ERROR;
    }

    if (fstat(fd, &sb) == -1) {
        snprintf(err, errlen, "fstat(\"%s\") failed: %s", path,
                 strerror(errno));
        return NGX_OAUTH_ERROR;
    }

    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "store \"%s\" is not a regular file", path);
        return NGX_OAUTH_INVALID;
    }

    rc = mdb_env_info(st->env, &info);
    if (rc == 0) {
        rc = mdb_env_stat(st->env, &ms);
    }

    if (rc != 0) {
        snprintf(err, errlen, "mdb_env_info(\"%s\") failed: %s", path,
                 mdb_strerror(rc));
        return NGX_OAUTH_ERROR;
    }

    need = ((uint64_t) info.me_last_pgno + 1) * ms.ms_psize;

    if ((uint64_t) sb.st_size < need) {
        snprintf(err, errlen,
                 "store \"%s\" is truncated: %lld bytes, its pages need %llu",
                 path, (long long) sb.st_size, (unsigned long long) need);
        return NGX_OAUTH_INVALID;
    }

    if (ngx_oauth_store_check_mode(path, fd) != NGX_OAUTH_OK) {
        snprintf(err, errlen, "chmod(\"%s\", 0600) failed: %s", path,
                 strerror(errno));
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


/* a file made by hand (or by an old version) may be readable by others */

static int
ngx_oauth_store_check_mode(const char *path, int fd)
{
    int          rc;
    char        *lock;
    size_t       len;
    struct stat  sb;

    if (fstat(fd, &sb) == -1) {
        return NGX_OAUTH_ERROR;
    }

    if ((sb.st_mode & 0077) && fchmod(fd, 0600) == -1) {
        return NGX_OAUTH_ERROR;
    }

    len = strlen(path);

    lock = malloc(len + sizeof("-lock"));
    if (lock == NULL) {
        return NGX_OAUTH_ERROR;
    }

    memcpy(lock, path, len);
    memcpy(lock + len, "-lock", sizeof("-lock"));

    rc = NGX_OAUTH_OK;

    if (stat(lock, &sb) == 0
        && (sb.st_mode & 0077)
        && chmod(lock, 0600) == -1)
    {
        rc = NGX_OAUTH_ERROR;
    }

    free(lock);

    return rc;
}


static int
ngx_oauth_store_init(ngx_oauth_store_t *st, const char *path, char *err,
    size_t errlen)
{
    int       rc, ret;
    size_t    i;
    MDB_txn  *txn;
    MDB_dbi  *dbi[NGX_OAUTH_STORE_DBS];

    dbi[0] = &st->meta;
    dbi[1] = &st->flows;
    dbi[2] = &st->conns;
    dbi[3] = &st->leases;
    dbi[4] = &st->events;
    dbi[5] = &st->spent;

    ret = ngx_oauth_store_begin(st, 0, &txn);
    if (ret != NGX_OAUTH_OK) {
        snprintf(err, errlen, "store \"%s\": %s", path, st->err);
        return ret;
    }

    /* handles opened in a transaction live on once it commits */

    for (i = 0; i < NGX_OAUTH_STORE_DBS; i++) {
        rc = mdb_dbi_open(txn, ngx_oauth_store_dbs[i], MDB_CREATE, dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return ngx_oauth_store_init_fail(st, rc, "mdb_dbi_open", path,
                                             err, errlen);
        }
    }

    ret = ngx_oauth_store_tag(st, txn, dbi, path, err, errlen);
    if (ret != NGX_OAUTH_OK) {
        mdb_txn_abort(txn);
        return ret;
    }

    ret = ngx_oauth_store_commit(st, txn, NULL);
    if (ret != NGX_OAUTH_OK) {
        snprintf(err, errlen, "store \"%s\": %s", path, st->err);
    }

    return ret;
}


/*
 * The format version tag: written in a new store, checked in any other.
 * A store of another version is never wiped: the operator decides what
 * becomes of the data.
 */

static int
ngx_oauth_store_tag(ngx_oauth_store_t *st, MDB_txn *txn,
    MDB_dbi *const *dbi, const char *path, char *err, size_t errlen)
{
    int             rc;
    size_t          i;
    MDB_val         k, v;
    MDB_stat        ms;
    unsigned long   version;
    unsigned char   c;
    char            buf[16];

    k.mv_size = sizeof(NGX_OAUTH_STORE_VERSION_KEY) - 1;
    k.mv_data = NGX_OAUTH_STORE_VERSION_KEY;

    rc = mdb_get(txn, st->meta, &k, &v);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return ngx_oauth_store_init_fail(st, rc, "mdb_get", path, err,
                                         errlen);
    }

    if (rc == 0) {
        version = 0;

        for (i = 0; i < v.mv_size; i++) {
            c = ((unsigned char *) v.mv_data)[i];

            if (c < '0' || c > '9' || i == 9) {
                version = 0;
                break;
            }

            version = version * 10 + (unsigned long) (c - '0');
        }

        if (version != NGX_OAUTH_STORE_VERSION) {
            snprintf(err, errlen, "store \"%s\" has format version "
                     "\"%.*s\", this build reads version %d only: refused",
                     path, (int) (v.mv_size < 16 ? v.mv_size : 16),
                     (char *) v.mv_data, NGX_OAUTH_STORE_VERSION);
            return NGX_OAUTH_INVALID;
        }

        return NGX_OAUTH_OK;
    }

    /* no tag: only a store without any record is new */

    for (i = 0; i < NGX_OAUTH_STORE_DBS; i++) {
        rc = mdb_stat(txn, *dbi[i], &ms);
        if (rc != 0) {
            return ngx_oauth_store_init_fail(st, rc, "mdb_stat", path, err,
                                             errlen);
        }

        if (ms.ms_entries) {
            snprintf(err, errlen, "store \"%s\" has records but no "
                     "version tag: not an ngx_oauth store, refused", path);
            return NGX_OAUTH_INVALID;
        }
    }

    v.mv_size = (size_t) snprintf(buf, sizeof(buf), "%d",
                                  NGX_OAUTH_STORE_VERSION);
    v.mv_data = buf;

    rc = mdb_put(txn, st->meta, &k, &v, 0);
    if (rc != 0) {
        return ngx_oauth_store_init_fail(st, rc, "mdb_put", path, err,
                                         errlen);
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_store_init_fail(ngx_oauth_store_t *st, int rc, const char *what,
    const char *path, char *err, size_t errlen)
{
    int  ret;

    ret = ngx_oauth_store_fail(st, rc, what);
    snprintf(err, errlen, "store \"%s\": %s", path, st->err);

    return ret;
}


static void
ngx_oauth_store_forked(void)
{
    ngx_oauth_store_forks++;
}


static int
ngx_oauth_store_same_process(ngx_oauth_store_t *st)
{
    if (st->forks != ngx_oauth_store_forks
        || (!ngx_oauth_store_atfork && st->pid != getpid()))
    {
        snprintf(st->err, sizeof(st->err), "store used across fork()");
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_store_begin(ngx_oauth_store_t *st, unsigned flags, MDB_txn **txn)
{
    int  rc, dead;

    *txn = NULL;

    if (ngx_oauth_store_same_process(st) != NGX_OAUTH_OK) {
        return NGX_OAUTH_ERROR;
    }

    rc = mdb_txn_begin(st->env, NULL, flags, txn);

    if (rc == MDB_MAP_RESIZED) {

        /* another process grew the map: adopt its size, no txn is open */

        rc = mdb_env_set_mapsize(st->env, 0);
        if (rc == 0) {
            rc = mdb_txn_begin(st->env, NULL, flags, txn);
        }

    } else if (rc == MDB_READERS_FULL) {

        /* dead processes may hold the slots */

        rc = mdb_reader_check(st->env, &dead);
        if (rc == 0) {
            rc = mdb_txn_begin(st->env, NULL, flags, txn);
        }
    }

    if (rc != 0) {
        *txn = NULL;
        return ngx_oauth_store_fail(st, rc, "mdb_txn_begin");
    }

    return NGX_OAUTH_OK;
}


/*
 * Commits txn, with add's event written into it first when add is not
 * NULL: the event of a change is stored with the change or not at all.
 * The transaction ends whatever happens.
 */

static int
ngx_oauth_store_commit(ngx_oauth_store_t *st, MDB_txn *txn,
    ngx_oauth_event_add_t *add)
{
    int  rc, ret;

    if (add != NULL) {
        ret = ngx_oauth_store_outbox_add(st, txn, add);
        if (ret != NGX_OAUTH_OK) {
            mdb_txn_abort(txn);
            return ret;
        }
    }

    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return ngx_oauth_store_fail(st, rc, "mdb_txn_commit");
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_store_fail(ngx_oauth_store_t *st, int rc, const char *what)
{
    /* not finding a key is an answer, not an error worth logging */

    if (rc == MDB_NOTFOUND) {
        return NGX_OAUTH_NOT_FOUND;
    }

    snprintf(st->err, sizeof(st->err), "%s() failed: %s", what,
             mdb_strerror(rc));

    return (rc == MDB_MAP_FULL) ? NGX_OAUTH_FULL : NGX_OAUTH_ERROR;
}


/* the raw state never reaches the file: a copy of it cannot be replayed */

static int
ngx_oauth_store_flow_key(ngx_oauth_store_t *st, const char *state,
    size_t len, unsigned char *key)
{
    unsigned int  n;

    if (state == NULL || len == 0) {
        snprintf(st->err, sizeof(st->err), "empty state");
        return NGX_OAUTH_INVALID;
    }

    if (EVP_Digest(state, len, key, &n, EVP_sha256(), NULL) != 1
        || n != NGX_OAUTH_STORE_HASH_LEN)
    {
        snprintf(st->err, sizeof(st->err), "EVP_Digest() failed");
        return NGX_OAUTH_ERROR;
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_store_conn_key(unsigned char *key, size_t *len,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account)
{
    if (provider == NULL
        || account == NULL || account->len == 0 || account->data == NULL
        || account->len > NGX_OAUTH_ACCOUNT_MAX
        || ngx_oauth_store_conn_prefix(key, len, owner, provider)
           != NGX_OAUTH_OK)
    {
        *len = 0;
        return NGX_OAUTH_INVALID;
    }

    memcpy(key + *len, account->data, account->len);
    *len += account->len;

    return NGX_OAUTH_OK;
}


/*
 * the key up to the account: of owner, or of owner and provider when
 * provider is not NULL; the lengths make owner "a" no prefix of "ab"
 */

static int
ngx_oauth_store_conn_prefix(unsigned char *key, size_t *len,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider)
{
    unsigned char  *p;

    *len = 0;

    if (owner == NULL || owner->len == 0 || owner->data == NULL
        || owner->len > NGX_OAUTH_OWNER_MAX)
    {
        return NGX_OAUTH_INVALID;
    }

    p = key;
    *p++ = (unsigned char) (owner->len >> 8);
    *p++ = (unsigned char) owner->len;
    memcpy(p, owner->data, owner->len);
    p += owner->len;

    if (provider != NULL) {
        if (provider->len == 0 || provider->data == NULL
            || provider->len > NGX_OAUTH_PROVIDER_MAX)
        {
            return NGX_OAUTH_INVALID;
        }

        *p++ = (unsigned char) provider->len;
        memcpy(p, provider->data, provider->len);
        p += provider->len;
    }

    *len = (size_t) (p - key);

    return NGX_OAUTH_OK;
}


/* the key of a connection in k, or a message in st->err */

static int
ngx_oauth_store_conn_kv(ngx_oauth_store_t *st, unsigned char *key,
    MDB_val *k, const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account)
{
    if (ngx_oauth_store_conn_key(key, &k->mv_size, owner, provider, account)
        != NGX_OAUTH_OK)
    {
        snprintf(st->err, sizeof(st->err), "invalid connection key");
        return NGX_OAUTH_INVALID;
    }

    k->mv_data = key;

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_store_prefixed(const MDB_val *k, const unsigned char *prefix,
    size_t plen)
{
    return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}


static int
ngx_oauth_store_str_eq(const ngx_oauth_str_t *a, const ngx_oauth_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static int
ngx_oauth_store_conn_check(const ngx_oauth_conn_t *conn, const MDB_val *key)
{
    size_t         len;
    unsigned char  buf[NGX_OAUTH_STORE_KEY_MAX];

    if (ngx_oauth_store_conn_key(buf, &len, &conn->owner, &conn->provider,
                                 &conn->account)
        != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_INVALID;
    }

    if (len != key->mv_size || memcmp(buf, key->mv_data, len) != 0) {
        return NGX_OAUTH_INVALID;
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_store_meta_key(const char *key, MDB_val *k)
{
    size_t  len;

    if (key == NULL) {
        return NGX_OAUTH_INVALID;
    }

    len = strlen(key);

    if (len == 0 || len > NGX_OAUTH_STORE_META_KEY_MAX) {
        return NGX_OAUTH_INVALID;
    }

    k->mv_size = len;
    k->mv_data = (void *) key;

    return NGX_OAUTH_OK;
}


/* two's complement back to signed without an overflowing conversion */

static time_t
ngx_oauth_store_time(uint64_t v)
{
    return (time_t) ((v > INT64_MAX) ? -(int64_t) (~v) - 1 : (int64_t) v);
}


static void
ngx_oauth_store_put64(unsigned char *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char) v;
        v >>= 8;
    }
}


static uint64_t
ngx_oauth_store_get64(const unsigned char *p)
{
    int       i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}
