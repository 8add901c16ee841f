/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_record.h"
#include "ngx_oauth_store.h"


#define S(s)  { sizeof(s) - 1, (unsigned char *) (s) }


typedef struct {
    unsigned char  *data;
    size_t          len;
} test_buf_t;


static void
test_buf_add(test_buf_t *b, const void *p, size_t n)
{
    b->data = realloc(b->data, b->len + n + 1);
    assert_non_null(b->data);

    if (n) {
        memcpy(b->data + b->len, p, n);
    }

    b->len += n;
}


static void
test_buf_field(test_buf_t *b, unsigned tag, const void *p, uint32_t n)
{
    unsigned char  h[5];

    h[0] = (unsigned char) tag;
    h[1] = (unsigned char) (n >> 24);
    h[2] = (unsigned char) (n >> 16);
    h[3] = (unsigned char) (n >> 8);
    h[4] = (unsigned char) n;

    test_buf_add(b, h, 5);
    test_buf_add(b, p, n);
}


static void
test_buf_header(test_buf_t *b, char type, unsigned version)
{
    unsigned char  h[3];

    h[0] = 'O';
    h[1] = (unsigned char) type;
    h[2] = (unsigned char) version;

    test_buf_add(b, h, 3);
}


static void
test_buf_end(test_buf_t *b)
{
    test_buf_field(b, 0, NULL, 0);
}


static int
test_str_eq(const ngx_oauth_str_t *a, const ngx_oauth_str_t *b)
{
    if (a->len != b->len) {
        return 0;
    }

    return a->len == 0 || memcmp(a->data, b->data, a->len) == 0;
}


static int
test_params_eq(const ngx_oauth_pair_t *a, size_t na,
    const ngx_oauth_pair_t *b, size_t nb)
{
    size_t  i;

    if (na != nb) {
        return 0;
    }

    for (i = 0; i < na; i++) {
        if (!test_str_eq(&a[i].name, &b[i].name)
            || !test_str_eq(&a[i].value, &b[i].value))
        {
            return 0;
        }
    }

    return 1;
}


static int
test_flow_eq(const ngx_oauth_flow_t *a, const ngx_oauth_flow_t *b)
{
    return test_str_eq(&a->owner, &b->owner)
           && test_str_eq(&a->provider, &b->provider)
           && test_str_eq(&a->verifier, &b->verifier)
           && test_str_eq(&a->return_to, &b->return_to)
           && test_str_eq(&a->browser, &b->browser)
           && a->mode == b->mode
           && a->created == b->created
           && a->expires == b->expires
           && test_params_eq(a->params, a->nparams, b->params, b->nparams);
}


static int
test_conn_eq(const ngx_oauth_conn_t *a, const ngx_oauth_conn_t *b)
{
    return test_str_eq(&a->owner, &b->owner)
           && test_str_eq(&a->provider, &b->provider)
           && test_str_eq(&a->account, &b->account)
           && test_str_eq(&a->account_name, &b->account_name)
           && a->kind == b->kind
           && a->status == b->status
           && a->flags == b->flags
           && test_str_eq(&a->scopes, &b->scopes)
           && test_str_eq(&a->token_type, &b->token_type)
           && test_params_eq(a->params, a->nparams, b->params, b->nparams)
           && a->created_at == b->created_at
           && a->updated_at == b->updated_at
           && a->expires_at == b->expires_at
           && a->last_refresh_at == b->last_refresh_at
           && a->retry_at == b->retry_at
           && a->failures == b->failures
           && a->version == b->version
           && test_str_eq(&a->last_error, &b->last_error)
           && test_str_eq(&a->access, &b->access)
           && test_str_eq(&a->refresh, &b->refresh)
           && test_str_eq(&a->secret, &b->secret);
}


static ngx_oauth_pair_t   test_params[] = {
    { S("tenant"), S("contoso") },
    { S("subdomain"), S("acme") },
    { S("empty"), { 0, NULL } }
};


