package ApiTest;

# Helpers for the management API suites (t/04*.t).
#
#   * a keyring (mode 0600) in a private temporary directory, and for every
#     block a fresh store, audit log and recorder log: fresh_block() is a
#     block preprocessor (add_block_preprocessor(\&ApiTest::fresh_block));
#   * the shared fixture: providers of every kind plus a fake provider that
#     the same nginx serves on $TEST_NGINX_RAND_PORT_1.  A block without
#     "--- http_config" gets it; a block whose http_config has no
#     "oauth_store" gets it prepended; a block with its own oauth_store is
#     left alone.  A block without "--- config" gets default_config();
#   * a raw HTTP client (request(), api()) that sends exactly what the test
#     says: no default Content-Type, chunked bodies, repeated headers;
#   * the browser side of a connect flow (connect_oauth()): start, read the
#     state from the redirect and the flow cookie, then call back with both;
#   * readers for the audit log, the fake's request log and the metrics.
#
# The providers: fake (OAuth, every endpoint, connection_param region),
# refuser (refresh refused, revocation 500, token_auth post), slowrev
# (revocation times out), lazyrev (revocation takes 0.3 s), down (refresh
# 503), keys and vkeys (api_key in X-Api-Key; vkeys verified at
# /keycheck), basicp (basic), hdr (header in X-Auth-Token) and hdr13
# (header in X-Custom-Auth).
#
# The fake provider (all of it is plain nginx plus the echo module):
#
#   /token          code grant: access "AT-<code>", refresh "RT-<code>",
#                   expires_in 3600; refresh grant with "RT-<x>": access
#                   "AT2-<x>", refresh "RT-<x>", expires_in 7200
#   /refuse/token   as /token, but a refresh is refused (400 invalid_grant)
#   /down/token     as /token, but a refresh gets 503
#   /short/token    access "AT-short" for account "user_id" s1, expiring in
#                   1 s, no refresh token
#   /revoke         200; /revoke500 500; /revoke_lazy 200 after 0.3 s;
#                   /revoke_slow answers after 3 s (oauth_http_timeout is 1s)
#   /userinfo       {"sub":"<x>","name":"User <x>"} for "Bearer AT-<x>" or
#                   "Bearer AT2-<x>"; 401 while flag "userinfo_down" is set
#   /keycheck       200 {"id":"checked"} for an X-Api-Key starting "good-",
#                   else 401; 401 while flag "keycheck_down" is set
#   /echo/...       shows the credential headers it received
#
# Every request to the fake is logged, one line each, to the recorder log:
# "<uri>|<Authorization>|<body>" (rec_lines()).

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
    request api send_and_close connect_oauth audit_lines rec_lines
    set_flag clear_flag metrics_text metrics_parse metric json_body b64
    oauth_dir store_path audit_path rec_path $TIME_RE
);

our $TIME_RE = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\z/;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

#--------------------------------------------------------------------------
# Keyring and per-block files
#--------------------------------------------------------------------------

my $Dir = tempdir('oauth-api-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0700, $Dir;

our $KeyB64;
{
    open my $rnd, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($rnd, my $key, 32) == 32 or die "short read from /dev/urandom";
    close $rnd;
    $KeyB64 = encode_base64($key, '');

    my $file = "$Dir/keys";
    my $old = umask 077;
    open my $out, '>', $file or die "$file: $!";
    print $out "k1:$KeyB64\n";
    close $out;
    umask $old;
    chmod 0600, $file;
}

$ENV{TEST_NGINX_OAUTH_DIR}  = $Dir;
$ENV{TEST_NGINX_OAUTH_KEYS} = "$Dir/keys";

# A second listener the Perl side must reach (the runner does not publish
# $TEST_NGINX_RAND_PORT_N to Perl): a free port, held by no one.
$ENV{TEST_NGINX_API_PORT2} //= do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    $p;
};

my $BlockNo = 0;

sub oauth_dir ()  { $Dir }
sub store_path () { $ENV{TEST_NGINX_OAUTH_STORE} }
sub audit_path () { $ENV{TEST_NGINX_OAUTH_AUDIT} }
sub rec_path ()   { $ENV{TEST_NGINX_OAUTH_REC} }

sub fresh_block {
    my $block = shift;

    $BlockNo++;
    $ENV{TEST_NGINX_OAUTH_STORE} = "$Dir/store-$BlockNo.mdb";
    $ENV{TEST_NGINX_OAUTH_AUDIT} = "$Dir/audit-$BlockNo.log";
    $ENV{TEST_NGINX_OAUTH_REC}   = "$Dir/rec-$BlockNo.log";
    unlink glob("$Dir/flag_*");

    my $http = $block->http_config;
    if (!defined $http) {
        $block->set_value(http_config => fixture());
    }
    elsif ($http !~ /\boauth_store\b/) {
        $block->set_value(http_config => fixture() . $http);
    }

    if (!defined $block->config) {
        $block->set_value(config => default_config());
    }
}

