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

    location /supabase/ {
        oauth_token supabase account=$arg_account;
        proxy_pass https://api.supabase.com/;
        include snippets/oauth-upstream.conf;
    }

    # the connection's own project (the preset's lookup kept its ref):
    # /supabase/project/database/query -> /v1/projects/REF/database/query
    location ~ ^/supabase/project(?<supabase_path>/.*)$ {
        oauth_token supabase account=$arg_account;
        proxy_pass https://api.supabase.com/v1/projects/$oauth_param_project_ref$supabase_path$is_args$args;
        include snippets/oauth-upstream.conf;
    }

    # S3 with the user's stored keys: the path after /aws/s3 is signed as
    # sent, for the Host of api_base_url (proxy_pass without a URI part,
    # the host in a variable so that the resolver finds it at run time)
    location /aws/s3/ {
        oauth_token aws-s3 account=$arg_account;
        set $aws_s3_host s3.eu-west-1.amazonaws.com;
        rewrite ^/aws/s3(/.*)$ $1 break;
        proxy_pass https://$aws_s3_host;
        include snippets/oauth-upstream.conf;
    }

    location /slack/ {
        oauth_token slack account=$arg_account;
        proxy_pass https://slack.com/api/;
        include snippets/oauth-upstream.conf;
    }

    location /slack-user/ {
        oauth_token slack-user account=$arg_account;
        proxy_pass https://slack.com/api/;
        include snippets/oauth-upstream.conf;
    }

    location /github/ {
        oauth_token github account=$arg_account;
        proxy_pass https://api.github.com/;
        proxy_set_header X-GitHub-Api-Version 2022-11-28;
        include snippets/oauth-upstream.conf;
    }

    location /vercel/ {
        oauth_token vercel account=$arg_account;
        proxy_pass https://api.vercel.com/;
        include snippets/oauth-upstream.conf;
    }

    location /netlify/ {
        oauth_token netlify account=$arg_account;
        proxy_pass https://api.netlify.com/api/v1/;
        include snippets/oauth-upstream.conf;
    }

    location = /metrics {
        auth_request off;
        allow 10.0.0.0/8;
        deny all;
        oauth_metrics;
    }
}
