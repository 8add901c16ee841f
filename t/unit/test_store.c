/*
 * Copyright (C) ngx_oauth_module authors
 */


#define _GNU_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <lmdb.h>

#include "ngx_oauth_store.h"


#define S(s)  { sizeof(s) - 1, (unsigned char *) (s) }

#define TEST_MAP  (4 * 1024 * 1024)


typedef struct {
    char    dir[64];
    char    path[128];
    char    err[256];
} test_ctx_t;


static int
test_setup(void **state)
{
    test_ctx_t  *t;

    t = calloc(1, sizeof(test_ctx_t));
    if (t == NULL) {
        return -1;
    }

    strcpy(t->dir, "/tmp/ngx_oauth_store_XXXXXX");

    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }

    snprintf(t->path, sizeof(t->path), "%s/oauth.mdb", t->dir);

    *state = t;

    return 0;
}


static int
test_teardown(void **state)
{
    DIR            *d;
    char            p[512];
    test_ctx_t     *t;
    struct dirent  *e;

    t = *state;

    d = opendir(t->dir);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }

            snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
            (void) unlink(p);
        }

        closedir(d);
    }

    (void) rmdir(t->dir);

    /* what a store opened at the directory itself would leave */

    snprintf(p, sizeof(p), "%s-lock", t->dir);
    (void) unlink(p);

    free(t);

    return 0;
}


static ngx_oauth_store_t *
test_open(test_ctx_t *t, size_t max_size, int *stale)
{
    int                      rc;
    ngx_oauth_store_t       *st;
    ngx_oauth_store_conf_t   conf;

    memset(&conf, 0, sizeof(conf));
    conf.path = t->path;
    conf.max_size = max_size;
    conf.sync = 1;

    rc = ngx_oauth_store_open(&st, &conf, stale, t->err, sizeof(t->err));
    if (rc != NGX_OAUTH_OK) {
        print_error("open: %d %s\n", rc, t->err);
    }

    assert_int_equal(rc, NGX_OAUTH_OK);
    assert_non_null(st);

    return st;
}


static int
test_open_rc(test_ctx_t *t, const char *path, size_t max_size)
{
    int                      rc;
    ngx_oauth_store_t       *st;
    ngx_oauth_store_conf_t   conf;

    memset(&conf, 0, sizeof(conf));
    conf.path = path;
    conf.max_size = max_size;

    rc = ngx_oauth_store_open(&st, &conf, NULL, t->err, sizeof(t->err));

    if (rc == NGX_OAUTH_OK) {
        ngx_oauth_store_close(st);

    } else {
        assert_null(st);
    }

    return rc;
}


static int
test_str_eq(const ngx_oauth_str_t *a, const char *s)
{
    return a->len == strlen(s) && memcmp(a->data, s, a->len) == 0;
}


/* a connection whose every field derives from (owner, provider, n) */

static void
test_conn_make(ngx_oauth_conn_t *c, const char *owner, const char *provider,
    const char *account, unsigned char *token, size_t token_len)
{
    memset(c, 0, sizeof(ngx_oauth_conn_t));

    c->owner.data = (unsigned char *) owner;
    c->owner.len = strlen(owner);
    c->provider.data = (unsigned char *) provider;
    c->provider.len = strlen(provider);
    c->account.data = (unsigned char *) account;
    c->account.len = strlen(account);
    c->account_name = c->account;
    c->kind = NGX_OAUTH_KIND_OAUTH2;
    c->status = NGX_OAUTH_STATUS_CONNECTED;
    c->created_at = 1700000000;
    c->expires_at = 1700003600;
    c->access.data = token;
    c->access.len = token_len;
}


static void
test_token(unsigned char *buf, size_t len, unsigned seed)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        buf[i] = (unsigned char) (seed * 31 + i * 7);
    }
}