# flags the fake reads with "if (-f ...)"
sub set_flag {
    my $f = "$Dir/flag_$_[0]";
    open my $o, '>', $f or die "$f: $!";
    close $o;
}

sub clear_flag { unlink "$Dir/flag_$_[0]" }

#--------------------------------------------------------------------------
# The fixture
#--------------------------------------------------------------------------

# $TEST_NGINX_* stay literal here: the runner expands them per block.

sub fixture () {
    return <<'_EOC_';
    oauth_store $TEST_NGINX_OAUTH_STORE max_size=16m;
    oauth_key_file $TEST_NGINX_OAUTH_KEYS;
    oauth_audit_log $TEST_NGINX_OAUTH_AUDIT;
    oauth_http_timeout 1s;
    oauth_background_refresh off;
    oauth_circuit_breaker failures=2 reset=60s;

    oauth_provider fake {
        display_name "Fake Platform";
        client_id fake-client;
        client_secret fake-secret;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        revocation_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/revoke;
        userinfo_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id sub;
        account_name name;
        scope read write;
        connection_param region;
    }

    oauth_provider refuser {
        client_id refuser-client;
        client_secret refuser-secret;
        token_auth post;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/refuse/token;
        revocation_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/revoke500;
        userinfo_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id sub;
    }

    oauth_provider slowrev {
        client_id slow-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        revocation_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/revoke_slow;
        userinfo_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id sub;
    }

    oauth_provider lazyrev {
        client_id lazy-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        revocation_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/revoke_lazy;
        userinfo_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id sub;
    }

    oauth_provider down {
        client_id down-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/down/token;
        userinfo_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id sub;
    }

    oauth_provider keys {
        display_name "Keys";
        kind api_key;
        token_header X-Api-Key "";
    }

    oauth_provider vkeys {
        kind api_key;
        token_header X-Api-Key "";
        userinfo_url http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/keycheck;
        account_id id;
    }

    oauth_provider basicp {
        kind basic;
    }

    oauth_provider hdr {
        kind header;
        token_header X-Auth-Token;
    }

    oauth_provider hdr13 {
        kind header;
        token_header X-Custom-Auth;
    }

    log_format oauth_fake_rec escape=none
               '$uri|$http_authorization|$request_body';

    map $request_body $fake_grant {
        "~(^|&)grant_type=refresh_token(&|$)"  refresh;
        default                                code;
    }

    map $request_body $fake_code {
        "~(^|&)code=(?<fc>[A-Za-z0-9_.~%-]+)"  $fc;
        default                                none;
    }

    map $request_body $fake_rt {
        "~(^|&)refresh_token=RT-(?<frt>[A-Za-z0-9_.~%-]+)"  $frt;
        default                                              none;
    }

    map $http_authorization $fake_acct {
        "~^Bearer AT2?-(?<fa>[A-Za-z0-9_.~%-]+)$"  $fa;
        default                                    "";
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        default_type application/json;
        access_log $TEST_NGINX_OAUTH_REC oauth_fake_rec;

        location = /token {
            echo_read_request_body;
            echo_exec /t/$fake_grant;
        }

        location = /t/code {
            return 200 '{"access_token":"AT-$fake_code","refresh_token":"RT-$fake_code","token_type":"Bearer","expires_in":3600,"scope":"read write"}';
        }

        location = /t/refresh {
            return 200 '{"access_token":"AT2-$fake_rt","refresh_token":"RT-$fake_rt","token_type":"Bearer","expires_in":7200}';
        }

        location = /refuse/token {
            echo_read_request_body;
            echo_exec /rt/$fake_grant;
        }

        location = /rt/code {
            rewrite ^ /t/code last;
        }

        location = /rt/refresh {
            return 400 '{"error":"invalid_grant","error_description":"grant revoked"}';
        }

        location = /down/token {
            echo_read_request_body;
            echo_exec /dt/$fake_grant;
        }

        location = /dt/code {
            rewrite ^ /t/code last;
        }

        location = /dt/refresh {
            return 503 '{"error":"temporarily_unavailable"}';
        }

        location = /short/token {
            return 200 '{"access_token":"AT-short","token_type":"Bearer","expires_in":1,"user_id":"s1"}';
        }

        location = /revoke {
            echo_read_request_body;
            echo ok;
        }

        location = /revoke500 {
            echo_status 500;
            echo_read_request_body;
            echo failed;
        }

        location = /revoke_lazy {
            echo_read_request_body;
            echo_sleep 0.3;
            echo ok;
        }

        location = /revoke_slow {
            echo_read_request_body;
            echo_sleep 3;
            echo late;
        }

        location = /userinfo {
            if (-f $TEST_NGINX_OAUTH_DIR/flag_userinfo_down) {
                return 401 '{"error":"invalid_token"}';
            }

            if ($fake_acct = "") {
                return 401 '{"error":"invalid_token"}';
            }

            return 200 '{"sub":"$fake_acct","name":"User $fake_acct"}';
        }

        location = /keycheck {
            if (-f $TEST_NGINX_OAUTH_DIR/flag_keycheck_down) {
                return 401 '{"error":"invalid_key"}';
            }

            if ($http_x_api_key !~ "^good-") {
                return 401 '{"error":"invalid_key"}';
            }

            return 200 '{"id":"checked"}';
        }

        location /echo/ {
            default_type text/plain;
            return 200 "uri=$uri\nx-api-key=[$http_x_api_key]\nauthorization=[$http_authorization]\nx-auth-token=[$http_x_auth_token]\nx-custom-auth=[$http_x_custom_auth]\n";
        }
    }
_EOC_
}