static const unsigned char  test_sealed[] = {
    'S', 1, 2, 'k', '1', 0, 0xff, 0x00, 0x80, 0x7f, 0, 0, 0x10
};


static void
test_flow_sample(ngx_oauth_flow_t *f)
{
    ngx_oauth_str_t  owner = S("alice@example.com");
    ngx_oauth_str_t  provider = S("google");
    ngx_oauth_str_t  return_to = S("/settings?tab=connections");
    ngx_oauth_str_t  browser = S("0123456789abcdef0123456789abcdef");

    memset(f, 0, sizeof(ngx_oauth_flow_t));

    f->owner = owner;
    f->provider = provider;
    f->verifier.data = (unsigned char *) test_sealed;
    f->verifier.len = sizeof(test_sealed);
    f->return_to = return_to;
    f->browser = browser;
    f->mode = NGX_OAUTH_MODE_POPUP;
    f->created = 1700000000;
    f->expires = 1700000600;
    f->params = test_params;
    f->nparams = 3;
}


static void
test_conn_sample(ngx_oauth_conn_t *c)
{
    ngx_oauth_str_t  owner = S("alice");
    ngx_oauth_str_t  provider = S("github");
    ngx_oauth_str_t  account = S("12345");
    ngx_oauth_str_t  account_name = S("alice-gh");
    ngx_oauth_str_t  scopes = S("repo read:user");
    ngx_oauth_str_t  token_type = S("bearer");
    ngx_oauth_str_t  last_error = S("invalid_grant");

    memset(c, 0, sizeof(ngx_oauth_conn_t));

    c->owner = owner;
    c->provider = provider;
    c->account = account;
    c->account_name = account_name;
    c->kind = NGX_OAUTH_KIND_OAUTH2;
    c->status = NGX_OAUTH_STATUS_ERROR;
    c->flags = NGX_OAUTH_CONN_REFRESH_DUE;
    c->scopes = scopes;
    c->token_type = token_type;
    c->params = test_params;
    c->nparams = 2;
    c->created_at = 1700000000;
    c->updated_at = 1700000100;
    c->expires_at = -5;
    c->last_refresh_at = 1700000050;
    c->retry_at = INT64_MAX;
    c->failures = 7;
    c->version = UINT64_MAX - 1;
    c->last_error = last_error;
    c->access.data = (unsigned char *) test_sealed;
    c->access.len = sizeof(test_sealed);
    c->refresh.data = (unsigned char *) test_sealed;
    c->refresh.len = 5;
    c->secret.len = 0;
}


static void
test_flow_roundtrip(void **state)
{
    size_t             len;
    unsigned char     *buf;
    ngx_oauth_flow_t   in, out, zero;

    test_flow_sample(&in);

    assert_int_equal(ngx_oauth_flow_encode(&in, &buf, &len), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_flow_decode(buf, len, &out), NGX_OAUTH_OK);

    assert_true(test_flow_eq(&in, &out));
    assert_non_null(out.mem);

    /* strings are zero-terminated copies, not pointers into buf */

    assert_string_equal((char *) out.owner.data, "alice@example.com");
    assert_string_equal((char *) out.params[1].value.data, "acme");
    assert_non_null(out.params[2].value.data);
    assert_int_equal(out.params[2].value.data[0], '\0');

    assert_true(out.owner.data < buf || out.owner.data >= buf + len);

    ngx_oauth_flow_free(&out);

    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&out, &zero, sizeof(zero));

    /* free twice and free of a zeroed struct are harmless */

    ngx_oauth_flow_free(&out);
    ngx_oauth_flow_free(NULL);

    free(buf);
}


static void
test_flow_empty(void **state)
{
    size_t             len;
    unsigned char     *buf;
    ngx_oauth_flow_t   in, out;

    memset(&in, 0, sizeof(in));

    assert_int_equal(ngx_oauth_flow_encode(&in, &buf, &len), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_flow_decode(buf, len, &out), NGX_OAUTH_OK);

    assert_true(test_flow_eq(&in, &out));
    assert_null(out.params);
    assert_non_null(out.owner.data);
    assert_int_equal(out.owner.len, 0);

    ngx_oauth_flow_free(&out);
    free(buf);
}


