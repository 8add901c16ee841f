/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_circuit.h"
#include "ngx_http_oauth_pg.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_util.h"
#include "ngx_http_oauth_webhook.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_event.h"


/*
 * oauth_shared_store: several nginx nodes share flows, connections and
 * refresh leases through PostgreSQL.  Records go there sealed exactly as
 * they are in LMDB (the database never sees a plaintext token); each
 * node's LMDB store is its cache, kept true by LISTEN/NOTIFY.  Connection
 * writes go to LMDB first and then to PostgreSQL in the order they were
 * made (a worker keeps the ones the database could not take and writes
 * them when it is back); flows and leases are PostgreSQL's alone.
 */


#define NGX_HTTP_OAUTH_SHARED_SCHEMA_S "2"     /* oauth_schema version */
#define NGX_HTTP_OAUTH_SHARED_CHANNEL  "oauth_conn"
#define NGX_HTTP_OAUTH_SHARED_NODE     NGX_HTTP_OAUTH_SHARED_NODE_LEN
#define NGX_HTTP_OAUTH_SHARED_TIMEOUT  5000
#define NGX_HTTP_OAUTH_SHARED_PENDING  10000   /* writes kept while down */
#define NGX_HTTP_OAUTH_SHARED_ABSENT_TTL  5000  /* ms an absence is kept */
#define NGX_HTTP_OAUTH_SHARED_ABSENT_MAX  10000 /* absences a worker keeps */
#define NGX_HTTP_OAUTH_SHARED_ABSENT_KEY  512


typedef struct {
    ngx_str_t                    conninfo;
    ngx_msec_t                   timeout;
    u_char                       node[NGX_HTTP_OAUTH_SHARED_NODE + 1];
} ngx_http_oauth_shared_conf_t;


/* a connection write PostgreSQL has not taken yet */

typedef struct {
    ngx_queue_t                  queue;
    ngx_uint_t                   n;
    const u_char                *values[10];
    ssize_t                      lens[10];
    u_char                       version[NGX_INT64_LEN];
    unsigned                     deleted:1;
} ngx_http_oauth_shared_write_t;


/* the webhook event of the next connection write (at most one) */

typedef struct {
    ngx_uint_t                   set;
    size_t                       id_len;
    size_t                       type_len;
    size_t                       body_len;
    size_t                       key_len;
    u_char                       key[3 * 1024];  /* owner provider account */
    u_char                       id[NGX_OAUTH_EVENT_ID_LEN];
    u_char                       type[64];
    u_char                       body[NGX_OAUTH_EVENT_BODY_MAX];
} ngx_http_oauth_shared_event_t;


/* a request that waits on PostgreSQL */

typedef struct {
    ngx_http_request_t          *request;
    ngx_http_oauth_pg_query_t   *query;
    ngx_int_t                    status;      /* the answer once stored */
    u_char                       state[NGX_OAUTH_STATE_LEN];
    size_t                       state_len;
    ngx_http_oauth_shared_resume_pt  resume;  /* an owner fill's */
    ngx_oauth_str_t              owner;       /* a fill's, a miss's */
    ngx_oauth_str_t              provider;    /* a miss's */
    ngx_oauth_str_t              account;     /* a miss's, may be empty */
    ngx_uint_t                   any;         /* a miss of any account */
    time_t                       started;     /* a fill's */
    unsigned                     waiting:1;   /* its answer waits too */
    unsigned                     done:1;
    unsigned                     failed:1;
} ngx_http_oauth_shared_wait_t;


/*
 * An owner's connection PostgreSQL did not have, so that oauth_token
 * requests of an owner with none do not ask it every time; the key
 * follows (see ngx_http_oauth_shared_absent_key()).
 */

typedef struct {
    ngx_str_node_t               sn;
    ngx_queue_t                  queue;      /* oldest first */
    ngx_msec_t                   expires;
} ngx_http_oauth_shared_absent_t;


/* a refresh that waits on the fleet's lease */

typedef struct {
    ngx_http_oauth_refresh_t    *rf;
    ngx_http_oauth_pg_query_t   *query;
    ngx_oauth_str_t              refresh;     /* sealed, as read locally */
    u_char                       holder[64];
    size_t                       holder_len;
} ngx_http_oauth_shared_lease_t;


/* the parts of postgresql://USER@HOST[:PORT]/DB */

typedef struct {
    ngx_str_t                    user;
    ngx_str_t                    host;
    ngx_str_t                    port;
    ngx_str_t                    db;
} ngx_http_oauth_shared_url_t;


static ngx_int_t ngx_http_oauth_shared_parse_url(ngx_conf_t *cf,
    ngx_str_t *url, ngx_http_oauth_shared_url_t *u);
static ngx_int_t ngx_http_oauth_shared_conninfo(ngx_conf_t *cf,
    ngx_http_oauth_shared_conf_t *sc, ngx_http_oauth_shared_url_t *u,
    ngx_str_t *pw, ngx_str_t *sslmode);
static void ngx_http_oauth_shared_quote(u_char **p, const char *key,
    u_char *value, size_t len);
static void ngx_http_oauth_shared_up(void *data);
static void ngx_http_oauth_shared_setup(const char *sql,
    ngx_http_oauth_pg_done_pt done, void *data);
static ngx_int_t ngx_http_oauth_shared_send(
    ngx_http_oauth_shared_write_t *w);
static void ngx_http_oauth_shared_key(ngx_http_oauth_refresh_t *rf,
    const u_char **values, ssize_t *lens);
static u_char *ngx_http_oauth_shared_holder(
    ngx_http_oauth_shared_conf_t *sc, ngx_http_oauth_refresh_t *rf,
    u_char *buf);
static void ngx_http_oauth_shared_schema_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_listen_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_listen2_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_notify(const char *channel,
    const char *payload, void *data);
static void ngx_http_oauth_shared_refetch_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_refetch(const u_char **values,
    ssize_t *lens);
static ngx_int_t ngx_http_oauth_shared_cache_put(PGresult *res, int row,
    int col, int vcol, int newer);
static ngx_int_t ngx_http_oauth_shared_keys(ngx_array_t *keys);
static void ngx_http_oauth_shared_revalidate(void);
static void ngx_http_oauth_shared_revalidate_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_drop_all(void);
static int ngx_http_oauth_shared_drop_one(const ngx_oauth_conn_t *conn,
    void *data);
static void ngx_http_oauth_shared_conn_write(
    ngx_http_oauth_main_conf_t *omcf, const ngx_oauth_conn_t *conn,
    char mode);
static void ngx_http_oauth_shared_write(ngx_http_oauth_shared_write_t *w);
static void ngx_http_oauth_shared_write_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_flush(void);
static void ngx_http_oauth_shared_purge_done(void *data, PGresult *res,
    const char *err);
static u_char *ngx_http_oauth_shared_event_params(
    ngx_http_oauth_shared_write_t *w, ngx_uint_t i, u_char *p);
