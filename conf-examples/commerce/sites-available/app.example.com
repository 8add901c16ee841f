# /etc/nginx/sites-available/app.example.com: connect routes and the
# platforms' APIs.  Goes with conf.d/oauth.conf.

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

    location /amazon-sp/ {
        oauth_token amazon-sp account=$arg_account;
        proxy_pass https://sellingpartnerapi-na.amazon.com/;
        include snippets/oauth-upstream.conf;
    }

    location /amazon-sp-eu/ {
        oauth_token amazon-sp-eu account=$arg_account;
        proxy_pass https://sellingpartnerapi-eu.amazon.com/;
        include snippets/oauth-upstream.conf;
    }

    # Amazon Ads: oauth_token adds the client id and the connection's
    # profile_id (Amazon-Advertising-API-Scope) itself
    location /amazon-ads/ {
        oauth_token amazon-ads account=$arg_account;
        proxy_pass https://advertising-api.amazon.com/;
        include snippets/oauth-upstream.conf;
    }

    # another of the advertiser's profiles for a call: ?profile=ID
    # (proxy_set_header of the same name overrides the api_header)
    location /amazon-ads-eu/ {
        oauth_token amazon-ads-eu account=$arg_account;
        proxy_pass https://advertising-api-eu.amazon.com/;
        proxy_set_header Amazon-Advertising-API-Scope $arg_profile;
        include snippets/oauth-upstream.conf;
    }

    # the seller is the account; Walmart wants a correlation id and a
    # service name on every call
    location /walmart/ {
        oauth_token walmart account=$arg_account;
        proxy_pass https://marketplace.walmartapis.com/;
        proxy_set_header WM_SVC.NAME "Walmart Marketplace";
        proxy_set_header WM_QOS.CORRELATION_ID $request_id;
        proxy_set_header WM_PARTNER.ID $oauth_param_sellerId;
        include snippets/oauth-upstream.conf;
    }

    location /slack/ {
        oauth_token slack account=$arg_account;
        proxy_pass https://slack.com/api/;
        include snippets/oauth-upstream.conf;
    }

    location = /metrics {
        auth_request off;
        allow 10.0.0.0/8;
        deny all;
        oauth_metrics;
    }
}