static void
test_conn_roundtrip(void **state)
{
    size_t             len;
    unsigned char     *buf;
    ngx_oauth_conn_t   in, out;

    test_conn_sample(&in);

    assert_int_equal(ngx_oauth_conn_encode(&in, &buf, &len), NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_conn_decode(buf, len, &out), NGX_OAUTH_OK);

    assert_true(test_conn_eq(&in, &out));
    assert_int_equal(out.expires_at, -5);
    assert_true(out.retry_at == INT64_MAX);
    assert_true(out.version == UINT64_MAX - 1);
    assert_memory_equal(out.access.data, test_sealed, sizeof(test_sealed));

    ngx_oauth_conn_free(&out);
    assert_null(out.mem);

    /* a flow is not a connection and the other way round */

    assert_int_equal(ngx_oauth_flow_decode(buf, len, (ngx_oauth_flow_t *)
                                           &out), NGX_OAUTH_INVALID);

    free(buf);
}


static void
test_truncated(void **state)
{
    size_t             len, n;
    unsigned char     *buf, *copy;
    ngx_oauth_flow_t   flow;
    ngx_oauth_conn_t   conn;

    /* every prefix, in a buffer of its exact size so ASan sees overreads */

    test_flow_sample(&flow);
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len), NGX_OAUTH_OK);

    for (n = 0; n < len; n++) {
        copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);

        assert_int_equal(ngx_oauth_flow_decode(copy, n, &flow),
                         NGX_OAUTH_INVALID);
        assert_null(flow.mem);
        free(copy);
    }

    free(buf);

    test_conn_sample(&conn);
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len), NGX_OAUTH_OK);

    for (n = 0; n < len; n++) {
        copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);

        assert_int_equal(ngx_oauth_conn_decode(copy, n, &conn),
                         NGX_OAUTH_INVALID);
        assert_null(conn.mem);
        free(copy);
    }

    free(buf);

    assert_int_equal(ngx_oauth_conn_decode(NULL, 0, &conn),
                     NGX_OAUTH_INVALID);
    assert_int_equal(ngx_oauth_flow_decode(NULL, 100, &flow),
                     NGX_OAUTH_INVALID);
}


static void
test_trailing(void **state)
{
    size_t             len;
    test_buf_t         b;
    unsigned char     *buf;
    ngx_oauth_conn_t   conn;

    test_conn_sample(&conn);
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len), NGX_OAUTH_OK);

    memset(&b, 0, sizeof(b));
    test_buf_add(&b, buf, len);
    test_buf_add(&b, "x", 1);

    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_INVALID);

    /* a whole field after the end, and a second end */

    b.len = len;
    test_buf_field(&b, 2, "x", 1);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_INVALID);

    b.len = len;
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_INVALID);

    /* an end tag with a length */

    b.len = len - 5;
    test_buf_field(&b, 0, "x", 1);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_INVALID);

    free(b.data);
    free(buf);
}


static void
test_header(void **state)
{
    size_t             len;
    unsigned char     *buf;
    ngx_oauth_flow_t   flow;
    unsigned           v;

    test_flow_sample(&flow);
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len), NGX_OAUTH_OK);

    assert_int_equal(buf[0], 'O');
    assert_int_equal(buf[1], 'F');
    assert_int_equal(buf[2], 1);

    for (v = 0; v < 256; v++) {
        if (v == 1) {
            continue;
        }

        buf[2] = (unsigned char) v;
        assert_int_equal(ngx_oauth_flow_decode(buf, len, &flow),
                         NGX_OAUTH_INVALID);
    }

    buf[2] = 1;
    buf[0] = 'o';
    assert_int_equal(ngx_oauth_flow_decode(buf, len, &flow),
                     NGX_OAUTH_INVALID);

    buf[0] = 'O';
    buf[1] = 'C';
    assert_int_equal(ngx_oauth_flow_decode(buf, len, &flow),
                     NGX_OAUTH_INVALID);

    buf[1] = 'F';
    assert_int_equal(ngx_oauth_flow_decode(buf, len, &flow), NGX_OAUTH_OK);
    ngx_oauth_flow_free(&flow);

    free(buf);
}