static void
test_open_new(void **state)
{
    int                 stale;
    test_ctx_t         *t;
    struct stat         sb;
    unsigned char       buf[16];
    size_t              len;
    char                lock[160];
    ngx_oauth_store_t  *st;

    t = *state;

    st = test_open(t, TEST_MAP, &stale);
    assert_int_equal(stale, 0);
    assert_string_equal(ngx_oauth_store_error(st), "");

    /* the version tag is written, and reserved */

    len = sizeof(buf);
    assert_int_equal(ngx_oauth_store_meta_get(st, "version", buf, &len),
                     NGX_OAUTH_OK);
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], '0' + NGX_OAUTH_STORE_VERSION);

    assert_int_equal(ngx_oauth_store_meta_put(st, "version",
                                              (unsigned char *) "2", 1),
                     NGX_OAUTH_INVALID);

    /* one file and its lock file, both 0600 */

    snprintf(lock, sizeof(lock), "%s-lock", t->path);

    assert_int_equal(stat(t->path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);

    assert_int_equal(stat(lock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    ngx_oauth_store_close(st);

    /* a file made readable by others is tightened again */

    assert_int_equal(chmod(t->path, 0644), 0);
    assert_int_equal(chmod(lock, 0666), 0);

    st = test_open(t, TEST_MAP, NULL);
    ngx_oauth_store_close(st);

    assert_int_equal(stat(t->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(lock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* bad paths */

    assert_int_equal(test_open_rc(t, "", TEST_MAP), NGX_OAUTH_INVALID);
    assert_int_equal(test_open_rc(t, "/nonexistent/dir/oauth.mdb", TEST_MAP),
                     NGX_OAUTH_ERROR);
    assert_non_null(strstr(t->err, "/nonexistent/dir/oauth.mdb"));
    assert_int_equal(test_open_rc(t, t->dir, TEST_MAP), NGX_OAUTH_INVALID);
    assert_non_null(strstr(t->err, "not a regular file"));
    snprintf(lock, sizeof(lock), "%s-lock", t->dir);
    assert_int_equal(access(lock, F_OK), -1);
}


static void
test_flow_single_use(void **state)
{
    int                 fd;
    char                buf[65536];
    ssize_t             n;
    test_ctx_t         *t;
    ngx_oauth_flow_t    in, out;
    ngx_oauth_store_t  *st;
    ngx_oauth_pair_t    params[] = { { S("tenant"), S("contoso") } };
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("microsoft");
    ngx_oauth_str_t     verifier = S("sealed-verifier");
    ngx_oauth_str_t     return_to = S("/done");
    const char         *state1 = "Zk9xQ2VudHJhbFN0YXRlVmFsdWVGb3JUZXN0aW5nX1";
    const char         *state2 = "another-state";

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    memset(&in, 0, sizeof(in));
    in.owner = owner;
    in.provider = provider;
    in.verifier = verifier;
    in.return_to = return_to;
    in.mode = NGX_OAUTH_MODE_REDIRECT;
    in.created = 1000;
    in.expires = 1600;
    in.params = params;
    in.nparams = 1;

    assert_int_equal(ngx_oauth_store_flow_put(st, state1, strlen(state1),
                                              &in),
                     NGX_OAUTH_OK);

    /* the same state again is refused, never replaced */

    assert_int_equal(ngx_oauth_store_flow_put(st, state1, strlen(state1),
                                              &in),
                     NGX_OAUTH_CONFLICT);

    assert_int_equal(ngx_oauth_store_flow_put(st, state2, strlen(state2),
                                              &in),
                     NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_store_flow_put(st, "", 0, &in),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_flow_take(st, NULL, 0, &out),
                     NGX_OAUTH_INVALID);

    /* another state, even a prefix, finds nothing */

    assert_int_equal(ngx_oauth_store_flow_take(st, state1, 10, &out),
                     NGX_OAUTH_NOT_FOUND);
    assert_null(out.mem);

    assert_int_equal(ngx_oauth_store_flow_take(st, state1, strlen(state1),
                                               &out),
                     NGX_OAUTH_OK);
    assert_true(test_str_eq(&out.owner, "alice"));
    assert_true(test_str_eq(&out.provider, "microsoft"));
    assert_true(test_str_eq(&out.verifier, "sealed-verifier"));
    assert_true(test_str_eq(&out.return_to, "/done"));
    assert_int_equal(out.expires, 1600);
    assert_int_equal(out.nparams, 1);
    assert_true(test_str_eq(&out.params[0].value, "contoso"));
    ngx_oauth_flow_free(&out);

    /* a state works once */

    assert_int_equal(ngx_oauth_store_flow_take(st, state1, strlen(state1),
                                               &out),
                     NGX_OAUTH_NOT_FOUND);
    assert_null(out.mem);

    /* an expired flow is returned (the caller checks) and deleted */

    assert_int_equal(ngx_oauth_store_flow_take(st, state2, strlen(state2),
                                               &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.expires, 1600);
    ngx_oauth_flow_free(&out);

    assert_int_equal(ngx_oauth_store_flow_take(st, state2, strlen(state2),
                                               &out),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_flow_put(st, state1, strlen(state1),
                                              &in),
                     NGX_OAUTH_OK);

    ngx_oauth_store_close(st);

    /* only sha256(state) reaches the file */

    fd = open(t->path, O_RDONLY);
    assert_true(fd != -1);

    n = read(fd, buf, sizeof(buf));
    assert_true(n > 0);
    close(fd);

    assert_non_null(memmem(buf, (size_t) n, "sealed-verifier", 15));
    assert_null(memmem(buf, (size_t) n, state1, strlen(state1)));
    assert_null(memmem(buf, (size_t) n, state1, 16));
}


static void
test_flow_purge(void **state)
{
    int                 i;
    char                s[32];
    size_t              purged;
    test_ctx_t         *t;
    ngx_oauth_flow_t    in, out;
    ngx_oauth_store_t  *st;
    ngx_oauth_str_t     owner = S("bob");
    ngx_oauth_str_t     provider = S("github");

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    memset(&in, 0, sizeof(in));
    in.owner = owner;
    in.provider = provider;

    /* enough flows to span pages, expired and live interleaved */

    for (i = 0; i < 600; i++) {
        snprintf(s, sizeof(s), "state-%d", i);
        in.expires = (i % 2) ? 5000 : 1000;

        assert_int_equal(ngx_oauth_store_flow_put(st, s, strlen(s), &in),
                         NGX_OAUTH_OK);
    }

    assert_int_equal(ngx_oauth_store_flow_purge(st, 1000, &purged),
                     NGX_OAUTH_OK);
    assert_int_equal(purged, 0);

    assert_int_equal(ngx_oauth_store_flow_purge(st, 2000, &purged),
                     NGX_OAUTH_OK);
    assert_int_equal(purged, 300);

    assert_int_equal(ngx_oauth_store_flow_purge(st, 2000, &purged),
                     NGX_OAUTH_OK);
    assert_int_equal(purged, 0);

    for (i = 0; i < 600; i++) {
        snprintf(s, sizeof(s), "state-%d", i);

        if (i % 2) {
            assert_int_equal(ngx_oauth_store_flow_take(st, s, strlen(s),
                                                       &out),
                             NGX_OAUTH_OK);
            assert_int_equal(out.expires, 5000);
            ngx_oauth_flow_free(&out);

        } else {
            assert_int_equal(ngx_oauth_store_flow_take(st, s, strlen(s),
                                                       &out),
                             NGX_OAUTH_NOT_FOUND);
        }
    }

    assert_int_equal(ngx_oauth_store_flow_purge(st, 9999, NULL),
                     NGX_OAUTH_OK);

    ngx_oauth_store_close(st);
}


/*
 * A taken flow leaves a spent record (provider, return_to, mode, expiry;
 * no owner, verifier, browser hash or params) that a reload can read,
 * purged with the flows once expired; an unknown state has none.
 */

static void
test_flow_spent(void **state)
{
    size_t              purged;
    test_ctx_t         *t;
    ngx_oauth_flow_t    in, out;
    ngx_oauth_pair_t    params[1];
    ngx_oauth_store_t  *st;
    const char         *state1 = "spent-state-0123456789abcdefghijklmnopqrst";

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    memset(&in, 0, sizeof(in));
    in.owner = (ngx_oauth_str_t) S("alice");
    in.provider = (ngx_oauth_str_t) S("github");
    in.verifier = (ngx_oauth_str_t) S("sealed-verifier");
    in.return_to = (ngx_oauth_str_t) S("/back?x=1");
    in.browser = (ngx_oauth_str_t) S("browser-hash");
    in.mode = NGX_OAUTH_MODE_POPUP;
    in.created = 1000;
    in.expires = 1600;
    params[0].name = (ngx_oauth_str_t) S("region");
    params[0].value = (ngx_oauth_str_t) S("eu");
    in.params = params;
    in.nparams = 1;

    assert_int_equal(ngx_oauth_store_flow_spent(st, state1, strlen(state1),
                                                &out),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_flow_put(st, state1, strlen(state1),
                                              &in),
                     NGX_OAUTH_OK);

    /* a pending flow is not spent */

    assert_int_equal(ngx_oauth_store_flow_spent(st, state1, strlen(state1),
                                                &out),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_flow_take(st, state1, strlen(state1),
                                               &out),
                     NGX_OAUTH_OK);
    ngx_oauth_flow_free(&out);

    assert_int_equal(ngx_oauth_store_flow_spent(st, state1, strlen(state1),
                                                &out),
                     NGX_OAUTH_OK);
    assert_true(test_str_eq(&out.provider, "github"));
    assert_true(test_str_eq(&out.return_to, "/back?x=1"));
    assert_int_equal(out.mode, NGX_OAUTH_MODE_POPUP);
    assert_int_equal(out.expires, 1600);
    assert_int_equal(out.owner.len, 0);
    assert_int_equal(out.verifier.len, 0);
    assert_int_equal(out.browser.len, 0);
    assert_int_equal(out.nparams, 0);
    ngx_oauth_flow_free(&out);

    /* the flow itself stays taken */

    assert_int_equal(ngx_oauth_store_flow_take(st, state1, strlen(state1),
                                               &out),
                     NGX_OAUTH_NOT_FOUND);

    /* purged with the flows once expired, and not counted as a flow */

    assert_int_equal(ngx_oauth_store_flow_purge(st, 1600, &purged),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_flow_spent(st, state1, strlen(state1),
                                                &out),
                     NGX_OAUTH_OK);
    ngx_oauth_flow_free(&out);

    assert_int_equal(ngx_oauth_store_flow_purge(st, 1601, &purged),
                     NGX_OAUTH_OK);
    assert_int_equal(purged, 0);
    assert_int_equal(ngx_oauth_store_flow_spent(st, state1, strlen(state1),
                                                &out),
                     NGX_OAUTH_NOT_FOUND);

    ngx_oauth_store_close(st);
}


static void
test_conn_put_get(void **state)
{
    test_ctx_t         *t;
    uint64_t            expect;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_store_t  *st;
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account = S("42");
    ngx_oauth_str_t     other = S("43");
    unsigned char       tok[100];

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    test_token(tok, sizeof(tok), 1);
    test_conn_make(&c, "alice", "github", "42", tok, sizeof(tok));
    c.version = 77;

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_NOT_FOUND);

    /* the version is the store's, not the caller's */

    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);
    assert_int_equal(c.version, 1);

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.version, 1);
    assert_true(test_str_eq(&out.owner, "alice"));
    assert_true(test_str_eq(&out.account, "42"));
    assert_int_equal(out.access.len, sizeof(tok));
    assert_memory_equal(out.access.data, tok, sizeof(tok));
    ngx_oauth_conn_free(&out);

    /* a second connect of the same account replaces it */

    test_token(tok, sizeof(tok), 2);
    c.status = NGX_OAUTH_STATUS_EXPIRED;

    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);
    assert_int_equal(c.version, 2);

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.version, 2);
    assert_int_equal(out.status, NGX_OAUTH_STATUS_EXPIRED);
    assert_memory_equal(out.access.data, tok, sizeof(tok));
    ngx_oauth_conn_free(&out);

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &other, &out),
                     NGX_OAUTH_NOT_FOUND);

    /* optimistic concurrency */

    expect = 1;
    c.version = 2;
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, &expect),
                     NGX_OAUTH_CONFLICT);
    assert_int_equal(c.version, 2);
    assert_non_null(strstr(ngx_oauth_store_error(st), "version 2"));

    expect = 0;
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, &expect),
                     NGX_OAUTH_CONFLICT);

    expect = 2;
    c.status = NGX_OAUTH_STATUS_CONNECTED;
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, &expect),
                     NGX_OAUTH_OK);
    assert_int_equal(c.version, 3);

    /* the loser of a race does not overwrite the winner */

    c.status = NGX_OAUTH_STATUS_REVOKED;
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, &expect),
                     NGX_OAUTH_CONFLICT);

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.version, 3);
    assert_int_equal(out.status, NGX_OAUTH_STATUS_CONNECTED);
    ngx_oauth_conn_free(&out);

    /* a copy of the fleet's row keeps its version, never an older one */

    c.version = 9;
    assert_int_equal(ngx_oauth_store_conn_put_version(st, &c, 1),
                     NGX_OAUTH_OK);
    c.version = 8;
    assert_int_equal(ngx_oauth_store_conn_put_version(st, &c, 1),
                     NGX_OAUTH_CONFLICT);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.version, 9);
    assert_int_equal(out.status, NGX_OAUTH_STATUS_REVOKED);
    ngx_oauth_conn_free(&out);

    c.version = 9;
    c.status = NGX_OAUTH_STATUS_CONNECTED;
    assert_int_equal(ngx_oauth_store_conn_put_version(st, &c, 1),
                     NGX_OAUTH_OK);
    c.version = 3;
    assert_int_equal(ngx_oauth_store_conn_put_version(st, &c, 0),
                     NGX_OAUTH_OK);
    assert_int_equal(c.version, 3);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);
    assert_int_equal(c.version, 4);

        /* expect 0: must not exist */

    test_conn_make(&c, "alice", "github", "43", tok, sizeof(tok));
    expect = 0;
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, &expect),
                     NGX_OAUTH_OK);
    assert_int_equal(c.version, 1);

    expect = 5;
    test_conn_make(&c, "alice", "github", "44", tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, &expect),
                     NGX_OAUTH_CONFLICT);

    /* delete */

    assert_int_equal(ngx_oauth_store_conn_delete(st, &owner, &provider,
                                                 &account),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(ngx_oauth_store_conn_delete(st, &owner, &provider,
                                                 &account),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &other, &out),
                     NGX_OAUTH_OK);
    ngx_oauth_conn_free(&out);

    ngx_oauth_store_close(st);
}


