/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * ngx-oauth --shared: check, rotate, backup and restore against the
 * PostgreSQL of oauth_shared_store.  A tool may block, so libpq is used
 * synchronously.  Records are the module's, sealed as in LMDB: the tool
 * opens them with the key ring, never sends a plaintext to the database
 * and never prints one.  Changes it makes to a connection row go the way
 * a node's do: the row's version goes up and "NOTIFY oauth_conn" tells
 * every node to read it again, so that no cache keeps the old row.
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_seal.h"
#include "ngx_oauth_store.h"
#include "ngx_oauth_cli.h"


#define NGX_OAUTH_CLI_SHARED_SCHEMA    2
#define NGX_OAUTH_CLI_SHARED_CHANNEL   "oauth_conn"
#define NGX_OAUTH_CLI_SHARED_NODE      16     /* hex chars, as a node's */
#define NGX_OAUTH_CLI_SHARED_TRIES     20     /* per row: busy or changed */
#define NGX_OAUTH_CLI_SHARED_WAIT_US   100000
#define NGX_OAUTH_CLI_SHARED_PW_MAX    1024
#define NGX_OAUTH_CLI_SHARED_ERR_LEN   512
#define NGX_OAUTH_CLI_SHARED_VER_LEN   24

/* a database error, already written to stderr: stops the command */
#define NGX_OAUTH_CLI_SHARED_REPORTED  1

/* the backup's map: room for every record twice, and some */
#define NGX_OAUTH_CLI_SHARED_MAP_MIN   (16 * 1024 * 1024)


typedef struct {
    const ngx_oauth_cli_shared_conf_t  *conf;
    PGconn                             *pg;
    ngx_oauth_keyring_t                 keyring;
    ngx_oauth_buf_t                     out;

    /* the node id of NOTIFY payloads and the holder of leases */
    char                                node[NGX_OAUTH_CLI_SHARED_NODE + 1];
    char                                holder[64];

    size_t                              conns;
    size_t                              values;
    size_t                              done;
    size_t                              current;
    size_t                              failed;
    size_t                              bad;       /* records, not values */
    size_t                              busy;
    size_t                              flows;
    size_t                              flows_done;
    size_t                              flows_failed;
    size_t                              unchanged;
    int                                 error;
} ngx_oauth_cli_shared_t;


/* a connection row as read: key strings point into a PGresult */
typedef struct {
    ngx_oauth_str_t                     owner;
    ngx_oauth_str_t                     provider;
    ngx_oauth_str_t                     account;
    uint64_t                            version;
    const unsigned char                *record;
    size_t                              record_len;
} ngx_oauth_cli_shared_row_t;


static int ngx_oauth_cli_shared_connect(ngx_oauth_cli_shared_t *s);
static int ngx_oauth_cli_shared_password(const char *path, char *buf,
    size_t size);
static int ngx_oauth_cli_shared_schema(ngx_oauth_cli_shared_t *s);
static PGresult *ngx_oauth_cli_shared_exec(ngx_oauth_cli_shared_t *s,
    const char *sql, int n, const char *const *values, const int *lens);
static void ngx_oauth_cli_shared_row(PGresult *res, int i,
    ngx_oauth_cli_shared_row_t *row);
static int ngx_oauth_cli_shared_decode(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *row, ngx_oauth_conn_t *conn);
static int ngx_oauth_cli_shared_check(ngx_oauth_cli_shared_t *s);
static void ngx_oauth_cli_shared_check_conn(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *row);
static int ngx_oauth_cli_shared_check_flows(ngx_oauth_cli_shared_t *s,
    int rotate);
static int ngx_oauth_cli_shared_flow(ngx_oauth_cli_shared_t *s,
    PGresult *res, int i, int rotate);
static int ngx_oauth_cli_shared_flow_reseal(ngx_oauth_cli_shared_t *s,
    PGresult *res, int i, ngx_oauth_flow_t *flow, unsigned char *plain,
    size_t plen);
static int ngx_oauth_cli_shared_rotate(ngx_oauth_cli_shared_t *s);
static int ngx_oauth_cli_shared_rotate_conn(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *key);
static int ngx_oauth_cli_shared_reseal(ngx_oauth_cli_shared_t *s,
    ngx_oauth_conn_t *conn, ngx_oauth_str_t *sealed, size_t *done);
static int ngx_oauth_cli_shared_lease(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *key, int take);
static int ngx_oauth_cli_shared_write(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_conn_t *conn, uint64_t expect, const char *sql);
static int ngx_oauth_cli_shared_backup(ngx_oauth_cli_shared_t *s);
static int ngx_oauth_cli_shared_events(ngx_oauth_cli_shared_t *s);
static void ngx_oauth_cli_shared_add_time(ngx_oauth_buf_t *b,
    const char *epoch);
static int ngx_oauth_cli_shared_backup_fill(ngx_oauth_cli_shared_t *s,
    PGresult *res, const char *dest);
static int ngx_oauth_cli_shared_backup_count(const ngx_oauth_conn_t *conn,
    void *data);
static int ngx_oauth_cli_shared_restore(ngx_oauth_cli_shared_t *s);
static int ngx_oauth_cli_shared_restore_scan(const ngx_oauth_conn_t *conn,
    void *data);
static int ngx_oauth_cli_shared_is_active(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_str_t *sealed);
static void ngx_oauth_cli_shared_failure(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_str_t *key, const char *field, const char *error,
    const ngx_oauth_str_t *sealed);
static void ngx_oauth_cli_shared_text(ngx_oauth_buf_t *b,
    const ngx_oauth_str_t *str);
static void ngx_oauth_cli_shared_hex(ngx_oauth_buf_t *b,
    const ngx_oauth_str_t *str);
static void ngx_oauth_cli_shared_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));


/*
 * The module's statements, kept in step with ngx_http_oauth_shared.c:
 * the same NOTIFY payload ("NODE OP HEX(owner) HEX(provider) HEX(account)
 * VERSION"), so that a node reads again a row whose version is above the
 * one its cache has.
 */

static const char  ngx_oauth_cli_shared_select_sql[] =
    "SELECT owner, provider, account, version::text, record "
    "FROM oauth_connections ORDER BY owner, provider, account";

static const char  ngx_oauth_cli_shared_get_sql[] =
    "SELECT owner, provider, account, version::text, record "
    "FROM oauth_connections "
    "WHERE owner = $1::text AND provider = $2::text AND account = $3::text";

/* a re-sealed record goes back only over the version it was read at */

static const char  ngx_oauth_cli_shared_update_sql[] =
    "WITH up AS (UPDATE oauth_connections "
      "SET record = $4::bytea, version = version + 1, updated_at = now() "
      "WHERE owner = $1::text AND provider = $2::text "
      "AND account = $3::text AND version = $5::text::bigint "
      "RETURNING version) "
    "SELECT pg_notify('" NGX_OAUTH_CLI_SHARED_CHANNEL "', "
      "$6::text || ' ' || version) FROM up";