static u_char *ngx_http_oauth_shared_payload(u_char *p, char op,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static ngx_http_oauth_shared_wait_t *ngx_http_oauth_shared_wait_create(
    ngx_http_request_t *r);
static void ngx_http_oauth_shared_wait_cleanup(void *data);
static void ngx_http_oauth_shared_put_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_take_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_miss_cleanup(void *data);
static void ngx_http_oauth_shared_fill_cleanup(void *data);
static void ngx_http_oauth_shared_fill_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_miss_done(void *data, PGresult *res,
    const char *err);
static size_t ngx_http_oauth_shared_absent_key(u_char *buf,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static ngx_uint_t ngx_http_oauth_shared_absent_find(
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static void ngx_http_oauth_shared_absent_add(const ngx_oauth_str_t *owner,
    const ngx_oauth_str_t *provider, const ngx_oauth_str_t *account);
static void ngx_http_oauth_shared_absent_forget(
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static void ngx_http_oauth_shared_absent_remove(
    ngx_http_oauth_shared_absent_t *a);
static void ngx_http_oauth_shared_absent_clear(void);
static void ngx_http_oauth_shared_fill_drop(ngx_http_oauth_shared_wait_t *w,
    PGresult *res);
static void ngx_http_oauth_shared_lease_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_lease_read_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_shared_lease_cleanup(void *data);
static void ngx_http_oauth_shared_step(ngx_http_oauth_refresh_t *rf,
    ngx_msec_t ms);


static ngx_http_oauth_main_conf_t  *ngx_http_oauth_shared_omcf;
static ngx_queue_t                  ngx_http_oauth_shared_pending;
static ngx_uint_t                   ngx_http_oauth_shared_npending;
static ngx_uint_t                   ngx_http_oauth_shared_writing;
static ngx_http_oauth_shared_event_t  ngx_http_oauth_shared_next_event;
static ngx_rbtree_t                 ngx_http_oauth_shared_absent;
static ngx_rbtree_node_t            ngx_http_oauth_shared_absent_sentinel;
static ngx_queue_t                  ngx_http_oauth_shared_absent_queue;
static ngx_uint_t                   ngx_http_oauth_shared_nabsent;


/*
 * The schema, created or migrated by the first worker that connects;
 * the advisory lock makes workers and nodes that start at once wait for
 * each other instead of racing on CREATE TABLE.
 */

static const char  ngx_http_oauth_shared_schema_sql[] =
    "DO $oauth$ DECLARE v int; BEGIN "
    "PERFORM pg_advisory_xact_lock(7303150001); "
    "CREATE TABLE IF NOT EXISTS oauth_schema (version int NOT NULL); "
    "SELECT max(version) INTO v FROM oauth_schema; "
    "IF v IS NULL THEN "
      "CREATE TABLE IF NOT EXISTS oauth_connections ("
        "owner text NOT NULL, provider text NOT NULL, "
        "account text NOT NULL, version bigint NOT NULL, "
        "record bytea NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (owner, provider, account)); "
      "CREATE TABLE IF NOT EXISTS oauth_flows ("
        "state_hash bytea PRIMARY KEY, record bytea NOT NULL, "
        "expires_at timestamptz NOT NULL); "
      "CREATE INDEX IF NOT EXISTS oauth_flows_expires "
        "ON oauth_flows (expires_at); "
      "CREATE TABLE IF NOT EXISTS oauth_leases ("
        "owner text NOT NULL, provider text NOT NULL, "
        "account text NOT NULL, holder text NOT NULL, "
        "lease_until timestamptz NOT NULL, "
        "PRIMARY KEY (owner, provider, account)); "
      "CREATE TABLE IF NOT EXISTS oauth_circuits ("
        "provider text PRIMARY KEY, state bytea NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now()); "
      "INSERT INTO oauth_schema VALUES (1); "
      "v := 1; "
    "ELSIF v > " NGX_HTTP_OAUTH_SHARED_SCHEMA_S " THEN "
      "RAISE EXCEPTION 'oauth schema version % is newer than this "
        "module knows (" NGX_HTTP_OAUTH_SHARED_SCHEMA_S ")', v; "
    "END IF; "

    /* 1 to 2: the webhook outbox of the fleet */

    "IF v = 1 THEN "
      "CREATE TABLE IF NOT EXISTS oauth_events ("
        "seq bigserial PRIMARY KEY, owner text NOT NULL, "
        "provider text NOT NULL, account text NOT NULL, "
        "id text NOT NULL, type text NOT NULL, body bytea NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now(), "
        "next_at timestamptz NOT NULL DEFAULT now(), "
        "attempts int NOT NULL DEFAULT 0); "
      "CREATE INDEX IF NOT EXISTS oauth_events_conn "
        "ON oauth_events (owner, provider, account, seq); "
      "UPDATE oauth_schema SET version = 2; "
    "END IF; "
    "DELETE FROM oauth_flows WHERE expires_at < now(); "
    "END $oauth$";


/*
 * The change's webhook event, in the statement (so the transaction) of
 * the change: written only when the change was (a write PostgreSQL
 * refuses as superseded, a delete of a row already gone, give none), and
 * never when the event parameters are NULL (no webhook wants this one).
 */

#define NGX_HTTP_OAUTH_SHARED_EVENT_SQL(cte, id, type, body)                 \
    "ev AS (INSERT INTO oauth_events "                                        \
      "(owner, provider, account, id, type, body) "                           \
      "SELECT $1::text, $2::text, $3::text, $" id "::text, $" type "::text, " \
        "$" body "::bytea FROM " cte " WHERE $" id "::text IS NOT NULL) "


/*
 * The version is the record's: a node writes the version its cache gave
 * the change (the one it read from PostgreSQL + 1), and the row takes it
 * only when it is higher than the row's, so an old write (another node's
 * change arrived first, or writes replayed after an outage) never
 * overwrites a newer one.  A new connect or credentials set ('r') replaces
 * whatever is there, with a version above it.  No row back: refused.
 */

static const char  ngx_http_oauth_shared_upsert_sql[] =
    "WITH up AS (INSERT INTO oauth_connections "
      "(owner, provider, account, version, record) "
      "VALUES ($1::text, $2::text, $3::text, $6::text::bigint, $4::bytea) "
      "ON CONFLICT (owner, provider, account) DO UPDATE "
      "SET version = GREATEST(oauth_connections.version + 1, "
        "EXCLUDED.version), "
      "record = EXCLUDED.record, updated_at = now() "
      "WHERE $7::text = 'r' "
        "OR oauth_connections.version < EXCLUDED.version "
      "RETURNING version), "
    NGX_HTTP_OAUTH_SHARED_EVENT_SQL("up", "8", "9", "10")
    "SELECT pg_notify('" NGX_HTTP_OAUTH_SHARED_CHANNEL "', "
      "$5::text || ' ' || version) FROM up";

/*
 * What changed while a worker did not listen: each cached key with its
 * version ("HEX(owner) HEX(provider) HEX(account) VERSION" lines) against
 * the rows; back come the keys whose row has another version (the record
 * with it) or none.
 */

static const char  ngx_http_oauth_shared_revalidate_sql[] =
    "SELECT k.o, k.p, k.a, c.version::text, c.record FROM ("
      "SELECT convert_from(decode(split_part(l, ' ', 1), 'hex'), 'UTF8') "
        "AS o, "
      "convert_from(decode(split_part(l, ' ', 2), 'hex'), 'UTF8') AS p, "
      "convert_from(decode(split_part(l, ' ', 3), 'hex'), 'UTF8') AS a, "
      "split_part(l, ' ', 4)::bigint AS v "
      "FROM regexp_split_to_table($1::text, chr(10)) AS l "
      "WHERE l <> '') AS k "
    "LEFT JOIN oauth_connections c ON c.owner = k.o "
      "AND c.provider = k.p AND c.account = k.a "
    "WHERE c.version IS DISTINCT FROM k.v";

/*
 * Expired flows, purged by the housekeeping timers: the first worker of
 * the fleet whose timer fires takes a lease row (empty owner) for one
 * interval and deletes, the others find it held and do nothing.  As in
 * LMDB, a flow stays one oauth_state_ttl past its expiry, so that a late
 * callback is told expired_state.
 */

static const char  ngx_http_oauth_shared_purge_sql[] =
    "WITH l AS (INSERT INTO oauth_leases "
      "(owner, provider, account, holder, lease_until) "
      "VALUES ('', 'flows', 'purge', $1::text, "
        "now() + $2::text::int * interval '1 s') "
      "ON CONFLICT (owner, provider, account) DO UPDATE "
      "SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until "
      "WHERE oauth_leases.lease_until < now() "
      "RETURNING 1) "
    "DELETE FROM oauth_flows WHERE EXISTS (SELECT 1 FROM l) "
      "AND expires_at < now() - $3::text::int * interval '1 s'";

static const char  ngx_http_oauth_shared_fetch_sql[] =
    "SELECT record, version::text FROM oauth_connections "
    "WHERE owner = $1::text AND provider = $2::text "
    "AND account = $3::text";

static const char  ngx_http_oauth_shared_delete_sql[] =
    "WITH d AS (DELETE FROM oauth_connections "
      "WHERE owner = $1::text AND provider = $2::text "
      "AND account = $3::text RETURNING version), "
    NGX_HTTP_OAUTH_SHARED_EVENT_SQL("d", "5", "6", "7")
    "SELECT pg_notify('" NGX_HTTP_OAUTH_SHARED_CHANNEL "', "
      "$4::text || ' 0') FROM d";

char *
ngx_http_oauth_shared_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    u_char                         rnd[NGX_HTTP_OAUTH_SHARED_NODE / 2];
    ngx_int_t                      rc;
    ngx_str_t                     *value, url, pw, sslmode, file;
    ngx_uint_t                     i;
    ngx_http_oauth_shared_url_t    u;
    ngx_http_oauth_shared_conf_t  *sc;

    if (omcf->shared) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    ngx_str_null(&pw);
    ngx_str_null(&sslmode);

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            file.data = value[i].data + 14;
            file.len = value[i].len - 14;

            if (ngx_http_oauth_read_secret(cf, &file, &pw) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sslmode=", 8) == 0) {
            sslmode.data = value[i].data + 8;
            sslmode.len = value[i].len - 8;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    rc = ngx_http_oauth_shared_parse_url(cf, &url, &u);

    if (rc == NGX_DECLINED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid shared store \"%V\": expected "
                           "postgresql://USER@HOST[:PORT]/DB", &url);
    }

    if (rc != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    sc = ngx_pcalloc(cf->pool, sizeof(ngx_http_oauth_shared_conf_t));
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oauth_shared_conninfo(cf, sc, &u, &pw, &sslmode) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    sc->timeout = NGX_HTTP_OAUTH_SHARED_TIMEOUT;

    /* a node's own notifications are not news to it */

    if (ngx_oauth_random(rnd, sizeof(rnd)) != NGX_OAUTH_OK) {
        return "cannot make a node id";
    }

    ngx_hex_dump(sc->node, rnd, sizeof(rnd));
    sc->node[NGX_HTTP_OAUTH_SHARED_NODE] = '\0';

    omcf->shared = sc;

    return NGX_CONF_OK;
}


/*
 * postgresql://USER@HOST[:PORT]/DB, never a password in it: NGX_OK,
 * NGX_DECLINED when malformed, NGX_ERROR when already said.
 */

static ngx_int_t
ngx_http_oauth_shared_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_http_oauth_shared_url_t *u)
{
    u_char  *p, *at, *colon, *slash, *end;

    if (url->len > 13 && ngx_strncmp(url->data, "postgresql://", 13) == 0) {
        p = url->data + 13;

    } else if (url->len > 11
               && ngx_strncmp(url->data, "postgres://", 11) == 0)
    {
        p = url->data + 11;

    } else {
        return NGX_DECLINED;
    }

    end = url->data + url->len;

    at = ngx_strlchr(p, end, '@');
    slash = ngx_strlchr(p, end, '/');

    if (at == NULL || slash == NULL || at > slash || at == p
        || slash + 1 == end)
    {
        return NGX_DECLINED;
    }

    u->user.data = p;
    u->user.len = at - p;

    if (ngx_strlchr(u->user.data, at, ':')) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a password does not go in the URL: use "
                           "password_file=");
        return NGX_ERROR;
    }

    u->host.data = at + 1;
    colon = ngx_strlchr(u->host.data, slash, ':');
    u->host.len = (colon ? colon : slash) - u->host.data;

    if (colon) {
        u->port.data = colon + 1;
        u->port.len = slash - u->port.data;

        if (ngx_atoi(u->port.data, u->port.len) <= 0) {
            return NGX_DECLINED;
        }

    } else {
        ngx_str_set(&u->port, "5432");
    }

    u->db.data = slash + 1;
    u->db.len = end - u->db.data;

    if (u->host.len == 0 || ngx_strlchr(u->db.data, end, '?')) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* libpq's keyword=value string; the password is wiped once copied */

static ngx_int_t
ngx_http_oauth_shared_conninfo(ngx_conf_t *cf,
    ngx_http_oauth_shared_conf_t *sc, ngx_http_oauth_shared_url_t *u,
    ngx_str_t *pw, ngx_str_t *sslmode)
{
    u_char  *p;
    size_t   size;

    size = 2 * (u->user.len + u->host.len + u->port.len + u->db.len
                + pw->len + sslmode->len)
           + sizeof("host='' port='' dbname='' user='' password='' "
                    "sslmode='' application_name='ngx_oauth' "
                    "connect_timeout='5'");

    p = ngx_pnalloc(cf->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    sc->conninfo.data = p;

    ngx_http_oauth_shared_quote(&p, "host", u->host.data, u->host.len);
    ngx_http_oauth_shared_quote(&p, " port", u->port.data, u->port.len);
    ngx_http_oauth_shared_quote(&p, " dbname", u->db.data, u->db.len);
    ngx_http_oauth_shared_quote(&p, " user", u->user.data, u->user.len);

    if (pw->len) {
        ngx_http_oauth_shared_quote(&p, " password", pw->data, pw->len);
        ngx_explicit_memzero(pw->data, pw->len);
    }

    if (sslmode->len) {
        ngx_http_oauth_shared_quote(&p, " sslmode", sslmode->data,
                                    sslmode->len);
    }

    p = ngx_cpymem(p, " application_name='ngx_oauth' connect_timeout='5'",
                   sizeof(" application_name='ngx_oauth' "
                          "connect_timeout='5'") - 1);
    *p = '\0';

    sc->conninfo.len = p - sc->conninfo.data;

    return NGX_OK;
}


static void
ngx_http_oauth_shared_quote(u_char **pp, const char *key, u_char *value,
    size_t len)
{
    u_char  *p;
    size_t   i;

    p = ngx_cpymem(*pp, key, ngx_strlen(key));
    *p++ = '=';
    *p++ = '\'';

    for (i = 0; i < len; i++) {
        if (value[i] == '\'' || value[i] == '\\') {
            *p++ = '\\';
        }

        *p++ = value[i];
    }

    *p++ = '\'';
    *pp = p;
}


ngx_int_t
ngx_http_oauth_shared_init_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf)
{
    ngx_http_oauth_pg_conf_t       pc;
    ngx_http_oauth_shared_conf_t  *sc;

    sc = omcf->shared;

    if (sc == NULL) {
        return NGX_OK;
    }

    ngx_http_oauth_shared_omcf = omcf;
    ngx_queue_init(&ngx_http_oauth_shared_pending);
    ngx_queue_init(&ngx_http_oauth_shared_absent_queue);
    ngx_rbtree_init(&ngx_http_oauth_shared_absent,
                    &ngx_http_oauth_shared_absent_sentinel,
                    ngx_str_rbtree_insert_value);

    pc.conninfo = sc->conninfo;
    pc.timeout = sc->timeout;
    pc.up = ngx_http_oauth_shared_up;
    pc.notify = ngx_http_oauth_shared_notify;
    pc.data = sc;

    return ngx_http_oauth_pg_init_process(cycle, &pc);
}


void
ngx_http_oauth_shared_exit_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf)
{
    if (omcf->shared == NULL) {
        return;
    }

    if (ngx_http_oauth_shared_npending) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "oauth: %ui connection changes were not written to "
                      "the shared store", ngx_http_oauth_shared_npending);
    }

    ngx_http_oauth_shared_absent_clear();
    ngx_http_oauth_pg_exit_process(cycle);
}