typedef struct {
    int     n;
    int     stop;
    char    seen[16][64];
} test_each_t;


static int
test_each_cb(const ngx_oauth_conn_t *c, void *data)
{
    test_each_t  *e = data;

    if (e->n < 16) {
        snprintf(e->seen[e->n], sizeof(e->seen[0]), "%.*s/%.*s/%.*s",
                 (int) c->owner.len, c->owner.data,
                 (int) c->provider.len, c->provider.data,
                 (int) c->account.len, c->account.data);
    }

    e->n++;

    return e->stop && e->n >= e->stop;
}


static int
test_each(ngx_oauth_store_t *st, const char *owner, const char *provider,
    test_each_t *e, int stop)
{
    ngx_oauth_str_t  o, p;

    memset(e, 0, sizeof(test_each_t));
    e->stop = stop;

    if (owner) {
        o.data = (unsigned char *) owner;
        o.len = strlen(owner);
    }

    if (provider) {
        p.data = (unsigned char *) provider;
        p.len = strlen(provider);
    }

    return ngx_oauth_store_conn_each(st, owner ? &o : NULL,
                                     provider ? &p : NULL, test_each_cb, e);
}


static void
test_conn_each_isolation(void **state)
{
    size_t              i;
    test_ctx_t         *t;
    test_each_t         e;
    ngx_oauth_conn_t    c;
    ngx_oauth_store_t  *st;
    unsigned char       tok[8] = "tok";
    static const char  *rows[][3] = {
        { "a", "git", "1" },
        { "a", "github", "1" },
        { "a", "github", "2" },
        { "ab", "git", "1" },
        { "ab", "github", "1" },
        { "alice", "github", "1" },
        { "alice", "google", "x@example.com" },
        { "bob", "github", "1" },
        { "b", "github", "1" },
    };

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        test_conn_make(&c, rows[i][0], rows[i][1], rows[i][2], tok, 3);
        assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                         NGX_OAUTH_OK);
    }

    assert_int_equal(test_each(st, NULL, NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 9);

    /* owner "a" is not a prefix of owner "ab" or "alice" */

    assert_int_equal(test_each(st, "a", NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.seen[0], "a/git/1");
    assert_string_equal(e.seen[1], "a/github/1");
    assert_string_equal(e.seen[2], "a/github/2");

    assert_int_equal(test_each(st, "ab", NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 2);

    /* provider "git" is not a prefix of "github" */

    assert_int_equal(test_each(st, "a", "git", &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.seen[0], "a/git/1");

    assert_int_equal(test_each(st, "a", "github", &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 2);

    assert_int_equal(test_each(st, "alice", NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.seen[1], "alice/google/x@example.com");

    assert_int_equal(test_each(st, "bob", NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.seen[0], "bob/github/1");

    assert_int_equal(test_each(st, "b", NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.seen[0], "b/github/1");

    assert_int_equal(test_each(st, "carol", NULL, &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 0);

    assert_int_equal(test_each(st, "bob", "google", &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 0);

    /* every owner, one provider */

    assert_int_equal(test_each(st, NULL, "github", &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 6);

    assert_int_equal(test_each(st, NULL, "git", &e, 0), NGX_OAUTH_OK);
    assert_int_equal(e.n, 2);

    /* iter stops early */

    assert_int_equal(test_each(st, NULL, NULL, &e, 4), NGX_OAUTH_OK);
    assert_int_equal(e.n, 4);

    assert_int_equal(test_each(st, "", NULL, &e, 0), NGX_OAUTH_INVALID);
    assert_int_equal(test_each(st, NULL, "", &e, 0), NGX_OAUTH_INVALID);

    ngx_oauth_store_close(st);
}


/* conn_only: the one connection of (owner, provider), or why not */

static int
test_only(ngx_oauth_store_t *st, const char *owner, const char *provider,
    const char *account)
{
    int               rc;
    ngx_oauth_str_t   o, p;
    ngx_oauth_conn_t  c;

    o.data = (unsigned char *) owner;
    o.len = strlen(owner);
    p.data = (unsigned char *) provider;
    p.len = strlen(provider);

    rc = ngx_oauth_store_conn_only(st, &o, &p, &c);

    if (rc == NGX_OAUTH_OK) {
        assert_int_equal(c.account.len, strlen(account));
        assert_memory_equal(c.account.data, account, c.account.len);
        assert_int_equal(c.owner.len, o.len);
        ngx_oauth_conn_free(&c);

    } else {
        assert_null(c.mem);
    }

    return rc;
}


static void
test_conn_only(void **state)
{
    size_t              i;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c;
    ngx_oauth_store_t  *st;
    unsigned char       tok[8] = "tok";
    static const char  *rows[][3] = {
        { "a", "git", "1" },
        { "a", "github", "1" },
        { "a", "github", "2" },
        { "ab", "git", "1" },
        { "b", "github", "zz" },
    };

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    assert_int_equal(test_only(st, "a", "git", NULL), NGX_OAUTH_NOT_FOUND);

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        test_conn_make(&c, rows[i][0], rows[i][1], rows[i][2], tok, 3);
        assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                         NGX_OAUTH_OK);
    }

    /* "git" is not a prefix of "github", nor "a" of "ab" */

    assert_int_equal(test_only(st, "a", "git", "1"), NGX_OAUTH_OK);
    assert_int_equal(test_only(st, "ab", "git", "1"), NGX_OAUTH_OK);
    assert_int_equal(test_only(st, "a", "github", NULL), NGX_OAUTH_CONFLICT);
    assert_int_equal(test_only(st, "b", "github", "zz"), NGX_OAUTH_OK);

    /* the last key of the database, and keys past every owner */

    assert_int_equal(test_only(st, "b", "git", NULL), NGX_OAUTH_NOT_FOUND);
    assert_int_equal(test_only(st, "zz", "github", NULL),
                     NGX_OAUTH_NOT_FOUND);
    assert_int_equal(test_only(st, "ab", "github", NULL),
                     NGX_OAUTH_NOT_FOUND);

    ngx_oauth_store_close(st);
}


static void
test_invalid_keys(void **state)
{
    test_ctx_t         *t;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_store_t  *st;
    unsigned char       big[NGX_OAUTH_OWNER_MAX + 2];
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account = S("1");
    ngx_oauth_str_t     empty = { 0, NULL };
    ngx_oauth_str_t     huge;

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    memset(big, 'o', sizeof(big));
    big[sizeof(big) - 1] = '\0';

    /* the longest of each part still fits an LMDB key */

    test_conn_make(&c, (char *) big + 1, "github", "1", big, 1);
    assert_int_equal(c.owner.len, NGX_OAUTH_OWNER_MAX);
    c.provider.data = big;
    c.provider.len = NGX_OAUTH_PROVIDER_MAX;
    c.account.data = big;
    c.account.len = NGX_OAUTH_ACCOUNT_MAX;
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    test_conn_make(&c, (char *) big, "github", "1", big, 1);
    assert_int_equal(c.owner.len, NGX_OAUTH_OWNER_MAX + 1);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                     NGX_OAUTH_INVALID);

    test_conn_make(&c, "alice", (char *) big, "1", big, 1);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                     NGX_OAUTH_INVALID);

    test_conn_make(&c, "alice", "github", (char *) big, big, 1);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                     NGX_OAUTH_INVALID);

    test_conn_make(&c, "", "github", "1", big, 1);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                     NGX_OAUTH_INVALID);

    test_conn_make(&c, "alice", "", "1", big, 1);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                     NGX_OAUTH_INVALID);

    test_conn_make(&c, "alice", "github", "", big, 1);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                     NGX_OAUTH_INVALID);

    huge.data = big;
    huge.len = NGX_OAUTH_OWNER_MAX + 1;

    assert_int_equal(ngx_oauth_store_conn_get(st, &huge, &provider,
                                              &account, &out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_conn_get(st, NULL, &provider,
                                              &account, &out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &empty,
                                              &account, &out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              NULL, &out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_conn_delete(st, &huge, &provider,
                                                 &account),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_lease_take(st, &huge, &provider,
                                                &account, 1, 0, 10),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_lease_drop(st, &owner, &provider,
                                                &empty, 1),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_store_conn_each(st, &huge, NULL,
                                               test_each_cb, NULL),
                     NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_store_meta_put(st, "", big, 1),
                     NGX_OAUTH_INVALID);

    ngx_oauth_store_close(st);
}


static void
test_leases(void **state)
{
    test_ctx_t         *t;
    ngx_oauth_store_t  *st;
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account = S("1");
    ngx_oauth_str_t     account2 = S("2");

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    /* free */

    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 1, 100, 130),
                     NGX_OAUTH_OK);

    /* busy for another holder, up to and including the deadline */

    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 2, 110, 140),
                     NGX_OAUTH_BUSY);
    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 2, 130, 160),
                     NGX_OAUTH_BUSY);

    /* another connection has its own lease */

    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account2, 2, 110, 140),
                     NGX_OAUTH_OK);

    /* the same holder takes it again and moves the deadline */

    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 1, 120, 200),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 2, 150, 180),
                     NGX_OAUTH_BUSY);

    /* a dead holder's lease expires */

    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 2, 201, 230),
                     NGX_OAUTH_OK);

    /* the old holder can neither drop nor retake it */

    assert_int_equal(ngx_oauth_store_lease_drop(st, &owner, &provider,
                                                &account, 1),
                     NGX_OAUTH_BUSY);
    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 3, 202, 230),
                     NGX_OAUTH_BUSY);

    assert_int_equal(ngx_oauth_store_lease_drop(st, &owner, &provider,
                                                &account, 2),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_lease_drop(st, &owner, &provider,
                                                &account, 2),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, 3, 203, 230),
                     NGX_OAUTH_OK);

    ngx_oauth_store_close(st);
}