static void
test_bitflips_one(int conn)
{
    int                rc;
    size_t             len, len2, i;
    unsigned           bit;
    ngx_oauth_flow_t   flow, flow2;
    ngx_oauth_conn_t   c, c2;
    unsigned char     *buf, *buf2;

    if (conn) {
        test_conn_sample(&c);
        assert_int_equal(ngx_oauth_conn_encode(&c, &buf, &len), NGX_OAUTH_OK);

    } else {
        test_flow_sample(&flow);
        assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                         NGX_OAUTH_OK);
    }

    for (i = 0; i < len; i++) {
        for (bit = 0; bit < 8; bit++) {
            buf[i] ^= (unsigned char) (1u << bit);

            /*
             * a flip inside a value may still decode: then the record
             * must encode again and decode to the same thing
             */

            if (conn) {
                rc = ngx_oauth_conn_decode(buf, len, &c);
                assert_true(rc == NGX_OAUTH_OK || rc == NGX_OAUTH_INVALID);

                if (i < 3) {
                    assert_int_equal(rc, NGX_OAUTH_INVALID);
                }

                if (rc == NGX_OAUTH_OK) {
                    assert_int_equal(ngx_oauth_conn_encode(&c, &buf2, &len2),
                                     NGX_OAUTH_OK);
                    assert_int_equal(ngx_oauth_conn_decode(buf2, len2, &c2),
                                     NGX_OAUTH_OK);
                    assert_true(test_conn_eq(&c, &c2));
                    ngx_oauth_conn_free(&c2);
                    ngx_oauth_conn_free(&c);
                    free(buf2);

                } else {
                    assert_null(c.mem);
                }

            } else {
                rc = ngx_oauth_flow_decode(buf, len, &flow);
                assert_true(rc == NGX_OAUTH_OK || rc == NGX_OAUTH_INVALID);

                if (i < 3) {
                    assert_int_equal(rc, NGX_OAUTH_INVALID);
                }

                if (rc == NGX_OAUTH_OK) {
                    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf2,
                                                           &len2),
                                     NGX_OAUTH_OK);
                    assert_int_equal(ngx_oauth_flow_decode(buf2, len2,
                                                           &flow2),
                                     NGX_OAUTH_OK);
                    assert_true(test_flow_eq(&flow, &flow2));
                    ngx_oauth_flow_free(&flow2);
                    ngx_oauth_flow_free(&flow);
                    free(buf2);

                } else {
                    assert_null(flow.mem);
                }
            }

            buf[i] ^= (unsigned char) (1u << bit);
        }
    }

    free(buf);
}


static void
test_bitflips(void **state)
{
    test_bitflips_one(0);
    test_bitflips_one(1);
}


static void
test_unknown_tag(void **state)
{
    size_t             len;
    test_buf_t         b;
    unsigned char     *buf;
    ngx_oauth_conn_t   in, out;

    test_conn_sample(&in);
    assert_int_equal(ngx_oauth_conn_encode(&in, &buf, &len), NGX_OAUTH_OK);

    /* a later version's fields, in front and before the end */

    memset(&b, 0, sizeof(b));
    test_buf_add(&b, buf, 3);
    test_buf_field(&b, 200, "future", 6);
    test_buf_add(&b, buf + 3, len - 3 - 5);
    test_buf_field(&b, 255, NULL, 0);
    test_buf_field(&b, 99, "\x01\x02\x03", 3);
    test_buf_end(&b);

    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &out),
                     NGX_OAUTH_OK);
    assert_true(test_conn_eq(&in, &out));
    ngx_oauth_conn_free(&out);

    /* an unknown field whose length runs past the end */

    b.len = 0;
    test_buf_add(&b, buf, len - 5);
    test_buf_field(&b, 201, "abc", 3);
    b.data[b.len - 4] = 9;
    test_buf_end(&b);

    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &out),
                     NGX_OAUTH_INVALID);

    free(b.data);
    free(buf);
}


