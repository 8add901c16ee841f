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

    location /search-console/ {
        oauth_token search-console account=$arg_account;
        proxy_pass https://searchconsole.googleapis.com/;
        include snippets/oauth-upstream.conf;
    }

    # the user's one Bing connection
    location /bing/ {
        oauth_token bing;
        proxy_pass https://ssl.bing.com/webmaster/api.svc/json/;
        include snippets/oauth-upstream.conf;
    }

    location /wordpress/ {
        oauth_token wordpress account=$arg_account;
        proxy_pass https://public-api.wordpress.com/;
        include snippets/oauth-upstream.conf;
    }

    # the app instance (one per site) is the account
    location /wix-app/ {
        oauth_token wix-app account=$arg_instance;
        proxy_pass https://www.wixapis.com/;
        include snippets/oauth-upstream.conf;
    }

    # the site id is the account
    location /wix/ {
        oauth_token wix account=$arg_site;
        proxy_pass https://www.wixapis.com/;
        proxy_set_header wix-site-id $arg_site;
        include snippets/oauth-upstream.conf;
    }

    location = /metrics {
        auth_request off;
        allow 10.0.0.0/8;
        deny all;
        oauth_metrics;
    }
}