/* a lease whose holder's process is gone is free before its deadline */

static void
test_lease_dead_holder(void **state)
{
    pid_t               pid;
    unsigned            taken;
    uint64_t            live, dead, me;
    test_ctx_t         *t;
    ngx_oauth_store_t  *st;
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account = S("1");

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    pid = fork();
    assert_true(pid >= 0);

    if (pid == 0) {
        _exit(0);
    }

    assert_int_equal(waitpid(pid, NULL, 0), pid);

    dead = ((uint64_t) pid << 32) | 7;
    live = ((uint64_t) getppid() << 32) | 7;
    me = ((uint64_t) getpid() << 32) | 1;

    /* a live process holds it to its deadline, flags and all */

    assert_int_equal(ngx_oauth_store_lease_claim(st, &owner, &provider,
                         &account, live, 100, 130, NGX_OAUTH_LEASE_CALLING,
                         &taken),
                     NGX_OAUTH_OK);
    assert_int_equal(taken, 0);
    assert_int_equal(ngx_oauth_store_lease_claim(st, &owner, &provider,
                         &account, me, 110, 140, 0, &taken),
                     NGX_OAUTH_BUSY);

    /* expired: taken over, and the call it had out is reported */

    assert_int_equal(ngx_oauth_store_lease_claim(st, &owner, &provider,
                         &account, me, 131, 160, 0, &taken),
                     NGX_OAUTH_OK);
    assert_int_equal(taken,
                     NGX_OAUTH_LEASE_TAKEN_OVER | NGX_OAUTH_LEASE_CALLING);

    /* the dead process's lease: taken over well before its deadline */

    assert_int_equal(ngx_oauth_store_lease_drop(st, &owner, &provider,
                                                &account, me),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_lease_claim(st, &owner, &provider,
                         &account, dead, 200, 300, NGX_OAUTH_LEASE_CALLING,
                         NULL),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_lease_take(st, &owner, &provider,
                                                &account, live, 201, 230),
                     NGX_OAUTH_OK);

    /* without a call out, a takeover says so */

    assert_int_equal(ngx_oauth_store_lease_claim(st, &owner, &provider,
                         &account, me, 240, 260, 0, &taken),
                     NGX_OAUTH_OK);
    assert_int_equal(taken, NGX_OAUTH_LEASE_TAKEN_OVER);

    /* the same holder again: nothing taken over */

    assert_int_equal(ngx_oauth_store_lease_claim(st, &owner, &provider,
                         &account, me, 241, 260, NGX_OAUTH_LEASE_CALLING,
                         &taken),
                     NGX_OAUTH_OK);
    assert_int_equal(taken, 0);

    ngx_oauth_store_close(st);
}