const u_char *
ngx_http_oauth_shared_node(ngx_http_oauth_main_conf_t *omcf)
{
    ngx_http_oauth_shared_conf_t  *sc;

    sc = omcf->shared;

    return sc ? sc->node : NULL;
}


ngx_int_t
ngx_http_oauth_shared_unavailable(ngx_http_request_t *r)
{
    return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "shared_store_unavailable",
                                     "the shared store (PostgreSQL) is "
                                     "not available");
}


/* connected: the schema, LISTEN, the cache checked, then the queue */

static void
ngx_http_oauth_shared_up(void *data)
{
    ngx_http_oauth_shared_setup(ngx_http_oauth_shared_schema_sql,
                                ngx_http_oauth_shared_schema_done, data);
}


static void
ngx_http_oauth_shared_schema_done(void *data, PGresult *res, const char *err)
{
    if (res == NULL) {
        return;
    }

    ngx_http_oauth_shared_setup("LISTEN " NGX_HTTP_OAUTH_SHARED_CHANNEL,
                                ngx_http_oauth_shared_listen_done, data);
}


/* a step of the setup on a new connection, ahead of any queued query */

static void
ngx_http_oauth_shared_setup(const char *sql, ngx_http_oauth_pg_done_pt done,
    void *data)
{
    const char  *err;

    if (ngx_http_oauth_pg_query(sql, 0, NULL, NULL, NGX_HTTP_OAUTH_PG_SETUP,
                                done, data, &err)
        == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "oauth: shared store setup: %s", err);
    }
}


static void
ngx_http_oauth_shared_listen_done(void *data, PGresult *res, const char *err)
{
    if (res == NULL) {
        return;
    }

    ngx_http_oauth_shared_setup("LISTEN " NGX_HTTP_OAUTH_CIRCUIT_CHANNEL,
                                ngx_http_oauth_shared_listen2_done, data);
}


static void
ngx_http_oauth_shared_listen2_done(void *data, PGresult *res,
    const char *err)
{
    if (res == NULL) {
        return;
    }

    /*
     * Notifications sent while this worker was not listening are lost:
     * the cache is checked against PostgreSQL by versions, after the
     * writes this worker kept while the store was away (queries run in
     * order on the one connection).
     */

    ngx_http_oauth_shared_absent_clear();
    ngx_http_oauth_pg_ready();
    ngx_http_oauth_shared_flush();
    ngx_http_oauth_shared_revalidate();
    ngx_http_oauth_circuit_revalidate(ngx_http_oauth_shared_omcf);
}


static void
ngx_http_oauth_shared_revalidate(void)
{
    u_char            *text, *p;
    size_t             size;
    ssize_t            lens[1];
    ngx_uint_t         i;
    const char        *err;
    const u_char      *values[1];
    ngx_array_t        keys;
    ngx_oauth_conn_t  *c;
    ngx_pool_t        *pool;

    if (ngx_http_oauth_shared_omcf->store == NULL) {
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        ngx_http_oauth_shared_drop_all();
        return;
    }

    if (ngx_array_init(&keys, pool, 16, sizeof(ngx_oauth_conn_t)) != NGX_OK
        || ngx_http_oauth_shared_keys(&keys) != NGX_OK)
    {
        goto drop;
    }

    c = keys.elts;
    size = 1;

    for (i = 0; i < keys.nelts; i++) {
        size += 2 * (c[i].owner.len + c[i].provider.len + c[i].account.len)
                + NGX_INT64_LEN + 4;
    }

    text = ngx_pnalloc(pool, size);
    if (text == NULL) {
        goto drop;
    }

    p = text;

    for (i = 0; i < keys.nelts; i++) {
        p = ngx_hex_dump(p, c[i].owner.data, c[i].owner.len);
        *p++ = ' ';
        p = ngx_hex_dump(p, c[i].provider.data, c[i].provider.len);
        *p++ = ' ';
        p = ngx_hex_dump(p, c[i].account.data, c[i].account.len);
        p = ngx_sprintf(p, " %uL\n", (uint64_t) c[i].version);
    }

    values[0] = text;
    lens[0] = p - text;

    if (ngx_http_oauth_pg_query(ngx_http_oauth_shared_revalidate_sql, 1,
                                values, lens, 0,
                                ngx_http_oauth_shared_revalidate_done,
                                (void *) (uintptr_t) keys.nelts, &err)
        == NULL)
    {
        goto drop;
    }

    ngx_destroy_pool(pool);
    return;

drop:

    /* not checked, not trusted: filled again from PostgreSQL on use */

    ngx_destroy_pool(pool);
    ngx_http_oauth_shared_drop_all();
}


static void
ngx_http_oauth_shared_revalidate_done(void *data, PGresult *res,
    const char *err)
{
    int                          i, n;
    ngx_uint_t                   changed;
    ngx_oauth_str_t              s[3];
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_oauth_shared_omcf;

    if (res == NULL || omcf->store == NULL) {

        /* the connection went again: its next "up" checks again */

        return;
    }

    n = PQntuples(res);
    changed = 0;

    for (i = 0; i < n; i++) {
        if (!PQgetisnull(res, i, 3)) {
            if (ngx_http_oauth_shared_cache_put(res, i, 4, 3, 0) == NGX_OK) {
                changed++;
            }

            continue;
        }

        /* gone from PostgreSQL: disconnected elsewhere */

        s[0].data = (u_char *) PQgetvalue(res, i, 0);
        s[0].len = PQgetlength(res, i, 0);
        s[1].data = (u_char *) PQgetvalue(res, i, 1);
        s[1].len = PQgetlength(res, i, 1);
        s[2].data = (u_char *) PQgetvalue(res, i, 2);
        s[2].len = PQgetlength(res, i, 2);

        if (ngx_oauth_store_conn_delete(omcf->store, &s[0], &s[1], &s[2])
            == NGX_OAUTH_OK)
        {
            changed++;
        }
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "oauth: shared store: cache checked, %ui of %ui entries "
                  "changed", changed, (ngx_uint_t) (uintptr_t) data);
}


