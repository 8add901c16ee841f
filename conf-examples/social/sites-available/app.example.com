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

    location /instagram/ {
        oauth_token instagram account=$arg_account;
        proxy_pass https://graph.instagram.com/;
        include snippets/oauth-upstream.conf;
    }

    location /facebook/ {
        oauth_token facebook account=$arg_account;
        proxy_pass https://graph.facebook.com/v25.0/;
        include snippets/oauth-upstream.conf;
    }

    location /tiktok/ {
        oauth_token tiktok account=$arg_account;
        proxy_pass https://open.tiktokapis.com/;
        include snippets/oauth-upstream.conf;
    }

    location /reddit/ {
        oauth_token reddit account=$arg_account;
        proxy_pass https://oauth.reddit.com/;
        proxy_set_header User-Agent "web:app.example.com:v1.0 (by /u/app_example)";
        include snippets/oauth-upstream.conf;
    }

    location /fanpage/ {
        oauth_token fanpage account=$arg_account;
        proxy_pass https://fans.example.com/;
        include snippets/oauth-upstream.conf;
    }

    location = /metrics {
        auth_request off;
        allow 10.0.0.0/8;
        deny all;
        oauth_metrics;
    }
}