static void
test_meta(void **state)
{
    size_t              len;
    test_ctx_t         *t;
    unsigned char       buf[8];
    ngx_oauth_store_t  *st;

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    len = sizeof(buf);
    assert_int_equal(ngx_oauth_store_meta_get(st, "circuit:github", buf,
                                              &len),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_meta_put(st, "circuit:github",
                                              (unsigned char *) "open:1234",
                                              9),
                     NGX_OAUTH_OK);

    len = sizeof(buf);
    assert_int_equal(ngx_oauth_store_meta_get(st, "circuit:github", buf,
                                              &len),
                     NGX_OAUTH_TOO_LARGE);
    assert_int_equal(len, 9);

    assert_int_equal(ngx_oauth_store_meta_put(st, "circuit:github",
                                              (unsigned char *) "closed", 6),
                     NGX_OAUTH_OK);

    len = sizeof(buf);
    assert_int_equal(ngx_oauth_store_meta_get(st, "circuit:github", buf,
                                              &len),
                     NGX_OAUTH_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "closed", 6);

    assert_int_equal(ngx_oauth_store_meta_put(st, "empty", NULL, 0),
                     NGX_OAUTH_OK);

    len = 0;
    assert_int_equal(ngx_oauth_store_meta_get(st, "empty", NULL, &len),
                     NGX_OAUTH_OK);
    assert_int_equal(len, 0);

    ngx_oauth_store_close(st);
}


static void
test_map_full(void **state)
{
    int                 rc;
    char                acc[24];
    size_t              i, n;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_flow_t    flow;
    ngx_oauth_store_t  *st;
    unsigned char       tok[1000];
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account;

    t = *state;

    /* 256 KiB: 64 pages of 4 KiB, 16 of them the reserve */

    st = test_open(t, 256 * 1024, NULL);

    for (n = 0; n < 1000; n++) {
        snprintf(acc, sizeof(acc), "%zu", n);
        test_token(tok, sizeof(tok), (unsigned) n);
        test_conn_make(&c, "alice", "github", acc, tok, sizeof(tok));

        rc = ngx_oauth_store_conn_put(st, &c, NULL);
        if (rc != NGX_OAUTH_OK) {
            break;
        }
    }

    assert_int_equal(rc, NGX_OAUTH_FULL);
    assert_true(n > 3);
    assert_non_null(strstr(ngx_oauth_store_error(st), "store is full"));

    /* the store stays usable and full: the last pages go to flows */

    memset(&flow, 0, sizeof(flow));
    flow.owner = owner;
    flow.provider = provider;
    flow.verifier.data = tok;
    flow.verifier.len = sizeof(tok);

    for (i = 0; i < 1000; i++) {
        snprintf(acc, sizeof(acc), "s%zu", i);

        rc = ngx_oauth_store_flow_put(st, acc, strlen(acc), &flow);
        if (rc != NGX_OAUTH_OK) {
            break;
        }
    }

    assert_int_equal(rc, NGX_OAUTH_FULL);

    /*
     * pages freed by earlier commits may still take a small write, so
     * either answer is right; a crash or a damaged record is not
     */

    rc = ngx_oauth_store_meta_put(st, "k", tok, 100);
    assert_true(rc == NGX_OAUTH_OK || rc == NGX_OAUTH_FULL);

    snprintf(acc, sizeof(acc), "%zu", n);
    test_token(tok, sizeof(tok), (unsigned) n);
    test_conn_make(&c, "alice", "github", acc, tok, sizeof(tok));

    rc = ngx_oauth_store_conn_put(st, &c, NULL);
    assert_true(rc == NGX_OAUTH_OK || rc == NGX_OAUTH_FULL);

    if (rc == NGX_OAUTH_OK) {
        n++;
    }

    /* a stored connection may still change (a refresh), from the reserve */

    snprintf(acc, sizeof(acc), "%zu", (size_t) 0);
    test_token(tok, sizeof(tok), 0);
    test_conn_make(&c, "alice", "github", acc, tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    /* nothing stored before is lost or damaged */

    for (i = 0; i < n; i++) {
        snprintf(acc, sizeof(acc), "%zu", i);
        account.data = (unsigned char *) acc;
        account.len = strlen(acc);
        test_token(tok, sizeof(tok), (unsigned) i);

        assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                                  &account, &out),
                         NGX_OAUTH_OK);
        assert_int_equal(out.version, i == 0 ? 2 : 1);
        assert_int_equal(out.access.len, sizeof(tok));
        assert_memory_equal(out.access.data, tok, sizeof(tok));
        ngx_oauth_conn_free(&out);
    }

    ngx_oauth_store_close(st);

    /* a larger map takes writes again */

    st = test_open(t, TEST_MAP, NULL);

    snprintf(acc, sizeof(acc), "%zu", n);
    test_token(tok, sizeof(tok), (unsigned) n);
    test_conn_make(&c, "alice", "github", acc, tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    for (i = 0; i <= n; i++) {
        snprintf(acc, sizeof(acc), "%zu", i);
        account.data = (unsigned char *) acc;
        account.len = strlen(acc);
        test_token(tok, sizeof(tok), (unsigned) i);

        assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                                  &account, &out),
                         NGX_OAUTH_OK);
        assert_memory_equal(out.access.data, tok, sizeof(tok));
        ngx_oauth_conn_free(&out);
    }

    ngx_oauth_store_close(st);
}