static void
ngx_http_oauth_shared_drop_all(void)
{
    ngx_array_t                  keys;
    ngx_uint_t                   i;
    ngx_oauth_conn_t            *c;
    ngx_pool_t                  *pool;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_oauth_shared_omcf;

    if (omcf->store == NULL) {
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&keys, pool, 16, sizeof(ngx_oauth_conn_t)) != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    (void) ngx_http_oauth_shared_keys(&keys);

    c = keys.elts;

    for (i = 0; i < keys.nelts; i++) {
        if (c[i].owner.data == NULL) {
            continue;
        }

        (void) ngx_oauth_store_conn_delete(omcf->store, &c[i].owner,
                                           &c[i].provider, &c[i].account);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "oauth shared: cache dropped, %ui entries", keys.nelts);

    ngx_destroy_pool(pool);
}


static ngx_int_t
ngx_http_oauth_shared_keys(ngx_array_t *keys)
{
    int                rc;
    ngx_uint_t         i;
    ngx_oauth_conn_t  *c;

    rc = ngx_oauth_store_conn_each(ngx_http_oauth_shared_omcf->store, NULL,
                                   NULL, ngx_http_oauth_shared_drop_one,
                                   keys);

    c = keys->elts;

    for (i = 0; i < keys->nelts; i++) {
        if (c[i].owner.data == NULL) {
            return NGX_ERROR;
        }
    }

    return (rc == NGX_OAUTH_OK || rc == NGX_OAUTH_INVALID) ? NGX_OK
                                                           : NGX_ERROR;
}


/* the keys only, copied: the store must not be called inside its walk */

static int
ngx_http_oauth_shared_drop_one(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_array_t *keys = data;

    ngx_oauth_conn_t  *c;

    c = ngx_array_push(keys);
    if (c == NULL) {
        return 1;
    }

    ngx_memzero(c, sizeof(ngx_oauth_conn_t));

    c->owner.data = ngx_pnalloc(keys->pool, conn->owner.len);
    c->provider.data = ngx_pnalloc(keys->pool, conn->provider.len);
    c->account.data = ngx_pnalloc(keys->pool, conn->account.len + 1);

    if (c->owner.data == NULL || c->provider.data == NULL
        || c->account.data == NULL)
    {
        c->owner.data = NULL;
        return 1;
    }

    c->owner.len = conn->owner.len;
    c->provider.len = conn->provider.len;
    c->account.len = conn->account.len;
    c->version = conn->version;
    c->updated_at = conn->updated_at;

    ngx_memcpy(c->owner.data, conn->owner.data, conn->owner.len);
    ngx_memcpy(c->provider.data, conn->provider.data, conn->provider.len);
    ngx_memcpy(c->account.data, conn->account.data, conn->account.len);

    return 0;
}


/* "NODE OP HEX(owner) HEX(provider) HEX(account) VERSION" */

static void
ngx_http_oauth_shared_notify(const char *channel, const char *payload,
    void *data)
{
    ngx_http_oauth_shared_conf_t *sc = data;

    u_char                      *p, *f[5], key[3][2 * NGX_OAUTH_OWNER_MAX];
    size_t                       len[3];
    uint64_t                     version;
    ngx_uint_t                   i, k, stale;
    const u_char                *values[3];
    ssize_t                      lens[3];
    ngx_oauth_str_t              s[3];
    ngx_oauth_conn_t             conn;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_oauth_shared_omcf;

    if (ngx_strcmp(channel, NGX_HTTP_OAUTH_CIRCUIT_CHANNEL) == 0) {
        ngx_http_oauth_circuit_notified(omcf, sc->node, payload);
        return;
    }

    p = (u_char *) payload;

    for (i = 0; i < 5; i++) {
        f[i] = p;
        p = (u_char *) ngx_strchr(p, ' ');

        if (p == NULL) {
            return;
        }

        p++;
    }

    version = 0;

    while (*p >= '0' && *p <= '9') {
        version = version * 10 + (*p++ - '0');
    }

    /*
     * A node's own deletes are done here already; its own writes are
     * checked too: a worker may have cached an older row meanwhile.
     */

    if ((f[1][0] == 'd'
         && ngx_strncmp(f[0], sc->node, NGX_HTTP_OAUTH_SHARED_NODE) == 0)
        || omcf->store == NULL)
    {
        return;
    }

    for (k = 0; k < 3; k++) {
        len[k] = 0;

        for (p = f[k + 2]; *p && *p != ' '; p += 2) {
            ngx_int_t  hi, lo;

            hi = ngx_hextoi(p, 1);
            lo = ngx_hextoi(p + 1, 1);

            if (hi < 0 || lo < 0 || len[k] == sizeof(key[k])) {
                return;
            }

            key[k][len[k]++] = (u_char) (hi * 16 + lo);
        }

        s[k].data = key[k];
        s[k].len = len[k];
        values[k] = key[k];
        lens[k] = len[k];
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "oauth shared: notified: %c for provider \"%*s\"",
                   (int) f[1][0], len[1], key[1]);

    if (f[1][0] != 'd') {

        /* a connect or a change: the absence this worker kept is over */

        ngx_http_oauth_shared_absent_forget(&s[0], &s[1], &s[2]);

    } else {

        /* a disconnect elsewhere stops injection here at once */

        (void) ngx_oauth_store_conn_delete(omcf->store, &s[0], &s[1], &s[2]);
        return;
    }

    /* cached entries older than the row are read again, others left */

    if (ngx_oauth_store_conn_get(omcf->store, &s[0], &s[1], &s[2], &conn)
        != NGX_OAUTH_OK)
    {
        return;
    }

    stale = (conn.version < version);

    ngx_oauth_conn_free(&conn);

    if (stale) {
        ngx_http_oauth_shared_refetch(values, lens);
    }
}


/* one row into the cache, unless the cache has a newer one */

static void
ngx_http_oauth_shared_refetch(const u_char **values, ssize_t *lens)
{
    ngx_oauth_str_t              s[3];
    const char                  *err;
    ngx_http_oauth_main_conf_t  *omcf;

    if (ngx_http_oauth_pg_query(ngx_http_oauth_shared_fetch_sql, 3, values,
                                lens, 0, ngx_http_oauth_shared_refetch_done,
                                NULL, &err)
        != NULL)
    {
        return;
    }

    /* not sure of it any more: dropped, fetched again on use */

    omcf = ngx_http_oauth_shared_omcf;

    s[0].data = (u_char *) values[0];
    s[0].len = lens[0];
    s[1].data = (u_char *) values[1];
    s[1].len = lens[1];
    s[2].data = (u_char *) values[2];
    s[2].len = lens[2];

    (void) ngx_oauth_store_conn_delete(omcf->store, &s[0], &s[1], &s[2]);
}


static void
ngx_http_oauth_shared_refetch_done(void *data, PGresult *res,
    const char *err)
{
    if (res == NULL) {
        return;
    }

    if (PQntuples(res) == 1) {
        (void) ngx_http_oauth_shared_cache_put(res, 0, 0, 1, 1);
    }
}


/*
 * A record from PostgreSQL into the cache, as it is, with the row's
 * version; newer: not over a higher version the cache has.
 */

static ngx_int_t
ngx_http_oauth_shared_cache_put(PGresult *res, int row, int col, int vcol,
    int newer)
{
    int                          rc;
    ngx_oauth_conn_t             conn;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_oauth_shared_omcf;

    if (omcf->store == NULL || PQgetisnull(res, row, col)
        || PQgetisnull(res, row, vcol))
    {
        return NGX_ERROR;
    }

    rc = ngx_oauth_conn_decode((u_char *) PQgetvalue(res, row, col),
                               PQgetlength(res, row, col), &conn);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "oauth: a shared store record does not decode: %s",
                      ngx_oauth_strerror(rc));
        return NGX_ERROR;
    }

    conn.version = strtoull(PQgetvalue(res, row, vcol), NULL, 10);

    rc = ngx_oauth_store_conn_put_version(omcf->store, &conn, newer);

    ngx_oauth_conn_free(&conn);

    if (rc == NGX_OAUTH_CONFLICT) {
        return NGX_DECLINED;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "oauth: cannot cache a shared record: %s",
                      ngx_oauth_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static u_char *
ngx_http_oauth_shared_payload(u_char *p, char op,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account)
{
    ngx_http_oauth_shared_conf_t  *sc;

    sc = ngx_http_oauth_shared_omcf->shared;

    p = ngx_cpymem(p, sc->node, NGX_HTTP_OAUTH_SHARED_NODE);
    *p++ = ' ';
    *p++ = op;
    *p++ = ' ';
    p = ngx_hex_dump(p, owner->data, owner->len);
    *p++ = ' ';
    p = ngx_hex_dump(p, provider->data, provider->len);
    *p++ = ' ';
    p = ngx_hex_dump(p, account->data, account->len);

    return p;
}


void
ngx_http_oauth_shared_conn_saved(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn)
{
    ngx_http_oauth_shared_conn_write(omcf, conn, 'c');
}


void
ngx_http_oauth_shared_conn_replaced(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn)
{
    ngx_http_oauth_shared_conn_write(omcf, conn, 'r');
}


static void
ngx_http_oauth_shared_conn_write(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn, char mode)
{
    u_char                         *rec, *p;
    size_t                          rlen, plen;
    ngx_http_oauth_shared_write_t  *w;

    if (omcf->shared == NULL || ngx_http_oauth_shared_omcf == NULL) {
        ngx_http_oauth_shared_next_event.set = 0;
        return;
    }

    /* the record exactly as LMDB has it: sealed, the same AAD */

    if (ngx_oauth_conn_encode(conn, &rec, &rlen) != NGX_OAUTH_OK) {
        ngx_http_oauth_shared_next_event.set = 0;
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "oauth: cannot encode a connection for the shared "
                      "store");
        return;
    }

    plen = NGX_HTTP_OAUTH_SHARED_NODE + 8
           + 2 * (conn->owner.len + conn->provider.len + conn->account.len);

    w = ngx_alloc(sizeof(ngx_http_oauth_shared_write_t) + conn->owner.len
                  + conn->provider.len + conn->account.len + rlen + plen
                  + sizeof(ngx_http_oauth_shared_event_t),
                  ngx_cycle->log);
    if (w == NULL) {
        ngx_http_oauth_shared_next_event.set = 0;
        free(rec);
        return;
    }

    p = (u_char *) (w + 1);

    w->n = 10;
    w->deleted = 0;
    w->values[5] = w->version;
    w->lens[5] = ngx_sprintf(w->version, "%uL", (uint64_t) conn->version)
                 - w->version;
    w->values[6] = (u_char *) (mode == 'r' ? "r" : "c");
    w->lens[6] = 1;

    w->values[0] = p;
    w->lens[0] = conn->owner.len;
    p = ngx_cpymem(p, conn->owner.data, conn->owner.len);
    w->values[1] = p;
    w->lens[1] = conn->provider.len;
    p = ngx_cpymem(p, conn->provider.data, conn->provider.len);
    w->values[2] = p;
    w->lens[2] = conn->account.len;
    p = ngx_cpymem(p, conn->account.data, conn->account.len);
    w->values[3] = p;
    w->lens[3] = rlen;
    p = ngx_cpymem(p, rec, rlen);
    w->values[4] = p;
    w->lens[4] = ngx_http_oauth_shared_payload(p, 'u', &conn->owner,
                                               &conn->provider,
                                               &conn->account)
                 - p;
    p += w->lens[4];

    (void) ngx_http_oauth_shared_event_params(w, 7, p);

    ngx_explicit_memzero(rec, rlen);
    free(rec);

    ngx_http_oauth_shared_write(w);
}


