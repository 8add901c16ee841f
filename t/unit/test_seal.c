/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * Unit tests of core/ngx_oauth_seal.c (sealed fields and their associated
 * data) and ngx_oauth_conn_status().  The compatibility cases seal with
 * the bare ngx_oauth_seal() and the associated data the module used
 * before the field enum, so a store written then still opens.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include "ngx_oauth_seal.h"


#define S(s)  { sizeof(s) - 1, (unsigned char *) (s) }

/* bytes 0x00..0x1f and 0xe0..0xff */
#define TEST_RING  "k2:4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=\n" \
                   "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"

#define TEST_STATE  "state-0123456789abcdefghijklmnopqrstuvwxyzAB"


static ngx_oauth_keyring_t  test_ring;


static int
test_setup(void **state)
{
    char  err[256];

    return ngx_oauth_keyring_parse(&test_ring,
                                   (const unsigned char *) TEST_RING,
                                   sizeof(TEST_RING) - 1, err, sizeof(err));
}


static void
test_conn_init(ngx_oauth_conn_t *c)
{
    ngx_oauth_str_t  owner = S("alice");
    ngx_oauth_str_t  provider = S("github");
    ngx_oauth_str_t  account = S("12345");

    memset(c, 0, sizeof(ngx_oauth_conn_t));
    c->owner = owner;
    c->provider = provider;
    c->account = account;
}


/* seals plain into the member of c that field names (malloc()ed) */

static void
test_seal(ngx_oauth_conn_t *c, ngx_oauth_sealed_e field, const char *plain)
{
    size_t            len;
    ngx_oauth_str_t  *s;

    len = strlen(plain);
    s = ngx_oauth_conn_sealed(c, field);
    assert_non_null(s);

    s->data = malloc(ngx_oauth_sealed_size(&test_ring, len));
    assert_non_null(s->data);

    assert_int_equal(ngx_oauth_conn_seal(&test_ring, c, field,
                                         (const unsigned char *) plain, len,
                                         s->data, &s->len),
                     NGX_OAUTH_OK);
    assert_int_equal(s->len, ngx_oauth_sealed_size(&test_ring, len));
}


static int
test_open(ngx_oauth_conn_t *c, ngx_oauth_sealed_e field, char *out)
{
    int     rc;
    size_t  len;

    rc = ngx_oauth_conn_open(&test_ring, c, field, (unsigned char *) out,
                             &len);
    if (rc == NGX_OAUTH_OK) {
        out[len] = '\0';
    }

    return rc;
}


static void
test_names(void **state)
{
    ngx_oauth_conn_t  c;

    /* part of the store format */
    assert_string_equal(ngx_oauth_sealed_name(NGX_OAUTH_SEALED_ACCESS),
                        "access");
    assert_string_equal(ngx_oauth_sealed_name(NGX_OAUTH_SEALED_REFRESH),
                        "refresh");
    assert_string_equal(ngx_oauth_sealed_name(NGX_OAUTH_SEALED_CREDENTIALS),
                        "credentials");
    assert_string_equal(ngx_oauth_sealed_name(NGX_OAUTH_SEALED_VERIFIER),
                        "pkce");
    assert_null(ngx_oauth_sealed_name((ngx_oauth_sealed_e) 4));
    assert_int_equal(NGX_OAUTH_SEALED_CONN_FIELDS, 3);

    assert_ptr_equal(ngx_oauth_conn_sealed(&c, NGX_OAUTH_SEALED_ACCESS),
                     &c.access);
    assert_ptr_equal(ngx_oauth_conn_sealed(&c, NGX_OAUTH_SEALED_REFRESH),
                     &c.refresh);
    assert_ptr_equal(ngx_oauth_conn_sealed(&c, NGX_OAUTH_SEALED_CREDENTIALS),
                     &c.secret);
    assert_null(ngx_oauth_conn_sealed(&c, NGX_OAUTH_SEALED_VERIFIER));
}