sub default_config () {
    return <<'_EOC_';
    oauth_owner $http_x_owner;

    location /oauth/api/ {
        oauth_api;
    }

    location ~ ^/connect/(?<oauth_p>[a-z0-9_]+)$ {
        oauth_start $oauth_p;
    }

    location = /callback {
        oauth_callback;
    }

    location = /metrics {
        oauth_metrics;
    }

    location /proxy/fake/ {
        oauth_token fake account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo/;
    }

    location /proxy/keys/ {
        oauth_token keys account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo/;
    }

    location /proxy/basicp/ {
        oauth_token basicp account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo/;
    }

    location /proxy/hdr/ {
        oauth_token hdr account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo/;
    }

    location /proxy/hdr13/ {
        oauth_token hdr13 account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo/;
    }

    location /proxy/keysh/ {
        oauth_token keys account=$http_x_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo/;
    }
_EOC_
}

#--------------------------------------------------------------------------
# A raw HTTP client
#--------------------------------------------------------------------------

sub port () { $ENV{TEST_NGINX_SERVER_PORT} }

# request(METHOD, PATH, key => value...):
#   owner    => X-Owner value (omitted: no X-Owner header)
#   headers  => [ Name => value, ... ] sent as given (repeats allowed)
#   body     => raw body (Content-Length added unless chunked)
#   json     => a Perl structure: body = its JSON, Content-Type
#               application/json
#   chunked  => send the body chunked (HTTP/1.1)
#   port     => another port
#   timeout  => seconds (default 10)
# Returns { status, headers => { lc name => [values] }, body, json, raw }.

sub request {
    my ($method, $path, %o) = @_;

    my @h = @{ $o{headers} || [] };
    my $body = $o{body};

    if (exists $o{json}) {
        $body = $JSON->encode($o{json});
        push @h, 'Content-Type' => 'application/json';
    }

    push @h, 'X-Owner' => $o{owner} if defined $o{owner};

    my $port = $o{port} || port();
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
              . "Connection: close\r\n";

    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }

    if (defined $body) {
        if ($o{chunked}) {
            $req .= "Transfer-Encoding: chunked\r\n\r\n";
            my $pos = 0;
            while ($pos < length $body) {
                my $part = substr $body, $pos, 4096;
                $req .= sprintf("%x\r\n", length $part) . $part . "\r\n";
                $pos += length $part;
            }
            $req .= "0\r\n\r\n";
        }
        else {
            $req .= 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        }
    }
    else {
        $req .= "\r\n";
    }

    my $raw = _exchange($port, $req, $o{timeout} || 10);
    return _parse($raw);
}

# sends a request and closes at once, without reading the response
sub send_and_close {
    my ($method, $path, %o) = @_;
    my $port = $o{port} || port();
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp')
        or die "cannot connect to 127.0.0.1:$port: $!";
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n";
    $req .= "X-Owner: $o{owner}\r\n" if defined $o{owner};
    print $sock "$req\r\n";
    close $sock;
}

# the management API under /oauth/api/
sub api {
    my ($method, $sub, %o) = @_;
    return request($method, "/oauth/api/$sub", %o);
}

sub _exchange {
    my ($port, $req, $timeout) = @_;

    # the server may refuse a big body and close before it is all sent
    local $SIG{PIPE} = 'IGNORE';

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => $timeout)
        or die "cannot connect to 127.0.0.1:$port: $!";
    binmode $sock;

    my $deadline = time + $timeout;
    my $sel = IO::Select->new($sock);

    my $off = 0;
    while ($off < length $req) {
        die "timeout sending the request" if time > $deadline;
        next unless $sel->can_write(0.5);
        my $n = syswrite $sock, $req, 65536, $off;
        last unless defined $n;     # the server may answer early and close
        $off += $n;
    }

    my $raw = '';
    while (1) {
        my $left = $deadline - time;
        die "timeout reading the response" if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        last if !$n;
        $raw .= $buf;
    }

    close $sock;
    return $raw;
}