static void
test_duplicate(void **state)
{
    size_t             len;
    test_buf_t         b;
    unsigned char     *buf;
    ngx_oauth_flow_t   in, out;

    test_flow_sample(&in);
    assert_int_equal(ngx_oauth_flow_encode(&in, &buf, &len), NGX_OAUTH_OK);

    /* a second owner must not override the first one */

    memset(&b, 0, sizeof(b));
    test_buf_add(&b, buf, len - 5);
    test_buf_field(&b, 1, "mallory", 7);
    test_buf_end(&b);

    assert_int_equal(ngx_oauth_flow_decode(b.data, b.len, &out),
                     NGX_OAUTH_INVALID);

    b.len = len - 5;
    test_buf_field(&b, 8, "\0\0\0\0\0\0\0\1", 8);
    test_buf_end(&b);

    assert_int_equal(ngx_oauth_flow_decode(b.data, b.len, &out),
                     NGX_OAUTH_INVALID);

    free(b.data);
    free(buf);
}


/* a connection record of one field, decoded: what decode said */

static int
test_conn_field(test_buf_t *b, unsigned tag, const void *data, size_t len)
{
    int               rc;
    ngx_oauth_conn_t  conn;

    b->len = 0;
    test_buf_header(b, 'C', 1);
    test_buf_field(b, tag, data, len);
    test_buf_end(b);

    rc = ngx_oauth_conn_decode(b->data, b->len, &conn);

    if (rc == NGX_OAUTH_OK) {
        ngx_oauth_conn_free(&conn);
    }

    return rc;
}


static void
test_fields(void **state)
{
    test_buf_t         b;
    ngx_oauth_flow_t   flow;
    ngx_oauth_conn_t   conn;
    unsigned char      big[NGX_OAUTH_OWNER_MAX + 1];

    memset(&b, 0, sizeof(b));
    memset(big, 'a', sizeof(big));

    /* the smallest record: no field at all */

    test_buf_header(&b, 'C', 1);
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_OK);
    assert_int_equal(conn.owner.len, 0);
    ngx_oauth_conn_free(&conn);

    /* integers of the wrong width */

    assert_int_equal(test_conn_field(&b, 5, "\0\0\0", 3),
                     NGX_OAUTH_INVALID);

    assert_int_equal(test_conn_field(&b, 17, "\0\0\0\0", 4),
                     NGX_OAUTH_INVALID);

    /* enum values out of range */

    assert_int_equal(test_conn_field(&b, 6, "\0\0\0\4", 4),
                     NGX_OAUTH_INVALID);

    assert_int_equal(test_conn_field(&b, 5, "\1\0\0\0", 4),
                     NGX_OAUTH_INVALID);

    b.len = 0;
    test_buf_header(&b, 'F', 1);
    test_buf_field(&b, 6, "\0\0\0\2", 4);
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_flow_decode(b.data, b.len, &flow),
                     NGX_OAUTH_INVALID);

    /* owner, provider, account over their caps */

    assert_int_equal(test_conn_field(&b, 1, big, NGX_OAUTH_OWNER_MAX + 1),
                     NGX_OAUTH_INVALID);

    b.len = 0;
    test_buf_header(&b, 'C', 1);
    test_buf_field(&b, 1, big, NGX_OAUTH_OWNER_MAX);
    test_buf_field(&b, 2, big, NGX_OAUTH_PROVIDER_MAX);
    test_buf_field(&b, 3, big, NGX_OAUTH_ACCOUNT_MAX);
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_OK);
    ngx_oauth_conn_free(&conn);

    assert_int_equal(test_conn_field(&b, 2, big, NGX_OAUTH_PROVIDER_MAX + 1),
                     NGX_OAUTH_INVALID);

    assert_int_equal(test_conn_field(&b, 3, big, NGX_OAUTH_ACCOUNT_MAX + 1),
                     NGX_OAUTH_INVALID);

    /* a length far past the end */

    b.len = 0;
    test_buf_header(&b, 'C', 1);
    test_buf_field(&b, 4, "abc", 3);
    b.data[4] = 0xff;
    b.data[5] = 0xff;
    b.data[6] = 0xff;
    b.data[7] = 0xff;
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_INVALID);

    free(b.data);
}


