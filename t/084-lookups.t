# Post-connect lookups ("lookup" lines) and per-provider API headers
# ("api_header"), with the real presets of the three platforms that need
# them: Amazon Ads (the advertising profile, and its ClientId and Scope
# headers on every API call), Atlassian (the site's cloudId) and Supabase
# (a project ref, optional).  Each preset runs as the catalog has it; only
# the hosts are the fake's: its authorization, token and userinfo URLs,
# and its lookup's URL with the preset's own path, JSON path, headers and
# "optional" flag (T::lookup_line reads them from providers.json).
#
# The fake's scenarios (below) answer the way the platforms document:
# GET /v2/profiles wants Amazon-Advertising-API-ClientId and answers the
# profiles (profileId a JSON number), accessible-resources answers the
# sites ("id" is the cloudId), /v1/projects the projects ("ref").  The
# knob lk_mode breaks the lookup's answer for the failure blocks.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

package T;

use JSON::PP ();

our $Catalog = do {
    my $file = "$FindBin::Bin/../ngx_oauth_module/providers.json";
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    JSON::PP->new->decode(<$fh>);
};

# the platforms: provider name, the fake's scenario, the kept param, the
# value each account's lookup gives (from the code), the account
our %P = (
    'amazon-ads' => {
        name => 'amz', scen => 'lkamz', param => 'profile_id',
        value => sub { { a1 => '3311111111', b2 => '3322222222' }->{$_[0]} },
        account => sub { "amzn1.account.$_[0]" },
    },
    'atlassian' => {
        name => 'atl', scen => 'lkatl', param => 'cloud_id',
        value => sub { "1324a887-45db-1bf4-1e99-ef0ff456d4$_[0]" },
        account => sub { "557058:$_[0]" },
    },
    'supabase' => {
        name => 'supa', scen => 'lksupa', param => 'project_ref',
        value => sub { "ref$_[0]abcdefghijklm" },
        account => sub { "org-$_[0]" },
    },
);

