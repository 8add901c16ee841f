# /etc/nginx/sites-available/app.example.com: one connect route for every
# platform, one API proxy per platform.  Shopify needs the shop:
# /oauth/connect/shopify?shop=acme (or acme.myshopify.com).  Goes with
# conf.d/oauth.conf.

server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name app.example.com;
    ssl_certificate     /etc/ssl/certs/app.example.com.pem;
    ssl_certificate_key /etc/ssl/private/app.example.com.key;

    # platform API hosts are looked up at run time for the Shopify and
    # QuickBooks locations (their URLs carry variables)
    resolver 127.0.0.53 valid=300s;

    # the user, as your own login established it (never a header the
    # client could send itself)
    auth_request /_auth;
    auth_request_set $user_id $upstream_http_x_user_id;
    oauth_owner $user_id;

    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:3000/session;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }

    location ~ ^/oauth/connect/(?<oauth_p>[a-z-]+)$ {
        limit_req zone=oauth burst=10 nodelay;
        oauth_start $oauth_p;
    }

    location = /oauth/callback {
        limit_req zone=oauth burst=10 nodelay;
        absolute_redirect off;   # right scheme behind a TLS proxy
        oauth_callback;
    }

    location /oauth/api/ {
        oauth_api;
    }

    location /google/ {
        oauth_token google account=$arg_account;
        proxy_pass https://www.googleapis.com/;
        include snippets/oauth-upstream.conf;
    }

    location /slack/ {
        oauth_token slack account=$arg_account;
        proxy_pass https://slack.com/api/;
        include snippets/oauth-upstream.conf;
    }

    location /github/ {
        oauth_token github account=$arg_account;
        proxy_pass https://api.github.com/;
        include snippets/oauth-upstream.conf;
    }

    # the shop comes from the connection: one location for every shop;
    # ?shop=acme or ?shop=acme.myshopify.com (the account is the domain)
    location ~ ^/shopify/(?<shopify_path>.*)$ {
        oauth_token shopify account=$shopify_domain;
        proxy_pass https://$oauth_param_shop.myshopify.com/admin/api/2026-07/$shopify_path;
        include snippets/oauth-upstream.conf;
    }

    location /hubspot/ {
        oauth_token hubspot account=$arg_account;
        proxy_pass https://api.hubapi.com/;
        include snippets/oauth-upstream.conf;
    }

    location ~ ^/quickbooks/(?<qb_path>.*)$ {
        oauth_token quickbooks account=$arg_account;
        proxy_pass https://quickbooks.api.intuit.com/v3/company/$oauth_param_realmId/$qb_path;
        include snippets/oauth-upstream.conf;
    }

    # scraped by Prometheus, not by a logged-in user
    location = /metrics {
        auth_request off;
        allow 10.0.0.0/8;
        deny all;
        oauth_metrics;
    }
}
