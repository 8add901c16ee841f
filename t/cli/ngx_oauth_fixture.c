/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * Fills a store the way nginx would, for t/050-cli.t, without nginx:
 *
 *   ngx_oauth_fixture --store PATH --key-file FILE COMMAND ARGS
 *
 *   conn OWNER PROVIDER ACCOUNT ACCESS [REFRESH]
 *                         an oauth2 connection, expiring in an hour
 *   secret OWNER PROVIDER ACCOUNT SECRET
 *                         an api_key connection (field "credentials")
 *   tamper OWNER PROVIDER ACCOUNT FIELD
 *                         flips a bit of the tag of a sealed value
 *   move OWNER PROVIDER ACCOUNT FROM TO
 *                         puts the sealed FROM value in field TO
 *   flow STATE OWNER PROVIDER TTL
 *                         a flow with a sealed verifier, TTL seconds left
 *                         (negative: expired already)
 *   open OWNER PROVIDER ACCOUNT FIELD
 *                         prints the plaintext: a test tool only
 *   fill PREFIX PROVIDER ACCOUNT ACCESS COUNT [EXPIRES_IN]
 *                         COUNT oauth2 connections for owners PREFIX0,
 *                         PREFIX1, ... with refresh token "rt-fixed",
 *                         expiring in EXPIRES_IN seconds (default an
 *                         hour, negative: expired), without fsync: for
 *                         make bench; --max-size BYTES sets the map size
 *
 * FIELD is access, refresh or credentials.  Exit 0, or 1 with a message.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_seal.h"
#include "ngx_oauth_store.h"


#define NGX_OAUTH_FIXTURE_MAP  (16 * 1024 * 1024)

#define ngx_oauth_fixture_str(s, cstr)                                       \
    (s)->len = strlen(cstr); (s)->data = (unsigned char *) (cstr)


typedef struct {
    ngx_oauth_store_t    *store;
    ngx_oauth_keyring_t   keyring;
    char                **args;
    int                   nargs;
    long                  expires_in;
} ngx_oauth_fixture_t;


static int ngx_oauth_fixture_conn(ngx_oauth_fixture_t *fx, unsigned kind);
static int ngx_oauth_fixture_tamper(ngx_oauth_fixture_t *fx);
static int ngx_oauth_fixture_move(ngx_oauth_fixture_t *fx);
static int ngx_oauth_fixture_flow(ngx_oauth_fixture_t *fx);
static int ngx_oauth_fixture_open(ngx_oauth_fixture_t *fx);
static int ngx_oauth_fixture_fill(ngx_oauth_fixture_t *fx);
static int ngx_oauth_fixture_get(ngx_oauth_fixture_t *fx,
    ngx_oauth_conn_t *conn);
static int ngx_oauth_fixture_field(const char *name,
    ngx_oauth_sealed_e *field);
static ngx_oauth_str_t *ngx_oauth_fixture_member(ngx_oauth_conn_t *conn,
    const char *name);
static int ngx_oauth_fixture_seal(ngx_oauth_fixture_t *fx,
    ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field, const char *plain);
static int ngx_oauth_fixture_put(ngx_oauth_fixture_t *fx,
    ngx_oauth_conn_t *conn);


