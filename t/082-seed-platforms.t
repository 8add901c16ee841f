# Each seed platform of issue 10 end to end with its real preset, the
# endpoints pointed at the fake provider's "seed" scenario (below), which
# answers the way the platform's documentation says: the token answer's
# shape, where the account is named, the client authentication it
# accepts (anything else is refused with invalid_client), the refresh
# grant and the revocation.  One block per platform, generated from
# %T::P: two accounts of one owner are connected and stay apart, the
# injected header at the upstream is what the platform's API takes, a
# refresh replaces the token (or is refused where the platform has
# none), and disconnect reaches the platform's revocation in its
# documented form (or nothing is sent where the preset has none).
#
# t/080-platforms.t proves other steps of some of these platforms in full
# (SP-API's code parameter, Walmart's authorization URL and token headers,
# QuickBooks' and Stripe's and Dropbox's and GitHub's revocations, TikTok's
# client_key, Reddit's User-Agent, Shopify's hmac): here those platforms
# run only the steps 080 does not ("skip" in the table says which).
#
# Amazon Ads', Atlassian's and Supabase's post-connect lookups are in
# t/084-lookups.t.  Not here, because the module lacks what they need:
# AWS keys (SigV4).  Bing Webmaster (no identity: one connection per
# owner), Zoho's data centres and Facebook's exchange are in
# t/086-install-flows.t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

package T;

use JSON::PP ();
use MIME::Base64 qw(decode_base64);

our $Catalog = do {
    my $file = "$FindBin::Bin/../ngx_oauth_module/providers.json";
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    JSON::PP->new->decode(<$fh>);
};

# The table.  Keys:
#   preset     the catalog entry
#   auth       the client authentication the platform's token endpoint
#              takes: basic or post (the fake refuses the other);
#              auth_refresh: another one for the refresh grant
#   id_param   the client id's parameter name (post), default client_id
#   pkce       the preset sends a code_verifier
#   rotate     the platform answers a refresh with a new refresh token
#   tok        extra fields of the token answer ({a} is the account's code)
#   shape      "slack": Slack's oauth.v2.access answer (ok, team)
#   ui         the userinfo answer for the token's account ({a})
#   account    the account the module must find, from code {a}
#   codes      the two accounts' codes
#   cb         extra callback parameters ({a})
#   code_param the callback's name of the code
#   start      start parameters ({a})
#   authz      authorization URL parameters the preset must send
#   token_form fields every token request must carry
#   encoding   json: the token endpoint takes only a JSON body (the fake
#              refuses a form), else only a form
#   api        headers the upstream must get beside the token
#   header     [name, prefix] of the injected token at the upstream
#   refresh    1: refresh_token grant; 0: none (400 not_refreshable)
#   revoke     undef: the preset has no revocation; else { auth =>
#              post|basic|bearer|secret, body => form|json|null, method }
#   extra      more lines for the provider block
#   skip       steps proven in t/080-platforms.t: revoke
#   note       the block's title

my @Google = (
    auth => 'post', pkce => 1, rotate => 0,
    ui => { sub => '{a}', email => '{a}@example.com' },
    account => '{a}',
    authz => { access_type => 'offline', prompt => 'consent' },
    header => [ 'Authorization', 'Bearer ' ], refresh => 1,
    revoke => { auth => 'post', body => 'form' },
);

