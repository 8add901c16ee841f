# /etc/nginx/sites-available/app.example.com: the backup product's connect
# routes and one API route per platform.  Several accounts of one platform
# (two QuickBooks companies, three shops) are chosen with ?account=.
# Goes with conf.d/oauth.conf.

server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name app.example.com;
    ssl_certificate     /etc/ssl/certs/app.example.com.pem;
    ssl_certificate_key /etc/ssl/private/app.example.com.key;

    # platform API hosts in variables are looked up at run time
    resolver 127.0.0.53 valid=300s;

    # the user, as your own login established it
    auth_request /_auth;
    auth_request_set $user_id $upstream_http_x_user_id;
    oauth_owner $user_id;

    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:3000/session;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }

    # a single-page app may start with fetch("/oauth/connect/P?mode=json")
    location ~ ^/oauth/connect/(?<oauth_p>[a-z0-9-]+)$ {
        limit_req zone=oauth burst=10 nodelay;
        oauth_start $oauth_p;
    }

    location = /oauth/callback {
        limit_req zone=oauth burst=10 nodelay;
        absolute_redirect off;
        oauth_callback;
    }

    location /oauth/api/ {
        oauth_api;
    }

    location /google-drive/ {
        oauth_token google-drive account=$arg_account;
        proxy_pass https://www.googleapis.com/drive/v3/;
        include snippets/oauth-upstream.conf;
    }

    location /google-sheets/ {
        oauth_token google-sheets account=$arg_account;
        proxy_pass https://sheets.googleapis.com/v4/;
        include snippets/oauth-upstream.conf;
    }

    location /google-bigquery/ {
        oauth_token google-bigquery account=$arg_account;
        proxy_pass https://bigquery.googleapis.com/bigquery/v2/;
        include snippets/oauth-upstream.conf;
    }

    location /google-cloud/ {
        oauth_token google-cloud account=$arg_account;
        proxy_pass https://storage.googleapis.com/;
        include snippets/oauth-upstream.conf;
    }

    location /hubspot/ {
        oauth_token hubspot account=$arg_account;
        proxy_pass https://api.hubapi.com/;
        include snippets/oauth-upstream.conf;
    }

    location /gohighlevel/ {
        oauth_token gohighlevel account=$arg_account;
        proxy_pass https://services.leadconnectorhq.com/;
        proxy_set_header Version 2021-07-28;
        include snippets/oauth-upstream.conf;
    }

    location /dropbox/ {
        oauth_token dropbox account=$arg_account;
        proxy_pass https://api.dropboxapi.com/;
        include snippets/oauth-upstream.conf;
    }

    location /box/ {
        oauth_token box account=$arg_account;
        proxy_pass https://api.box.com/;
        include snippets/oauth-upstream.conf;
    }

    # the company is the account: ?account=REALM_ID
    location ~ ^/quickbooks/(?<qb_path>.*)$ {
        oauth_token quickbooks account=$arg_account;
        proxy_pass https://quickbooks.api.intuit.com/v3/company/$oauth_param_realmId/$qb_path;
        include snippets/oauth-upstream.conf;
    }

    # ?shop=acme or ?shop=acme.myshopify.com: the account is the full domain
    location ~ ^/shopify/(?<shopify_path>.*)$ {
        oauth_token shopify account=$shopify_domain;
        proxy_pass https://$oauth_param_shop.myshopify.com/admin/api/2026-07/$shopify_path;
        include snippets/oauth-upstream.conf;
    }

    location /keap/ {
        oauth_token keap account=$arg_account;
        proxy_pass https://api.infusionsoft.com/crm/rest/;
        include snippets/oauth-upstream.conf;
    }

    location /stripe/ {
        oauth_token stripe account=$arg_account;
        proxy_pass https://api.stripe.com/;
        include snippets/oauth-upstream.conf;
    }

    location = /metrics {
        auth_request off;
        allow 10.0.0.0/8;
        deny all;
        oauth_metrics;
    }
}