static void
test_conn_roundtrip(void **state)
{
    char              out[256];
    unsigned char     buf[256];
    size_t            len;
    ngx_oauth_conn_t  c;

    test_conn_init(&c);
    test_seal(&c, NGX_OAUTH_SEALED_ACCESS, "at-1");
    test_seal(&c, NGX_OAUTH_SEALED_REFRESH, "rt-1");
    test_seal(&c, NGX_OAUTH_SEALED_CREDENTIALS, "key-1");

    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_ACCESS, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "at-1");
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_REFRESH, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "rt-1");
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_CREDENTIALS, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "key-1");

    /* the verifier is a flow's, not a connection's */
    assert_int_equal(ngx_oauth_conn_seal(&test_ring, &c,
                                         NGX_OAUTH_SEALED_VERIFIER,
                                         (const unsigned char *) "x", 1, buf,
                                         &len),
                     NGX_OAUTH_INVALID);
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_VERIFIER, out),
                     NGX_OAUTH_INVALID);

    free(c.access.data);
    free(c.refresh.data);
    free(c.secret.data);
}


static void
test_conn_binding(void **state)
{
    char              out[256];
    ngx_oauth_str_t   keep, other = S("67890");
    ngx_oauth_conn_t  c;

    test_conn_init(&c);
    test_seal(&c, NGX_OAUTH_SEALED_ACCESS, "at-1");

    /* an empty member has nothing to open */
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_REFRESH, out),
                     NGX_OAUTH_NOT_FOUND);

    /* the access token moved to the refresh token's place */
    c.refresh = c.access;
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_REFRESH, out),
                     NGX_OAUTH_DENIED);
    c.secret = c.access;
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_CREDENTIALS, out),
                     NGX_OAUTH_DENIED);

    /* the same field of another account */
    keep = c.account;
    c.account = other;
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_ACCESS, out),
                     NGX_OAUTH_DENIED);
    c.account = keep;
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_ACCESS, out),
                     NGX_OAUTH_OK);

    free(c.access.data);
}


/* a value sealed the way the module did before the enum still opens */

static void
test_conn_compat(void **state)
{
    char              out[256];
    size_t            len;
    unsigned char     sealed[256];
    ngx_oauth_aad_t   aad;
    ngx_oauth_conn_t  c;
    ngx_oauth_str_t   field = S("credentials");

    test_conn_init(&c);

    aad.owner = c.owner;
    aad.provider = c.provider;
    aad.account = c.account;
    aad.field = field;

    assert_int_equal(ngx_oauth_seal(&test_ring, &aad,
                                    (const unsigned char *) "user:pass", 9,
                                    sealed, &len),
                     NGX_OAUTH_OK);

    c.secret.data = sealed;
    c.secret.len = len;

    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_CREDENTIALS, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "user:pass");

    c.access = c.secret;
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_ACCESS, out),
                     NGX_OAUTH_DENIED);
}


static void
test_flow_init(ngx_oauth_flow_t *flow)
{
    ngx_oauth_str_t  owner = S("alice");
    ngx_oauth_str_t  provider = S("github");

    memset(flow, 0, sizeof(ngx_oauth_flow_t));
    flow->owner = owner;
    flow->provider = provider;
}


/* a token answer sealed into a conn: refresh only when the answer has one */

static void
test_conn_seal_token(void **state)
{
    char               out[64];
    size_t             size;
    unsigned char     *buf;
    ngx_oauth_conn_t   c;
    ngx_oauth_token_t  token;
    ngx_oauth_str_t    old = S("old-sealed-refresh");

    test_conn_init(&c);
    memset(&token, 0, sizeof(token));

    token.access_token.len = 6;
    token.access_token.data = (unsigned char *) "at-one";
    token.refresh_token.len = 6;
    token.refresh_token.data = (unsigned char *) "rt-one";

    size = ngx_oauth_token_sealed_size(&test_ring, &token);
    assert_int_equal(size, 2 * ngx_oauth_sealed_size(&test_ring, 6));

    buf = malloc(size);
    assert_non_null(buf);

    assert_int_equal(ngx_oauth_conn_seal_token(&test_ring, &c, &token, buf),
                     NGX_OAUTH_OK);
    assert_ptr_equal(c.access.data, buf);
    assert_int_equal(c.access.len + c.refresh.len, size);

    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_ACCESS, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "at-one");
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_REFRESH, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "rt-one");

    free(buf);

    /* no refresh token in the answer: the old one is kept */

    token.refresh_token.len = 0;
    token.refresh_token.data = NULL;
    c.refresh = old;

    size = ngx_oauth_token_sealed_size(&test_ring, &token);
    assert_int_equal(size, ngx_oauth_sealed_size(&test_ring, 6));

    buf = malloc(size);
    assert_non_null(buf);

    assert_int_equal(ngx_oauth_conn_seal_token(&test_ring, &c, &token, buf),
                     NGX_OAUTH_OK);
    assert_ptr_equal(c.refresh.data, old.data);
    assert_int_equal(test_open(&c, NGX_OAUTH_SEALED_ACCESS, out),
                     NGX_OAUTH_OK);
    assert_string_equal(out, "at-one");

    free(buf);
}