int
main(int argc, char **argv)
{
    int                     rc, i;
    char                    err[512];
    size_t                  max_size;
    const char             *store, *keys, *cmd;
    ngx_oauth_fixture_t     fx;
    ngx_oauth_store_conf_t  conf;

    memset(&fx, 0, sizeof(ngx_oauth_fixture_t));

    store = NULL;
    keys = NULL;
    max_size = NGX_OAUTH_FIXTURE_MAP;
    i = 1;

    while (i + 1 < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--store") == 0) {
            store = argv[i + 1];

        } else if (strcmp(argv[i], "--key-file") == 0) {
            keys = argv[i + 1];

        } else if (strcmp(argv[i], "--max-size") == 0) {
            max_size = strtoul(argv[i + 1], NULL, 10);

        } else {
            break;
        }

        i += 2;
    }

    if (store == NULL || keys == NULL || i >= argc) {
        fprintf(stderr, "usage: ngx_oauth_fixture --store PATH --key-file "
                "FILE conn|secret|tamper|move|flow|open ARGS\n");
        return 1;
    }

    cmd = argv[i];
    fx.args = argv + i + 1;
    fx.expires_in = 3600;
    fx.nargs = argc - i - 1;

    rc = 1;

    if (ngx_oauth_keyring_load(&fx.keyring, keys, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        fprintf(stderr, "fixture: %s\n", err);
        goto exit;
    }

    memset(&conf, 0, sizeof(ngx_oauth_store_conf_t));
    conf.path = store;
    conf.max_size = max_size;

    /* a bench store is thrown away: a million fsync() calls buy nothing */
    conf.sync = strcmp(cmd, "fill") != 0;

    if (ngx_oauth_store_open(&fx.store, &conf, NULL, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        fprintf(stderr, "fixture: %s\n", err);
        goto exit;
    }

    if (strcmp(cmd, "conn") == 0 && (fx.nargs == 4 || fx.nargs == 5)) {
        rc = ngx_oauth_fixture_conn(&fx, NGX_OAUTH_KIND_OAUTH2);

    } else if (strcmp(cmd, "secret") == 0 && fx.nargs == 4) {
        rc = ngx_oauth_fixture_conn(&fx, NGX_OAUTH_KIND_API_KEY);

    } else if (strcmp(cmd, "tamper") == 0 && fx.nargs == 4) {
        rc = ngx_oauth_fixture_tamper(&fx);

    } else if (strcmp(cmd, "move") == 0 && fx.nargs == 5) {
        rc = ngx_oauth_fixture_move(&fx);

    } else if (strcmp(cmd, "flow") == 0 && fx.nargs == 4) {
        rc = ngx_oauth_fixture_flow(&fx);

    } else if (strcmp(cmd, "open") == 0 && fx.nargs == 4) {
        rc = ngx_oauth_fixture_open(&fx);

    } else if (strcmp(cmd, "fill") == 0 && (fx.nargs == 5 || fx.nargs == 6)) {
        rc = ngx_oauth_fixture_fill(&fx);

    } else {
        fprintf(stderr, "fixture: bad command or arguments\n");
    }

exit:

    ngx_oauth_store_close(fx.store);
    ngx_oauth_keyring_wipe(&fx.keyring);

    return rc;
}


static int
ngx_oauth_fixture_conn(ngx_oauth_fixture_t *fx, unsigned kind)
{
    int               rc;
    time_t            now;
    ngx_oauth_conn_t  conn;

    memset(&conn, 0, sizeof(ngx_oauth_conn_t));

    now = time(NULL);

    ngx_oauth_fixture_str(&conn.owner, fx->args[0]);
    ngx_oauth_fixture_str(&conn.provider, fx->args[1]);
    ngx_oauth_fixture_str(&conn.account, fx->args[2]);
    ngx_oauth_fixture_str(&conn.account_name, "Fixture Account");
    conn.kind = kind;
    conn.status = NGX_OAUTH_STATUS_CONNECTED;
    conn.created_at = now;
    conn.updated_at = now;

    if (kind == NGX_OAUTH_KIND_OAUTH2) {
        ngx_oauth_fixture_str(&conn.token_type, "Bearer");
        ngx_oauth_fixture_str(&conn.scopes, "read write");
        conn.expires_at = now + fx->expires_in;
        conn.last_refresh_at = now;

        rc = ngx_oauth_fixture_seal(fx, &conn, NGX_OAUTH_SEALED_ACCESS,
                                    fx->args[3]);

        if (rc == NGX_OAUTH_OK && fx->nargs == 5) {
            rc = ngx_oauth_fixture_seal(fx, &conn, NGX_OAUTH_SEALED_REFRESH,
                                        fx->args[4]);
        }

    } else {
        rc = ngx_oauth_fixture_seal(fx, &conn, NGX_OAUTH_SEALED_CREDENTIALS,
                                    fx->args[3]);
    }

    if (rc == NGX_OAUTH_OK) {
        rc = ngx_oauth_fixture_put(fx, &conn);
    }

    free(conn.access.data);
    free(conn.refresh.data);
    free(conn.secret.data);

    return rc == NGX_OAUTH_OK ? 0 : 1;
}


static int
ngx_oauth_fixture_tamper(ngx_oauth_fixture_t *fx)
{
    int               rc;
    ngx_oauth_str_t  *s;
    ngx_oauth_conn_t  conn;

    if (ngx_oauth_fixture_get(fx, &conn) != NGX_OAUTH_OK) {
        return 1;
    }

    rc = 1;

    s = ngx_oauth_fixture_member(&conn, fx->args[3]);
    if (s == NULL || s->len == 0) {
        fprintf(stderr, "fixture: no such sealed field\n");
        goto exit;
    }

    /* the last byte is part of the GCM tag: the value no longer opens */
    s->data[s->len - 1] ^= 0x01;

    if (ngx_oauth_fixture_put(fx, &conn) == NGX_OAUTH_OK) {
        rc = 0;
    }

exit:

    ngx_oauth_conn_free(&conn);

    return rc;
}


static int
ngx_oauth_fixture_move(ngx_oauth_fixture_t *fx)
{
    int               rc;
    ngx_oauth_str_t  *from, *to;
    ngx_oauth_conn_t  conn;

    if (ngx_oauth_fixture_get(fx, &conn) != NGX_OAUTH_OK) {
        return 1;
    }

    rc = 1;

    from = ngx_oauth_fixture_member(&conn, fx->args[3]);
    to = ngx_oauth_fixture_member(&conn, fx->args[4]);

    if (from == NULL || to == NULL || from->len == 0) {
        fprintf(stderr, "fixture: no such sealed field\n");
        goto exit;
    }

    *to = *from;

    if (ngx_oauth_fixture_put(fx, &conn) == NGX_OAUTH_OK) {
        rc = 0;
    }

exit:

    ngx_oauth_conn_free(&conn);

    return rc;
}


static int
ngx_oauth_fixture_flow(ngx_oauth_fixture_t *fx)
{
    int               rc;
    size_t            len;
    time_t            now;
    ngx_oauth_flow_t  flow;
    char              verifier[NGX_OAUTH_VERIFIER_LEN + 1];

    memset(&flow, 0, sizeof(ngx_oauth_flow_t));

    now = time(NULL);

    ngx_oauth_fixture_str(&flow.owner, fx->args[1]);
    ngx_oauth_fixture_str(&flow.provider, fx->args[2]);
    ngx_oauth_fixture_str(&flow.return_to, "/");
    ngx_oauth_fixture_str(&flow.browser, "0123456789abcdef0123456789abcdef");
    flow.mode = NGX_OAUTH_MODE_REDIRECT;
    flow.created = now;
    flow.expires = now + atol(fx->args[3]);

    if (ngx_oauth_random_token(verifier) != NGX_OAUTH_OK) {
        return 1;
    }

    len = strlen(verifier);

    flow.verifier.data = malloc(ngx_oauth_sealed_size(&fx->keyring, len));
    if (flow.verifier.data == NULL) {
        return 1;
    }

    rc = ngx_oauth_flow_seal_verifier(&fx->keyring, &flow, fx->args[0],
                                      strlen(fx->args[0]),
                                      (unsigned char *) verifier, len,
                                      flow.verifier.data, &flow.verifier.len);

    if (rc == NGX_OAUTH_OK) {
        rc = ngx_oauth_store_flow_put(fx->store, fx->args[0],
                                      strlen(fx->args[0]), &flow);
        if (rc != NGX_OAUTH_OK) {
            fprintf(stderr, "fixture: %s\n",
                    ngx_oauth_store_error(fx->store));
        }
    }

    free(flow.verifier.data);

    return rc == NGX_OAUTH_OK ? 0 : 1;
}


static int
ngx_oauth_fixture_open(ngx_oauth_fixture_t *fx)
{
    int                 rc;
    size_t              len;
    unsigned char      *plain;
    ngx_oauth_str_t    *s;
    ngx_oauth_conn_t    conn;
    ngx_oauth_sealed_e  f;

    if (ngx_oauth_fixture_get(fx, &conn) != NGX_OAUTH_OK) {
        return 1;
    }

    rc = 1;
    plain = NULL;

    s = NULL;

    if (ngx_oauth_fixture_field(fx->args[3], &f) == NGX_OAUTH_OK) {
        s = ngx_oauth_conn_sealed(&conn, f);
    }

    if (s == NULL || s->len == 0) {
        fprintf(stderr, "fixture: no such sealed field\n");
        goto exit;
    }

    plain = malloc(s->len);
    if (plain == NULL) {
        goto exit;
    }

    if (ngx_oauth_conn_open(&fx->keyring, &conn, f, plain, &len)
        != NGX_OAUTH_OK)
    {
        fprintf(stderr, "fixture: the value does not open\n");
        goto exit;
    }

    printf("%.*s\n", (int) len, (char *) plain);
    rc = 0;

exit:

    if (plain != NULL) {
        ngx_oauth_wipe(plain, s->len);
        free(plain);
    }

    ngx_oauth_conn_free(&conn);

    return rc;
}


static int
ngx_oauth_fixture_fill(ngx_oauth_fixture_t *fx)
{
    int     rc;
    char    owner[64], *args[5], **saved;
    long    i, n;

    n = atol(fx->args[4]);

    if (fx->nargs == 6) {
        fx->expires_in = atol(fx->args[5]);
    }

    args[0] = owner;
    args[1] = fx->args[1];
    args[2] = fx->args[2];
    args[3] = fx->args[3];
    args[4] = "rt-fixed";

    saved = fx->args;
    fx->args = args;
    fx->nargs = 5;

    rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        snprintf(owner, sizeof(owner), "%s%ld", saved[0], i);
        rc = ngx_oauth_fixture_conn(fx, NGX_OAUTH_KIND_OAUTH2);
    }

    fx->args = saved;

    return rc;
}