/* an owner's pending flows are capped: the oldest go first */

static void
test_flow_cap(void **state)
{
    char                st_name[16];
    size_t              i, evicted;
    test_ctx_t         *t;
    ngx_oauth_flow_t    in, out;
    ngx_oauth_store_t  *st;

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    memset(&in, 0, sizeof(in));
    in.provider = (ngx_oauth_str_t) S("github");
    in.expires = 99999;

    for (i = 0; i < 5; i++) {
        snprintf(st_name, sizeof(st_name), "a%zu", i);
        in.owner = (ngx_oauth_str_t) S("alice");
        in.created = 1000 + i;
        assert_int_equal(ngx_oauth_store_flow_add(st, st_name,
                             strlen(st_name), &in, 3, &evicted),
                         NGX_OAUTH_OK);
        assert_int_equal(evicted, i < 3 ? 0 : 1);
    }

    /* another owner is not counted against alice, nor evicted */

    in.owner = (ngx_oauth_str_t) S("bob");
    in.created = 1;
    assert_int_equal(ngx_oauth_store_flow_add(st, "b0", 2, &in, 3,
                                              &evicted),
                     NGX_OAUTH_OK);
    assert_int_equal(evicted, 0);

    /* alice keeps her three newest; a0 and a1 are gone */

    for (i = 0; i < 5; i++) {
        snprintf(st_name, sizeof(st_name), "a%zu", i);
        assert_int_equal(ngx_oauth_store_flow_take(st, st_name,
                             strlen(st_name), &out),
                         i < 2 ? NGX_OAUTH_NOT_FOUND : NGX_OAUTH_OK);
        if (i >= 2) {
            ngx_oauth_flow_free(&out);
        }
    }

    assert_int_equal(ngx_oauth_store_flow_take(st, "b0", 2, &out),
                     NGX_OAUTH_OK);
    ngx_oauth_flow_free(&out);

    ngx_oauth_store_close(st);
}


/* a store that starts filled: deletes and purges still commit */

static void
test_store_reserve(void **state)
{
    int                      rc;
    char                     name[24];
    size_t                   i, n, purged;
    test_ctx_t              *t;
    ngx_oauth_conn_t         c;
    ngx_oauth_flow_t         flow;
    ngx_oauth_store_t       *st;
    unsigned char            tok[1000];
    ngx_oauth_str_t          owner = S("alice");
    ngx_oauth_str_t          provider = S("github");
    ngx_oauth_str_t          account;
    ngx_oauth_store_usage_t  u;

    t = *state;
    st = test_open(t, 256 * 1024, NULL);

    memset(&flow, 0, sizeof(flow));
    flow.owner = owner;
    flow.provider = provider;
    flow.verifier.data = tok;
    flow.verifier.len = sizeof(tok);
    flow.created = 10;
    flow.expires = 20;

    test_token(tok, sizeof(tok), 7);
    test_conn_make(&c, "alice", "github", "0", tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    for (n = 0; n < 5000; n++) {
        snprintf(name, sizeof(name), "s%zu", n);
        rc = ngx_oauth_store_flow_put(st, name, strlen(name), &flow);
        if (rc != NGX_OAUTH_OK) {
            break;
        }
    }

    assert_int_equal(rc, NGX_OAUTH_FULL);
    assert_true(n > 10);

    assert_int_equal(ngx_oauth_store_usage(st, &u), NGX_OAUTH_OK);
    assert_int_equal(u.size, 256 * 1024);
    assert_true(u.used > u.size / 2 && u.used <= u.size);
    assert_int_equal(u.reserve, 16 * 4096);

    /* new connections are refused too ... */

    test_conn_make(&c, "alice", "github", "new", tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_FULL);

    /* ... but a refresh, a delete and the purge commit */

    for (i = 0; i < 3; i++) {
        test_conn_make(&c, "alice", "github", "0", tok, sizeof(tok));
        assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                         NGX_OAUTH_OK);
    }

    account.data = (unsigned char *) "0";
    account.len = 1;
    assert_int_equal(ngx_oauth_store_conn_delete(st, &owner, &provider,
                                                 &account),
                     NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_store_flow_purge(st, 100, &purged),
                     NGX_OAUTH_OK);
    assert_int_equal(purged, n);

    /* and the room is back */

    assert_int_equal(ngx_oauth_store_flow_put(st, "after", 5, &flow),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_usage(st, &u), NGX_OAUTH_OK);
    assert_true(u.used < u.size / 2);

    ngx_oauth_store_close(st);
}


