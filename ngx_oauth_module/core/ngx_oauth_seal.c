/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <string.h>

#include "ngx_oauth_seal.h"


static int ngx_oauth_conn_aad(const ngx_oauth_conn_t *conn,
    ngx_oauth_sealed_e field, ngx_oauth_aad_t *aad);
static void ngx_oauth_flow_aad(const ngx_oauth_flow_t *flow,
    ngx_oauth_aad_t *aad);


/* part of the store format: a sealed value names its field in its AAD */
static const char  *ngx_oauth_sealed_names[] = {
    "access", "refresh", "credentials", "pkce"
};


const char *
ngx_oauth_sealed_name(ngx_oauth_sealed_e field)
{
    if ((size_t) field
        >= sizeof(ngx_oauth_sealed_names) / sizeof(ngx_oauth_sealed_names[0]))
    {
        return NULL;
    }

    return ngx_oauth_sealed_names[field];
}


ngx_oauth_str_t *
ngx_oauth_conn_sealed(const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field)
{
    ngx_oauth_conn_t  *c;

    c = (ngx_oauth_conn_t *) conn;

    switch (field) {

    case NGX_OAUTH_SEALED_ACCESS:
        return &c->access;

    case NGX_OAUTH_SEALED_REFRESH:
        return &c->refresh;

    case NGX_OAUTH_SEALED_CREDENTIALS:
        return &c->secret;

    default:
        return NULL;
    }
}


size_t
ngx_oauth_sealed_size(const ngx_oauth_keyring_t *kr, size_t plen)
{
    return ngx_oauth_seal_size(kr->keys[0].kid_len, plen);
}


int
ngx_oauth_conn_seal(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field,
    const unsigned char *plain, size_t plen, unsigned char *out,
    size_t *outlen)
{
    int              rc;
    ngx_oauth_aad_t  aad;

    rc = ngx_oauth_conn_aad(conn, field, &aad);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    return ngx_oauth_seal(kr, &aad, plain, plen, out, outlen);
}


int
ngx_oauth_conn_open(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field,
    unsigned char *plain, size_t *plen)
{
    int                     rc;
    ngx_oauth_aad_t         aad;
    const ngx_oauth_str_t  *s;

    rc = ngx_oauth_conn_aad(conn, field, &aad);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    s = ngx_oauth_conn_sealed(conn, field);

    if (s->len == 0) {
        *plen = 0;
        return NGX_OAUTH_NOT_FOUND;
    }

    return ngx_oauth_open(kr, &aad, s->data, s->len, plain, plen);
}


size_t
ngx_oauth_token_sealed_size(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_token_t *token)
{
    size_t  size;

    size = ngx_oauth_sealed_size(kr, token->access_token.len);

    if (token->refresh_token.len) {
        size += ngx_oauth_sealed_size(kr, token->refresh_token.len);
    }

    return size;
}


int
ngx_oauth_conn_seal_token(const ngx_oauth_keyring_t *kr,
    ngx_oauth_conn_t *conn, const ngx_oauth_token_t *token,
    unsigned char *out)
{
    int     rc;
    size_t  alen, rlen;

    rc = ngx_oauth_conn_seal(kr, conn, NGX_OAUTH_SEALED_ACCESS,
                             token->access_token.data,
                             token->access_token.len, out, &alen);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (token->refresh_token.len) {
        rc = ngx_oauth_conn_seal(kr, conn, NGX_OAUTH_SEALED_REFRESH,
                                 token->refresh_token.data,
                                 token->refresh_token.len, out + alen,
                                 &rlen);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        conn->refresh.len = rlen;
        conn->refresh.data = out + alen;
    }

    conn->access.len = alen;
    conn->access.data = out;

    return NGX_OAUTH_OK;
}


int
ngx_oauth_flow_seal_verifier(const ngx_oauth_keyring_t *kr,
    ngx_oauth_flow_t *flow, const char *state, size_t state_len,
    const unsigned char *verifier, size_t len, unsigned char *out,
    size_t *outlen)
{
    int              rc;
    ngx_oauth_aad_t  aad;

    if (state != NULL) {
        if (state_len == 0) {
            return NGX_OAUTH_INVALID;
        }

        /* the store keys the flow by the same hash */

        rc = ngx_oauth_sha256((const unsigned char *) state, state_len,
                              flow->state_hash);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        flow->verifier_aad = NGX_OAUTH_FLOW_AAD_STATE;
    }

    ngx_oauth_flow_aad(flow, &aad);

    return ngx_oauth_seal(kr, &aad, verifier, len, out, outlen);
}


int
ngx_oauth_flow_open_verifier(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_flow_t *flow, unsigned char *plain, size_t *plen)
{
    ngx_oauth_aad_t  aad;

    if (flow->verifier.len == 0) {
        *plen = 0;
        return NGX_OAUTH_NOT_FOUND;
    }

    ngx_oauth_flow_aad(flow, &aad);

    return ngx_oauth_open(kr, &aad, flow->verifier.data, flow->verifier.len,
                          plain, plen);
}


static int
ngx_oauth_conn_aad(const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field,
    ngx_oauth_aad_t *aad)
{
    const char  *name;

    if (field == NGX_OAUTH_SEALED_VERIFIER) {
        return NGX_OAUTH_INVALID;
    }

    name = ngx_oauth_sealed_name(field);
    if (name == NULL) {
        return NGX_OAUTH_INVALID;
    }

    aad->owner = conn->owner;
    aad->provider = conn->provider;
    aad->account = conn->account;
    aad->field.len = strlen(name);
    aad->field.data = (unsigned char *) name;

    return NGX_OAUTH_OK;
}


/*
 * The state hash takes the account's place: a flow has no account, and
 * the raw hash (32 bytes) cannot be mistaken for "" of the older binding.
 */

static void
ngx_oauth_flow_aad(const ngx_oauth_flow_t *flow, ngx_oauth_aad_t *aad)
{
    const char  *name;

    aad->owner = flow->owner;
    aad->provider = flow->provider;

    if (flow->verifier_aad == NGX_OAUTH_FLOW_AAD_STATE) {
        aad->account.len = sizeof(flow->state_hash);
        aad->account.data = (unsigned char *) flow->state_hash;

    } else {
        aad->account.len = 0;
        aad->account.data = NULL;
    }

    name = ngx_oauth_sealed_name(NGX_OAUTH_SEALED_VERIFIER);

    aad->field.len = strlen(name);
    aad->field.data = (unsigned char *) name;
}