static void
test_verifier(void **state)
{
    char              plain[64];
    size_t            len;
    unsigned char     sealed[256], hash[NGX_OAUTH_SHA256_LEN];
    ngx_oauth_flow_t  flow, moved;

    test_flow_init(&flow);

    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &flow,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_flow_seal_verifier(&test_ring, &flow,
                                                  TEST_STATE,
                                                  sizeof(TEST_STATE) - 1,
                                                  (unsigned char *) "v-1",
                                                  3, sealed,
                                                  &flow.verifier.len),
                     NGX_OAUTH_OK);
    flow.verifier.data = sealed;

    /* bound to the key the store files the flow under */
    assert_int_equal(flow.verifier_aad, NGX_OAUTH_FLOW_AAD_STATE);
    assert_int_equal(ngx_oauth_sha256((unsigned char *) TEST_STATE,
                                      sizeof(TEST_STATE) - 1, hash),
                     NGX_OAUTH_OK);
    assert_memory_equal(flow.state_hash, hash, sizeof(hash));

    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &flow,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(plain, "v-1", 3);

    /* the verifier copied to another flow of the same owner and provider */
    moved = flow;
    moved.state_hash[0] ^= 1;
    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &moved,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_DENIED);

    /* nor does it open once the record's binding is stripped */
    moved = flow;
    moved.verifier_aad = NGX_OAUTH_FLOW_AAD_LEGACY;
    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &moved,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_DENIED);

    /* a re-seal without the state (rotation) keeps the binding */
    moved = flow;
    assert_int_equal(ngx_oauth_flow_seal_verifier(&test_ring, &moved, NULL,
                                                  0, (unsigned char *) "v-1",
                                                  3, sealed,
                                                  &moved.verifier.len),
                     NGX_OAUTH_OK);
    assert_int_equal(moved.verifier_aad, NGX_OAUTH_FLOW_AAD_STATE);
    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &moved,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_flow_seal_verifier(&test_ring, &moved, "",
                                                  0, (unsigned char *) "v",
                                                  1, sealed, &len),
                     NGX_OAUTH_INVALID);
}


/* flows started before the binding to the state still finish */

static void
test_verifier_legacy(void **state)
{
    char              plain[64];
    size_t            len;
    unsigned char     sealed[256];
    ngx_oauth_aad_t   aad;
    ngx_oauth_flow_t  flow;
    ngx_oauth_str_t   field = S("pkce");

    test_flow_init(&flow);

    aad.owner = flow.owner;
    aad.provider = flow.provider;
    aad.account.len = 0;
    aad.account.data = NULL;
    aad.field = field;

    assert_int_equal(ngx_oauth_seal(&test_ring, &aad,
                                    (const unsigned char *) "old", 3,
                                    sealed, &flow.verifier.len),
                     NGX_OAUTH_OK);
    flow.verifier.data = sealed;
    memset(flow.state_hash, 7, sizeof(flow.state_hash));

    assert_int_equal(flow.verifier_aad, NGX_OAUTH_FLOW_AAD_LEGACY);
    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &flow,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_OK);
    assert_memory_equal(plain, "old", 3);

    /* a legacy value cannot pass for a bound one */
    flow.verifier_aad = NGX_OAUTH_FLOW_AAD_STATE;
    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &flow,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_DENIED);
}


typedef struct {
    unsigned char   hash[NGX_OAUTH_FLOW_KEY_LEN];
    unsigned        seen;
} test_each_t;