/* a restored record replaces a different one, with a version above it */

static const char  ngx_oauth_cli_shared_restore_sql[] =
    "WITH up AS (INSERT INTO oauth_connections "
      "(owner, provider, account, version, record) "
      "VALUES ($1::text, $2::text, $3::text, $5::text::bigint + 1, "
        "$4::bytea) "
      "ON CONFLICT (owner, provider, account) DO UPDATE "
      "SET record = EXCLUDED.record, "
      "version = GREATEST(oauth_connections.version + 1, "
        "EXCLUDED.version), updated_at = now() "
      "WHERE oauth_connections.record <> EXCLUDED.record "
      "RETURNING version) "
    "SELECT pg_notify('" NGX_OAUTH_CLI_SHARED_CHANNEL "', "
      "$6::text || ' ' || version) FROM up";

/* the fleet's refresh lease: a node's refresh never races a re-seal */

static const char  ngx_oauth_cli_shared_lease_sql[] =
    "INSERT INTO oauth_leases (owner, provider, account, holder, "
      "lease_until) "
    "VALUES ($1::text, $2::text, $3::text, $4::text, "
      "now() + interval '30 seconds') "
    "ON CONFLICT (owner, provider, account) DO UPDATE "
    "SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until "
    "WHERE oauth_leases.lease_until < now() "
    "RETURNING holder";

static const char  ngx_oauth_cli_shared_unlease_sql[] =
    "DELETE FROM oauth_leases WHERE owner = $1::text "
    "AND provider = $2::text AND account = $3::text AND holder = $4::text";