static void
test_map_resized(void **state)
{
    int                 status;
    char                acc[24];
    pid_t               pid;
    size_t              i;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_store_t  *st, *cst;
    unsigned char       tok[1000];
    ngx_oauth_str_t     owner = S("bob");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account;

    t = *state;

    /* this process keeps a 64 KiB map while another grows the file */

    st = test_open(t, 64 * 1024, NULL);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        cst = test_open(t, TEST_MAP, NULL);

        for (i = 0; i < 200; i++) {
            snprintf(acc, sizeof(acc), "%zu", i);
            test_token(tok, sizeof(tok), (unsigned) i);
            test_conn_make(&c, "bob", "github", acc, tok, sizeof(tok));

            if (ngx_oauth_store_conn_put(cst, &c, NULL) != NGX_OAUTH_OK) {
                _exit(1);
            }
        }

        ngx_oauth_store_close(cst);
        _exit(0);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* MDB_MAP_RESIZED is adopted and retried */

    account.data = (unsigned char *) "199";
    account.len = 3;
    test_token(tok, sizeof(tok), 199);

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_memory_equal(out.access.data, tok, sizeof(tok));
    ngx_oauth_conn_free(&out);

    test_conn_make(&c, "bob", "github", "200", tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    ngx_oauth_store_close(st);
}


static void
test_reopen(void **state)
{
    int                 stale;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_flow_t    flow;
    ngx_oauth_store_t  *st;
    unsigned char       tok[32];
    ngx_oauth_str_t     owner = S("alice");
    ngx_oauth_str_t     provider = S("google");
    ngx_oauth_str_t     account = S("a@example.com");

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    test_token(tok, sizeof(tok), 9);
    test_conn_make(&c, "alice", "google", "a@example.com", tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    memset(&flow, 0, sizeof(flow));
    flow.owner = owner;
    flow.provider = provider;
    flow.expires = 77;
    assert_int_equal(ngx_oauth_store_flow_put(st, "st", 2, &flow),
                     NGX_OAUTH_OK);

    ngx_oauth_store_close(st);

    st = test_open(t, TEST_MAP, &stale);
    assert_int_equal(stale, 0);

    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.version, 2);
    assert_memory_equal(out.access.data, tok, sizeof(tok));
    ngx_oauth_conn_free(&out);

    assert_int_equal(ngx_oauth_store_flow_take(st, "st", 2, &flow),
                     NGX_OAUTH_OK);
    assert_int_equal(flow.expires, 77);
    ngx_oauth_flow_free(&flow);

    ngx_oauth_store_close(st);
}


static void
test_multi_process(void **state)
{
    int                 status;
    pid_t               pid;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_store_t  *st;
    unsigned char       tok[16];
    ngx_oauth_str_t     owner = S("carol");
    ngx_oauth_str_t     provider = S("slack");
    ngx_oauth_str_t     account = S("T1");

    t = *state;

    st = test_open(t, TEST_MAP, NULL);
    ngx_oauth_store_close(st);

    /* the way nginx does it: closed before fork, opened in the child */

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        st = test_open(t, TEST_MAP, NULL);
        test_token(tok, sizeof(tok), 5);
        test_conn_make(&c, "carol", "slack", "T1", tok, sizeof(tok));

        status = ngx_oauth_store_conn_put(st, &c, NULL);
        ngx_oauth_store_close(st);

        _exit(status == NGX_OAUTH_OK ? 0 : 1);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    st = test_open(t, TEST_MAP, NULL);

    test_token(tok, sizeof(tok), 5);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_memory_equal(out.access.data, tok, sizeof(tok));
    ngx_oauth_conn_free(&out);

    /* a handle inherited across fork is refused in the child */

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        status = ngx_oauth_store_conn_get(st, &owner, &provider, &account,
                                          &out);
        _exit(status == NGX_OAUTH_ERROR
              && strstr(ngx_oauth_store_error(st), "fork") ? 0 : 1);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    ngx_oauth_store_close(st);
}


static int
test_block_cb(const ngx_oauth_conn_t *c, void *data)
{
    int  *fd = data;

    /* tell the parent a read transaction is open, then wait to die */

    if (write(*fd, "r", 1) != 1) {
        _exit(2);
    }

    for ( ;; ) {
        pause();
    }

    return 1;
}


static void
test_stale_reader(void **state)
{
    int                 status, stale, fds[2];
    char                ch;
    pid_t               pid;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c;
    ngx_oauth_store_t  *st, *cst;
    unsigned char       tok[4] = "tok";

    t = *state;

    /*
     * this process keeps the file open: the last process to leave would
     * reset the lock file and hide the stale slot
     */

    st = test_open(t, TEST_MAP, NULL);

    test_conn_make(&c, "dave", "github", "1", tok, 3);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        close(fds[0]);
        cst = test_open(t, TEST_MAP, NULL);
        (void) ngx_oauth_store_conn_each(cst, NULL, NULL, test_block_cb,
                                         &fds[1]);
        _exit(3);
    }

    close(fds[1]);
    assert_int_equal(read(fds[0], &ch, 1), 1);
    close(fds[0]);

    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    /* a process opening the store now clears the slot and says so */

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        cst = test_open(t, TEST_MAP, &stale);
        ngx_oauth_store_close(cst);
        _exit(stale);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);

    assert_int_equal(ngx_oauth_store_reader_check(st, &stale), NGX_OAUTH_OK);
    assert_int_equal(stale, 0);

    ngx_oauth_store_close(st);
}


static void
test_stale_reader_check(void **state)
{
    int                 status, stale, fds[2];
    char                ch;
    pid_t               pid;
    test_ctx_t         *t;
    ngx_oauth_conn_t    c;
    ngx_oauth_store_t  *st, *cst;
    unsigned char       tok[4] = "tok";

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    test_conn_make(&c, "dave", "github", "1", tok, 3);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        close(fds[0]);
        cst = test_open(t, TEST_MAP, NULL);
        (void) ngx_oauth_store_conn_each(cst, NULL, NULL, test_block_cb,
                                         &fds[1]);
        _exit(3);
    }

    close(fds[1]);
    assert_int_equal(read(fds[0], &ch, 1), 1);
    close(fds[0]);

    assert_int_equal(ngx_oauth_store_reader_check(st, &stale), NGX_OAUTH_OK);
    assert_int_equal(stale, 0);

    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    /* the periodic check of a running worker */

    assert_int_equal(ngx_oauth_store_reader_check(st, &stale), NGX_OAUTH_OK);
    assert_int_equal(stale, 1);

    assert_int_equal(ngx_oauth_store_reader_check(st, &stale), NGX_OAUTH_OK);
    assert_int_equal(stale, 0);

    ngx_oauth_store_close(st);
}


/* writes the version tag behind the store's back, as another build would */

static void
test_raw_version(test_ctx_t *t, const char *version)
{
    MDB_env  *env;
    MDB_txn  *txn;
    MDB_dbi   dbi;
    MDB_val   k, v;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_mapsize(env, TEST_MAP), 0);
    assert_int_equal(mdb_env_open(env, t->path, MDB_NOSUBDIR, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);

    k.mv_data = "version";
    k.mv_size = 7;

    if (version == NULL) {
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);

    } else {
        v.mv_data = (void *) version;
        v.mv_size = strlen(version);
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    }

    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}


static void
test_version_mismatch(void **state)
{
    test_ctx_t         *t;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_store_t  *st;
    unsigned char       tok[4] = "tok";
    ngx_oauth_str_t     owner = S("erin");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account = S("1");

    t = *state;
    st = test_open(t, TEST_MAP, NULL);
    test_conn_make(&c, "erin", "github", "1", tok, 3);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);
    ngx_oauth_store_close(st);

    test_raw_version(t, "2");
    assert_int_equal(test_open_rc(t, t->path, TEST_MAP), NGX_OAUTH_INVALID);
    assert_non_null(strstr(t->err, "version \"2\""));

    test_raw_version(t, "1x");
    assert_int_equal(test_open_rc(t, t->path, TEST_MAP), NGX_OAUTH_INVALID);

    test_raw_version(t, "");
    assert_int_equal(test_open_rc(t, t->path, TEST_MAP), NGX_OAUTH_INVALID);

    /* records without a tag: not ours, and not wiped either */

    test_raw_version(t, NULL);
    assert_int_equal(test_open_rc(t, t->path, TEST_MAP), NGX_OAUTH_INVALID);
    assert_non_null(strstr(t->err, "no version tag"));

    test_raw_version(t, "1");

    st = test_open(t, TEST_MAP, NULL);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    ngx_oauth_conn_free(&out);
    ngx_oauth_store_close(st);
}


static void
test_write_file(const char *path, size_t len, off_t off, unsigned seed)
{
    int             fd;
    size_t          i;
    unsigned char  *buf;

    buf = malloc(len);
    assert_non_null(buf);

    srand(seed);

    for (i = 0; i < len; i++) {
        buf[i] = (unsigned char) rand();
    }

    fd = open(path, O_WRONLY|O_CREAT, 0600);
    assert_true(fd != -1);
    assert_int_equal(pwrite(fd, buf, len, off), (ssize_t) len);
    close(fd);

    free(buf);
}