void
ngx_http_oauth_shared_conn_deleted(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account)
{
    u_char                         *p;
    size_t                          plen;
    ngx_http_oauth_shared_write_t  *w;

    if (omcf->shared == NULL || ngx_http_oauth_shared_omcf == NULL) {
        ngx_http_oauth_shared_next_event.set = 0;
        return;
    }

    plen = NGX_HTTP_OAUTH_SHARED_NODE + 8
           + 2 * (owner->len + provider->len + account->len);

    w = ngx_alloc(sizeof(ngx_http_oauth_shared_write_t) + owner->len
                  + provider->len + account->len + plen
                  + sizeof(ngx_http_oauth_shared_event_t), ngx_cycle->log);
    if (w == NULL) {
        ngx_http_oauth_shared_next_event.set = 0;
        return;
    }

    p = (u_char *) (w + 1);

    w->n = 7;
    w->deleted = 1;

    w->values[0] = p;
    w->lens[0] = owner->len;
    p = ngx_cpymem(p, owner->data, owner->len);
    w->values[1] = p;
    w->lens[1] = provider->len;
    p = ngx_cpymem(p, provider->data, provider->len);
    w->values[2] = p;
    w->lens[2] = account->len;
    p = ngx_cpymem(p, account->data, account->len);
    w->values[3] = p;
    w->lens[3] = ngx_http_oauth_shared_payload(p, 'd', owner, provider,
                                               account)
                 - p;
    p += w->lens[3];

    (void) ngx_http_oauth_shared_event_params(w, 4, p);

    ngx_http_oauth_shared_write(w);
}


void
ngx_http_oauth_shared_event(const ngx_oauth_event_t *ev,
    const ngx_str_t *type, const ngx_str_t *body)
{
    u_char                         *p;
    ngx_str_t                       id;
    ngx_http_oauth_shared_event_t  *e;

    e = &ngx_http_oauth_shared_next_event;

    e->set = 0;

    if (ev == NULL) {
        return;
    }

    id.data = (u_char *) ev->id;
    id.len = ngx_strlen(ev->id);

    if (id.len > sizeof(e->id) || type->len > sizeof(e->type)
        || body->len > sizeof(e->body)
        || ev->owner.len + ev->provider.len + ev->account.len + 2
           > sizeof(e->key))
    {
        return;
    }

    p = ngx_cpymem(e->key, ev->owner.data, ev->owner.len);
    *p++ = ' ';
    p = ngx_cpymem(p, ev->provider.data, ev->provider.len);
    *p++ = ' ';
    p = ngx_cpymem(p, ev->account.data, ev->account.len);
    e->key_len = p - e->key;

    e->id_len = id.len;
    e->type_len = type->len;
    e->body_len = body->len;
    ngx_memcpy(e->id, id.data, id.len);
    ngx_memcpy(e->type, type->data, type->len);
    ngx_memcpy(e->body, body->data, body->len);
    e->set = 1;
}


/*
 * The event parameters (id, type, body) from i on: the event set for this
 * write, copied after p, or NULLs (no event).  The event is taken: it
 * belongs to this write alone.
 */

static u_char *
ngx_http_oauth_shared_event_params(ngx_http_oauth_shared_write_t *w,
    ngx_uint_t i, u_char *p)
{
    ngx_http_oauth_shared_event_t  *e;

    e = &ngx_http_oauth_shared_next_event;

    /* an event left over from a change that was not written is not this */

    if (e->set
        && (e->key_len != (size_t) (w->lens[0] + w->lens[1] + w->lens[2]
                                    + 2)
            || ngx_memcmp(e->key, w->values[0], w->lens[0]) != 0
            || ngx_memcmp(e->key + w->lens[0] + 1, w->values[1], w->lens[1])
               != 0
            || ngx_memcmp(e->key + w->lens[0] + w->lens[1] + 2, w->values[2],
                          w->lens[2])
               != 0))
    {
        e->set = 0;
    }

    if (!e->set) {
        w->values[i] = NULL;
        w->values[i + 1] = NULL;
        w->values[i + 2] = NULL;
        w->lens[i] = 0;
        w->lens[i + 1] = 0;
        w->lens[i + 2] = 0;
        return p;
    }

    w->values[i] = p;
    w->lens[i] = e->id_len;
    p = ngx_cpymem(p, e->id, e->id_len);
    w->values[i + 1] = p;
    w->lens[i + 1] = e->type_len;
    p = ngx_cpymem(p, e->type, e->type_len);
    w->values[i + 2] = p;
    w->lens[i + 2] = e->body_len;
    p = ngx_cpymem(p, e->body, e->body_len);

    e->set = 0;

    return p;
}


/* in the order made; kept in memory while the store is away */

static void
ngx_http_oauth_shared_write(ngx_http_oauth_shared_write_t *w)
{
    if (!ngx_queue_empty(&ngx_http_oauth_shared_pending)
        || ngx_http_oauth_shared_send(w) != NGX_OK)
    {
        if (ngx_http_oauth_shared_npending >= NGX_HTTP_OAUTH_SHARED_PENDING)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "oauth: too many connection changes wait for "
                          "the shared store: one is dropped");
            ngx_free(w);
            return;
        }

        ngx_queue_insert_tail(&ngx_http_oauth_shared_pending, &w->queue);
        ngx_http_oauth_shared_npending++;
    }
}


/* the change on its way to PostgreSQL, or NGX_ERROR while it is away */

static ngx_int_t
ngx_http_oauth_shared_send(ngx_http_oauth_shared_write_t *w)
{
    const char  *err;

    if (ngx_http_oauth_pg_query(w->deleted
                                ? ngx_http_oauth_shared_delete_sql
                                : ngx_http_oauth_shared_upsert_sql,
                                w->n, w->values, w->lens, 0,
                                ngx_http_oauth_shared_write_done, w, &err)
        == NULL)
    {
        return NGX_ERROR;
    }

    ngx_http_oauth_shared_writing++;

    return NGX_OK;
}


static void
ngx_http_oauth_shared_write_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_shared_write_t *w = data;

    ngx_http_oauth_shared_writing--;

    if (res && !w->deleted && PQntuples(res) == 0) {

        /*
         * PostgreSQL has a newer (or the same) version, written by
         * another node: this change is not taken, and the cache gets
         * the row instead.
         */

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "oauth: a connection change was superseded by a "
                      "newer one in the shared store");

        ngx_http_oauth_shared_refetch(w->values, w->lens);
    }

    if (res && PQntuples(res) > 0 && w->values[w->deleted ? 4 : 7]) {
        ngx_http_oauth_webhook_written(ngx_http_oauth_shared_omcf);
    }

    if (res == NULL) {

        /* again when the store is back: the change must not be lost */

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "oauth: connection change not yet in the shared "
                      "store (%s): kept to write again", err);

        ngx_queue_insert_head(&ngx_http_oauth_shared_pending, &w->queue);
        ngx_http_oauth_shared_npending++;
        return;
    }

    ngx_free(w);
}


static void
ngx_http_oauth_shared_flush(void)
{
    ngx_queue_t                    *q;
    ngx_http_oauth_shared_write_t  *w;

    while (!ngx_queue_empty(&ngx_http_oauth_shared_pending)) {
        q = ngx_queue_head(&ngx_http_oauth_shared_pending);
        w = ngx_queue_data(q, ngx_http_oauth_shared_write_t, queue);

        if (ngx_http_oauth_shared_send(w) != NGX_OK) {
            return;
        }

        ngx_queue_remove(q);
        ngx_http_oauth_shared_npending--;
    }
}