static int
test_flow_each(const ngx_oauth_flow_t *flow, void *data)
{
    test_each_t  *e = data;

    assert_memory_equal(flow->state_hash, e->hash, sizeof(e->hash));
    assert_int_equal(flow->verifier_aad, NGX_OAUTH_FLOW_AAD_STATE);
    e->seen++;

    return 0;
}


/* the store hands the flow back with the key its verifier is bound to */

static void
test_verifier_store(void **state)
{
    char                    dir[64], path[128], err[256], plain[64];
    size_t                  len;
    unsigned char           sealed[256];
    test_each_t             e;
    ngx_oauth_flow_t        flow, out;
    ngx_oauth_store_t      *st;
    ngx_oauth_store_conf_t  conf;

    strcpy(dir, "/tmp/ngx_oauth_seal_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/oauth.mdb", dir);

    memset(&conf, 0, sizeof(conf));
    conf.path = path;
    conf.max_size = 1024 * 1024;
    conf.max_readers = 8;

    assert_int_equal(ngx_oauth_store_open(&st, &conf, NULL, err,
                                          sizeof(err)),
                     NGX_OAUTH_OK);

    test_flow_init(&flow);
    flow.expires = time(NULL) + 60;

    assert_int_equal(ngx_oauth_flow_seal_verifier(&test_ring, &flow,
                                                  TEST_STATE,
                                                  sizeof(TEST_STATE) - 1,
                                                  (unsigned char *) "v-2",
                                                  3, sealed,
                                                  &flow.verifier.len),
                     NGX_OAUTH_OK);
    flow.verifier.data = sealed;

    assert_int_equal(ngx_oauth_store_flow_put(st, TEST_STATE,
                                              sizeof(TEST_STATE) - 1, &flow),
                     NGX_OAUTH_OK);

    memcpy(e.hash, flow.state_hash, sizeof(e.hash));
    e.seen = 0;
    assert_int_equal(ngx_oauth_store_flow_each(st, test_flow_each, &e),
                     NGX_OAUTH_OK);
    assert_int_equal(e.seen, 1);

    assert_int_equal(ngx_oauth_store_flow_take(st, TEST_STATE,
                                               sizeof(TEST_STATE) - 1, &out),
                     NGX_OAUTH_OK);
    assert_memory_equal(out.state_hash, flow.state_hash,
                        sizeof(flow.state_hash));
    assert_int_equal(ngx_oauth_flow_open_verifier(&test_ring, &out,
                                                  (unsigned char *) plain,
                                                  &len),
                     NGX_OAUTH_OK);
    assert_memory_equal(plain, "v-2", 3);
    ngx_oauth_flow_free(&out);

    ngx_oauth_store_close(st);
    unlink(path);
    snprintf(path, sizeof(path), "%s/oauth.mdb-lock", dir);
    unlink(path);
    rmdir(dir);
}


static void
test_status(void **state)
{
    ngx_oauth_conn_t  c;
    unsigned char     rt[] = "sealed";

    memset(&c, 0, sizeof(c));

    /* no expiry known: as stored */
    c.status = NGX_OAUTH_STATUS_CONNECTED;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_CONNECTED);

    /* not expired yet */
    c.expires_at = 1001;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_CONNECTED);

    /* expired, nothing to refresh with */
    c.expires_at = 1000;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_EXPIRED);

    /* expired, but a refresh may run now: still connected */
    c.refresh.data = rt;
    c.refresh.len = sizeof(rt) - 1;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_CONNECTED);
    c.retry_at = 1000;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_CONNECTED);

    /* backing off until later */
    c.retry_at = 1001;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_EXPIRED);

    /* other statuses are never rewritten */
    c.status = NGX_OAUTH_STATUS_ERROR;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_ERROR);
    c.status = NGX_OAUTH_STATUS_REVOKED;
    assert_int_equal(ngx_oauth_conn_status(&c, 1000),
                     NGX_OAUTH_STATUS_REVOKED);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_conn_roundtrip),
        cmocka_unit_test(test_conn_binding),
        cmocka_unit_test(test_conn_compat),
        cmocka_unit_test(test_conn_seal_token),
        cmocka_unit_test(test_verifier),
        cmocka_unit_test(test_verifier_legacy),
        cmocka_unit_test(test_verifier_store),
        cmocka_unit_test(test_status),
    };

    return cmocka_run_group_tests(tests, test_setup, NULL);
}
