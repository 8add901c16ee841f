/*
 * Copyright (C) ngx_oauth_module authors
 */


#define _GNU_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ngx_oauth_event.h"
#include "ngx_oauth_store.h"


#define S(s)  { sizeof(s) - 1, (unsigned char *) (s) }


typedef struct {
    char                 dir[64];
    char                 path[128];
    ngx_oauth_store_t   *st;
} test_ctx_t;


static int
test_setup(void **state)
{
    char                    err[256];
    test_ctx_t             *t;
    ngx_oauth_store_conf_t  conf;

    t = calloc(1, sizeof(test_ctx_t));
    if (t == NULL) {
        return -1;
    }

    strcpy(t->dir, "/tmp/ngx_oauth_event_XXXXXX");

    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }

    snprintf(t->path, sizeof(t->path), "%s/oauth.mdb", t->dir);

    memset(&conf, 0, sizeof(conf));
    conf.path = t->path;
    conf.max_size = 4 * 1024 * 1024;

    if (ngx_oauth_store_open(&t->st, &conf, NULL, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        fprintf(stderr, "%s\n", err);
        free(t);
        return -1;
    }

    *state = t;

    return 0;
}


static int
test_teardown(void **state)
{
    char         p[256];
    test_ctx_t  *t = *state;

    ngx_oauth_store_close(t->st);

    snprintf(p, sizeof(p), "%s/oauth.mdb", t->dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/oauth.mdb-lock", t->dir);
    unlink(p);
    rmdir(t->dir);
    free(t);

    return 0;
}


static void
test_event_fill(ngx_oauth_event_t *ev, unsigned type, const char *owner,
    const char *account)
{
    assert_int_equal(ngx_oauth_event_init(ev, type, 1700000000),
                     NGX_OAUTH_OK);

    ev->owner.data = (unsigned char *) owner;
    ev->owner.len = strlen(owner);
    ev->provider.data = (unsigned char *) "github";
    ev->provider.len = 6;
    ev->account.data = (unsigned char *) account;
    ev->account.len = strlen(account);
}


static void
test_types(void **state)
{
    int          i;
    const char  *name;

    for (i = 0; i < NGX_OAUTH_EVENT_TYPES; i++) {
        name = ngx_oauth_event_type_name(i);
        assert_int_equal(ngx_oauth_event_type_parse(
                             (const unsigned char *) name, strlen(name)), i);
    }

    assert_string_equal(ngx_oauth_event_type_name(NGX_OAUTH_EVENT_REAUTH),
                        "connection.reauthorization_required");
    assert_int_equal(ngx_oauth_event_type_parse(
                         (const unsigned char *) "connection.create", 17),
                     -1);
    assert_string_equal(ngx_oauth_event_type_name(99), "unknown");
}


static void
test_init_id(void **state)
{
    size_t             i;
    ngx_oauth_event_t  a, b;

    assert_int_equal(ngx_oauth_event_init(&a, 0, 1), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_event_init(&b, 0, 1), NGX_OAUTH_OK);

    assert_int_equal(strlen(a.id), NGX_OAUTH_EVENT_ID_LEN);
    assert_memory_equal(a.id, "evt_", 4);

    for (i = 4; i < NGX_OAUTH_EVENT_ID_LEN; i++) {
        assert_non_null(strchr("0123456789abcdef", a.id[i]));
    }

    assert_string_not_equal(a.id, b.id);
    assert_int_equal(ngx_oauth_event_init(&a, NGX_OAUTH_EVENT_TYPES, 1),
                     NGX_OAUTH_INVALID);
}


static void
test_json(void **state)
{
    char               want[512];
    ngx_oauth_buf_t    b = ngx_oauth_buf_init;
    ngx_oauth_event_t  ev;

    test_event_fill(&ev, NGX_OAUTH_EVENT_REFRESH_FAILED, "al\"ice", "42");
    ev.status = "error";
    ev.error.data = (unsigned char *) "invalid_grant";
    ev.error.len = 13;

    assert_int_equal(ngx_oauth_event_json(&ev, &b), NGX_OAUTH_OK);

    snprintf(want, sizeof(want),
             "{\"id\":\"%s\",\"type\":\"connection.refresh_failed\","
             "\"time\":\"2023-11-14T22:13:20Z\",\"owner\":\"al\\\"ice\","
             "\"provider\":\"github\",\"account\":\"42\","
             "\"status\":\"error\",\"error\":\"invalid_grant\"}", ev.id);

    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    ngx_oauth_buf_free(&b);

    /* no error: null; an owner that is not UTF-8: "?" */

    test_event_fill(&ev, NGX_OAUTH_EVENT_CREATED, "bad\xff", "1");
    assert_int_equal(ngx_oauth_event_json(&ev, &b), NGX_OAUTH_OK);
    assert_non_null(strstr((char *) b.data, "\"owner\":\"?\""));
    assert_non_null(strstr((char *) b.data, "\"error\":null"));
    assert_non_null(strstr((char *) b.data, "\"status\":\"connected\""));
    ngx_oauth_buf_free(&b);
}


static void
test_sign(void **state)
{
    char  sig[NGX_OAUTH_EVENT_SIG_LEN + 1];

    /* printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test */

    assert_int_equal(ngx_oauth_event_sign((unsigned char *) "whsec_test", 10,
                                          1700000000,
                                          (unsigned char *) "{\"a\":1}", 7,
                                          sig, sizeof(sig)),
                     NGX_OAUTH_OK);
    assert_string_equal(sig, "t=1700000000,v1=38877139021993b830af32feea6e1"
                             "8a8da83eb2f6e49ee50bd9e4cf4ca4d3789");

    assert_int_equal(ngx_oauth_event_sign((unsigned char *) "k", 1, 1,
                                          (unsigned char *) "x", 1, sig,
                                          10),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_event_sign(NULL, 0, 1,
                                          (unsigned char *) "x", 1, sig,
                                          sizeof(sig)),
                     NGX_OAUTH_INVALID);
}


static void
test_codec(void **state)
{
    size_t                  n, i;
    unsigned char          *buf;
    ngx_oauth_event_t       ev;
    ngx_oauth_outbox_rec_t  rec;

    test_event_fill(&ev, NGX_OAUTH_EVENT_DELETED, "alice", "acct-1");
    ev.status = "deleted";

    assert_int_equal(ngx_oauth_outbox_encode(&ev, &buf, &n), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_outbox_decode(buf, n, &rec, 1), NGX_OAUTH_OK);

    assert_int_equal(rec.created, 1700000000);
    assert_int_equal(rec.next_at, 0);
    assert_int_equal(rec.attempts, 0);
    assert_string_equal((char *) rec.owner.data, "alice");
    assert_string_equal((char *) rec.provider.data, "github");
    assert_string_equal((char *) rec.account.data, "acct-1");
    assert_string_equal((char *) rec.id.data, ev.id);
    assert_string_equal((char *) rec.type.data, "connection.deleted");
    assert_non_null(strstr((char *) rec.body.data, "\"status\":\"deleted\""));
    ngx_oauth_outbox_free(&rec);

    assert_int_equal(ngx_oauth_outbox_reschedule(buf, n, 1700000099, 7),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_outbox_decode(buf, n, &rec, 0), NGX_OAUTH_OK);
    assert_int_equal(rec.next_at, 1700000099);
    assert_int_equal(rec.attempts, 7);
    assert_null(rec.mem);

    /* every truncation and a longer value are refused */

    for (i = 0; i < n; i++) {
        assert_int_equal(ngx_oauth_outbox_decode(buf, i, &rec, 1),
                         NGX_OAUTH_INVALID);
    }

    buf[0] = 'X';
    assert_int_equal(ngx_oauth_outbox_decode(buf, n, &rec, 1),
                     NGX_OAUTH_INVALID);

    free(buf);
}


static void
test_conn_fill(ngx_oauth_conn_t *c, const char *owner, const char *account)
{
    memset(c, 0, sizeof(ngx_oauth_conn_t));

    c->owner.data = (unsigned char *) owner;
    c->owner.len = strlen(owner);
    c->provider.data = (unsigned char *) "github";
    c->provider.len = 6;
    c->account.data = (unsigned char *) account;
    c->account.len = strlen(account);
}


static int
test_count_iter(const ngx_oauth_outbox_rec_t *rec, void *data)
{
    size_t  *n = data;

    (*n)++;

    return 0;
}


static void
test_same_transaction(void **state)
{
    test_ctx_t  *t = *state;

    size_t                 n;
    time_t                 oldest;
    uint64_t               expect;
    ngx_oauth_str_t        owner = S("alice"), prov = S("github"),
                           acct = S("a1"), none = S("none");
    ngx_oauth_conn_t       c;
    ngx_oauth_event_t      ev;
    ngx_oauth_event_add_t  add;

    test_conn_fill(&c, "alice", "a1");
    test_event_fill(&ev, NGX_OAUTH_EVENT_CREATED, "alice", "a1");

    memset(&add, 0, sizeof(add));
    add.event = &ev;

    assert_int_equal(ngx_oauth_store_conn_put_event(t->st, &c, NULL, &add),
                     NGX_OAUTH_OK);
    assert_int_equal(add.seq, 1);
    assert_int_equal(add.dropped, 0);

    /* a put refused for its version writes no event */

    expect = 7;
    assert_int_equal(ngx_oauth_store_conn_put_event(t->st, &c, &expect,
                                                    &add),
                     NGX_OAUTH_CONFLICT);

    /* nor does a delete of nothing */

    assert_int_equal(ngx_oauth_store_conn_delete_event(t->st, &owner, &prov,
                                                       &none, &add),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_outbox_stat(t->st, &n, &oldest),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(oldest, 1700000000);

    /* a delete that deletes writes one; a plain put, none */

    test_event_fill(&ev, NGX_OAUTH_EVENT_DELETED, "alice", "a1");
    assert_int_equal(ngx_oauth_store_conn_delete_event(t->st, &owner, &prov,
                                                       &acct, &add),
                     NGX_OAUTH_OK);
    assert_int_equal(add.seq, 2);

    assert_int_equal(ngx_oauth_store_conn_put(t->st, &c, NULL),
                     NGX_OAUTH_OK);

    n = 0;
    assert_int_equal(ngx_oauth_store_outbox_each(t->st, test_count_iter, &n),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 2);
}


static void
test_cap(void **state)
{
    test_ctx_t  *t = *state;

    int                     i;
    size_t                  n;
    time_t                  oldest;
    char                    acct[16];
    ngx_oauth_conn_t        c;
    ngx_oauth_event_t       ev;
    ngx_oauth_event_add_t   add;
    ngx_oauth_outbox_rec_t  rec;

    memset(&add, 0, sizeof(add));
    add.event = &ev;
    add.max = 3;

    for (i = 0; i < 5; i++) {
        snprintf(acct, sizeof(acct), "a%d", i);
        test_conn_fill(&c, "bob", acct);
        test_event_fill(&ev, NGX_OAUTH_EVENT_CREATED, "bob", acct);
        ev.time = 1000 + i;

        assert_int_equal(ngx_oauth_store_conn_put_event(t->st, &c, NULL,
                                                        &add),
                         NGX_OAUTH_OK);
        assert_int_equal(add.dropped, i < 3 ? 0 : 1);
    }

    assert_int_equal(ngx_oauth_store_outbox_stat(t->st, &n, &oldest),
                     NGX_OAUTH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(oldest, 1002);

    assert_int_equal(ngx_oauth_store_outbox_next(t->st, 0, &rec),
                     NGX_OAUTH_OK);
    assert_int_equal(rec.seq, 3);
    assert_string_equal((char *) rec.account.data, "a2");
    ngx_oauth_outbox_free(&rec);
}


static void
test_order(void **state)
{
    test_ctx_t  *t = *state;

    ngx_oauth_str_t         id;
    ngx_oauth_conn_t        c;
    ngx_oauth_event_t       ev;
    ngx_oauth_event_add_t   add;
    ngx_oauth_outbox_rec_t  rec, rec2;

    memset(&add, 0, sizeof(add));
    add.event = &ev;

    /* a1, a1, b1: a1's second waits for its first */

    test_conn_fill(&c, "carol", "a1");
    test_event_fill(&ev, NGX_OAUTH_EVENT_CREATED, "carol", "a1");
    assert_int_equal(ngx_oauth_store_conn_put_event(t->st, &c, NULL, &add),
                     NGX_OAUTH_OK);
    test_event_fill(&ev, NGX_OAUTH_EVENT_UPDATED, "carol", "a1");
    assert_int_equal(ngx_oauth_store_conn_put_event(t->st, &c, NULL, &add),
                     NGX_OAUTH_OK);
    test_conn_fill(&c, "carol", "b1");
    test_event_fill(&ev, NGX_OAUTH_EVENT_CREATED, "carol", "b1");
    assert_int_equal(ngx_oauth_store_conn_put_event(t->st, &c, NULL, &add),
                     NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_store_outbox_next(t->st, 100, &rec),
                     NGX_OAUTH_OK);
    assert_int_equal(rec.seq, 1);

    /* the first fails: retried later; b1 goes first, a1's second waits */

    assert_int_equal(ngx_oauth_store_outbox_settle(t->st, rec.seq, &rec.id,
                                                   1, 200, 1),
                     NGX_OAUTH_OK);

    assert_int_equal(ngx_oauth_store_outbox_next(t->st, 100, &rec2),
                     NGX_OAUTH_OK);
    assert_int_equal(rec2.seq, 3);
    assert_string_equal((char *) rec2.account.data, "b1");
    assert_int_equal(ngx_oauth_store_outbox_settle(t->st, rec2.seq, &rec2.id,
                                                   0, 0, 0),
                     NGX_OAUTH_OK);
    ngx_oauth_outbox_free(&rec2);

    assert_int_equal(ngx_oauth_store_outbox_next(t->st, 100, &rec2),
                     NGX_OAUTH_NOT_FOUND);

    /* due again: the first, with its attempts; then the second */

    assert_int_equal(ngx_oauth_store_outbox_next(t->st, 200, &rec2),
                     NGX_OAUTH_OK);
    assert_int_equal(rec2.seq, 1);
    assert_int_equal(rec2.attempts, 1);
    assert_string_equal((char *) rec2.body.data, (char *) rec.body.data);

    /* a settle with a wrong id changes nothing */

    id.data = (unsigned char *) "evt_other";
    id.len = 9;
    assert_int_equal(ngx_oauth_store_outbox_settle(t->st, 1, &id, 0, 0, 0),
                     NGX_OAUTH_NOT_FOUND);

    assert_int_equal(ngx_oauth_store_outbox_settle(t->st, 1, &rec2.id, 0, 0,
                                                   0),
                     NGX_OAUTH_OK);
    ngx_oauth_outbox_free(&rec2);
    ngx_oauth_outbox_free(&rec);

    assert_int_equal(ngx_oauth_store_outbox_next(t->st, 100, &rec),
                     NGX_OAUTH_OK);
    assert_int_equal(rec.seq, 2);
    assert_string_equal((char *) rec.type.data, "connection.updated");
    assert_int_equal(ngx_oauth_store_outbox_settle(t->st, 2, &rec.id, 0, 0,
                                                   0),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_store_outbox_settle(t->st, 2, &rec.id, 0, 0,
                                                   0),
                     NGX_OAUTH_NOT_FOUND);
    ngx_oauth_outbox_free(&rec);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_init_id),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_codec),
        cmocka_unit_test_setup_teardown(test_same_transaction, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_cap, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_order, test_setup,
                                        test_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