static void
test_fields_params(void **state)
{
    size_t             i;
    test_buf_t         b;
    unsigned char     *zeros;
    ngx_oauth_flow_t   flow;
    ngx_oauth_conn_t   conn;
    unsigned char      param[2 + NGX_OAUTH_PARAM_NAME_MAX + 1];

    memset(&b, 0, sizeof(b));

    /* params: too short, empty name, name past the value, long name */

    assert_int_equal(test_conn_field(&b, 10, "\0", 1),
                     NGX_OAUTH_INVALID);

    assert_int_equal(test_conn_field(&b, 10, "\0\0value", 7),
                     NGX_OAUTH_INVALID);

    assert_int_equal(test_conn_field(&b, 10, "\0\6name", 6),
                     NGX_OAUTH_INVALID);

    b.len = 0;
    test_buf_header(&b, 'C', 1);
    test_buf_field(&b, 10, "\0\4name", 6);
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_OK);
    assert_int_equal(conn.nparams, 1);
    assert_string_equal((char *) conn.params[0].name.data, "name");
    assert_int_equal(conn.params[0].value.len, 0);
    ngx_oauth_conn_free(&conn);

    memset(param, 'n', sizeof(param));
    param[0] = (unsigned char) ((NGX_OAUTH_PARAM_NAME_MAX + 1) >> 8);
    param[1] = (unsigned char) (NGX_OAUTH_PARAM_NAME_MAX + 1);

    assert_int_equal(test_conn_field(&b, 10, param, sizeof(param)),
                     NGX_OAUTH_INVALID);

    /* at most NGX_OAUTH_PARAMS_MAX params */

    b.len = 0;
    test_buf_header(&b, 'F', 1);

    for (i = 0; i < NGX_OAUTH_PARAMS_MAX; i++) {
        test_buf_field(&b, 9, "\0\1kv", 4);
    }

    test_buf_end(&b);
    assert_int_equal(ngx_oauth_flow_decode(b.data, b.len, &flow),
                     NGX_OAUTH_OK);
    assert_int_equal(flow.nparams, NGX_OAUTH_PARAMS_MAX);
    ngx_oauth_flow_free(&flow);

    b.len -= 5;
    test_buf_field(&b, 9, "\0\1kv", 4);
    test_buf_end(&b);
    assert_int_equal(ngx_oauth_flow_decode(b.data, b.len, &flow),
                     NGX_OAUTH_INVALID);
    assert_null(flow.mem);

    /* NGX_OAUTH_RECORD_MAX bytes at most */

    zeros = calloc(1, NGX_OAUTH_RECORD_MAX);
    assert_non_null(zeros);

    b.len = 0;
    test_buf_header(&b, 'C', 1);
    test_buf_field(&b, 200, zeros, NGX_OAUTH_RECORD_MAX - 13);
    test_buf_end(&b);
    assert_int_equal(b.len, NGX_OAUTH_RECORD_MAX);
    assert_int_equal(ngx_oauth_conn_decode(b.data, b.len, &conn),
                     NGX_OAUTH_OK);
    ngx_oauth_conn_free(&conn);

    assert_int_equal(test_conn_field(&b, 200, zeros, NGX_OAUTH_RECORD_MAX - 12),
                     NGX_OAUTH_INVALID);

    free(zeros);
    free(b.data);
}