void
ngx_http_oauth_shared_flow_purge(ngx_http_oauth_main_conf_t *omcf,
    time_t interval)
{
    u_char        holder[NGX_HTTP_OAUTH_SHARED_NODE + NGX_INT64_LEN + 2];
    u_char        every[NGX_INT64_LEN + 1], ttl[NGX_INT64_LEN + 1];
    const char   *err;
    const u_char *values[3];

    if (omcf->shared == NULL || ngx_http_oauth_shared_omcf == NULL
        || !ngx_http_oauth_pg_up())
    {
        return;
    }

    ngx_sprintf(holder, "%*s %P%Z", (size_t) NGX_HTTP_OAUTH_SHARED_NODE,
                ((ngx_http_oauth_shared_conf_t *) omcf->shared)->node,
                ngx_pid);
    ngx_sprintf(every, "%T%Z", interval);
    ngx_sprintf(ttl, "%T%Z", omcf->state_ttl);

    values[0] = holder;
    values[1] = every;
    values[2] = ttl;

    if (ngx_http_oauth_pg_query(ngx_http_oauth_shared_purge_sql, 3, values,
                                (ssize_t []) { -1, -1, -1 }, 0,
                                ngx_http_oauth_shared_purge_done, NULL,
                                &err)
        == NULL)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "oauth shared: flows not purged: %s", err);
    }
}


static void
ngx_http_oauth_shared_purge_done(void *data, PGresult *res, const char *err)
{
    char  *n;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "oauth: cannot purge expired flows in the shared "
                      "store: %s", err);
        return;
    }

    n = PQcmdTuples(res);

    if (n && n[0] != '\0' && ngx_strcmp(n, "0") != 0) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "oauth: %s expired flows purged from the shared store",
                      n);
    }
}


/* requests that wait */

static ngx_http_oauth_shared_wait_t *
ngx_http_oauth_shared_wait_create(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_oauth_shared_wait_t  *w;

    w = ngx_http_oauth_cleanup_data(r, ngx_http_oauth_shared_wait_cleanup);
    if (w) {
        return w;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_oauth_shared_wait_t));
    if (cln == NULL) {
        return NULL;
    }

    w = cln->data;
    ngx_memzero(w, sizeof(ngx_http_oauth_shared_wait_t));
    w->request = r;

    cln->handler = ngx_http_oauth_shared_wait_cleanup;

    return w;
}


static void
ngx_http_oauth_shared_wait_cleanup(void *data)
{
    ngx_http_oauth_shared_wait_t *w = data;

    if (w->query) {
        ngx_http_oauth_pg_cancel(w->query);
        w->query = NULL;
    }
}


ngx_int_t
ngx_http_oauth_shared_flow_put(ngx_http_request_t *r, const char *state,
    size_t len, const ngx_oauth_flow_t *flow)
{
    u_char                        *rec, hash[NGX_OAUTH_SHA256_LEN];
    u_char                         exp[NGX_TIME_T_LEN + 1];
    size_t                         rlen;
    ssize_t                        lens[3];
    const char                    *err;
    const u_char                  *values[3];
    ngx_http_oauth_shared_wait_t  *w;
    ngx_http_oauth_main_conf_t    *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (omcf->shared == NULL) {
        return NGX_DECLINED;
    }

    if (!ngx_http_oauth_pg_up()) {
        return NGX_BUSY;
    }

    w = ngx_http_oauth_shared_wait_create(r);

    if (w == NULL
        || ngx_oauth_sha256((u_char *) state, len, hash) != NGX_OAUTH_OK
        || ngx_oauth_flow_encode(flow, &rec, &rlen) != NGX_OAUTH_OK)
    {
        return NGX_ERROR;
    }

    values[0] = hash;
    lens[0] = sizeof(hash);
    values[1] = rec;
    lens[1] = rlen;
    values[2] = exp;
    lens[2] = ngx_sprintf(exp, "%T", flow->expires) - exp;

    w->query = ngx_http_oauth_pg_query("INSERT INTO oauth_flows "
                                       "(state_hash, record, expires_at) "
                                       "VALUES ($1::bytea, $2::bytea, "
                                       "to_timestamp($3::text::bigint))",
                                       3, values, lens, 0,
                                       ngx_http_oauth_shared_put_done, w,
                                       &err);
    free(rec);

    return w->query ? NGX_AGAIN : NGX_BUSY;
}


ngx_int_t
ngx_http_oauth_shared_wait(ngx_http_request_t *r, ngx_int_t status)
{
    ngx_http_oauth_shared_wait_t  *w;

    w = ngx_http_oauth_cleanup_data(r, ngx_http_oauth_shared_wait_cleanup);

    if (w == NULL || w->query == NULL) {
        return status;
    }

    w->status = status;
    w->waiting = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_oauth_shared_put_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_shared_wait_t *w = data;

    ngx_int_t            rc;
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = w->request;
    c = r->connection;
    w->query = NULL;

    if (!w->waiting) {
        return;
    }

    if (res) {
        ngx_http_finalize_request(r, w->status);
        ngx_http_run_posted_requests(c);
        return;
    }

    /* not stored: no redirect, no cookie for a flow that is not there */

    if (r->headers_out.location) {
        r->headers_out.location->hash = 0;
        r->headers_out.location = NULL;
    }

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Set-Cookie") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Set-Cookie",
                               h[i].key.len) == 0)
        {
            h[i].hash = 0;
        }
    }

    rc = ngx_http_oauth_shared_unavailable(r);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_oauth_shared_flow_take(ngx_http_request_t *r, const u_char *state,
    size_t len)
{
    u_char                         hash[NGX_OAUTH_SHA256_LEN];
    ssize_t                        lens[1];
    const char                    *err;
    const u_char                  *values[1];
    ngx_http_oauth_shared_wait_t  *w;
    ngx_http_oauth_main_conf_t    *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (omcf->shared == NULL) {
        return NGX_DECLINED;
    }

    w = ngx_http_oauth_cleanup_data(r, ngx_http_oauth_shared_wait_cleanup);

    if (w && w->done) {

        /* the flow is in this node's LMDB now, if it was anywhere */

        return w->failed ? NGX_BUSY : NGX_DECLINED;
    }

    if (len > sizeof(w->state) || !ngx_http_oauth_pg_up()) {
        return NGX_BUSY;
    }

    w = ngx_http_oauth_shared_wait_create(r);

    if (w == NULL || ngx_oauth_sha256(state, len, hash) != NGX_OAUTH_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(w->state, state, len);
    w->state_len = len;

    values[0] = hash;
    lens[0] = sizeof(hash);

    /* single use across the fleet: the DELETE decides */

    w->query = ngx_http_oauth_pg_query("DELETE FROM oauth_flows "
                                       "WHERE state_hash = $1::bytea "
                                       "RETURNING record",
                                       1, values, lens, 0,
                                       ngx_http_oauth_shared_take_done, w,
                                       &err);

    if (w->query == NULL) {
        return NGX_BUSY;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_AGAIN;
}


static void
ngx_http_oauth_shared_take_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_shared_wait_t *w = data;

    int                          rc;
    ngx_int_t                    hrc;
    ngx_oauth_flow_t             flow;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_oauth_main_conf_t  *omcf;

    r = w->request;
    c = r->connection;
    w->query = NULL;
    w->done = 1;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (res == NULL) {
        w->failed = 1;

    } else if (PQntuples(res) == 1 && omcf->store) {
        rc = ngx_oauth_flow_decode((u_char *) PQgetvalue(res, 0, 0),
                                   PQgetlength(res, 0, 0), &flow);

        if (rc == NGX_OAUTH_OK) {
            rc = ngx_oauth_store_flow_put(omcf->store, (char *) w->state,
                                          w->state_len, &flow);
            ngx_oauth_flow_free(&flow);
        }

        if (rc != NGX_OAUTH_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "oauth: cannot move a shared flow to the cache: "
                          "%s", ngx_oauth_strerror(rc));
        }
    }

    hrc = ngx_http_oauth_callback_handler(r);

    ngx_http_finalize_request(r, hrc);
    ngx_http_run_posted_requests(c);
}


/* oauth_token's cache miss */

