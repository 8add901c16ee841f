/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_SEAL_H_INCLUDED_
#define _NGX_OAUTH_SEAL_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_store.h"


/*
 * The values sealed in the store.  Each is bound (AES-GCM associated
 * data) to where it lives, so that a value copied to another row or
 * another field of the same row does not open:
 *   conn fields: (owner, provider, account, name)
 *   PKCE verifier of a flow: (owner, provider, sha256(state), "pkce"),
 *     or (owner, provider, "", "pkce") for flows stored before the
 *     binding to the state (flow->verifier_aad says which).
 * The names below are part of the store format: never change one.
 */
typedef enum {
    NGX_OAUTH_SEALED_ACCESS = 0,       /* conn->access, "access" */
    NGX_OAUTH_SEALED_REFRESH,          /* conn->refresh, "refresh" */
    NGX_OAUTH_SEALED_CREDENTIALS,      /* conn->secret, "credentials" */
    NGX_OAUTH_SEALED_VERIFIER          /* flow->verifier, "pkce" */
} ngx_oauth_sealed_e;

/* the sealed fields of a connection, for loops over them */
#define NGX_OAUTH_SEALED_CONN_FIELDS  3


/* "access", "refresh", "credentials", "pkce"; NULL when out of range */
const char *ngx_oauth_sealed_name(ngx_oauth_sealed_e field);

/*
 * The member of conn that holds field (NULL for the verifier or a value
 * out of range).  Like strchr(), it takes a const conn: write through the
 * result only for a conn of your own.
 */
ngx_oauth_str_t *ngx_oauth_conn_sealed(const ngx_oauth_conn_t *conn,
    ngx_oauth_sealed_e field);

/* bytes a sealed value of plen bytes takes under the active key */
size_t ngx_oauth_sealed_size(const ngx_oauth_keyring_t *kr, size_t plen);

/*
 * Seals plain for field of conn (conn->owner, ->provider and ->account
 * must be set).  out must hold ngx_oauth_sealed_size(kr, plen) bytes;
 * *outlen gets the size.  The caller stores out in the member
 * ngx_oauth_conn_sealed() names.  NGX_OAUTH_INVALID for the verifier.
 */
int ngx_oauth_conn_seal(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field,
    const unsigned char *plain, size_t plen, unsigned char *out,
    size_t *outlen);

/*
 * Opens the member of conn that holds field.  plain must hold as many
 * bytes as the sealed member (ngx_oauth_conn_sealed(conn, field)->len);
 * *plen gets the size.  NGX_OAUTH_NOT_FOUND when the member is empty,
 * otherwise as ngx_oauth_open(); on error plain is wiped.
 */
int ngx_oauth_conn_open(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e field,
    unsigned char *plain, size_t *plen);

/* bytes ngx_oauth_conn_seal_token() needs for token's tokens */
size_t ngx_oauth_token_sealed_size(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_token_t *token);

/*
 * Seals a token endpoint answer into conn (owner, provider and account
 * set): the access token into conn->access and, when the answer has one,
 * the refresh token into conn->refresh; without one conn->refresh stays
 * as it is (the old refresh token remains valid).  out must hold
 * ngx_oauth_token_sealed_size(kr, token) bytes; conn's members point
 * into it.
 */
int ngx_oauth_conn_seal_token(const ngx_oauth_keyring_t *kr,
    ngx_oauth_conn_t *conn, const ngx_oauth_token_t *token,
    unsigned char *out);

/*
 * Seals a PKCE verifier for flow (flow->owner and ->provider set).  With
 * state (the raw state of the flow) the value is bound to sha256(state),
 * which goes into flow->state_hash, and flow->verifier_aad becomes
 * NGX_OAUTH_FLOW_AAD_STATE.  With state NULL the binding flow already has
 * is kept (key rotation of a flow read from the store).  out must hold
 * ngx_oauth_sealed_size(kr, len) bytes; the caller points flow->verifier
 * at it.
 */
int ngx_oauth_flow_seal_verifier(const ngx_oauth_keyring_t *kr,
    ngx_oauth_flow_t *flow, const char *state, size_t state_len,
    const unsigned char *verifier, size_t len, unsigned char *out,
    size_t *outlen);

/*
 * Opens flow->verifier (a flow as the store returns it: state_hash is the
 * key it was stored under).  plain must hold flow->verifier.len bytes.
 * NGX_OAUTH_NOT_FOUND when the flow has no verifier.
 */
int ngx_oauth_flow_open_verifier(const ngx_oauth_keyring_t *kr,
    const ngx_oauth_flow_t *flow, unsigned char *plain, size_t *plen);


#endif /* _NGX_OAUTH_SEAL_H_INCLUDED_ */