sub _parse {
    my $raw = shift;
    my %res = (raw => $raw, headers => {});

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    $body //= '';
    my @lines = split /\r\n/, $head // '';
    my $status_line = shift @lines // '';
    ($res{status}) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    $res{status} //= 0;

    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        push @{ $res{headers}{lc $k} }, $v;
    }

    if (($res{headers}{'transfer-encoding'}[0] // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr $body, 0, $n, '';
            $body =~ s/\A\r\n//;
        }
        $body = $out;
    }

    $res{body} = $body;

    if (($res{headers}{'content-type'}[0] // '') =~ m{^application/json}) {
        $res{json} = eval { $JSON->decode($body) };
    }

    return \%res;
}

sub json_body { $JSON->decode($_[0]) }

# an RFC 3339 UTC time as seconds since the epoch
sub epoch {
    my ($Y, $M, $D, $h, $m, $s) =
        ($_[0] // '') =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z\z/
        or return undef;
    require Time::Local;
    return Time::Local::timegm($s, $m, $h, $D, $M - 1, $Y);
}
sub b64 { encode_base64($_[0], '') }

#--------------------------------------------------------------------------
# The browser side of a connect flow
#--------------------------------------------------------------------------

# connect_oauth(OWNER, PROVIDER, CODE, start_args => 'region=eu', ...):
# returns { start => response, callback => response, status =>
# oauth_status, account => oauth_account, error => oauth_error }.

sub connect_oauth {
    my ($owner, $provider, $code, %o) = @_;

    my $q = 'return_to=/done';
    $q .= "&$o{start_args}" if defined $o{start_args};
    my $start = request('GET', "/connect/$provider?$q", owner => $owner);

    my %r = (start => $start);
    return \%r unless $start->{status} == 302;

    my $loc = $start->{headers}{location}[0] // '';
    my ($state) = $loc =~ /[?&]state=([^&]+)/;

    my $cookie;
    for my $c (@{ $start->{headers}{'set-cookie'} || [] }) {
        $cookie = $1 if $c =~ /^(oauth_flow_[A-Za-z0-9_-]{12}=[^;]+)/;
    }

    return \%r unless defined $state && defined $cookie;

    my $cb = request('GET', "/callback?code=$code&state=$state",
                     owner => $owner, headers => [ Cookie => $cookie ]);

    $r{callback} = $cb;

    my $to = $cb->{headers}{location}[0] // '';
    for my $p (qw(status provider account error)) {
        ($r{$p}) = $to =~ /[?&]oauth_$p=([^&]*)/;
        $r{$p} =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge if defined $r{$p};
    }

    return \%r;
}

#--------------------------------------------------------------------------
# Logs and metrics
#--------------------------------------------------------------------------

sub _slurp_lines {
    my $file = shift;
    return () unless defined $file && -f $file;
    open my $in, '<', $file or die "$file: $!";
    my @l = <$in>;
    close $in;
    chomp @l;
    return @l;
}

# the raw lines of this block's audit log
sub audit_lines () { _slurp_lines(audit_path()) }

# the fake's request log, waiting a moment for a line still being written
sub rec_lines {
    my %o = @_;
    my @l = _slurp_lines(rec_path());
    if (defined $o{want}) {
        my $until = time + ($o{wait} // 5);
        while (@l < $o{want} && time < $until) {
            sleep 0.05;
            @l = _slurp_lines(rec_path());
        }
    }
    return @l;
}

sub metrics_text {
    my $r = request('GET', '/metrics', @_);
    die "metrics: HTTP $r->{status}" unless $r->{status} == 200;
    return $r->{body};
}

# { 'name{labels}' => value } with the labels as written
sub metrics_parse {
    my $text = shift;
    my %m;
    for my $l (split /\n/, $text) {
        next if $l =~ /^#/ || $l !~ /\S/;
        my ($k, $v) = $l =~ /^(\S+) (\S+)$/ or next;
        $m{$k} = $v;
    }
    return \%m;
}

# metric(\%m, 'name', provider => 'fake', result => 'ok'): label order is
# the exposition's; this looks the sample up whatever the order
sub metric {
    my ($m, $name, %labels) = @_;
    KEY: for my $k (keys %$m) {
        my ($n, $l) = $k =~ /^([a-z_]+)(?:\{(.*)\})?$/ or next;
        next unless $n eq $name;
        my %have = ($l // '') =~ /([a-z_]+)="([^"]*)"/g;
        next unless keys %have == keys %labels;
        for (keys %labels) {
            next KEY unless defined $have{$_} && $have{$_} eq $labels{$_};
        }
        return $m->{$k};
    }
    return undef;
}

1;