static int
ngx_oauth_fixture_get(ngx_oauth_fixture_t *fx, ngx_oauth_conn_t *conn)
{
    int              rc;
    ngx_oauth_str_t  owner, provider, account;

    ngx_oauth_fixture_str(&owner, fx->args[0]);
    ngx_oauth_fixture_str(&provider, fx->args[1]);
    ngx_oauth_fixture_str(&account, fx->args[2]);

    rc = ngx_oauth_store_conn_get(fx->store, &owner, &provider, &account,
                                  conn);
    if (rc != NGX_OAUTH_OK) {
        fprintf(stderr, "fixture: %s\n", ngx_oauth_store_error(fx->store));
    }

    return rc;
}


/* FIELD arguments are the names the store binds sealed values to */

static int
ngx_oauth_fixture_field(const char *name, ngx_oauth_sealed_e *field)
{
    ngx_oauth_sealed_e  f;

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
        if (strcmp(name, ngx_oauth_sealed_name(f)) == 0) {
            *field = f;
            return NGX_OAUTH_OK;
        }
    }

    return NGX_OAUTH_NOT_FOUND;
}


static ngx_oauth_str_t *
ngx_oauth_fixture_member(ngx_oauth_conn_t *conn, const char *name)
{
    ngx_oauth_sealed_e  f;

    if (ngx_oauth_fixture_field(name, &f) != NGX_OAUTH_OK) {
        return NULL;
    }

    return ngx_oauth_conn_sealed(conn, f);
}


static int
ngx_oauth_fixture_seal(ngx_oauth_fixture_t *fx, ngx_oauth_conn_t *conn,
    ngx_oauth_sealed_e field, const char *plain)
{
    int               rc;
    size_t            len;
    ngx_oauth_str_t  *out;

    out = ngx_oauth_conn_sealed(conn, field);
    len = strlen(plain);

    out->data = malloc(ngx_oauth_sealed_size(&fx->keyring, len));
    if (out->data == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    rc = ngx_oauth_conn_seal(&fx->keyring, conn, field,
                             (const unsigned char *) plain, len, out->data,
                             &out->len);
    if (rc != NGX_OAUTH_OK) {
        fprintf(stderr, "fixture: seal failed: %s\n",
                ngx_oauth_strerror(rc));
    }

    return rc;
}


static int
ngx_oauth_fixture_put(ngx_oauth_fixture_t *fx, ngx_oauth_conn_t *conn)
{
    int  rc;

    rc = ngx_oauth_store_conn_put(fx->store, conn, NULL);
    if (rc != NGX_OAUTH_OK) {
        fprintf(stderr, "fixture: %s\n", ngx_oauth_store_error(fx->store));
    }

    return rc;
}