static void
test_encode_invalid(void **state)
{
    size_t              len;
    unsigned char      *buf, *big;
    ngx_oauth_flow_t    flow;
    ngx_oauth_conn_t    conn;
    ngx_oauth_pair_t    params[NGX_OAUTH_PARAMS_MAX + 1];

    big = malloc(NGX_OAUTH_RECORD_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', NGX_OAUTH_RECORD_MAX + 1);

    test_conn_sample(&conn);
    conn.owner.len = NGX_OAUTH_OWNER_MAX + 1;
    conn.owner.data = big;
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len),
                     NGX_OAUTH_INVALID);
    assert_null(buf);

    test_conn_sample(&conn);
    conn.status = 4;
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len),
                     NGX_OAUTH_INVALID);

    test_conn_sample(&conn);
    conn.access.data = NULL;
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len),
                     NGX_OAUTH_INVALID);

    test_conn_sample(&conn);
    conn.access.data = big;
    conn.access.len = NGX_OAUTH_RECORD_MAX;
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len),
                     NGX_OAUTH_TOO_LARGE);

    test_conn_sample(&conn);
    conn.access.data = big;
    conn.access.len = (size_t) -1;
    assert_int_equal(ngx_oauth_conn_encode(&conn, &buf, &len),
                     NGX_OAUTH_TOO_LARGE);

    test_flow_sample(&flow);
    flow.mode = 2;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_INVALID);

    test_flow_sample(&flow);
    flow.params = NULL;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_INVALID);

    memset(params, 0, sizeof(params));
    test_flow_sample(&flow);
    flow.params = params;
    flow.nparams = 1;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_INVALID);

    params[0].name.data = big;
    params[0].name.len = NGX_OAUTH_PARAM_NAME_MAX + 1;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_INVALID);

    params[0].name.len = NGX_OAUTH_PARAM_NAME_MAX;
    params[0].value.data = big;
    params[0].value.len = NGX_OAUTH_RECORD_MAX;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_TOO_LARGE);

    for (len = 0; len <= NGX_OAUTH_PARAMS_MAX; len++) {
        params[len].name.data = big;
        params[len].name.len = 1;
        params[len].value.len = 0;
    }

    flow.nparams = NGX_OAUTH_PARAMS_MAX + 1;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_TOO_LARGE);

    flow.nparams = NGX_OAUTH_PARAMS_MAX;
    assert_int_equal(ngx_oauth_flow_encode(&flow, &buf, &len),
                     NGX_OAUTH_OK);
    free(buf);

    assert_int_equal(ngx_oauth_flow_encode(NULL, &buf, &len),
                     NGX_OAUTH_INVALID);

    free(big);
}


static void
test_names(void **state)
{
    assert_string_equal(ngx_oauth_status_name(NGX_OAUTH_STATUS_CONNECTED),
                        "connected");
    assert_string_equal(ngx_oauth_status_name(NGX_OAUTH_STATUS_EXPIRED),
                        "expired");
    assert_string_equal(ngx_oauth_status_name(NGX_OAUTH_STATUS_ERROR),
                        "error");
    assert_string_equal(ngx_oauth_status_name(NGX_OAUTH_STATUS_REVOKED),
                        "revoked");
    assert_string_equal(ngx_oauth_status_name(4), "unknown");

    assert_string_equal(ngx_oauth_kind_name(NGX_OAUTH_KIND_OAUTH2),
                        "oauth2");
    assert_string_equal(ngx_oauth_kind_name(NGX_OAUTH_KIND_API_KEY),
                        "api_key");
    assert_string_equal(ngx_oauth_kind_name(NGX_OAUTH_KIND_BASIC), "basic");
    assert_string_equal(ngx_oauth_kind_name(NGX_OAUTH_KIND_HEADER),
                        "header");
    assert_string_equal(ngx_oauth_kind_name(99), "unknown");
}


/* the circuit breaker's record: round trip, every truncation, old values */