sub _account_of {
    my ($st, $req) = @_;
    my ($t) = (FakeProvider::header($req, 'authorization') // '')
              =~ /^Bearer (\S+)$/;
    my $at = defined $t ? $st->{access_tokens}{$t} : undef;
    return $at ? $at->{account} : undef;
}

# a lookup's answer: the data, or what the knob lk_mode makes of it
sub _lookup {
    my ($st, $req, $data) = @_;
    $st->{counts}{lookup}++;
    my $m = $st->{lk_mode} // 'ok';
    return FakeProvider::reply(500, json => { error => 'server_error' })
        if $m eq '500';
    return FakeProvider::reply(200, type => 'text/html',
                               body => "<html>maintenance</html>\n")
        if $m eq 'html';
    return FakeProvider::reply(200, json => [ { other => 'x' } ])
        if $m eq 'nopath';
    my $bad = $m eq 'control' ? "12\n34" : $m eq 'long' ? '9' x 300 : undef;
    if (defined $bad) {
        $_ = $bad for values %{ $data->[0] };
    }
    return FakeProvider::reply(200, json => $data);
}

FakeProvider::scenario(lkamz =>
    userinfo => sub {
        my ($st, $req) = @_;
        my $a = _account_of($st, $req)
            or return FakeProvider::reply(401, json => { error => 'invalid_token' });
        return FakeProvider::reply(200, json => {
            user_id => "amzn1.account.$a", name => "User $a",
            email => "$a\@example.com" });
    },
    # GET /v2/profiles: the token and the client's id, else 401
    v2 => sub {
        my ($st, $req) = @_;
        my $a = _account_of($st, $req);
        my $cid = FakeProvider::header($req, 'amazon-advertising-api-clientid')
                  // '';
        return FakeProvider::reply(401, json => { code => 'UNAUTHORIZED' })
            unless $a && $cid eq 'cid-amazon-ads';
        my $v = $P{'amazon-ads'}{value}->($a);
        return _lookup($st, $req, [
            { profileId => 0 + $v, countryCode => 'US', currencyCode => 'USD',
              timezone => 'America/Los_Angeles',
              accountInfo => { type => 'seller', id => "A$a" } },
            { profileId => 0 + "4$v", countryCode => 'CA' } ]);
    });

FakeProvider::scenario(lkatl =>
    userinfo => sub {
        my ($st, $req) = @_;
        my $a = _account_of($st, $req)
            or return FakeProvider::reply(401, json => { error => 'invalid_token' });
        return FakeProvider::reply(200, json => {
            account_id => "557058:$a", name => "User $a" });
    },
    # GET /oauth/token/accessible-resources
    oauth => sub {
        my ($st, $req) = @_;
        my $a = _account_of($st, $req)
            or return FakeProvider::reply(401, json => { code => 401 });
        return _lookup($st, $req, [
            { id => $P{atlassian}{value}->($a), name => "Site $a",
              url => "https://$a.atlassian.net", scopes => [ 'read:me' ] } ]);
    });

FakeProvider::scenario(lksupa =>
    userinfo => sub {
        my ($st, $req) = @_;
        my $a = _account_of($st, $req)
            or return FakeProvider::reply(401, json => { message => 'no' });
        return FakeProvider::reply(200, json => [
            { id => "org-$a", name => "Org $a" } ]);
    },
    # GET /v1/projects; knob no_projects: an organization without any
    v1 => sub {
        my ($st, $req) = @_;
        my $a = _account_of($st, $req)
            or return FakeProvider::reply(401, json => { message => 'no' });
        return _lookup($st, $req, []) if $st->{no_projects};
        my $ref = $P{supabase}{value}->($a);
        return _lookup($st, $req, [
            { id => $ref, ref => $ref, organization_id => "org-$a",
              name => "Project $a", region => 'eu-west-1',
              status => 'ACTIVE_HEALTHY' } ]);
    });

# the preset's lookup line, its URL on the fake
sub lookup_line {
    my $key = shift;
    my $p = $P{$key};
    my @args = @{ $Catalog->{$key}{lookups}[0] };
    $args[1] =~ s{^https://[^/]+}
                 {http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/$p->{scen}};
    return join ' ', map { /[\s{};]/ ? "\"$_\"" : $_ } @args;
}

sub http_config {
    my ($key, $extra) = @_;
    my $p = $P{$key};
    my $f = "http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/$p->{scen}";
    return "    oauth_background_refresh off;\n"
         . "    oauth_audit_log \$TEST_NGINX_OAUTH_AUDIT;\n"
         . "    oauth_provider $p->{name} {\n"
         . "        preset $key;\n"
         . "        client_id cid-$key;\n"
         . "        client_secret csecret-$key;\n"
         . "        redirect_uri http://localhost:\$TEST_NGINX_SERVER_PORT/callback;\n"
         . "        authorization_url $f/authorize;\n"
         . "        token_url $f/token;\n"
         . "        userinfo_url $f/userinfo;\n"
         . (($extra // '') =~ /\blookup\s+\Q$p->{param}\E\s/ ? ''
            : "        lookup " . lookup_line($key) . ";\n")
         . ($extra // '')
         . "    }\n";
}

sub config {
    my $p = $P{ shift() };
    return <<"_EOC_";
    location /api/ {
        oauth_token $p->{name} account=\$arg_account;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/$p->{scen}/api/;
    }
    location = /metrics { oauth_metrics; }
_EOC_
}

# the upstream's view of a request for one account: the request head
sub upstream {
    my ($owner, $account, %h) = @_;
    return OAuthKit::request('GET', '/api/items?account='
                             . OAuthKit::url_escape($account),
                             owner => $owner, headers => \%h);
}

sub hval {
    my ($head, $name) = @_;
    my @v = $head =~ /^\Q$name\E: (.*?)\r?$/mgi;
    return join ',', @v;
}

sub params_of {
    my ($owner, $name) = @_;
    my %p;
    for my $c (@{ OAuthKit::connections($owner, "provider=$name") }) {
        $p{ $c->{account} } = $c->{params} // {};
    }
    return \%p;
}

# two accounts connect, each keeps its own looked-up value, the injection
# carries the api headers, a refresh keeps the values, disconnect
sub run {
    my $key = shift;
    my $p = $P{$key};
    my $n = $p->{name};
    my ($is, $ok, $like) = (\&Test::More::is, \&Test::More::ok, \&Test::More::like);
    my @codes = qw(a1 b2);
    my @acc = map { $p->{account}->($_) } @codes;
    my @val = map { $p->{value}->($_) } @codes;

    for my $i (0, 1) {
        my $r = OAuthKit::connect_flow(owner => 'alice', provider => $n,
                                       code => $codes[$i]);
        $is->($r->{status}, 'connected', "$key: account $i connects")
            or Test::More::diag("error=" . ($r->{error} // ''));
        $is->($r->{account}, $acc[$i], "$key: account $i is $acc[$i]");
    }
    $is->(OAuthKit::fake()->count('lookup'), 2, "$key: one lookup per connect");
    my $m = OAuthKit::metrics_parse(OAuthKit::metrics_text());
    $is->(OAuthKit::metric($m, 'oauth_outbound_duration_seconds_count',
                           provider => $n, endpoint => 'lookup'),
          2, "$key: timed as endpoint=\"lookup\"");

    my @lk = grep { $_->{rel} ne '/userinfo' && $_->{rel} ne '/token'
                    && $_->{rel} !~ m{^/api/} }
             @{ OAuthKit::fake_requests(path => qr{^/$p->{scen}/}) };
    $is->(scalar @lk, 2, "$key: the lookups reached the fake");
    for my $r (@lk) {
        $is->($r->{method}, 'GET', "$key: the lookup is a GET");
        $like->(FakeProvider::header($r, 'authorization') // '',
                qr/^Bearer at-\d+-(a1|b2)$/, "$key: with the new token");
        $is->(scalar FakeProvider::header($r, 'cookie'), undef,
              "$key: nothing of the browser's request");
    }

    my $params = params_of('alice', $n);
    $is->($params->{ $acc[$_] }{ $p->{param} }, $val[$_],
          "$key: account $_ keeps $p->{param} $val[$_]") for 0, 1;

    # injection: each account's token and its own api headers
    my @head;
    for my $i (0, 1) {
        my $r = upstream('alice', $acc[$i],
                         'Amazon-Advertising-API-Scope' => 'forged');
        $is->($r->{status}, 200, "$key: proxied for account $i");
        $head[$i] = $r->{content};
        $like->(hval($r->{content}, 'Authorization'),
                qr/^Bearer at-\d+-$codes[$i]$/, "$key: account ${i}'s token");
    }
    my $hdrs = $Catalog->{$key}{api_headers} // {};
    for my $h (sort keys %$hdrs) {
        for my $i (0, 1) {
            (my $want = $hdrs->{$h}) =~ s/\{client_id\}/cid-$key/g;
            $want =~ s/\{\Q$p->{param}\E\}/$val[$i]/g;
            $is->(hval($head[$i], $h), $want, "$key: $h for account $i");
        }
    }
    $ok->(!keys %$hdrs || $head[0] !~ /forged/,
          "$key: a client's own header of that name is replaced");

    # refresh keeps the looked-up values
    my $s = OAuthKit::api('POST', "connections/$n/$acc[0]/refresh",
                          owner => 'alice');
    $is->($s->{status}, 200, "$key: refreshed");
    $params = params_of('alice', $n);
    $is->($params->{ $acc[0] }{ $p->{param} }, $val[0],
          "$key: the refresh keeps $p->{param}");
    my $r = upstream('alice', $acc[0]);
    for my $h (sort keys %$hdrs) {
        (my $want = $hdrs->{$h}) =~ s/\{client_id\}/cid-$key/g;
        $want =~ s/\{\Q$p->{param}\E\}/$val[0]/g;
        $is->(hval($r->{content}, $h), $want, "$key: $h after the refresh");
    }
    $is->(OAuthKit::fake()->count('lookup'), 2,
          "$key: a refresh looks nothing up again");

    # disconnect one; the other stays with its value
    my $d = OAuthKit::api('DELETE', "connections/$n/$acc[0]", owner => 'alice');
    $is->($d->{status}, 200, "$key: disconnected");
    $params = params_of('alice', $n);
    $is->(join(' ', keys %$params), $acc[1], "$key: account 1 stays");
    $is->($params->{ $acc[1] }{ $p->{param} }, $val[1],
          "$key: with its own $p->{param}");
}

# a required lookup that fails: the connect fails, nothing is saved
sub run_fail {
    my ($key, $mode, $code) = @_;
    my $p = $P{$key};
    my $fake = OAuthKit::fake();
    $fake->set(lk_mode => $mode);
    my $r = OAuthKit::connect_flow(owner => 'alice', provider => $p->{name},
                                   code => 'a1');
    Test::More::is($r->{status}, 'error', "$key $mode: the connect fails");
    Test::More::is($r->{error}, $code, "$key $mode: oauth_error $code");
    Test::More::is($fake->count('lookup'), 1, "$key $mode: looked up once");
    Test::More::is(scalar @{ OAuthKit::connections('alice') }, 0,
                   "$key $mode: nothing saved");
    my @a = grep { /connect_failed/ } OAuthKit::audit_lines();
    Test::More::is(scalar @a, 1, "$key $mode: one connect_failed audit line");
    Test::More::like($a[0] // '', qr/\Q$code\E/, "$key $mode: with its reason");
    my $m = OAuthKit::metrics_parse(OAuthKit::metrics_text());
    Test::More::is(OAuthKit::metric($m, 'oauth_connect_failures_total',
                                    provider => $p->{name},
                                    reason => $code),
                   1, "$key $mode: counted as $code");
    # nginx's own debug lines of proxied requests aside
    Test::More::is(scalar OAuthKit::error_log_grep(
                       qr/\[(?:alert|crit|error|warn|notice|info)\].*[ar]t-\d+-a1/),
                   0, "$key $mode: no token in the error log");
    Test::More::is(scalar grep({ /at-\d+-a1|rt-\d+-a1/ }
                               OAuthKit::audit_lines()),
                   0, "$key $mode: nor in the audit log");
}

sub block {
    my $block = shift;
    my ($key, $what) = $block->name =~ /^(?:TEST \d+: )?([a-z-]+): (\S+)/;
    if ($key && $P{$key}) {
        my $p = $P{$key};
        $block->set_value(http_config => http_config($key,
                                                     $block->http_config))
            unless $block->config;
        $block->set_value(config => config($key)) unless $block->config;
        if (!defined $block->init) {
            my $code = ($what eq 'fails') ? 'lookup_failed' : '';
            my ($mode) = $block->name =~ /\[(\w+)\]/;
            $block->set_value(init => $what eq 'fails'
                              ? "T::run_fail('$key', '$mode', '$code');"
                              : "T::run('$key');");
        }
    }
    OAuthKit::demo_defaults($block);
}

package main;

add_block_preprocessor(\&T::block);

run_tests();

__DATA__

=== TEST 1: amazon-ads: two advertisers, each its first profile; ClientId and Scope on every API call; kept through a refresh
--- request
GET /api/items?account=amzn1.account.b2
--- more_headers
X-Owner: alice
--- response_body_like
(?mi)^Amazon-Advertising-API-Scope: 3322222222\r$
--- no_error_log
[error]

=== TEST 2: atlassian: two users, each its site's cloud_id, usable in the proxied URL
--- request
GET /api/items?account=557058:b2
--- more_headers
X-Owner: alice
--- response_body_like
(?mi)^Authorization: Bearer at-\d+-b2\r$
--- no_error_log
[error]

=== TEST 3: supabase: two organizations, each its first project's ref
--- request
GET /api/items?account=org-b2
--- more_headers
X-Owner: alice
--- response_body_like
(?mi)^Authorization: Bearer at-\d+-b2\r$
--- no_error_log
[error]

=== TEST 4: atlassian: an answer without the account fails missing_account before any lookup is sent
--- http_config
        account_id no_such_field;
--- init
my $fake = OAuthKit::fake();
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'atl',
                               code => 'a1');
Test::More::is($r->{error}, 'missing_account', 'missing_account');
Test::More::is($fake->count('lookup'), 0, 'no lookup sent');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]

=== TEST 5: amazon-ads: fails [500] when /v2/profiles answers 500
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
lookup "profile_id" failed: the answer is not 2xx

=== TEST 6: amazon-ads: fails [html] when the answer is not JSON
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
lookup "profile_id" failed: the answer is not JSON

=== TEST 7: atlassian: fails [nopath] when the answer has no site id
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
lookup "cloud_id" failed: nothing at its path

=== TEST 8: atlassian: fails [control] when the value has a control character
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
lookup "cloud_id" failed: the value has a control character

=== TEST 9: amazon-ads: fails [long] when the value is longer than 256 bytes
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
lookup "profile_id" failed: the value is too long

=== TEST 10: supabase: optional: an organization without projects connects, without project_ref
--- init
my $fake = OAuthKit::fake();
$fake->set(no_projects => 1);
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'supa',
                               code => 'a1');
Test::More::is($r->{status}, 'connected', 'connected without a project');
my ($c) = @{ OAuthKit::connections('alice') };
Test::More::ok(!exists $c->{params}{project_ref}, 'no project_ref kept');
Test::More::is($fake->count('lookup'), 1, 'looked up');
--- request
GET /api/items?account=org-a1
--- more_headers
X-Owner: alice
--- response_body_like
(?mi)^Authorization: Bearer at-\d+-a1\r$
--- error_log
optional lookup "project_ref" gave nothing: nothing at its path
--- no_error_log
[error]

=== TEST 11: supabase: optional: a project list that fails (500) leaves the param out, the connect stands
--- init
my $fake = OAuthKit::fake();
$fake->set(lk_mode => '500');
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'supa',
                               code => 'a1');
Test::More::is($r->{status}, 'connected', 'connected');
my ($c) = @{ OAuthKit::connections('alice') };
Test::More::is(join(',', sort keys %{ $c->{params} // {} }), '',
               'no param kept');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"org-a1"
--- no_error_log
[error]

=== TEST 12: amazon-ads: optional on the block: a failing profile lookup connects; the Scope header is left out then
--- http_config
        lookup profile_id http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkamz/v2/profiles 0.profileId "header=Amazon-Advertising-API-ClientId:{client_id}" optional;
--- init
my $fake = OAuthKit::fake();
$fake->set(lk_mode => '500');
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'amz',
                               code => 'a1');
Test::More::is($r->{status}, 'connected', 'connected');
--- request
GET /api/items?account=amzn1.account.a1
--- more_headers
X-Owner: alice
--- response_body_unlike
(?mi)^Amazon-Advertising-API-Scope:
--- no_error_log
[error]

=== TEST 13: amazon-ads: a block's own lookup line replaces the preset's (another profile: index 1)
--- http_config
        lookup profile_id http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkamz/v2/profiles?profileTypeFilter=seller 1.profileId "header=Amazon-Advertising-API-ClientId:{client_id}";
--- init
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'amz',
                               code => 'a1');
Test::More::is($r->{status}, 'connected', 'connected');
my ($q) = grep { $_->{rel} =~ m{^/v2/} }
          @{ OAuthKit::fake_requests(path => qr{^/lkamz/}) };
Test::More::is($q->{query} // '', 'profileTypeFilter=seller',
               'the block\'s URL');
--- request
GET /api/items?account=amzn1.account.a1
--- more_headers
X-Owner: alice
--- response_body_like
(?mi)^Amazon-Advertising-API-Scope: 43311111111\r$
--- no_error_log
[error]

=== TEST 14: a lookup value in api_base_url and in a kept param's header: $oauth_api_base_url and $oauth_param_cloud_id
--- http_config
    oauth_provider atl {
        preset atlassian;
        client_id cid-atlassian;
        client_secret cs;
        redirect_uri http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkatl/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkatl/token;
        userinfo_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkatl/userinfo;
        lookup cloud_id http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkatl/oauth/token/accessible-resources 0.id;
        api_base_url "http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkatl/api/ex/jira/{cloud_id}";
        api_header X-Site "site {cloud_id} of {client_id}";
    }
--- config
    location /api/ {
        oauth_token atl;
        proxy_set_header X-Base $oauth_api_base_url;
        proxy_set_header X-Cloud $oauth_param_cloud_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/lkatl/api/;
    }
--- init
OAuthKit::connect_ok(owner => 'alice', provider => 'atl', code => 'a1');
--- request
GET /api/items
--- more_headers
X-Owner: alice
--- response_body_like
(?ms)^X-Base: http://127\.0\.0\.1:\d+/lkatl/api/ex/jira/1324a887-45db-1bf4-1e99-ef0ff456d4a1\r$.*^X-Cloud: 1324a887-45db-1bf4-1e99-ef0ff456d4a1\r$.*^X-Site: site 1324a887-45db-1bf4-1e99-ef0ff456d4a1 of cid-atlassian\r$
--- no_error_log
[error]

=== TEST 15: nginx -t: an api_header may not name the client secret
--- http_config
    oauth_provider p {
        preset amazon-ads;
        client_id c;
        client_secret s;
        redirect_uri https://app.example/callback;
        api_header X-Leak "{client_secret}";
    }
--- config
--- must_die
--- error_log
"api_header" value "{client_secret}" uses "{client_secret}": a header may name only client_id and kept params

=== TEST 16: nginx -t: nor a token
--- http_config
    oauth_provider p {
        preset atlassian;
        client_id c;
        redirect_uri https://app.example/callback;
        api_header X-Leak "Bearer {access_token}";
    }
--- config
--- must_die
--- error_log
uses "{access_token}": a header may name only client_id and kept params

=== TEST 17: nginx -t: a lookup's header may not name the refresh token
--- http_config
    oauth_provider p {
        preset supabase;
        client_id c;
        redirect_uri https://app.example/callback;
        lookup x https://api.example.com/x id "header=X-R:{refresh_token}";
    }
--- config
--- must_die
--- error_log
"lookup" value "{refresh_token}" uses "{refresh_token}"

=== TEST 18: nginx -t: a lookup URL whose host a callback value picks is refused
--- http_config
    oauth_provider p {
        preset supabase;
        client_id c;
        redirect_uri https://app.example/callback;
        keep_callback_param region;
        lookup x "https://{region}.example.com/x" id;
    }
--- config
--- must_die
--- error_log
"lookup" uses "{region}" in the host

=== TEST 19: nginx -t: a lookup URL is an endpoint: https only (or http to loopback)
--- http_config
    oauth_provider p {
        preset supabase;
        client_id c;
        redirect_uri https://app.example/callback;
        lookup x http://api.example.com/x id;
    }
--- config
--- must_die
--- error_log
invalid URL "http://api.example.com/x" of "lookup x"

=== TEST 20: nginx -t: "lookup NAME off" drops the preset's line, and an api_header naming it is refused
--- http_config
    oauth_provider p {
        preset amazon-ads;
        client_id c;
        redirect_uri https://app.example/callback;
        lookup profile_id off;
    }
--- config
--- must_die
--- error_log
"api_header" value "{profile_id}" uses "{profile_id}"

=== TEST 21: nginx -t: at most 4 api_header lines
--- http_config
    oauth_provider p {
        preset amazon-ads;
        client_id c;
        redirect_uri https://app.example/callback;
        api_header A a;
        api_header B b;
        api_header C c;
    }
--- config
--- must_die
--- error_log
at most 4 "api_header" lines

=== TEST 22: nginx -t: an api_header may not be a framing header (Host, Content-Length, ...), which proxy_pass sets
--- http_config
    oauth_provider p {
        preset amazon-ads;
        client_id c;
        redirect_uri https://app.example/callback;
        api_header host evil.example;
    }
--- config
--- must_die
--- error_log
invalid "api_header host"

=== TEST 23: amazon-ads: a profile the start was given (a connection_param of that name) stands: no lookup
--- http_config
        connection_param profile_id "pattern=^[0-9]{1,20}$";
--- init
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'amz',
                               code => 'a1', start_args => 'profile_id=777');
Test::More::is($r->{status}, 'connected', 'connected');
Test::More::is(OAuthKit::fake()->count('lookup'), 0, 'nothing looked up');
my ($c) = @{ OAuthKit::connections('alice') };
Test::More::is($c->{params}{profile_id}, '777', 'the chosen profile kept');
--- request
GET /api/items?account=amzn1.account.a1
--- more_headers
X-Owner: alice
--- response_body_like
(?mi)^Amazon-Advertising-API-Scope: 777\r$
--- no_error_log
[error]

=== TEST 24: nginx -t: a lookup's header may not be one the module sets (the token's)
--- http_config
    oauth_provider p {
        preset atlassian;
        client_id c;
        redirect_uri https://app.example/callback;
        lookup x https://api.example.com/x id "header=authorization:Basic {client_id}";
    }
--- config
--- must_die
--- error_log
"lookup x" cannot set "authorization": the module sets it
