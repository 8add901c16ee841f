# /etc/nginx/sites-available/app.example.com: the integrations API and the
# proxied calls that carry the stored keys.  Goes with conf.d/oauth.conf.

server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name app.example.com;
    ssl_certificate     /etc/ssl/certs/app.example.com.pem;
    ssl_certificate_key /etc/ssl/private/app.example.com.key;

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

    location /oauth/api/ {
        oauth_api;
    }

    location /stripe/ {
        oauth_token stripe-key;
        proxy_pass https://api.stripe.com/;
        include snippets/oauth-upstream.conf;
    }

    location /shipping/ {
        oauth_token shipping;
        proxy_pass https://api.shipping.example.net/;
        include snippets/oauth-upstream.conf;
    }

    location /erp/ {
        oauth_token legacy-erp;
        proxy_pass https://erp.example.net/;
        include snippets/oauth-upstream.conf;
    }
}