our %P = (
    'google-drive' => { @Google, scope => 'https://www.googleapis.com/auth/drive.file' },
    'google-sheets' => { @Google, scope => 'https://www.googleapis.com/auth/spreadsheets' },
    'google-bigquery' => { @Google, scope => 'https://www.googleapis.com/auth/bigquery' },
    'google-cloud-platform' => { @Google, scope => 'https://www.googleapis.com/auth/cloud-platform' },
    'google-search-console' => { @Google, scope => 'https://www.googleapis.com/auth/webmasters.readonly' },

    hubspot => {
        auth => 'post', pkce => 1, rotate => 0,
        ui => { portalId => '{a}', uiDomain => 'app.hubspot.com' },
        account => '{a}', codes => [ '4001', '4002' ],
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'post', body => 'form' },
    },

    gohighlevel => {
        auth => 'post', pkce => 0, rotate => 1,
        tok => { userType => 'Location', locationId => 'loc-{a}',
                 companyId => 'comp-1' },
        account => 'loc-{a}',
        token_form => { user_type => 'Location' },
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => undef,
    },

    dropbox => {
        auth => 'basic', pkce => 1, rotate => 0,
        tok => { account_id => 'dbid:{a}', uid => '{a}' },
        account => 'dbid:{a}',
        authz => { token_access_type => 'offline' },
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'bearer', body => 'null' }, skip => 'revoke',
    },

    box => {
        auth => 'post', pkce => 0, rotate => 1,
        ui => { type => 'user', id => '{a}', login => '{a}@example.com' },
        account => '{a}', codes => [ '11446498', '11446499' ],
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'post', body => 'form' },
    },

    quickbooks => {
        auth => 'basic', pkce => 0, rotate => 1,
        tok => { x_refresh_token_expires_in => 8726400 },
        ui => { sub => 'intuit-user', email => 'u@example.com' },
        # a realmId is a company number: the preset keeps digits only
        account => '{a}', cb => { realmId => '{a}' },
        codes => [ '9130355', '9130356' ],
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'basic', body => 'json' }, skip => 'revoke',
    },

    shopify => {
        auth => 'post', pkce => 0, rotate => 1,
        tok => { refresh_token_expires_in => 7776000 },
        ui => { shop => { myshopify_domain => '{a}.myshopify.com',
                          name => 'Shop {a}' } },
        account => '{a}.myshopify.com', start => { shop => '{a}' },
        cb => { shop => '{a}.myshopify.com', timestamp => '1700000000' },
        sign => 1, token_form => { expiring => '1' },
        header => [ 'X-Shopify-Access-Token', '' ], refresh => 1,
        revoke => undef,
    },

    # Keap's documentation: the client credentials in the body for the
    # code exchange, in Basic for the refresh (refresh_token_auth)
    keap => {
        auth => 'post', auth_refresh => 'basic', pkce => 0, rotate => 1,
        ui => { global_user_id => '{a}', email => '{a}@example.com' },
        account => '{a}', codes => [ '31', '32' ],
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => undef,
    },

    stripe => {
        auth => 'post', pkce => 0, rotate => 0,
        tok => { stripe_user_id => 'acct_{a}', livemode => JSON::PP::false,
                 stripe_publishable_key => 'pk_test_{a}' },
        ui => { id => 'acct_{a}', email => '{a}@example.com' },
        no_refresh_token => 1, no_expiry => 1,
        account => 'acct_{a}',
        header => [ 'Authorization', 'Bearer ' ], refresh => 0,
        revoke => { auth => 'secret', body => 'form' }, skip => 'revoke',
    },

    tiktok => {
        auth => 'post', id_param => 'client_key', pkce => 0, rotate => 1,
        tok => { open_id => '{a}', refresh_expires_in => 31536000 },
        ui => { data => { user => { open_id => '{a}',
                                    display_name => 'User {a}' } },
                error => { code => 'ok' } },
        account => '{a}',
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'post', body => 'form' }, skip => 'revoke',
    },

    reddit => {
        auth => 'basic', pkce => 0, rotate => 0,
        ui => { id => '{a}', name => 'user_{a}' },
        account => '{a}',
        authz => { duration => 'permanent' },
        extra => "user_agent \"web:app.example:v1 (by /u/ops)\";",
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'basic', body => 'form' },
    },

    slack => {
        auth => 'post', pkce => 0, rotate => 1, shape => 'slack',
        ui => { ok => JSON::PP::true, team_id => 'T{a}', team => 'Team {a}',
                user_id => 'U1', url => 'https://t.slack.com/' },
        account => 'T{a}',
        extra => 'scope chat:write;',
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'post', body => 'form' },
    },

    # Notion's documentation: Basic, and JSON bodies at the token endpoint;
    # the workspace comes in the token answer; API calls need a version
    notion => {
        auth => 'basic', pkce => 0, rotate => 1, encoding => 'json',
        tok => { workspace_id => 'ws-{a}', workspace_name => 'Space {a}',
                 bot_id => 'bot-{a}', owner => { type => 'user' } },
        account => 'ws-{a}',
        authz => { owner => 'user' },
        api => { 'Notion-Version' => '2022-06-28' },
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'basic', body => 'json' },
    },

    github => {
        auth => 'post', pkce => 1, rotate => 0,
        ui => { id => '{a}', login => 'octo-{a}' },
        no_refresh_token => 1, no_expiry => 1, accept_json => 1,
        account => '{a}', codes => [ '583231', '583232' ],
        header => [ 'Authorization', 'Bearer ' ], refresh => 0,
        revoke => { auth => 'basic', body => 'json', method => 'DELETE' },
        skip => 'revoke',
    },

    vercel => {
        auth => 'basic', pkce => 1, rotate => 1,
        ui => { sub => '{a}', email => '{a}@example.com' },
        account => '{a}',
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => { auth => 'basic', body => 'form' },
    },

    netlify => {
        auth => 'post', pkce => 0, rotate => 0,
        ui => { id => '{a}', email => '{a}@example.com' },
        no_refresh_token => 1, no_expiry => 1,
        account => '{a}',
        header => [ 'Authorization', 'Bearer ' ], refresh => 0,
        revoke => undef,
    },

    supabase => {
        auth => 'basic', pkce => 1, rotate => 1,
        ui => [ { id => 'org-{a}', name => 'Org {a}' } ],
        account => 'org-{a}',
        # the project lookup runs in t/084-lookups.t
        extra => 'lookup project_ref off;',
        header => [ 'Authorization', 'Bearer ' ], refresh => 1,
        revoke => undef,
    },

    'amazon-sp-api' => {
        auth => 'post', pkce => 0, rotate => 0,
        account => 'A{a}', code_param => 'spapi_oauth_code',
        cb => { selling_partner_id => 'A{a}' },
        extra => 'authorization_param application_id amzn1.sp.solution.x;',
        authz => { application_id => 'amzn1.sp.solution.x' },
        header => [ 'x-amz-access-token', '' ], refresh => 1,
        revoke => undef,
    },

    walmart => {
        auth => 'basic', pkce => 0, rotate => 0,
        account => '{a}', codes => [ '10001', '10002' ], authz_id => 'clientId',
        cb => { sellerId => '{a}', type => 'auth' },
        header => [ 'WM_SEC.ACCESS_TOKEN', '' ], refresh => 1,
        revoke => undef,
    },

    'wordpress-com' => {
        auth => 'post', pkce => 0, rotate => 0,
        tok => { blog_id => '9{a}', blog_url => 'https://{a}.wordpress.com',
                 token_type => 'bearer' },
        ui => { ID => '7', username => 'wpuser' },
        no_refresh_token => 1, no_expiry => 1,
        account => '9{a}', codes => [ '11', '12' ],
        header => [ 'Authorization', 'Bearer ' ], refresh => 0,
        revoke => undef,
    },
);