static void
test_circuit(void **state)
{
    size_t               i, len;
    unsigned char        buf[NGX_OAUTH_CIRCUIT_SIZE + 16], copy[64];
    ngx_oauth_circuit_t  c, out;

    /* the raw struct older versions stored: 24 bytes, never a record */
    static const unsigned char  raw[24] = { 5, 0, 0, 0, 0, 0, 0, 0,
                                            0x10, 0x32, 0x54, 0x66 };

    /* an unknown tag 9 (a later version), then the end */
    static const unsigned char  later[] = {
        'O', 'B', 1,
        9, 0, 0, 0, 2, 'x', 'y',
        1, 0, 0, 0, 4, 0, 0, 0, 7,
        0, 0, 0, 0, 0
    };

    /* failures twice */
    static const unsigned char  twice[] = {
        'O', 'B', 1,
        1, 0, 0, 0, 4, 0, 0, 0, 7,
        1, 0, 0, 0, 4, 0, 0, 0, 8,
        0, 0, 0, 0, 0
    };

    c.failures = 7;
    c.opened_at = 1700000000;

    assert_int_equal(ngx_oauth_circuit_encode(&c, buf, sizeof(buf), &len),
                     NGX_OAUTH_OK);
    assert_int_equal(len, NGX_OAUTH_CIRCUIT_SIZE);
    assert_int_equal(buf[0], 'O');

    assert_int_equal(ngx_oauth_circuit_decode(buf, len, &out), NGX_OAUTH_OK);
    assert_int_equal(out.failures, 7);
    assert_int_equal(out.opened_at, 1700000000);

    /* a negative time and the largest count survive */

    c.failures = UINT32_MAX;
    c.opened_at = -2;

    assert_int_equal(ngx_oauth_circuit_encode(&c, buf, sizeof(buf), &len),
                     NGX_OAUTH_OK);
    assert_int_equal(ngx_oauth_circuit_decode(buf, len, &out), NGX_OAUTH_OK);
    assert_int_equal(out.failures, UINT32_MAX);
    assert_int_equal(out.opened_at, -2);

    assert_int_equal(ngx_oauth_circuit_encode(&c, buf,
                                              NGX_OAUTH_CIRCUIT_SIZE - 1,
                                              &len),
                     NGX_OAUTH_TOO_LARGE);

    /* every truncation is refused and reads as closed */

    c.failures = 3;
    c.opened_at = 100;
    assert_int_equal(ngx_oauth_circuit_encode(&c, buf, sizeof(buf), &len),
                     NGX_OAUTH_OK);

    for (i = 0; i < len; i++) {
        memcpy(copy, buf, i);
        assert_int_equal(ngx_oauth_circuit_decode(copy, i, &out),
                         NGX_OAUTH_INVALID);
        assert_int_equal(out.failures, 0);
        assert_int_equal(out.opened_at, 0);
    }

    /* not a connection, not a flow */

    buf[1] = 'C';
    assert_int_equal(ngx_oauth_circuit_decode(buf, len, &out),
                     NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_circuit_decode(raw, sizeof(raw), &out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(out.failures, 0);
    assert_int_equal(out.opened_at, 0);

    assert_int_equal(ngx_oauth_circuit_decode(NULL, 0, &out),
                     NGX_OAUTH_INVALID);

    assert_int_equal(ngx_oauth_circuit_decode(later, sizeof(later), &out),
                     NGX_OAUTH_OK);
    assert_int_equal(out.failures, 7);
    assert_int_equal(out.opened_at, 0);

    assert_int_equal(ngx_oauth_circuit_decode(twice, sizeof(twice), &out),
                     NGX_OAUTH_INVALID);
    assert_int_equal(out.failures, 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_flow_roundtrip),
        cmocka_unit_test(test_flow_empty),
        cmocka_unit_test(test_conn_roundtrip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_bitflips),
        cmocka_unit_test(test_unknown_tag),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_fields_params),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_circuit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