static void
test_corrupt_file(void **state)
{
    char                acc[24];
    size_t              i;
    test_ctx_t         *t;
    struct stat         sb;
    ngx_oauth_conn_t    c;
    ngx_oauth_store_t  *st;
    unsigned char       tok[1000];

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    for (i = 0; i < 300; i++) {
        snprintf(acc, sizeof(acc), "%zu", i);
        test_token(tok, sizeof(tok), (unsigned) i);
        test_conn_make(&c, "frank", "github", acc, tok, sizeof(tok));
        assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL),
                         NGX_OAUTH_OK);
    }

    ngx_oauth_store_close(st);

    /* truncated to half: an error, not SIGBUS */

    assert_int_equal(stat(t->path, &sb), 0);
    assert_true(sb.st_size > 100 * 4096);
    assert_int_equal(truncate(t->path, sb.st_size / 2), 0);

    assert_int_equal(test_open_rc(t, t->path, TEST_MAP), NGX_OAUTH_INVALID);
    assert_non_null(strstr(t->err, "truncated"));

    /* garbage over both meta pages */

    test_write_file(t->path, 8192, 0, 1);
    assert_true(test_open_rc(t, t->path, TEST_MAP) != NGX_OAUTH_OK);

    /* a small garbage file, and a large one */

    assert_int_equal(unlink(t->path), 0);
    test_write_file(t->path, 100, 0, 2);
    assert_true(test_open_rc(t, t->path, TEST_MAP) != NGX_OAUTH_OK);

    assert_int_equal(unlink(t->path), 0);
    test_write_file(t->path, 256 * 1024, 0, 3);
    assert_true(test_open_rc(t, t->path, TEST_MAP) != NGX_OAUTH_OK);

    /* the file was left alone */

    assert_int_equal(stat(t->path, &sb), 0);
    assert_int_equal(sb.st_size, 256 * 1024);
}


static void
test_copy(void **state)
{
    char                dest[160];
    test_ctx_t         *t;
    struct stat         sb;
    ngx_oauth_conn_t    c, out;
    ngx_oauth_store_t  *st, *bst;
    unsigned char       tok[64];
    ngx_oauth_str_t     owner = S("gina");
    ngx_oauth_str_t     provider = S("github");
    ngx_oauth_str_t     account = S("1");
    ngx_oauth_store_conf_t  conf;

    t = *state;
    st = test_open(t, TEST_MAP, NULL);

    test_token(tok, sizeof(tok), 3);
    test_conn_make(&c, "gina", "github", "1", tok, sizeof(tok));
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);

    snprintf(dest, sizeof(dest), "%s/backup.mdb", t->dir);

    assert_int_equal(ngx_oauth_store_copy(st, dest), NGX_OAUTH_OK);

    assert_int_equal(stat(dest, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* an existing file is not overwritten, and is left alone */

    assert_int_equal(ngx_oauth_store_copy(st, dest), NGX_OAUTH_ERROR);
    assert_non_null(strstr(ngx_oauth_store_error(st), "backup.mdb"));
    assert_int_equal(stat(dest, &sb), 0);

    ngx_oauth_store_close(st);

    memset(&conf, 0, sizeof(conf));
    conf.path = dest;
    conf.max_size = TEST_MAP;

    assert_int_equal(ngx_oauth_store_open(&bst, &conf, NULL, t->err,
                                          sizeof(t->err)),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_conn_get(bst, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    assert_memory_equal(out.access.data, tok, sizeof(tok));
    ngx_oauth_conn_free(&out);
    ngx_oauth_store_close(bst);
}


static void
test_nosync(void **state)
{
    test_ctx_t              *t;
    ngx_oauth_conn_t         c, out;
    ngx_oauth_store_t       *st;
    unsigned char            tok[4] = "tok";
    ngx_oauth_str_t          owner = S("hank");
    ngx_oauth_str_t          provider = S("github");
    ngx_oauth_str_t          account = S("1");
    ngx_oauth_store_conf_t   conf;

    t = *state;

    memset(&conf, 0, sizeof(conf));
    conf.path = t->path;
    conf.sync = 0;
    conf.max_readers = 300;

    assert_int_equal(ngx_oauth_store_open(&st, &conf, NULL, t->err,
                                          sizeof(t->err)),
                     NGX_OAUTH_OK);

    test_conn_make(&c, "hank", "github", "1", tok, 3);
    assert_int_equal(ngx_oauth_store_conn_put(st, &c, NULL), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_conn_get(st, &owner, &provider,
                                              &account, &out),
                     NGX_OAUTH_OK);
    ngx_oauth_conn_free(&out);

    ngx_oauth_store_close(st);
}


/* meta_update: two processes incrementing at once lose nothing */

static int
test_meta_increment(unsigned char *buf, size_t *len, size_t size,
    void *data)
{
    uint32_t  n;

    n = 0;

    if (*len == sizeof(n)) {
        memcpy(&n, buf, sizeof(n));
    }

    n++;
    memcpy(buf, &n, sizeof(n));
    *len = sizeof(n);

    return 1;
}


static int
test_meta_nothing(unsigned char *buf, size_t *len, size_t size, void *data)
{
    return 0;
}


static void
test_meta_update(void **state)
{
    int                 i, k, status;
    pid_t               pid[2];
    size_t              len;
    uint32_t            n;
    test_ctx_t         *t;
    ngx_oauth_store_t  *st;

    t = *state;

    st = test_open(t, TEST_MAP, NULL);

    /* absent: the function sees an empty value */

    assert_int_equal(ngx_oauth_store_meta_update(st, "counter",
                                                 test_meta_increment, NULL),
                     NGX_OAUTH_OK);

    /* 0 from the function writes nothing */

    assert_int_equal(ngx_oauth_store_meta_update(st, "counter",
                                                 test_meta_nothing, NULL),
                     NGX_OAUTH_OK);

    /* the reserved key is refused */

    assert_int_equal(ngx_oauth_store_meta_update(st, "version",
                                                 test_meta_increment, NULL),
                     NGX_OAUTH_INVALID);

    ngx_oauth_store_close(st);

    for (k = 0; k < 2; k++) {
        pid[k] = fork();
        assert_true(pid[k] != -1);

        if (pid[k] == 0) {
            st = test_open(t, TEST_MAP, NULL);

            for (i = 0; i < 200; i++) {
                if (ngx_oauth_store_meta_update(st, "counter",
                                                test_meta_increment, NULL)
                    != NGX_OAUTH_OK)
                {
                    _exit(1);
                }
            }

            ngx_oauth_store_close(st);
            _exit(0);
        }
    }

    for (k = 0; k < 2; k++) {
        assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    st = test_open(t, TEST_MAP, NULL);

    len = sizeof(n);
    assert_int_equal(ngx_oauth_store_meta_get(st, "counter",
                                              (unsigned char *) &n, &len),
                     NGX_OAUTH_OK);
    assert_int_equal(len, sizeof(n));
    assert_int_equal(n, 401);

    ngx_oauth_store_close(st);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_open_new, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_flow_single_use, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_flow_spent, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_flow_purge, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_conn_put_get, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_conn_each_isolation,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_conn_only, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_keys, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_leases, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_lease_dead_holder, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_meta_update, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_meta, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_map_full, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_map_resized, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_flow_cap, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_store_reserve, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_reopen, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_multi_process, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_stale_reader, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_stale_reader_check,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_file, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_copy, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_nosync, test_setup,
                                        test_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
