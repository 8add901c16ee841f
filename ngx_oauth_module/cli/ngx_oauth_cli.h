/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_CLI_H_INCLUDED_
#define _NGX_OAUTH_CLI_H_INCLUDED_


/* exit codes: scripts depend on them */
#define NGX_OAUTH_CLI_OK            0
#define NGX_OAUTH_CLI_PROBLEMS      1     /* check or rotate found some */
#define NGX_OAUTH_CLI_ERROR         2     /* bad usage, or a runtime error */
#define NGX_OAUTH_CLI_UNAVAILABLE   3     /* store or key file won't open */


/* what ngx-oauth --shared was given on its command line */
typedef struct {
    const char               *url;           /* postgresql://U@H[:P]/DB */
    const char               *password_file;
    const char               *key_file;
    const char               *command;
    const char               *arg;           /* backup DEST, restore FILE */
    size_t                    nargs;
} ngx_oauth_cli_shared_conf_t;


/*
 * check, rotate, backup and restore against the fleet's PostgreSQL
 * (ngx_oauth_cli_shared.c); returns one of the exit codes above
 */
int ngx_oauth_cli_shared(const ngx_oauth_cli_shared_conf_t *conf);


#endif /* _NGX_OAUTH_CLI_H_INCLUDED_ */
