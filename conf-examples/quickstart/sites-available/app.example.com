# /etc/nginx/sites-available/app.example.com: a server block (enable it with
# ln -s ../sites-available/app.example.com /etc/nginx/sites-enabled/).
# Goes with conf.d/oauth.conf, which defines the provider "github".

server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name app.example.com;
    ssl_certificate     /etc/ssl/certs/app.example.com.pem;
    ssl_certificate_key /etc/ssl/private/app.example.com.key;

    # the user, as your own login established it: your application answers
    # /session with 2xx and an X-User-Id header, or 401
    auth_request /_auth;
    auth_request_set $user_id $upstream_http_x_user_id;
    oauth_owner $user_id;

    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:3000/session;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }

    location = /oauth/connect/github {
        limit_req zone=oauth burst=10 nodelay;
        oauth_start github;
    }

    location = /oauth/callback {
        limit_req zone=oauth burst=10 nodelay;
        absolute_redirect off;   # right scheme behind a TLS proxy
        oauth_callback;
    }

    location /oauth/api/ {
        oauth_api;
    }

    location /github/ {
        oauth_token github;
        proxy_pass https://api.github.com/;
        proxy_set_header Host api.github.com;
        proxy_ssl_name api.github.com;
        include snippets/oauth-upstream.conf;
    }

    location / {
        proxy_pass http://127.0.0.1:3000;
    }
}