sub fake { OAuthKit::fake() }

sub fill {
    my ($v, $a) = @_;
    return [ map { fill($_, $a) } @$v ] if ref $v eq 'ARRAY';
    return { map { ($_ => fill($v->{$_}, $a)) } keys %$v } if ref $v eq 'HASH';
    return $v if ref $v || !defined $v;
    (my $s = $v) =~ s/\{a\}/$a/g;
    return $s;
}

sub pname { (my $n = shift) =~ tr/-/_/; return "p_$n" }

#--------------------------------------------------------------------------
# The fake's "seed" scenario: scripted by the knob "seed" (the table's
# entry), counted as seed_code, seed_refresh, seed_revoke, seed_bad_auth
#--------------------------------------------------------------------------

sub _client_ok {
    my ($cfg, $req) = @_;
    my $f = $req->{form} // {};
    my $auth = FakeProvider::header($req, 'authorization') // '';
    my $how = ($f->{grant_type} // '') eq 'refresh_token'
              ? $cfg->{auth_refresh} // $cfg->{auth} : $cfg->{auth};
    my $idp = $cfg->{id_param} // 'client_id';
    my $cid = "cid-$cfg->{preset}";
    my $cs = "csecret-$cfg->{preset}";
    if ($how eq 'basic') {
        return 0 unless $auth =~ /^Basic (\S+)$/;
        return 0 if defined $f->{client_secret};
        return decode_base64($1) eq "$cid:$cs";
    }
    return 0 if $auth =~ /^Basic /;
    return ($f->{$idp} // '') eq $cid && ($f->{client_secret} // '') eq $cs;
}

sub _token {
    my ($st, $req) = @_;
    my $cfg = $st->{seed};
    my $f = $req->{form} // {};
    my $gt = $f->{grant_type} // '';

    unless (_client_ok($cfg, $req)) {
        $st->{counts}{seed_bad_auth}++;
        return FakeProvider::reply(401, json => { error => 'invalid_client' });
    }
    if (!!$req->{json} != (($cfg->{encoding} // 'form') eq 'json')) {
        return FakeProvider::reply(400, json => { error => 'invalid_request',
                                                  error_description => 'encoding' });
    }
    for my $k (sort keys %{ $cfg->{token_form} // {} }) {
        return FakeProvider::reply(400, json => { error => 'invalid_request',
                                                  error_description => $k })
            unless ($f->{$k} // '') eq $cfg->{token_form}{$k};
    }
    if ($cfg->{accept_json}
        && (FakeProvider::header($req, 'accept') // '') !~ m{application/json})
    {
        # GitHub answers form-encoded unless asked for JSON
        return FakeProvider::reply(200, type => 'application/x-www-form-urlencoded',
                                   body => 'access_token=form&token_type=bearer');
    }

    my $r = FakeProvider::default_token($st, $req);
    return $r unless $r->{status} == 200;
    $st->{counts}{ $gt eq 'refresh_token' ? 'seed_refresh' : 'seed_code' }++;

    my $j = JSON::PP->new->decode($r->{body});
    my $a = $gt eq 'authorization_code'
            ? $f->{code}
            : $st->{refresh_tokens}{ $f->{refresh_token} }{account};
    delete $j->{user};
    delete $j->{refresh_token} if $cfg->{no_refresh_token};
    delete $j->{expires_in} if $cfg->{no_expiry};
    my $extra = fill($cfg->{tok} // {}, $a);
    @$j{ keys %$extra } = values %$extra;
    if (($cfg->{shape} // '') eq 'slack') {
        $j = { ok => JSON::PP::true, app_id => 'A0', token_type => 'bot',
               bot_user_id => 'UBOT', team => { id => "T$a", name => 'Team' },
               authed_user => { id => 'U1' },
               map { ($_ => $j->{$_}) }
               grep { exists $j->{$_} }
               qw(access_token refresh_token expires_in scope) };
    }
    return FakeProvider::reply(200, json => $j);
}

sub _token_of {
    my ($st, $req) = @_;
    my $h = FakeProvider::header($req, 'authorization') // '';
    my $t = $h =~ /^Bearer (\S+)$/ ? $1
          : FakeProvider::header($req, 'x-shopify-access-token');
    my $at = defined $t ? $st->{access_tokens}{$t} : undef;
    return $at && !$st->{revoked}{ $at->{grant} } ? $at : undef;
}

FakeProvider::scenario(seed =>
    token => \&_token,
    userinfo => sub {
        my ($st, $req) = @_;
        $st->{counts}{seed_userinfo}++;
        my $at = _token_of($st, $req)
            or return FakeProvider::reply(401, json => { error => 'invalid_token' });
        return FakeProvider::reply(200, json => fill($st->{seed}{ui}, $at->{account}));
    },
    revoke => sub {
        my ($st, $req) = @_;
        $st->{counts}{seed_revoke}++;
        my @t = (_bearer_raw($req), ($req->{form} // {})->{token});
        my $b = eval { JSON::PP->new->decode($req->{body}) };
        push @t, $b->{token}, $b->{access_token} if ref $b eq 'HASH';
        for my $t (grep { defined } @t) {
            my $r = $st->{access_tokens}{$t} // $st->{refresh_tokens}{$t};
            $st->{revoked}{ $r->{grant} } = 1 if $r;
        }
        return FakeProvider::reply(200, json => $st->{seed}{shape}
                                   ? { ok => JSON::PP::true, revoked => JSON::PP::true }
                                   : {});
    },
    api => sub { $_[0]{counts}{seed_api}++;
                 FakeProvider::reply(200, body => $_[1]{head}) },
);

sub _bearer_raw {
    my $h = FakeProvider::header(shift, 'authorization') // '';
    return $h =~ /^Bearer (\S+)$/ ? $1 : undef;
}

#--------------------------------------------------------------------------
# The blocks
#--------------------------------------------------------------------------

sub http_config {
    my $key = shift;
    my $p = $P{$key};
    my $e = $Catalog->{$key} or die "no preset $key";
    my $f = 'http://127.0.0.1:$TEST_NGINX_FAKE_PORT/seed';
    my $n = pname($key);
    my $c = "    oauth_background_refresh off;\n"
          . "    oauth_provider $n {\n"
          . "        preset $key;\n"
          . "        client_id cid-$key;\n"
          . "        client_secret csecret-$key;\n"
          . "        redirect_uri http://localhost:\$TEST_NGINX_SERVER_PORT/callback;\n"
          . "        authorization_url $f/authorize;\n"
          . "        token_url $f/token;\n";
    $c .= "        userinfo_url $f/userinfo;\n" if $e->{userinfo_url};
    if ($e->{revocation_url}) {
        my $path = $e->{revocation_url} =~ /\{client_id\}/
                   ? '/revoke/applications/{client_id}/grant' : '/revoke';
        $c .= "        revocation_url \"$f$path\";\n";
    }
    $c .= "        $p->{extra}\n" if $p->{extra};
    return "$c    }\n";
}

sub config {
    my $n = pname(shift);
    return <<"_EOC_";
    location /api/ {
        oauth_token $n account=\$arg_account;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/seed/api/;
    }
_EOC_
}

sub esc { OAuthKit::url_escape(shift) }

sub qparams {
    my ($q) = (shift // '') =~ /\?(.*)$/;
    my %p;
    for (split /&/, $q // '') {
        my ($k, $v) = map { my $s = $_ // ''; $s =~ tr/+/ /;
                            $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $s }
                      split /=/, $_, 2;
        $p{$k} = $v;
    }
    return \%p;
}

sub shopify_sign {
    my ($q, $secret) = @_;
    require Digest::SHA;
    my %p = %{ qparams("?$q") };
    my $msg = join '&', map { "$_=$p{$_}" } sort keys %p;
    return "$q&hmac=" . Digest::SHA::hmac_sha256_hex($msg, $secret);
}

# start and callback like a browser: { start (query of the authorization
# URL), result, account, error }
sub connect {
    my ($key, $owner, $code) = @_;
    my $p = $P{$key};
    my $n = pname($key);
    my $sp = fill($p->{start} // {}, $code);
    my $sq = join '&', map { "$_=" . esc($sp->{$_}) } sort keys %$sp;
    my $r = OAuthKit::request('GET', "/connect/$n" . ($sq ? "?$sq" : ''),
                              owner => $owner);
    my $start = qparams($r->{headers}{location});
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($cookie) = $sc =~ /^([^;]+)/;
    return { result => "start $r->{status}" } unless $start->{state};

    my %cb = (%{ fill($p->{cb} // {}, $code) },
              ($p->{code_param} // 'code') => $code,
              state => $start->{state});
    my $q = join '&', map { "$_=" . esc($cb{$_}) } sort keys %cb;
    $q = shopify_sign($q, "csecret-$key") if $p->{sign};
    $r = OAuthKit::request('GET', "/callback?$q", owner => $owner,
                           headers => { Cookie => $cookie });
    my $res = qparams($r->{headers}{location});
    return { start => $start, result => $res->{oauth_status} // '',
             account => $res->{oauth_account}, error => $res->{oauth_error} };
}

# the upstream's view of a request for one account: the injected header
sub injected {
    my ($key, $owner, $account) = @_;
    my $p = $P{$key};
    my $r = OAuthKit::request('GET', '/api/items?account=' . esc($account),
                              owner => $owner);
    return "status $r->{status}" unless $r->{status} == 200;
    my ($name, $prefix) = @{ $p->{header} };
    my ($v) = $r->{content} =~ /^\Q$name\E: (.*?)\r?$/mi;
    return 'no header' unless defined $v;
    return 'prefix' unless $v =~ s/^\Q$prefix\E//;
    return $v;
}

sub run {
    my $key = shift;
    my $p = { %{ $P{$key} }, preset => $key };
    my $n = pname($key);
    my $e = $Catalog->{$key};
    my $fake = fake();
    my ($ok, $is, $like) = (\&Test::More::ok, \&Test::More::is, \&Test::More::like);
    my %skip = map { $_ => 1 } split ' ', $p->{skip} // '';

    $fake->reset(rotate => $p->{rotate}, seed => $p);

    # two accounts of one owner
    my @codes = @{ $p->{codes} // [ 'a1', 'b2' ] };
    my @acc = map { fill($p->{account}, $_) } @codes;
    my %tok;
    for my $i (0, 1) {
        my $c = T::connect($key, 'alice', $codes[$i]);
        $is->($c->{result}, 'connected', "$key: account $i connects")
            or Test::More::diag(join ', ', map { "$_=" . ($c->{$_} // '') }
                                           grep { !ref $c->{$_} } sort keys %$c);
        $is->($c->{account}, $acc[$i], "$key: the account is $acc[$i]");
        next if $i;

        my $q = $c->{start} // {};
        my $idp = $p->{authz_id} // $p->{id_param} // 'client_id';
        $is->($q->{$idp}, "cid-$key", "$key: $idp in the authorization URL");
        $ok->(exists $q->{code_challenge} == !!$p->{pkce},
              "$key: PKCE " . ($p->{pkce} ? 'sent' : 'not sent'));
        $is->($q->{$_}, $p->{authz}{$_}, "$key: $_ at the authorization URL")
            for sort keys %{ $p->{authz} // {} };
        $ok->(index(" $q->{scope} ", " $p->{scope} ") >= 0,
              "$key: scope $p->{scope}") if $p->{scope};

        my ($t) = $fake->requests(path => '/seed/token',
                                  grant_type => 'authorization_code');
        $is->($t->{form}{code}, $codes[0], "$key: the code at the token endpoint");
        $like->($t->{form}{redirect_uri} // '', qr{/callback$}, "$key: redirect_uri");
        $ok->(defined $t->{form}{code_verifier} == !!$p->{pkce},
              "$key: code_verifier matches PKCE");
    }
    $is->($fake->count('seed_bad_auth'), 0,
          "$key: client authentication as the platform takes it ($p->{auth})");
    $is->($fake->count('seed_code'), 2, "$key: two code exchanges");
    my @c = sort map { $_->{account} }
            @{ OAuthKit::connections('alice', "provider=$n") };
    $is->("@c", join(' ', sort @acc), "$key: both accounts are listed");
    $is->(scalar @{ OAuthKit::connections('bob', "provider=$n") }, 0,
          "$key: not another owner's");

    # injection: each account its own token, as the platform's API takes it
    my @at = map { injected($key, 'alice', $_) } @acc;
    for my $h (sort keys %{ $p->{api} // {} }) {
        my $r = OAuthKit::request('GET', '/api/items?account=' . esc($acc[0]),
                                  owner => 'alice');
        $like->($r->{content}, qr/^\Q$h: $p->{api}{$h}\E\r?$/mi,
                "$key: the API also gets $h");
    }
    $like->($at[$_], qr/^at-\d+-\Q$codes[$_]\E$/,
            "$key: $p->{header}[0] carries account ${_}'s token") for 0, 1;

    # refresh
    my $s = OAuthKit::api('POST', "connections/$n/$acc[0]/refresh",
                          owner => 'alice');
    if ($p->{refresh}) {
        $is->($s->{status}, 200, "$key: refreshed");
        my ($r) = $fake->requests(path => '/seed/token', grant_type => 'refresh_token');
        $like->($r->{form}{refresh_token} // '', qr/^rt-\d+-\Q$codes[0]\E$/,
                "$key: with account 0's refresh token");
        $is->($fake->count('seed_refresh'), 1, "$key: accepted once");
        my $new = injected($key, 'alice', $acc[0]);
        $like->($new, qr/^at-\d+-\Q$codes[0]\E$/, "$key: a token after the refresh");
        $ok->($new ne $at[0], "$key: the refresh replaced the token");
        $is->(injected($key, 'alice', $acc[1]), $at[1],
              "$key: account 1's token is untouched");
        $at[0] = $new;
    }
    else {
        $is->($s->{status}, 400, "$key: no refresh (the platform has none)");
        $is->($fake->count('refresh'), 0, "$key: nothing sent");
    }
    $is->($fake->count('seed_bad_auth'), 0, "$key: client authentication on refresh");

    # disconnect account 0
    my $d = OAuthKit::api('DELETE', "connections/$n/$acc[0]", owner => 'alice');
    $is->($d->{status}, 200, "$key: disconnected");
    my @rv = $fake->requests(path => qr{^/seed/revoke});
    if (!$p->{revoke}) {
        $ok->(!$e->{revocation_url}, "$key: the preset has no revocation");
        $ok->(!$d->{json}{revoked}, "$key: not revoked");
        $is->(scalar @rv, 0, "$key: nothing sent");
    }
    elsif (!$skip{revoke}) {
        my $v = $p->{revoke};
        $ok->($d->{json}{revoked}, "$key: revoked at the platform");
        $ok->(scalar @rv, "$key: the revocation endpoint was called");
        for my $r (@rv) {
            $is->($r->{method}, $v->{method} // 'POST', "$key: revocation method");
            my $tok = $r->{form}{token} // '';
            $like->($tok, qr/^[ar]t-\d+-\Q$codes[0]\E$/,
                    "$key: account 0's token, no other") if $v->{body} eq 'form';
            my $au = FakeProvider::header($r, 'authorization') // '';
            if ($v->{auth} eq 'basic') {
                $is->($au =~ /^Basic (\S+)$/ ? decode_base64($1) : '',
                      "cid-$key:csecret-$key", "$key: Basic client auth");
            }
            elsif ($v->{auth} eq 'post') {
                my $idp = $p->{id_param} // 'client_id';
                $is->("$r->{form}{$idp}:$r->{form}{client_secret}",
                      "cid-$key:csecret-$key", "$key: client credentials in the body");
            }
        }
        $like->(injected($key, 'alice', $acc[0]), qr/^status 4\d\d$/,
                "$key: account 0 is gone");
    }
    $is->(injected($key, 'alice', $acc[1]), $at[1], "$key: account 1 stays");
}

sub block {
    my $block = shift;
    my ($key) = $block->name =~ /^(?:TEST \d+: )?([a-z0-9-]+):/;
    my $p = $P{$key // ''} or die 'no platform in "' . $block->name . '"';
    my $code = ($p->{codes} // [ 'a1', 'b2' ])->[1];
    my $acc = fill($p->{account}, $code);
    my ($name, $prefix) = @{ $p->{header} };
    $block->set_value(http_config => http_config($key));
    $block->set_value(config => config($key));
    $block->set_value(init => "T::run('$key');");
    $block->set_value(request => 'GET /api/items?account=' . esc($acc));
    $block->set_value(more_headers => 'X-Owner: alice');
    $block->set_value(response_body_like =>
        '(?mi)^' . quotemeta("$name: $prefix") . 'at-\d+-' . quotemeta($code)
        . '\r$');
    OAuthKit::demo_defaults($block);
}

package main;

add_block_preprocessor(\&T::block);

run_tests();

__DATA__

=== TEST 1: google-drive: two Google accounts, Bearer, a refresh without rotation, RFC 7009 revocation
--- request
GET /

=== TEST 2: google-sheets: as Drive, with the Sheets scope
--- request
GET /

=== TEST 3: google-bigquery: as Drive, with the BigQuery scope
--- request
GET /

=== TEST 4: google-cloud-platform: as Drive, with the cloud-platform scope
--- request
GET /

=== TEST 5: google-search-console: as Drive, with the Search Console scope
--- request
GET /

=== TEST 6: hubspot: two portals (portalId), Bearer, refresh, revocation
--- request
GET /

=== TEST 7: gohighlevel: two locations (locationId from the token answer), user_type on every token request, rotating refresh, no revocation
--- request
GET /

=== TEST 8: dropbox: two accounts (account_id from the token answer), Basic at the token endpoint, refresh (revocation: 080)
--- request
GET /

=== TEST 9: box: two users, client credentials in the body, rotating refresh, RFC 7009 revocation with them
--- request
GET /

=== TEST 10: quickbooks: Bearer on each company, Basic refresh with rotation (two companies and revocation: 080)
--- request
GET /

=== TEST 11: shopify: X-Shopify-Access-Token per shop, expiring offline tokens refreshed, no revocation (hmac: 080)
--- request
GET /

=== TEST 12: stripe: two connected accounts, Bearer, tokens that do not expire (deauthorize: 080)
--- request
GET /

=== TEST 13: tiktok: two accounts (open_id), rotating refresh with client_key (client_key at revocation: 080)
--- request
GET /

=== TEST 14: reddit: two accounts, Basic, refresh, revocation with Basic
--- request
GET /

=== TEST 15: slack: two workspaces (team id), the bot token as Bearer, rotating refresh, auth.revoke
--- request
GET /

=== TEST 16: github: two accounts, Accept: application/json at the token endpoint, tokens that do not expire (grant deletion: 080)
--- request
GET /

=== TEST 17: vercel: two accounts (sub), Basic, rotating refresh, revocation with Basic
--- request
GET /

=== TEST 18: netlify: two accounts, tokens that do not expire, no revocation
--- request
GET /

=== TEST 19: supabase: two organizations, Basic, rotating refresh, no revocation
--- request
GET /

=== TEST 20: amazon-sp-api: x-amz-access-token per seller, refresh, no revocation (the code parameter: 080)
--- request
GET /

=== TEST 21: walmart: two sellers apart, WM_SEC.ACCESS_TOKEN, no revocation (token headers and refresh: 080)
--- request
GET /

=== TEST 22: wordpress-com: two blogs (blog_id), tokens that do not expire, no revocation
--- request
GET /

=== TEST 23: keap: two users (global_user_id), client credentials in the body for the code, Basic for the rotating refresh
--- request
GET /

=== TEST 24: notion: two workspaces (workspace_id from the token answer), Basic and JSON token requests (a form is refused), the Notion-Version header, rotating refresh, revocation with a JSON body
--- request
GET /