ngx_int_t
ngx_http_oauth_shared_miss(ngx_http_request_t *r,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account)
{
    ssize_t                        lens[3];
    ngx_uint_t                     n;
    const char                    *err;
    const u_char                  *values[3];
    ngx_pool_cleanup_t            *cln;
    ngx_http_oauth_shared_wait_t  *w;
    ngx_http_oauth_main_conf_t    *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (omcf->shared == NULL) {
        return NGX_DECLINED;
    }

    w = ngx_http_oauth_cleanup_data(r, ngx_http_oauth_shared_miss_cleanup);

    if (w) {
        if (!w->done) {
            return NGX_AGAIN;
        }

        return w->failed ? NGX_BUSY : NGX_DECLINED;
    }

    /* PostgreSQL said there was none a moment ago (no notify since) */

    if (ngx_http_oauth_shared_absent_find(owner, provider, account)) {
        return NGX_DECLINED;
    }

    if (!ngx_http_oauth_pg_up()) {
        return NGX_BUSY;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_oauth_shared_wait_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    w = cln->data;
    ngx_memzero(w, sizeof(ngx_http_oauth_shared_wait_t));
    w->request = r;
    w->owner = *owner;
    w->provider = *provider;

    if (account) {
        w->account = *account;

    } else {
        w->any = 1;
    }

    cln->handler = ngx_http_oauth_shared_miss_cleanup;

    values[0] = owner->data;
    lens[0] = owner->len;
    values[1] = provider->data;
    lens[1] = provider->len;
    n = 2;

    if (account) {
        values[2] = account->data;
        lens[2] = account->len;
        n = 3;
    }

    w->query = ngx_http_oauth_pg_query(account
                                       ? ngx_http_oauth_shared_fetch_sql
                                       : "SELECT record, version::text "
                                         "FROM oauth_connections "
                                         "WHERE owner = $1::text "
                                         "AND provider = $2::text "
                                         "LIMIT 2",
                                       n, values, lens, 0,
                                       ngx_http_oauth_shared_miss_done, w,
                                       &err);

    if (w->query == NULL) {
        w->done = 1;
        w->failed = 1;
        return NGX_BUSY;
    }

    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


static void
ngx_http_oauth_shared_miss_cleanup(void *data)
{
    ngx_http_oauth_shared_wait_cleanup(data);
}


static void
ngx_http_oauth_shared_miss_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_shared_wait_t *w = data;

    int                  i;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = w->request;
    c = r->connection;
    w->query = NULL;
    w->done = 1;

    if (res == NULL) {
        w->failed = 1;

    } else if (PQntuples(res) == 0) {

        /*
         * The request's owner, provider and account stay valid while
         * it waits: they are its own (ctx) or its location's.
         */

        ngx_http_oauth_shared_absent_add(&w->owner, &w->provider,
                                         w->any ? NULL : &w->account);

    } else {
        for (i = 0; i < PQntuples(res); i++) {
            (void) ngx_http_oauth_shared_cache_put(res, i, 0, 1, 1);
        }
    }

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/*
 * The API's view of an owner: every connection PostgreSQL has for the
 * owner goes into this node's cache first, so that one made on another
 * node and never used here is listed, changed and deleted like the
 * others.  Known down: the cache as it is (its writes wait for the
 * database), unless strict (a DELETE must not miss one).
 */

ngx_int_t
ngx_http_oauth_shared_owner(ngx_http_request_t *r, const ngx_str_t *owner,
    ngx_uint_t strict, ngx_http_oauth_shared_resume_pt resume)
{
    ssize_t                        lens[1];
    const char                    *err;
    const u_char                  *values[1];
    ngx_pool_cleanup_t            *cln;
    ngx_http_oauth_shared_wait_t  *w;
    ngx_http_oauth_main_conf_t    *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (omcf->shared == NULL || omcf->store == NULL) {
        return NGX_DECLINED;
    }

    w = ngx_http_oauth_cleanup_data(r, ngx_http_oauth_shared_fill_cleanup);

    if (w) {
        if (!w->done) {
            return NGX_AGAIN;
        }

        return w->failed ? NGX_BUSY : NGX_DECLINED;
    }

    if (!ngx_http_oauth_pg_up()) {
        return strict ? NGX_BUSY : NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_oauth_shared_wait_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    w = cln->data;
    ngx_memzero(w, sizeof(ngx_http_oauth_shared_wait_t));
    w->request = r;
    w->resume = resume;
    w->owner.data = owner->data;
    w->owner.len = owner->len;
    w->started = ngx_time();

    cln->handler = ngx_http_oauth_shared_fill_cleanup;

    values[0] = owner->data;
    lens[0] = owner->len;

    w->query = ngx_http_oauth_pg_query("SELECT record, version::text, "
                                       "provider, account "
                                       "FROM oauth_connections "
                                       "WHERE owner = $1::text",
                                       1, values, lens, 0,
                                       ngx_http_oauth_shared_fill_done, w,
                                       &err);

    if (w->query == NULL) {
        w->done = 1;
        w->failed = 1;
        return NGX_BUSY;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_AGAIN;
}


static void
ngx_http_oauth_shared_fill_cleanup(void *data)
{
    ngx_http_oauth_shared_wait_cleanup(data);
}


static void
ngx_http_oauth_shared_fill_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_shared_wait_t *w = data;

    int                  i;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = w->request;
    c = r->connection;
    w->query = NULL;
    w->done = 1;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "oauth: the owner's connections are not read from "
                      "the shared store: %s", err ? err : "failed");
        w->failed = 1;

    } else {
        for (i = 0; i < PQntuples(res); i++) {
            (void) ngx_http_oauth_shared_cache_put(res, i, 0, 1, 1);
        }

        ngx_http_oauth_shared_fill_drop(w, res);
    }

    /* the handler finalizes the request: the reference taken above */

    w->resume(r);
    ngx_http_run_posted_requests(c);
}


/*
 * A connection the cache has and PostgreSQL no longer does was deleted
 * on another node whose notification this worker missed: dropped, so
 * that it is neither listed nor injected.  One changed here since the
 * query was sent may be newer than its answer: kept.
 */

static void
ngx_http_oauth_shared_fill_drop(ngx_http_oauth_shared_wait_t *w,
    PGresult *res)
{
    int                          i, n;
    ngx_uint_t                   k, dropped;
    ngx_array_t                  keys;
    ngx_pool_t                  *pool;
    ngx_oauth_conn_t            *c;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_oauth_shared_omcf;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&keys, pool, 8, sizeof(ngx_oauth_conn_t)) != NGX_OK
        || ngx_oauth_store_conn_each(omcf->store, &w->owner, NULL,
                                     ngx_http_oauth_shared_drop_one, &keys)
           != NGX_OAUTH_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    c = keys.elts;
    n = PQntuples(res);
    dropped = 0;

    for (k = 0; k < keys.nelts; k++) {
        if (c[k].owner.data == NULL || c[k].updated_at >= w->started) {
            continue;
        }

        for (i = 0; i < n; i++) {
            if ((size_t) PQgetlength(res, i, 2) == c[k].provider.len
                && (size_t) PQgetlength(res, i, 3) == c[k].account.len
                && ngx_memcmp(PQgetvalue(res, i, 2), c[k].provider.data,
                              c[k].provider.len) == 0
                && ngx_memcmp(PQgetvalue(res, i, 3), c[k].account.data,
                              c[k].account.len) == 0)
            {
                break;
            }
        }

        if (i == n
            && ngx_oauth_store_conn_delete(omcf->store, &c[k].owner,
                                           &c[k].provider, &c[k].account)
               == NGX_OAUTH_OK)
        {
            dropped++;
        }
    }

    if (dropped) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "oauth: shared store: %ui cached connections of an "
                      "owner were gone from it, dropped", dropped);
    }

    ngx_destroy_pool(pool);
}


/*
 * Absences: "no connection" answers of PostgreSQL kept by the worker
 * for NGX_HTTP_OAUTH_SHARED_ABSENT_TTL, forgotten at once by the
 * notification of a write of the connection (a connect on any node), or
 * all of them when the worker reconnects (it may have missed one).  The
 * key: owner, provider and account (or '*': any), each after its length.
 */

static size_t
ngx_http_oauth_shared_absent_key(u_char *buf, const ngx_oauth_str_t *owner,
    const ngx_oauth_str_t *provider, const ngx_oauth_str_t *account)
{
    u_char  *p;

    if (owner->len > NGX_OAUTH_OWNER_MAX
        || provider->len > NGX_OAUTH_PROVIDER_MAX
        || (account && account->len > NGX_OAUTH_ACCOUNT_MAX))
    {
        return 0;
    }

    p = buf;
    *p++ = (u_char) (owner->len >> 8);
    *p++ = (u_char) (owner->len & 0xff);
    p = ngx_cpymem(p, owner->data, owner->len);
    *p++ = (u_char) provider->len;
    p = ngx_cpymem(p, provider->data, provider->len);

    if (account == NULL) {
        *p++ = '*';

    } else {
        *p++ = 'a';
        p = ngx_cpymem(p, account->data, account->len);
    }

    return p - buf;
}


static ngx_uint_t
ngx_http_oauth_shared_absent_find(const ngx_oauth_str_t *owner,
    const ngx_oauth_str_t *provider, const ngx_oauth_str_t *account)
{
    u_char                           buf[NGX_HTTP_OAUTH_SHARED_ABSENT_KEY];
    ngx_str_t                        key;
    ngx_str_node_t                  *sn;
    ngx_http_oauth_shared_absent_t  *a;

    key.data = buf;
    key.len = ngx_http_oauth_shared_absent_key(buf, owner, provider,
                                               account);

    if (key.len == 0 || ngx_http_oauth_shared_nabsent == 0) {
        return 0;
    }

    sn = ngx_str_rbtree_lookup(&ngx_http_oauth_shared_absent, &key,
                               ngx_crc32_short(key.data, key.len));
    if (sn == NULL) {
        return 0;
    }

    a = (ngx_http_oauth_shared_absent_t *) sn;

    if ((ngx_msec_int_t) (a->expires - ngx_current_msec) <= 0) {
        ngx_http_oauth_shared_absent_remove(a);
        return 0;
    }

    return 1;
}


static void
ngx_http_oauth_shared_absent_add(const ngx_oauth_str_t *owner,
    const ngx_oauth_str_t *provider, const ngx_oauth_str_t *account)
{
    u_char                          *p;
    size_t                           len;
    ngx_queue_t                     *q;
    ngx_http_oauth_shared_absent_t  *a;
    u_char                           buf[NGX_HTTP_OAUTH_SHARED_ABSENT_KEY];

    len = ngx_http_oauth_shared_absent_key(buf, owner, provider, account);

    if (len == 0 || ngx_http_oauth_shared_absent_find(owner, provider,
                                                      account))
    {
        return;
    }

    /* full: the oldest goes */

    if (ngx_http_oauth_shared_nabsent >= NGX_HTTP_OAUTH_SHARED_ABSENT_MAX) {
        q = ngx_queue_head(&ngx_http_oauth_shared_absent_queue);
        ngx_http_oauth_shared_absent_remove(
            ngx_queue_data(q, ngx_http_oauth_shared_absent_t, queue));
    }

    a = ngx_alloc(sizeof(ngx_http_oauth_shared_absent_t) + len,
                  ngx_cycle->log);
    if (a == NULL) {
        return;
    }

    p = (u_char *) a + sizeof(ngx_http_oauth_shared_absent_t);
    ngx_memcpy(p, buf, len);

    a->sn.str.data = p;
    a->sn.str.len = len;
    a->sn.node.key = ngx_crc32_short(p, len);
    a->expires = ngx_current_msec + NGX_HTTP_OAUTH_SHARED_ABSENT_TTL;

    ngx_rbtree_insert(&ngx_http_oauth_shared_absent, &a->sn.node);
    ngx_queue_insert_tail(&ngx_http_oauth_shared_absent_queue, &a->queue);
    ngx_http_oauth_shared_nabsent++;
}