int
ngx_oauth_cli_shared(const ngx_oauth_cli_shared_conf_t *conf)
{
    int                     rc, keys, args;
    unsigned char           rnd[NGX_OAUTH_CLI_SHARED_NODE / 2];
    size_t                  i;
    ngx_oauth_cli_shared_t  s;
    char                    err[NGX_OAUTH_CLI_SHARED_ERR_LEN];

    memset(&s, 0, sizeof(ngx_oauth_cli_shared_t));
    s.conf = conf;

    if (strcmp(conf->command, "check") == 0
        || strcmp(conf->command, "rotate") == 0)
    {
        keys = 1;
        args = 0;

    } else if (strcmp(conf->command, "backup") == 0
               || strcmp(conf->command, "restore") == 0)
    {
        keys = 0;
        args = 1;

    } else if (strcmp(conf->command, "events") == 0) {
        keys = 0;
        args = 0;

    } else {
        ngx_oauth_cli_shared_error("--shared goes with check, rotate, "
                                   "backup, restore and events, not \"%s\"",
                                   conf->command);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (conf->nargs != (size_t) args) {
        ngx_oauth_cli_shared_error("%s: wrong number of arguments, see "
                                   "ngx-oauth --help", conf->command);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (keys && conf->key_file == NULL) {
        ngx_oauth_cli_shared_error("%s needs --key-file FILE",
                                   conf->command);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (keys
        && ngx_oauth_keyring_load(&s.keyring, conf->key_file, err,
                                  sizeof(err))
           != NGX_OAUTH_OK)
    {
        ngx_oauth_cli_shared_error("%s", err);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    if (ngx_oauth_random(rnd, sizeof(rnd)) != NGX_OAUTH_OK) {
        ngx_oauth_cli_shared_error("the random generator failed");
        rc = NGX_OAUTH_CLI_ERROR;
        goto exit;
    }

    for (i = 0; i < sizeof(rnd); i++) {
        snprintf(s.node + 2 * i, 3, "%02x", rnd[i]);
    }

    snprintf(s.holder, sizeof(s.holder), "%s-%ld-ngx-oauth", s.node,
             (long) getpid());

    rc = ngx_oauth_cli_shared_connect(&s);
    if (rc != NGX_OAUTH_CLI_OK) {
        goto exit;
    }

    rc = ngx_oauth_cli_shared_schema(&s);
    if (rc != NGX_OAUTH_CLI_OK) {
        goto exit;
    }

    switch (conf->command[0]) {
    case 'c':
        rc = ngx_oauth_cli_shared_check(&s);
        break;
    case 'e':
        rc = ngx_oauth_cli_shared_events(&s);
        break;
    case 'r':
        rc = (conf->command[1] == 'o') ? ngx_oauth_cli_shared_rotate(&s)
                                       : ngx_oauth_cli_shared_restore(&s);
        break;
    default:
        rc = ngx_oauth_cli_shared_backup(&s);
    }

    /* what was gathered is written even when the command failed late */

    if (s.out.failed) {
        ngx_oauth_cli_shared_error("%s: out of memory", conf->command);
        rc = NGX_OAUTH_CLI_ERROR;

    } else if (s.out.len
               && fwrite(s.out.data, 1, s.out.len, stdout) != s.out.len)
    {
        ngx_oauth_cli_shared_error("write to stdout failed: %s",
                                   strerror(errno));
        rc = NGX_OAUTH_CLI_ERROR;
    }

exit:

    if (s.pg != NULL) {
        PQfinish(s.pg);
    }

    ngx_oauth_keyring_wipe(&s.keyring);
    ngx_oauth_buf_free(&s.out);

    return rc;
}


/* postgresql://USER@HOST[:PORT]/DB as oauth_shared_store takes it */

static int
ngx_oauth_cli_shared_connect(ngx_oauth_cli_shared_t *s)
{
    int          rc, n;
    char        *url, *p, *at, *slash, *colon;
    const char  *keys[8], *values[8];
    char         pw[NGX_OAUTH_CLI_SHARED_PW_MAX];

    url = strdup(s->conf->url);
    if (url == NULL) {
        ngx_oauth_cli_shared_error("out of memory");
        return NGX_OAUTH_CLI_ERROR;
    }

    rc = NGX_OAUTH_CLI_ERROR;
    pw[0] = '\0';

    if (strncmp(url, "postgresql://", 13) == 0) {
        p = url + 13;

    } else if (strncmp(url, "postgres://", 11) == 0) {
        p = url + 11;

    } else {
        goto invalid;
    }

    at = strchr(p, '@');
    slash = strchr(p, '/');

    if (at == NULL || slash == NULL || at > slash || at == p
        || slash[1] == '\0' || strchr(slash, '?') != NULL)
    {
        goto invalid;
    }

    *at = '\0';
    *slash = '\0';

    if (strchr(p, ':') != NULL) {
        ngx_oauth_cli_shared_error("a password does not go in the URL: "
                                   "use --password-file");
        goto exit;
    }

    colon = strchr(at + 1, ':');
    if (colon != NULL) {
        *colon = '\0';
    }

    if (at[1] == '\0' || (colon != NULL && atoi(colon + 1) <= 0)) {
        goto invalid;
    }

    keys[0] = "host";
    values[0] = at + 1;
    keys[1] = "port";
    values[1] = colon ? colon + 1 : "5432";
    keys[2] = "dbname";
    values[2] = slash + 1;
    keys[3] = "user";
    values[3] = p;
    keys[4] = "application_name";
    values[4] = "ngx-oauth";
    keys[5] = "connect_timeout";
    values[5] = "10";
    n = 6;

    if (s->conf->password_file != NULL) {
        if (ngx_oauth_cli_shared_password(s->conf->password_file, pw,
                                          sizeof(pw))
            != NGX_OAUTH_CLI_OK)
        {
            rc = NGX_OAUTH_CLI_UNAVAILABLE;
            goto exit;
        }

        keys[n] = "password";
        values[n++] = pw;
    }

    keys[n] = NULL;
    values[n] = NULL;

    /* sslmode and the like: libpq's PG* environment variables apply */

    s->pg = PQconnectdbParams(keys, values, 0);

    if (s->pg == NULL || PQstatus(s->pg) != CONNECTION_OK) {
        ngx_oauth_cli_shared_error("cannot connect to the shared store: %s",
                                   s->pg ? PQerrorMessage(s->pg)
                                         : "out of memory");
        rc = NGX_OAUTH_CLI_UNAVAILABLE;
        goto exit;
    }

    rc = NGX_OAUTH_CLI_OK;
    goto exit;

invalid:

    ngx_oauth_cli_shared_error("invalid --shared URL: expected "
                               "postgresql://USER@HOST[:PORT]/DB");

exit:

    ngx_oauth_wipe(pw, sizeof(pw));
    free(url);

    return rc;
}


static int
ngx_oauth_cli_shared_password(const char *path, char *buf, size_t size)
{
    FILE         *f;
    size_t        n;
    struct stat   sb;

    f = fopen(path, "r");
    if (f == NULL) {
        ngx_oauth_cli_shared_error("cannot open password file \"%s\": %s",
                                   path, strerror(errno));
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    /* as nginx's password_file: never readable by others */

    if (fstat(fileno(f), &sb) == -1 || !S_ISREG(sb.st_mode)
        || (sb.st_mode & 0007))
    {
        (void) fclose(f);
        ngx_oauth_cli_shared_error("password file \"%s\" is not a regular "
                                   "file of mode 0600 or 0640", path);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    /* no stdio buffer may keep the password: read unbuffered */

    setvbuf(f, NULL, _IONBF, 0);

    n = fread(buf, 1, size, f);
    (void) fclose(f);

    if (n == size) {
        ngx_oauth_wipe(buf, size);
        ngx_oauth_cli_shared_error("password file \"%s\" is too long",
                                   path);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    buf[n] = '\0';

    return NGX_OAUTH_CLI_OK;
}


/* the tables are the module's: created by the first node that connects */

static int
ngx_oauth_cli_shared_schema(ngx_oauth_cli_shared_t *s)
{
    int        rc;
    long       v;
    PGresult  *res;

    res = PQexec(s->pg, "SELECT max(version)::text FROM oauth_schema");

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_oauth_cli_shared_error("%s: no oauth schema in the database "
                                   "(a node creates it when it first "
                                   "connects): %s", s->conf->command,
                                   PQresultErrorField(res,
                                                   PG_DIAG_MESSAGE_PRIMARY));
        PQclear(res);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    v = PQgetisnull(res, 0, 0) ? 0 : atol(PQgetvalue(res, 0, 0));
    PQclear(res);

    rc = NGX_OAUTH_CLI_OK;

    if (v != NGX_OAUTH_CLI_SHARED_SCHEMA) {
        ngx_oauth_cli_shared_error("%s: oauth schema version %ld, this "
                                   "tool knows %d", s->conf->command, v,
                                   NGX_OAUTH_CLI_SHARED_SCHEMA);
        rc = NGX_OAUTH_CLI_UNAVAILABLE;
    }

    return rc;
}


/* every parameter and every result in binary: bytea as it is */

static PGresult *
ngx_oauth_cli_shared_exec(ngx_oauth_cli_shared_t *s, const char *sql,
    int n, const char *const *values, const int *lens)
{
    int             i;
    int             formats[8];
    PGresult       *res;
    ExecStatusType  st;

    for (i = 0; i < n; i++) {
        formats[i] = 1;
    }

    res = PQexecParams(s->pg, sql, n, NULL, values, lens, formats, 1);
    st = PQresultStatus(res);

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        return res;
    }

    /* the primary message only: no row's values */

    ngx_oauth_cli_shared_error("%s: %s", s->conf->command,
                               res ? PQresultErrorField(res,
                                               PG_DIAG_MESSAGE_PRIMARY)
                                   : PQerrorMessage(s->pg));
    PQclear(res);

    return NULL;
}


static void
ngx_oauth_cli_shared_row(PGresult *res, int i,
    ngx_oauth_cli_shared_row_t *row)
{
    row->owner.data = (unsigned char *) PQgetvalue(res, i, 0);
    row->owner.len = PQgetlength(res, i, 0);
    row->provider.data = (unsigned char *) PQgetvalue(res, i, 1);
    row->provider.len = PQgetlength(res, i, 1);
    row->account.data = (unsigned char *) PQgetvalue(res, i, 2);
    row->account.len = PQgetlength(res, i, 2);
    row->version = strtoull(PQgetvalue(res, i, 3), NULL, 10);
    row->record = (unsigned char *) PQgetvalue(res, i, 4);
    row->record_len = PQgetlength(res, i, 4);
}


/*
 * A record that does not decode, or that names another key than its row
 * (a node would cache it under that key), is reported, never used.
 */

static int
ngx_oauth_cli_shared_decode(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *row, ngx_oauth_conn_t *conn)
{
    int  rc;

    rc = ngx_oauth_conn_decode(row->record, row->record_len, conn);

    if (rc == NGX_OAUTH_NOMEM || rc == NGX_OAUTH_ERROR) {
        s->error = rc;
        return rc;
    }

    if (rc != NGX_OAUTH_OK) {
        s->bad++;
        ngx_oauth_cli_shared_failure(s, &row->owner, "record",
                                     ngx_oauth_strerror(rc), NULL);
        return rc;
    }

    if (conn->owner.len != row->owner.len
        || conn->provider.len != row->provider.len
        || conn->account.len != row->account.len
        || memcmp(conn->owner.data, row->owner.data, row->owner.len)
        || memcmp(conn->provider.data, row->provider.data,
                  row->provider.len)
        || memcmp(conn->account.data, row->account.data, row->account.len))
    {
        s->bad++;
        ngx_oauth_cli_shared_failure(s, &row->owner, "record",
                                     "another row's record", NULL);
        ngx_oauth_conn_free(conn);
        return NGX_OAUTH_INVALID;
    }

    conn->version = row->version;

    return NGX_OAUTH_OK;
}


/* the rows of one snapshot: a count that adds up even under traffic */

static int
ngx_oauth_cli_shared_check(ngx_oauth_cli_shared_t *s)
{
    int                         i, n, rc;
    PGresult                   *res;
    ngx_oauth_cli_shared_row_t  row;

    res = ngx_oauth_cli_shared_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE "
                                       "READ READ ONLY", 0, NULL, NULL);
    if (res == NULL) {
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    PQclear(res);

    res = ngx_oauth_cli_shared_exec(s, ngx_oauth_cli_shared_select_sql, 0,
                                    NULL, NULL);
    if (res == NULL) {
        return NGX_OAUTH_CLI_ERROR;
    }

    n = PQntuples(res);

    for (i = 0; i < n && s->error == NGX_OAUTH_OK; i++) {
        ngx_oauth_cli_shared_row(res, i, &row);
        ngx_oauth_cli_shared_check_conn(s, &row);
    }

    PQclear(res);

    if (s->error != NGX_OAUTH_OK) {
        ngx_oauth_cli_shared_error("check: %s", ngx_oauth_strerror(s->error));
        return NGX_OAUTH_CLI_ERROR;
    }

    /* the PKCE verifiers of flows under way are sealed too */

    rc = ngx_oauth_cli_shared_check_flows(s, 0);
    if (rc != NGX_OAUTH_CLI_OK) {
        return rc;
    }

    (void) ngx_oauth_buf_add_fmt(&s->out,
                                 "checked %zu sealed values in %zu "
                                 "connections: %zu ok, %zu failed\n",
                                 s->values, s->conns, s->done, s->failed);

    if (s->bad) {
        (void) ngx_oauth_buf_add_fmt(&s->out,
                                     "%zu records do not decode or are "
                                     "not their row's\n", s->bad);
    }

    if (s->flows) {
        (void) ngx_oauth_buf_add_fmt(&s->out,
                                     "checked %zu PKCE verifiers of flows "
                                     "under way: %zu ok, %zu failed\n",
                                     s->flows, s->flows_done,
                                     s->flows_failed);
    }

    return (s->failed || s->bad || s->flows_failed) ? NGX_OAUTH_CLI_PROBLEMS
                                                    : NGX_OAUTH_CLI_OK;
}


static void
ngx_oauth_cli_shared_check_conn(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *row)
{
    int                     rc;
    size_t                  plen;
    unsigned char          *plain;
    ngx_oauth_conn_t        conn;
    ngx_oauth_sealed_e      f;
    const ngx_oauth_str_t  *v;

    s->conns++;

    if (ngx_oauth_cli_shared_decode(s, row, &conn) != NGX_OAUTH_OK) {
        return;
    }

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
        v = ngx_oauth_conn_sealed(&conn, f);

        if (v->len == 0) {
            continue;
        }

        s->values++;

        plain = malloc(v->len);
        if (plain == NULL) {
            s->error = NGX_OAUTH_NOMEM;
            break;
        }

        /* only the verdict is wanted; a failed open wipes what it wrote */

        rc = ngx_oauth_conn_open(&s->keyring, &conn, f, plain, &plen);

        if (rc == NGX_OAUTH_OK) {
            ngx_oauth_wipe(plain, plen);
            s->done++;

        } else if (rc == NGX_OAUTH_NOMEM || rc == NGX_OAUTH_ERROR) {
            s->error = rc;

        } else {
            s->failed++;
            ngx_oauth_cli_shared_failure(s, &conn.owner,
                                         ngx_oauth_sealed_name(f),
                                         ngx_oauth_strerror(rc), v);
        }

        free(plain);
    }

    ngx_oauth_conn_free(&conn);
}


/*
 * Flows live minutes: check opens their verifiers, rotate re-seals them
 * in place unless the flow was taken or changed since it was read.
 */

static int
ngx_oauth_cli_shared_check_flows(ngx_oauth_cli_shared_t *s, int rotate)
{
    int        i, n, rc;
    PGresult  *res;

    res = ngx_oauth_cli_shared_exec(s, "SELECT state_hash, record "
                                       "FROM oauth_flows "
                                       "WHERE expires_at >= now()",
                                    0, NULL, NULL);
    if (res == NULL) {
        return NGX_OAUTH_CLI_ERROR;
    }

    n = PQntuples(res);
    rc = NGX_OAUTH_OK;

    for (i = 0; i < n && rc == NGX_OAUTH_OK; i++) {
        rc = ngx_oauth_cli_shared_flow(s, res, i, rotate);
    }

    PQclear(res);

    if (rc != NGX_OAUTH_OK) {
        if (rc != NGX_OAUTH_CLI_SHARED_REPORTED) {
            ngx_oauth_cli_shared_error("%s: flows: %s", s->conf->command,
                                       ngx_oauth_strerror(rc));
        }

        return NGX_OAUTH_CLI_ERROR;
    }

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_shared_flow(ngx_oauth_cli_shared_t *s, PGresult *res, int i,
    int rotate)
{
    int                  rc;
    size_t               plen;
    unsigned char       *plain;
    ngx_oauth_str_t      key[3];
    ngx_oauth_flow_t     flow;

    if (PQgetlength(res, i, 0) != NGX_OAUTH_FLOW_KEY_LEN) {
        return NGX_OAUTH_OK;
    }

    /* a flow has no account: its report names owner and provider */

    memset(key, 0, sizeof(key));

    rc = ngx_oauth_flow_decode((unsigned char *) PQgetvalue(res, i, 1),
                               PQgetlength(res, i, 1), &flow);

    if (rc == NGX_OAUTH_NOMEM || rc == NGX_OAUTH_ERROR) {
        return rc;
    }

    if (rc != NGX_OAUTH_OK) {
        s->flows++;
        s->flows_failed++;
        ngx_oauth_cli_shared_failure(s, key, "flow", ngx_oauth_strerror(rc),
                                     NULL);
        return NGX_OAUTH_OK;
    }

    key[0] = flow.owner;
    key[1] = flow.provider;

    memcpy(flow.state_hash, PQgetvalue(res, i, 0), NGX_OAUTH_FLOW_KEY_LEN);

    rc = NGX_OAUTH_OK;
    plain = NULL;

    if (flow.verifier.len == 0
        || (rotate && ngx_oauth_cli_shared_is_active(s, &flow.verifier)))
    {
        goto exit;
    }

    s->flows++;

    plain = malloc(flow.verifier.len);
    if (plain == NULL) {
        rc = NGX_OAUTH_NOMEM;
        goto exit;
    }

    if (ngx_oauth_flow_open_verifier(&s->keyring, &flow, plain, &plen)
        != NGX_OAUTH_OK)
    {
        s->flows_failed++;
        ngx_oauth_cli_shared_failure(s, key,
                             ngx_oauth_sealed_name(NGX_OAUTH_SEALED_VERIFIER),
                             "does not open", &flow.verifier);
        goto exit;
    }

    if (!rotate) {
        ngx_oauth_wipe(plain, plen);
        s->flows_done++;
        goto exit;
    }

    rc = ngx_oauth_cli_shared_flow_reseal(s, res, i, &flow, plain, plen);

exit:

    free(plain);
    ngx_oauth_flow_free(&flow);

    return rc;
}


/*
 * The flow's verifier (plain, wiped here) sealed under the first key and
 * written back, unless its callback took the flow meanwhile.
 */

static int
ngx_oauth_cli_shared_flow_reseal(ngx_oauth_cli_shared_t *s, PGresult *res,
    int i, ngx_oauth_flow_t *flow, unsigned char *plain, size_t plen)
{
    int                  rc, lens[3];
    size_t               slen;
    unsigned char       *sealed, *rec;
    const char          *values[3];
    PGresult            *up;

    slen = ngx_oauth_sealed_size(&s->keyring, plen);

    sealed = malloc(slen);
    if (sealed == NULL) {
        ngx_oauth_wipe(plain, plen);
        return NGX_OAUTH_NOMEM;
    }

    /* the same binding again (state NULL): the flow keeps its key */

    rc = ngx_oauth_flow_seal_verifier(&s->keyring, flow, NULL, 0, plain,
                                      plen, sealed, &slen);
    ngx_oauth_wipe(plain, plen);

    if (rc != NGX_OAUTH_OK) {
        free(sealed);
        return rc;
    }

    /* the record is encoded with the new verifier, then given its own */

    flow->verifier.data = sealed;
    flow->verifier.len = slen;

    rc = ngx_oauth_flow_encode(flow, &rec, &slen);

    flow->verifier.data = NULL;
    flow->verifier.len = 0;
    free(sealed);

    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    values[0] = PQgetvalue(res, i, 0);
    lens[0] = NGX_OAUTH_FLOW_KEY_LEN;
    values[1] = (const char *) rec;
    lens[1] = slen;
    values[2] = PQgetvalue(res, i, 1);
    lens[2] = PQgetlength(res, i, 1);

    /* a flow taken by its callback meanwhile is gone: nothing to do */

    up = ngx_oauth_cli_shared_exec(s, "UPDATE oauth_flows "
                                      "SET record = $2::bytea "
                                      "WHERE state_hash = $1::bytea "
                                      "AND record = $3::bytea",
                                   3, values, lens);
    free(rec);

    if (up == NULL) {
        return NGX_OAUTH_CLI_SHARED_REPORTED;
    }

    PQclear(up);
    s->flows_done++;

    return NGX_OAUTH_OK;
}


/*
 * Each row that has a value under another key than the active one is
 * re-sealed under the fleet's refresh lease and written back only over
 * the version it was read at, with the version bumped and a NOTIFY: a
 * node's refresh never races it, another change made meanwhile has the
 * row read again, and every node's cache learns of the new row.
 */

static int
ngx_oauth_cli_shared_rotate(ngx_oauth_cli_shared_t *s)
{
    int                         i, n, rc, active, sealed;
    PGresult                   *res;
    ngx_oauth_conn_t            conn;
    ngx_oauth_sealed_e          f;
    const ngx_oauth_str_t      *v;
    ngx_oauth_cli_shared_row_t  row;

    res = ngx_oauth_cli_shared_exec(s, ngx_oauth_cli_shared_select_sql, 0,
                                    NULL, NULL);
    if (res == NULL) {
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    n = PQntuples(res);
    rc = NGX_OAUTH_OK;

    for (i = 0; i < n && rc == NGX_OAUTH_OK; i++) {
        ngx_oauth_cli_shared_row(res, i, &row);

        if (ngx_oauth_cli_shared_decode(s, &row, &conn) != NGX_OAUTH_OK) {
            rc = s->error;
            continue;
        }

        active = 0;
        sealed = 0;

        for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
            v = ngx_oauth_conn_sealed(&conn, f);

            if (v->len) {
                sealed++;
                active += ngx_oauth_cli_shared_is_active(s, v);
            }
        }

        ngx_oauth_conn_free(&conn);

        s->conns++;

        if (active == sealed) {
            s->current += active;
            continue;
        }

        rc = ngx_oauth_cli_shared_rotate_conn(s, &row);
    }

    PQclear(res);

    if (rc != NGX_OAUTH_OK) {
        if (rc != NGX_OAUTH_CLI_SHARED_REPORTED) {
            ngx_oauth_cli_shared_error("rotate: %s", ngx_oauth_strerror(rc));
        }

        return NGX_OAUTH_CLI_ERROR;
    }

    (void) ngx_oauth_buf_add_fmt(&s->out,
                                 "rotated %zu sealed values in %zu "
                                 "connections to key %s: %zu already under "
                                 "it, %zu failed\n",
                                 s->done, s->conns, s->keyring.keys[0].kid,
                                 s->current, s->failed + s->busy);

    if (s->bad) {
        (void) ngx_oauth_buf_add_fmt(&s->out,
                                     "%zu records do not decode or are "
                                     "not their row's\n", s->bad);
    }

    /* flows under way too, so that they finish after the old key goes */

    rc = ngx_oauth_cli_shared_check_flows(s, 1);
    if (rc != NGX_OAUTH_CLI_OK) {
        return rc;
    }

    if (s->flows) {
        (void) ngx_oauth_buf_add_fmt(&s->out,
                                     "rotated %zu PKCE verifiers of flows "
                                     "under way, %zu failed\n",
                                     s->flows_done, s->flows_failed);
    }

    return (s->failed || s->busy || s->bad || s->flows_failed)
           ? NGX_OAUTH_CLI_PROBLEMS : NGX_OAUTH_CLI_OK;
}


/*
 * NGX_OAUTH_OK also when the row could not be re-sealed (counted and
 * reported); anything else stops the rotation.
 */

static int
ngx_oauth_cli_shared_rotate_conn(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *key)
{
    int                         rc, tries, lens[3];
    size_t                      done, f;
    PGresult                   *res;
    const char                 *values[3];
    ngx_oauth_conn_t            conn;
    ngx_oauth_str_t             sealed[NGX_OAUTH_SEALED_CONN_FIELDS];
    ngx_oauth_cli_shared_row_t  row;

    values[0] = (const char *) key->owner.data;
    lens[0] = key->owner.len;
    values[1] = (const char *) key->provider.data;
    lens[1] = key->provider.len;
    values[2] = (const char *) key->account.data;
    lens[2] = key->account.len;

    for (tries = 0; tries < NGX_OAUTH_CLI_SHARED_TRIES; tries++) {

        if (tries) {
            usleep(NGX_OAUTH_CLI_SHARED_WAIT_US);
        }

        rc = ngx_oauth_cli_shared_lease(s, key, 1);

        if (rc == NGX_OAUTH_BUSY) {
            continue;
        }

        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        res = ngx_oauth_cli_shared_exec(s, ngx_oauth_cli_shared_get_sql, 3,
                                        values, lens);
        if (res == NULL) {
            (void) ngx_oauth_cli_shared_lease(s, key, 0);
            return NGX_OAUTH_CLI_SHARED_REPORTED;
        }

        if (PQntuples(res) != 1) {

            /* disconnected meanwhile: nothing is left to rotate */

            PQclear(res);
            return ngx_oauth_cli_shared_lease(s, key, 0);
        }

        ngx_oauth_cli_shared_row(res, 0, &row);

        if (ngx_oauth_cli_shared_decode(s, &row, &conn) != NGX_OAUTH_OK) {
            PQclear(res);
            (void) ngx_oauth_cli_shared_lease(s, key, 0);
            return s->error;
        }

        PQclear(res);

        memset(sealed, 0, sizeof(sealed));
        done = 0;

        rc = ngx_oauth_cli_shared_reseal(s, &conn, sealed, &done);

        if (rc == NGX_OAUTH_OK && done) {
            rc = ngx_oauth_cli_shared_write(s, &conn, row.version,
                                            ngx_oauth_cli_shared_update_sql);
        }

        for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
            free(sealed[f].data);
        }

        ngx_oauth_conn_free(&conn);

        if (ngx_oauth_cli_shared_lease(s, key, 0) != NGX_OAUTH_OK
            && rc == NGX_OAUTH_OK)
        {
            rc = NGX_OAUTH_CLI_SHARED_REPORTED;
        }

        if (rc == NGX_OAUTH_CONFLICT) {

            /* changed by a node since it was read: read it again */

            continue;
        }

        if (rc == NGX_OAUTH_OK) {
            s->done += done;
        }

        return rc;
    }

    /* still busy or changing under the nodes: the next run catches it */

    s->busy++;
    ngx_oauth_cli_shared_failure(s, &key->owner, "-",
                                 "busy, try again", NULL);

    return NGX_OAUTH_OK;
}


/*
 * Points conn's sealed members that are not under the active key at new
 * values in sealed[] (the caller frees them); *done counts them.
 */

static int
ngx_oauth_cli_shared_reseal(ngx_oauth_cli_shared_t *s,
    ngx_oauth_conn_t *conn, ngx_oauth_str_t *sealed, size_t *done)
{
    int                  rc;
    size_t               plen, slen;
    unsigned char       *plain;
    ngx_oauth_str_t     *v;
    ngx_oauth_sealed_e   f;

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
        v = ngx_oauth_conn_sealed(conn, f);

        if (v->len == 0) {
            continue;
        }

        if (ngx_oauth_cli_shared_is_active(s, v)) {
            s->current++;
            continue;
        }

        plain = malloc(v->len);
        if (plain == NULL) {
            return NGX_OAUTH_NOMEM;
        }

        rc = ngx_oauth_conn_open(&s->keyring, conn, f, plain, &plen);

        if (rc == NGX_OAUTH_NOMEM || rc == NGX_OAUTH_ERROR) {
            free(plain);
            return rc;
        }

        if (rc != NGX_OAUTH_OK) {

            /* left as it is: check keeps reporting it */

            free(plain);
            s->failed++;
            ngx_oauth_cli_shared_failure(s, &conn->owner,
                                         ngx_oauth_sealed_name(f),
                                         ngx_oauth_strerror(rc), v);
            continue;
        }

        slen = ngx_oauth_sealed_size(&s->keyring, plen);

        sealed[f].data = malloc(slen);
        if (sealed[f].data == NULL) {
            ngx_oauth_wipe(plain, plen);
            free(plain);
            return NGX_OAUTH_NOMEM;
        }

        rc = ngx_oauth_conn_seal(&s->keyring, conn, f, plain, plen,
                                 sealed[f].data, &slen);

        ngx_oauth_wipe(plain, plen);
        free(plain);

        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        sealed[f].len = slen;
        *v = sealed[f];
        (*done)++;
    }

    return NGX_OAUTH_OK;
}


/* NGX_OAUTH_OK, NGX_OAUTH_BUSY (another holds it), or DECLINED */

static int
ngx_oauth_cli_shared_lease(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_cli_shared_row_t *key, int take)
{
    int          n, lens[4];
    PGresult    *res;
    const char  *values[4];

    values[0] = (const char *) key->owner.data;
    lens[0] = key->owner.len;
    values[1] = (const char *) key->provider.data;
    lens[1] = key->provider.len;
    values[2] = (const char *) key->account.data;
    lens[2] = key->account.len;
    values[3] = s->holder;
    lens[3] = strlen(s->holder);

    res = ngx_oauth_cli_shared_exec(s, take ? ngx_oauth_cli_shared_lease_sql
                                            : ngx_oauth_cli_shared_unlease_sql,
                                    4, values, lens);
    if (res == NULL) {
        return NGX_OAUTH_CLI_SHARED_REPORTED;
    }

    n = take ? PQntuples(res) : 1;
    PQclear(res);

    return (n == 1) ? NGX_OAUTH_OK : NGX_OAUTH_BUSY;
}


/*
 * conn encoded as a node would, with the version the row gets, written by
 * sql ($1..$3 key, $4 record, $5 version, $6 the NOTIFY payload's head):
 * NGX_OAUTH_CONFLICT when no row came back.
 */

static int
ngx_oauth_cli_shared_write(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_conn_t *conn, uint64_t expect, const char *sql)
{
    int               rc, n, lens[6];
    size_t            rlen;
    unsigned char    *rec;
    PGresult         *res;
    const char       *values[6];
    ngx_oauth_conn_t  c;
    ngx_oauth_buf_t   payload;
    char              version[NGX_OAUTH_CLI_SHARED_VER_LEN];

    c = *conn;
    c.version = expect + 1;

    rc = ngx_oauth_conn_encode(&c, &rec, &rlen);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    memset(&payload, 0, sizeof(ngx_oauth_buf_t));

    (void) ngx_oauth_buf_add_fmt(&payload, "%s u ", s->node);
    ngx_oauth_cli_shared_hex(&payload, &conn->owner);
    (void) ngx_oauth_buf_add_byte(&payload, ' ');
    ngx_oauth_cli_shared_hex(&payload, &conn->provider);
    (void) ngx_oauth_buf_add_byte(&payload, ' ');
    ngx_oauth_cli_shared_hex(&payload, &conn->account);

    if (payload.failed) {
        free(rec);
        return NGX_OAUTH_NOMEM;
    }

    values[0] = (const char *) conn->owner.data;
    lens[0] = conn->owner.len;
    values[1] = (const char *) conn->provider.data;
    lens[1] = conn->provider.len;
    values[2] = (const char *) conn->account.data;
    lens[2] = conn->account.len;
    values[3] = (const char *) rec;
    lens[3] = rlen;
    values[4] = version;
    lens[4] = snprintf(version, sizeof(version), "%llu",
                       (unsigned long long) expect);
    values[5] = (const char *) payload.data;
    lens[5] = payload.len;

    res = ngx_oauth_cli_shared_exec(s, sql, 6, values, lens);

    free(rec);
    ngx_oauth_buf_free(&payload);

    if (res == NULL) {
        return NGX_OAUTH_CLI_SHARED_REPORTED;
    }

    n = PQntuples(res);
    PQclear(res);

    return (n == 1) ? NGX_OAUTH_OK : NGX_OAUTH_CONFLICT;
}


/*
 * The backup is an LMDB file of the oauth_store format, written from one
 * snapshot of oauth_connections with each row's version: `ngx-oauth
 * --store FILE list/check` read it, `--shared restore FILE` puts it back.
 * Flows are left out: they live minutes and a restored one has no user.
 */

static int
ngx_oauth_cli_shared_backup(ngx_oauth_cli_shared_t *s)
{
    int          rc;
    PGresult    *res;
    const char  *dest;
    struct stat  sb;

    dest = s->conf->arg;

    if (lstat(dest, &sb) == 0) {
        ngx_oauth_cli_shared_error("backup: \"%s\" exists, refused", dest);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (errno != ENOENT) {
        ngx_oauth_cli_shared_error("backup: cannot use \"%s\": %s", dest,
                                   strerror(errno));
        return NGX_OAUTH_CLI_ERROR;
    }

    res = ngx_oauth_cli_shared_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE "
                                       "READ READ ONLY", 0, NULL, NULL);
    if (res == NULL) {
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    PQclear(res);

    res = ngx_oauth_cli_shared_exec(s, ngx_oauth_cli_shared_select_sql, 0,
                                    NULL, NULL);
    if (res == NULL) {
        return NGX_OAUTH_CLI_ERROR;
    }

    rc = ngx_oauth_cli_shared_backup_fill(s, res, dest);

    PQclear(res);

    if (rc != NGX_OAUTH_CLI_OK) {
        (void) unlink(dest);
        return rc;
    }

    (void) ngx_oauth_buf_add_fmt(&s->out, "backup of %zu connections "
                                 "written to \"%s\" and read back\n",
                                 s->conns, dest);

    if (s->bad) {
        (void) ngx_oauth_buf_add_fmt(&s->out,
                                     "%zu records do not decode or are "
                                     "not their row's: left out\n", s->bad);
        return NGX_OAUTH_CLI_PROBLEMS;
    }

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_shared_backup_fill(ngx_oauth_cli_shared_t *s, PGresult *res,
    const char *dest)
{
    int                         i, n, rc;
    size_t                      total, count;
    ngx_oauth_conn_t            conn;
    ngx_oauth_store_t          *st;
    ngx_oauth_store_conf_t      sc;
    ngx_oauth_cli_shared_row_t  row;
    char                        lock[4096];
    char                        err[NGX_OAUTH_CLI_SHARED_ERR_LEN];

    n = PQntuples(res);
    total = 0;

    for (i = 0; i < n; i++) {
        total += PQgetlength(res, i, 4) + 512;
    }

    memset(&sc, 0, sizeof(ngx_oauth_store_conf_t));
    sc.path = dest;
    sc.sync = 1;
    sc.max_size = 4 * total + NGX_OAUTH_CLI_SHARED_MAP_MIN;

    if (ngx_oauth_store_open(&st, &sc, NULL, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_oauth_cli_shared_error("backup: %s", err);
        return NGX_OAUTH_CLI_ERROR;
    }

    rc = NGX_OAUTH_OK;

    for (i = 0; i < n && rc == NGX_OAUTH_OK; i++) {
        ngx_oauth_cli_shared_row(res, i, &row);

        if (ngx_oauth_cli_shared_decode(s, &row, &conn) != NGX_OAUTH_OK) {
            rc = s->error;
            continue;
        }

        rc = ngx_oauth_store_conn_put_version(st, &conn, 0);
        ngx_oauth_conn_free(&conn);

        if (rc != NGX_OAUTH_OK) {
            ngx_oauth_cli_shared_error("backup: %s",
                                       ngx_oauth_store_error(st));
        }

        s->conns++;
    }

    ngx_oauth_store_close(st);

    /* the lock file is LMDB's, not part of the backup */

    if (snprintf(lock, sizeof(lock), "%s-lock", dest) < (int) sizeof(lock))
    {
        (void) unlink(lock);
    }

    if (rc != NGX_OAUTH_OK) {
        return NGX_OAUTH_CLI_ERROR;
    }

    /* read back: the copy must hold what was written */

    sc.max_size = 0;
    sc.sync = 0;

    if (ngx_oauth_store_open(&st, &sc, NULL, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_oauth_cli_shared_error("backup: read back: %s", err);
        return NGX_OAUTH_CLI_ERROR;
    }

    count = 0;
    rc = ngx_oauth_store_conn_each(st, NULL, NULL,
                                   ngx_oauth_cli_shared_backup_count,
                                   &count);
    ngx_oauth_store_close(st);
    (void) unlink(lock);

    if (rc != NGX_OAUTH_OK || count != s->conns) {
        ngx_oauth_cli_shared_error("backup: read back %zu connections of "
                                   "%zu: %s", count, s->conns,
                                   ngx_oauth_strerror(rc));
        return NGX_OAUTH_CLI_ERROR;
    }

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_shared_backup_count(const ngx_oauth_conn_t *conn, void *data)
{
    size_t  *count = data;

    (*count)++;

    return 0;
}


/*
 * A backup (or a single node's oauth_store file: the way into a fleet)
 * back into PostgreSQL: each connection replaces a different row with a
 * version above it and a NOTIFY, so that caches take it; rows that are
 * not in the file are left as they are.
 */

static int
ngx_oauth_cli_shared_restore(ngx_oauth_cli_shared_t *s)
{
    int                     rc;
    size_t                  off, len;
    ngx_oauth_buf_t         recs;
    ngx_oauth_conn_t        conn;
    ngx_oauth_store_t      *st;
    ngx_oauth_store_conf_t  sc;
    struct stat             sb;
    char                    err[NGX_OAUTH_CLI_SHARED_ERR_LEN];

    /* the store would create a missing file: a typo must not look empty */

    if (stat(s->conf->arg, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        ngx_oauth_cli_shared_error("restore: \"%s\" is not a store file",
                                   s->conf->arg);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    memset(&sc, 0, sizeof(ngx_oauth_store_conf_t));
    sc.path = s->conf->arg;

    if (ngx_oauth_store_open(&st, &sc, NULL, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_oauth_cli_shared_error("restore: %s", err);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    /* encoded copies first: the store must not wait on the database */

    memset(&recs, 0, sizeof(ngx_oauth_buf_t));

    rc = ngx_oauth_store_conn_each(st, NULL, NULL,
                                   ngx_oauth_cli_shared_restore_scan, &recs);

    ngx_oauth_store_close(st);

    if (rc == NGX_OAUTH_INVALID) {
        ngx_oauth_cli_shared_error("restore: some records of \"%s\" do not "
                                   "decode: left out", s->conf->arg);
        s->bad++;
        rc = NGX_OAUTH_OK;
    }

    if (rc != NGX_OAUTH_OK || recs.failed) {
        ngx_oauth_cli_shared_error("restore: cannot read \"%s\"",
                                   s->conf->arg);
        ngx_oauth_buf_free(&recs);
        return NGX_OAUTH_CLI_ERROR;
    }

    for (off = 0; off < recs.len && rc == NGX_OAUTH_OK; off += len) {
        memcpy(&len, recs.data + off, sizeof(size_t));
        off += sizeof(size_t);

        rc = ngx_oauth_conn_decode(recs.data + off, len, &conn);
        if (rc != NGX_OAUTH_OK) {
            break;
        }

        rc = ngx_oauth_cli_shared_write(s, &conn, conn.version
                                        ? conn.version - 1 : 0,
                                        ngx_oauth_cli_shared_restore_sql);
        ngx_oauth_conn_free(&conn);

        if (rc == NGX_OAUTH_CONFLICT) {
            s->unchanged++;
            rc = NGX_OAUTH_OK;

        } else if (rc == NGX_OAUTH_OK) {
            s->done++;
        }
    }

    ngx_oauth_buf_free(&recs);

    if (rc != NGX_OAUTH_OK) {
        if (rc != NGX_OAUTH_CLI_SHARED_REPORTED) {
            ngx_oauth_cli_shared_error("restore: %s",
                                       ngx_oauth_strerror(rc));
        }

        return NGX_OAUTH_CLI_ERROR;
    }

    (void) ngx_oauth_buf_add_fmt(&s->out, "restored %zu connections from "
                                 "\"%s\", %zu already as they were\n",
                                 s->done, s->conf->arg, s->unchanged);

    return s->bad ? NGX_OAUTH_CLI_PROBLEMS : NGX_OAUTH_CLI_OK;
}


/* "LENGTH RECORD" entries: records are sealed, no plaintext is copied */

static int
ngx_oauth_cli_shared_restore_scan(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_oauth_buf_t  *recs = data;

    size_t          len;
    unsigned char  *rec;

    if (ngx_oauth_conn_encode(conn, &rec, &len) != NGX_OAUTH_OK) {
        recs->failed = 1;
        return 1;
    }

    (void) ngx_oauth_buf_add(recs, &len, sizeof(size_t));
    (void) ngx_oauth_buf_add(recs, rec, len);
    free(rec);

    return recs->failed;
}


static int
ngx_oauth_cli_shared_is_active(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_str_t *sealed)
{
    ngx_oauth_str_t         kid;
    const ngx_oauth_key_t  *active;

    active = &s->keyring.keys[0];

    return ngx_oauth_sealed_kid(sealed->data, sealed->len, &kid)
           == NGX_OAUTH_OK
           && kid.len == active->kid_len
           && memcmp(kid.data, active->kid, kid.len) == 0;
}


/*
 * "failed OWNER PROVIDER ACCOUNT FIELD ERROR KID", as the LMDB check
 * prints it: where, never what.  key points at owner, provider and
 * account in a row.
 */

static void
ngx_oauth_cli_shared_failure(ngx_oauth_cli_shared_t *s,
    const ngx_oauth_str_t *key, const char *field, const char *error,
    const ngx_oauth_str_t *sealed)
{
    ngx_oauth_buf_t  *b;
    ngx_oauth_str_t   kid;

    b = &s->out;

    (void) ngx_oauth_buf_add_cstr(b, "failed\t");
    ngx_oauth_cli_shared_text(b, &key[0]);
    (void) ngx_oauth_buf_add_byte(b, '\t');
    ngx_oauth_cli_shared_text(b, &key[1]);
    (void) ngx_oauth_buf_add_byte(b, '\t');
    ngx_oauth_cli_shared_text(b, &key[2]);
    (void) ngx_oauth_buf_add_fmt(b, "\t%s\t%s\t", field, error);

    if (sealed != NULL
        && ngx_oauth_sealed_kid(sealed->data, sealed->len, &kid)
           == NGX_OAUTH_OK)
    {
        (void) ngx_oauth_buf_add_str(b, &kid);

    } else {
        (void) ngx_oauth_buf_add_byte(b, '-');
    }

    (void) ngx_oauth_buf_add_byte(b, '\n');
}


/* a table cell: one line, one cell, whatever the bytes; empty is "-" */

static void
ngx_oauth_cli_shared_text(ngx_oauth_buf_t *b, const ngx_oauth_str_t *str)
{
    size_t         i;
    unsigned char  c;

    if (str->len == 0) {
        (void) ngx_oauth_buf_add_byte(b, '-');
        return;
    }

    for (i = 0; i < str->len; i++) {
        c = str->data[i];

        if (c < 0x20 || c == 0x7f || c == '\\') {
            (void) ngx_oauth_buf_add_fmt(b, "\\x%02x", c);

        } else {
            (void) ngx_oauth_buf_add_byte(b, c);
        }
    }
}


static void
ngx_oauth_cli_shared_hex(ngx_oauth_buf_t *b, const ngx_oauth_str_t *str)
{
    size_t  i;

    for (i = 0; i < str->len; i++) {
        (void) ngx_oauth_buf_add_fmt(b, "%02x", str->data[i]);
    }
}


static void
ngx_oauth_cli_shared_error(const char *fmt, ...)
{
    va_list  args;

    fputs("ngx-oauth: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


/*
 * The fleet's webhook outbox (oauth_events), in the columns of the
 * store's "ngx-oauth events": what each event is and when it is tried
 * next; never its body's secrets (it has none) nor a signature.
 */

static int
ngx_oauth_cli_shared_events(ngx_oauth_cli_shared_t *s)
{
    int        i, n, c;
    PGresult  *res;

    res = ngx_oauth_cli_shared_exec(s,
              "SELECT seq::text, id, type, owner, provider, account, "
              "extract(epoch FROM created_at)::bigint::text, "
              "attempts::text, extract(epoch FROM next_at)::bigint::text "
              "FROM oauth_events ORDER BY seq", 0, NULL, NULL);

    /* (results come in binary: the numbers are asked for as text) */

    if (res == NULL) {
        return NGX_OAUTH_CLI_ERROR;
    }

    (void) ngx_oauth_buf_add_cstr(&s->out, "seq\tid\ttype\towner\tprovider"
                                  "\taccount\tcreated\tattempts\tnext_at\n");

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        for (c = 0; c < 9; c++) {
            if (c == 6 || c == 8) {
                ngx_oauth_cli_shared_add_time(&s->out,
                                              PQgetvalue(res, i, c));

            } else {
                (void) ngx_oauth_buf_add_cstr(&s->out,
                                              PQgetvalue(res, i, c));
            }

            (void) ngx_oauth_buf_add_byte(&s->out, c == 8 ? '\n' : '\t');
        }
    }

    PQclear(res);

    return NGX_OAUTH_CLI_OK;
}


/* seconds since the epoch as an RFC 3339 UTC time */

static void
ngx_oauth_cli_shared_add_time(ngx_oauth_buf_t *b, const char *epoch)
{
    char       text[32];
    time_t     t;
    struct tm  tm;

    t = (time_t) strtoll(epoch, NULL, 10);

    if (gmtime_r(&t, &tm) == NULL
        || strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        (void) ngx_oauth_buf_add_byte(b, '-');
        return;
    }

    (void) ngx_oauth_buf_add_cstr(b, text);
}