/* a write of owner, provider, account: that one and "any account" */

static void
ngx_http_oauth_shared_absent_forget(const ngx_oauth_str_t *owner,
    const ngx_oauth_str_t *provider, const ngx_oauth_str_t *account)
{
    u_char                           buf[NGX_HTTP_OAUTH_SHARED_ABSENT_KEY];
    ngx_str_t                        key;
    ngx_uint_t                       i;
    ngx_str_node_t                  *sn;

    if (ngx_http_oauth_shared_nabsent == 0) {
        return;
    }

    for (i = 0; i < 2; i++) {
        key.data = buf;
        key.len = ngx_http_oauth_shared_absent_key(buf, owner, provider,
                                                   i ? NULL : account);
        if (key.len == 0) {
            continue;
        }

        sn = ngx_str_rbtree_lookup(&ngx_http_oauth_shared_absent, &key,
                                   ngx_crc32_short(key.data, key.len));
        if (sn) {
            ngx_http_oauth_shared_absent_remove(
                (ngx_http_oauth_shared_absent_t *) sn);
        }
    }
}


static void
ngx_http_oauth_shared_absent_remove(ngx_http_oauth_shared_absent_t *a)
{
    ngx_rbtree_delete(&ngx_http_oauth_shared_absent, &a->sn.node);
    ngx_queue_remove(&a->queue);
    ngx_http_oauth_shared_nabsent--;
    ngx_free(a);
}


static void
ngx_http_oauth_shared_absent_clear(void)
{
    ngx_queue_t  *q;

    while (ngx_http_oauth_shared_nabsent) {
        q = ngx_queue_head(&ngx_http_oauth_shared_absent_queue);
        ngx_http_oauth_shared_absent_remove(
            ngx_queue_data(q, ngx_http_oauth_shared_absent_t, queue));
    }
}


/* the fleet's refresh lease */

ngx_int_t
ngx_http_oauth_shared_lease(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn)
{
    u_char                          secs[NGX_INT_T_LEN];
    ssize_t                         lens[5];
    const char                     *err;
    const u_char                   *values[5];
    ngx_pool_cleanup_t             *cln;
    ngx_http_oauth_shared_conf_t   *sc;
    ngx_http_oauth_shared_lease_t  *ls;

    sc = rf->omcf->shared;

    if (sc == NULL || rf->shared_leased) {
        return NGX_DECLINED;
    }

    if (rf->shared_down || !ngx_http_oauth_pg_up()) {
        return NGX_BUSY;
    }

    cln = ngx_pool_cleanup_add(rf->pool, sizeof(ngx_http_oauth_shared_lease_t)
                                         + conn->refresh.len);
    if (cln == NULL) {
        return NGX_BUSY;
    }

    ls = cln->data;
    ngx_memzero(ls, sizeof(ngx_http_oauth_shared_lease_t));
    ls->rf = rf;

    cln->handler = ngx_http_oauth_shared_lease_cleanup;

    /* what the node has: another node's refresh shows as a new token */

    ls->refresh.data = (u_char *) (ls + 1);
    ls->refresh.len = conn->refresh.len;
    ngx_memcpy(ls->refresh.data, conn->refresh.data, conn->refresh.len);

    ls->holder_len = ngx_http_oauth_shared_holder(sc, rf, ls->holder)
                     - ls->holder;

    ngx_http_oauth_shared_key(rf, values, lens);
    values[3] = ls->holder;
    lens[3] = ls->holder_len;
    values[4] = secs;
    lens[4] = ngx_sprintf(secs, "%M", rf->omcf->http_timeout / 1000 + 5)
              - secs;

    /*
     * Taken when free, expired or ours; the record is read by a second
     * statement, whose snapshot sees whatever the last holder stored.
     */

    ls->query = ngx_http_oauth_pg_query(
        "INSERT INTO oauth_leases "
        "(owner, provider, account, holder, lease_until) "
        "VALUES ($1::text, $2::text, $3::text, $4::text, "
        "now() + $5::text::int * interval '1 second') "
        "ON CONFLICT (owner, provider, account) DO UPDATE "
        "SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until "
        "WHERE oauth_leases.lease_until < now() "
        "OR oauth_leases.holder = EXCLUDED.holder "
        "RETURNING holder",
        5, values, lens, 0, ngx_http_oauth_shared_lease_done, ls, &err);

    if (ls->query == NULL) {
        return NGX_BUSY;
    }

    return NGX_AGAIN;
}


static void
ngx_http_oauth_shared_lease_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_shared_lease_t *ls = data;

    ssize_t                    lens[3];
    const u_char              *values[3];
    ngx_http_oauth_refresh_t  *rf;

    rf = ls->rf;
    ls->query = NULL;

    if (res == NULL) {

        /* the refresh is given up for now, as for a provider outage */

        rf->shared_down = 1;
        ngx_http_oauth_shared_step(rf, 1);
        return;
    }

    if (PQntuples(res) != 1) {

        /* another node refreshes: its result comes by NOTIFY */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                       "oauth shared: provider \"%V\": fleet lease busy",
                       &rf->provider->name);

        ngx_http_oauth_shared_step(rf, 50);
        return;
    }

    rf->shared_leased = 1;

    ngx_http_oauth_shared_key(rf, values, lens);

    ls->query = ngx_http_oauth_pg_query(ngx_http_oauth_shared_fetch_sql,
                                        3, values, lens, 0,
                                        ngx_http_oauth_shared_lease_read_done,
                                        ls, &err);

    if (ls->query == NULL) {
        rf->shared_down = 1;
        ngx_http_oauth_shared_step(rf, 1);
    }
}


static void
ngx_http_oauth_shared_lease_read_done(void *data, PGresult *res,
    const char *err)
{
    ngx_http_oauth_shared_lease_t *ls = data;

    int                        rc;
    ngx_oauth_conn_t           conn;
    ngx_http_oauth_refresh_t  *rf;

    rf = ls->rf;
    ls->query = NULL;

    if (res == NULL) {
        rf->shared_down = 1;
        ngx_http_oauth_shared_step(rf, 1);
        return;
    }

    if (PQntuples(res) == 1) {
        rc = ngx_oauth_conn_decode((u_char *) PQgetvalue(res, 0, 0),
                                   PQgetlength(res, 0, 0), &conn);

        if (rc == NGX_OAUTH_OK) {
            if (conn.refresh.len != ls->refresh.len
                || ngx_memcmp(conn.refresh.data, ls->refresh.data,
                              conn.refresh.len)
                   != 0)
            {
                /*
                 * Another node refreshed since this one cached the
                 * record: its result goes into the cache, and the step
                 * decides again from it (the token is fresh now).
                 */

                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                               "oauth shared: provider \"%V\": refreshed "
                               "elsewhere", &rf->provider->name);

                conn.version = strtoull(PQgetvalue(res, 0, 1), NULL, 10);

                (void) ngx_oauth_store_conn_put_version(rf->omcf->store,
                                                        &conn, 0);
            }

            ngx_oauth_conn_free(&conn);
        }

    } else {

        /* disconnected elsewhere */

        (void) ngx_oauth_store_conn_delete(rf->omcf->store, &rf->owner,
                                     (ngx_oauth_str_t *) &rf->provider->name,
                                     &rf->account);
    }

    ngx_http_oauth_shared_step(rf, 1);
}


static void
ngx_http_oauth_shared_step(ngx_http_oauth_refresh_t *rf, ngx_msec_t ms)
{
    /* as refresh.c's own timer: only a waiting requester holds a worker */

    rf->wait.cancelable = (rf->data == NULL);
    ngx_add_timer(&rf->wait, ms);
}


static void
ngx_http_oauth_shared_lease_cleanup(void *data)
{
    ngx_http_oauth_shared_lease_t *ls = data;

    if (ls->query) {
        ngx_http_oauth_pg_cancel(ls->query);
        ls->query = NULL;
    }
}


void
ngx_http_oauth_shared_lease_drop(ngx_http_oauth_refresh_t *rf)
{
    u_char                         holder[64], *p;
    ssize_t                        lens[4];
    const char                    *err;
    const u_char                  *values[4];
    ngx_http_oauth_shared_conf_t  *sc;

    sc = rf->omcf->shared;

    if (sc == NULL || !rf->shared_leased) {
        return;
    }

    rf->shared_leased = 0;

    p = ngx_http_oauth_shared_holder(sc, rf, holder);

    ngx_http_oauth_shared_key(rf, values, lens);
    values[3] = holder;
    lens[3] = p - holder;

    /* after the result's write on the same connection: in order */

    (void) ngx_http_oauth_pg_query("DELETE FROM oauth_leases "
                                   "WHERE owner = $1::text "
                                   "AND provider = $2::text "
                                   "AND account = $3::text "
                                   "AND holder = $4::text",
                                   4, values, lens,
                                   NGX_HTTP_OAUTH_PG_QUEUE_DOWN, NULL, NULL,
                                   &err);
}


/* $1, $2, $3: the connection a refresh is for */

static void
ngx_http_oauth_shared_key(ngx_http_oauth_refresh_t *rf,
    const u_char **values, ssize_t *lens)
{
    values[0] = rf->owner.data;
    lens[0] = rf->owner.len;
    values[1] = rf->provider->name.data;
    lens[1] = rf->provider->name.len;
    values[2] = rf->account.data;
    lens[2] = rf->account.len;
}


/* the fleet lease's holder: this node, worker and refresh (64 bytes) */

static u_char *
ngx_http_oauth_shared_holder(ngx_http_oauth_shared_conf_t *sc,
    ngx_http_oauth_refresh_t *rf, u_char *buf)
{
    return ngx_sprintf(buf, "%s-%P-%uL", sc->node, ngx_pid, rf->holder);
}
