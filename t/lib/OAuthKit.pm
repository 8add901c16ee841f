package OAuthKit;

# The one helper module of the Test::Nginx suites (t/README.md has the
# guide).  "use OAuthKit;" after "use lib" gives a suite:
#
#   * a private directory ($ENV{TEST_NGINX_OAUTH_DIR}, mode 0700) with a
#     valid keyring "keys" ($ENV{TEST_NGINX_OAUTH_KEY_FILE}), and per block
#     a fresh store and audit log path ($ENV{TEST_NGINX_OAUTH_STORE},
#     $ENV{TEST_NGINX_OAUTH_AUDIT}), and a free port for a second listener
#     ($ENV{TEST_NGINX_API_PORT2}); store* and *.log files in the
#     directory are removed before each block;
#   * the scripted fake provider (t/lib/FakeProvider.pm) on
#     $ENV{TEST_NGINX_FAKE_PORT}, reset before each block: fake();
#   * one HTTP client: request() (and http_get(), its GET shorthand that
#     takes header pairs), api() for the management API;
#   * one connect helper: connect_flow() (start_flow() + callback() +
#     flow_result() are its steps), connect_ok();
#   * two ready-made configurations, as block preprocessors: demo_defaults
#     (one "demo" provider on the fake's rotating-token scenario) and
#     api_defaults (providers of every kind on the fake's other scenarios);
#   * readers: fake_requests(), rec_lines(), audit_lines(), metrics_*(),
#     error_log_grep(), slurp(), wait_for(); processes (not exported):
#     master_pid(), worker_pids(), reload(); storm() for many requests at
#     once.
#
# Under the real Test::Nginx "--- init" and "--- config eval" run outside
# the suite's package: call these fully qualified (OAuthKit::request) or
# start the init with "package main;" (they are exported to main), and
# name a suite's own variables $::Name.
#
# Options: use OAuthKit api_prefix => '/api/';  (where oauth_api is mounted,
# default /oauth/api/).

use strict;
use warnings;

use Exporter ();
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes ();

use FakeProvider;

# the framework (real or t/lib's): the kit registers a block preprocessor
require Test::Nginx::Socket;

our @ISA = ('Exporter');
our @EXPORT = qw(
    oauth_dir random_key write_key_file fake
    request http_get api header send_and_close
    start_flow callback flow_result connect_flow connect_ok
    connections connection
    url_escape query_params json_decode json_encode b64 epoch $TIME_RE
    slurp wait_for fake_requests rec_lines audit_lines error_log_grep
    as_log as_requests
    storm storm_start storm_wait
    metrics_text metrics_parse metric
);

our $TIME_RE = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\z/;
our $ApiPrefix = '/oauth/api/';

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

sub import {
    my ($class, %o) = @_;
    $ApiPrefix = $o{api_prefix} if defined $o{api_prefix};
    $class->export_to_level(1, $class);
}

#--------------------------------------------------------------------------
# The suite's directory, keyring and fake provider
#--------------------------------------------------------------------------

my $Dir = File::Temp::tempdir('oauthkit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0700, $Dir;
$ENV{TEST_NGINX_OAUTH_DIR} = $Dir;

sub oauth_dir () { $Dir }

sub random_key {
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($fh, my $bytes, 32) == 32 or die "short read from /dev/urandom";
    close $fh;
    return encode_base64($bytes, '');
}

# write_key_file(name_or_path, text, mode): a file as an operator writes
# it (keyrings, secrets), relative names inside the suite's directory.
sub write_key_file {
    my ($path, $text, $mode) = @_;
    $path = "$Dir/$path" unless $path =~ m{^/};
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod($mode // 0600, $path) or die "chmod $path: $!";
    return $path;
}

$ENV{TEST_NGINX_OAUTH_KEY_FILE} =
    write_key_file('keys', 'k1:' . random_key() . "\n");

my $Fake = FakeProvider->start(lazy => 1);
$ENV{TEST_NGINX_FAKE_PORT} = $Fake->port;

sub fake () { $Fake }

# A second listener the Perl side must reach (the runners do not publish
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

sub _fresh_block {
    $BlockNo++;
    if (opendir my $dh, $Dir) {
        unlink map { "$Dir/$_" } grep { /^(?:store.*|.*\.log)\z/ }
                                      readdir $dh;
        closedir $dh;
    }
    $ENV{TEST_NGINX_OAUTH_STORE} = "$Dir/store-$BlockNo.mdb";
    $ENV{TEST_NGINX_OAUTH_AUDIT} = "$Dir/audit-$BlockNo.log";
    $Fake->run;
    $Fake->reset;
}

# "&" skips add_block_preprocessor's (&) prototype
&Test::Nginx::Socket::add_block_preprocessor(\&_fresh_block);

#--------------------------------------------------------------------------
# Ready-made configurations (block preprocessors)
#--------------------------------------------------------------------------

# demo_defaults: every block gets the store, the keyring, the owner (the
# X-Owner request header, standing for the operator's own authentication),
# the "demo" provider on the fake's default scenario and the start,
# callback and API locations, unless it sets them itself.  Responses say
# which worker answered (X-Worker).

our $DemoProvider = <<'_EOC_';
    oauth_provider demo {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        account_id         user.id;
        account_name       user.name;
        api_base_url       http://127.0.0.1:$TEST_NGINX_FAKE_PORT/api;
        scope              read;
    }
_EOC_

our $DemoLocations = <<'_EOC_';
    add_header X-Worker $pid always;
    location ~ ^/connect/([a-z0-9_]+)$ { oauth_start $1; }
    location = /callback { oauth_callback; }
    location /oauth/api/ { oauth_api; }
    location = /_counts { proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT; }
_EOC_

sub demo_defaults {
    my $block = shift;

    my $http = $block->http_config // '';
    my $base = '';
    $base .= "    oauth_store \$TEST_NGINX_OAUTH_STORE;\n"
        unless $http =~ /\boauth_store\b/;
    $base .= "    oauth_key_file \$TEST_NGINX_OAUTH_KEY_FILE;\n"
        unless $http =~ /\boauth_key_file\b/;
    $base .= "    oauth_owner \$http_x_owner;\n"
        unless $http =~ /\boauth_owner\b/;
    $base .= $DemoProvider unless $http =~ /\boauth_provider\s+demo\b/;
    $block->set_value(http_config => $base . $http);

    my $config = $block->config // '';
    $block->set_value(config => $DemoLocations . $config)
        unless $config =~ /\boauth_callback\b/;
}

# api_defaults: a block without "--- http_config" gets api_fixture(); one
# whose http_config has no "oauth_store" gets it prepended; one with its
# own oauth_store is left alone.  A block without "--- config" gets
# api_locations().
#
# The providers (all on the fake, see FakeProvider.pm for the scenarios):
# fake (static: OAuth, every endpoint, connection_param region), refuser
# (refuse: refresh refused, revocation 500, token_auth post), slowrev
# (revocation takes 3 s, oauth_http_timeout is 1s), lazyrev (0.3 s), down
# (refresh 503), keys and vkeys
# (api_key in X-Api-Key; vkeys verified at /keycheck), basicp (basic), hdr
# (header in X-Auth-Token) and hdr13 (header in X-Custom-Auth).

sub api_defaults {
    my $block = shift;

    my $http = $block->http_config;
    if (!defined $http) {
        $block->set_value(http_config => api_fixture());
    }
    elsif ($http !~ /\boauth_store\b/) {
        $block->set_value(http_config => api_fixture() . $http);
    }

    $block->set_value(config => api_locations())
        unless defined $block->config;
}

sub _oauth_provider {
    my ($name, $scenario, @extra) = @_;
    my $u = "http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/$scenario";
    return join '',
        "    oauth_provider $name {\n",
        (map { "        $_;\n" } @extra),
        "        redirect_uri http://127.0.0.1:\$TEST_NGINX_SERVER_PORT"
            . "/callback;\n",
        "        authorization_url $u/authorize;\n",
        "        token_url $u/token;\n",
        "        revocation_url $u/revoke;\n",
        "        userinfo_url $u/userinfo;\n",
        "        account_id sub;\n",
        "    }\n\n";
}

sub api_fixture () {
    return <<'_EOC_'
    oauth_store $TEST_NGINX_OAUTH_STORE max_size=16m;
    oauth_key_file $TEST_NGINX_OAUTH_KEY_FILE;
    oauth_audit_log $TEST_NGINX_OAUTH_AUDIT;
    oauth_http_timeout 1s;
    oauth_background_refresh off;
    oauth_circuit_breaker failures=2 reset=60s;

_EOC_
    . _oauth_provider(fake => 'static', 'display_name "Fake Platform"',
                      'client_id fake-client', 'client_secret fake-secret',
                      'account_name name', 'scope read write',
                      'connection_param region')
    . _oauth_provider(refuser => 'refuse', 'client_id refuser-client',
                      'client_secret refuser-secret', 'token_auth post')
    . _oauth_provider(slowrev => 'slowrev', 'client_id slow-client')
    . _oauth_provider(lazyrev => 'lazyrev', 'client_id lazy-client')
    . _oauth_provider(down => 'down', 'client_id down-client')
    . <<'_EOC_';
    oauth_provider keys {
        display_name "Keys";
        kind api_key;
        token_header X-Api-Key "";
    }

    oauth_provider vkeys {
        kind api_key;
        token_header X-Api-Key "";
        userinfo_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/keycheck;
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
_EOC_
}

sub api_locations () {
    my $cfg = <<'_EOC_';
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
_EOC_
    for (qw(fake keys basicp hdr hdr13)) {
        $cfg .= "\n    location /proxy/$_/ {\n"
              . "        oauth_token $_ account=\$arg_account;\n"
              . "        proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT"
              . "/static/echo/;\n    }\n";
    }
    $cfg .= <<'_EOC_';

    location /proxy/keysh/ {
        oauth_token keys account=$http_x_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/echo/;
    }
_EOC_
    return $cfg;
}

#--------------------------------------------------------------------------
# The HTTP client
#--------------------------------------------------------------------------

sub _port { $ENV{TEST_NGINX_SERVER_PORT} // Test::Nginx::Socket::server_port() }

# request(METHOD, PATH, key => value...), to the block's nginx; sends
# exactly what the test says (HTTP/1.1, Connection: close, no default
# Content-Type), never follows redirects:
#   owner    => X-Owner value (omitted: no X-Owner header)
#   headers  => [ Name => value, ... ] sent in order (repeats allowed), or
#               { Name => value }
#   cookie   => Cookie value
#   body     => raw body (Content-Length added unless chunked)
#   json     => a Perl structure: body = its JSON, Content-Type
#               application/json
#   chunked  => send the body chunked
#   port     => another port; timeout => seconds (default 20)
# Returns { status, headers => { lc name => value, or [values] when
# repeated (as HTTP::Tiny) }, content (= body), body, json (when the answer
# is JSON), raw }.  header($res, $name) reads one header either way.
sub request {
    my ($method, $path, %o) = @_;

    my $hdrs = $o{headers} // [];
    my @h = ref $hdrs eq 'HASH' ? map { ($_ => $hdrs->{$_}) } sort keys %$hdrs
                                : @$hdrs;
    my $body = $o{body};

    if (exists $o{json}) {
        $body = $JSON->encode($o{json});
        push @h, 'Content-Type' => 'application/json';
    }
    push @h, 'X-Owner' => $o{owner} if defined $o{owner};
    push @h, Cookie => $o{cookie} if defined $o{cookie};

    my $port = $o{port} || _port();
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
              . "Connection: close\r\n";
    while (my ($k, $v) = splice @h, 0, 2) {
        $req .= "$k: $v\r\n";
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

    return _parse(_exchange($port, $req, $o{timeout} || 20));
}

# http_get(PATH, Header => value, ...): request('GET', ...) for header
# pairs; -method and -port override GET and the block's port.
sub http_get {
    my ($path, @pairs) = @_;
    my (@h, %o);
    while (my ($k, $v) = splice @pairs, 0, 2) {
        if ($k eq '-method') { $o{method} = $v }
        elsif ($k eq '-port') { $o{port} = $v }
        else { push @h, $k => $v }
    }
    return request($o{method} // 'GET', $path, headers => \@h,
                   $o{port} ? (port => $o{port}) : ());
}

# api(METHOD, 'connections/...', owner => .., json => ..): the management
# API (mounted at $OAuthKit::ApiPrefix).
sub api {
    my ($method, $sub, %o) = @_;
    return request($method, $ApiPrefix . $sub, %o);
}

# header($res, 'Name'): the first value (all of them in list context).
sub header {
    my ($res, $name) = @_;
    my $v = $res->{headers}{ lc $name };
    my @v = !defined $v ? () : ref $v ? @$v : ($v);
    return wantarray ? @v : $v[0];
}

# sends a request and closes at once, without reading the response
sub send_and_close {
    my ($method, $path, %o) = @_;
    my $port = $o{port} || _port();
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp')
        or die "cannot connect to 127.0.0.1:$port: $!";
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n";
    $req .= "X-Owner: $o{owner}\r\n" if defined $o{owner};
    print $sock "$req\r\n";
    close $sock;
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

    my $deadline = Time::HiRes::time() + $timeout;
    my $sel = IO::Select->new($sock);

    my $off = 0;
    while ($off < length $req) {
        die "timeout sending the request" if Time::HiRes::time() > $deadline;
        next unless $sel->can_write(0.5);
        my $n = syswrite $sock, $req, 65536, $off;
        last unless defined $n;     # the server may answer early and close
        $off += $n;
    }

    my $raw = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
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

    my %h;
    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        push @{ $h{lc $k} }, $v;
    }
    $res{headers}{$_} = @{ $h{$_} } == 1 ? $h{$_}[0] : $h{$_} for keys %h;

    if ((header(\%res, 'transfer-encoding') // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr $body, 0, $n, '';
            $body =~ s/\A\r\n//;
        }
        $body = $out;
    }

    $res{body} = $res{content} = $body;
    $res{json} = eval { $JSON->decode($body) }
        if (header(\%res, 'content-type') // '') =~ m{^application/json};

    return \%res;
}

#--------------------------------------------------------------------------
# Connect flows
#--------------------------------------------------------------------------

# start_flow(uri => '/connect/demo?...', owner => 'alice', port => N): the
# start response and what a browser keeps from it: { res, status,
# location, q (its query), state, cookie, owner }.
sub start_flow {
    my (%o) = @_;
    my $res = request('GET', $o{uri} // '/connect/demo',
                      owner => $o{owner}, port => $o{port});
    my $loc = header($res, 'location');
    my $cookie;
    for my $c (header($res, 'set-cookie')) {
        ($cookie) = $c =~ /^([^;]+)/ if $c =~ /^__Host-oauth_flow_/ || !$cookie;
    }
    my $q = query_params($loc);
    return {
        res      => $res,
        status   => $res->{status},
        location => $loc,
        q        => $q,
        state    => $q->{state},
        cookie   => $cookie,
        owner    => $o{owner},
    };
}

# callback(flow, code => 'c1', query => 'extra=1', owner => .., cookie => ..)
# calls the callback the way the provider's redirect would, from the
# browser that started the flow unless told otherwise.  raw_query => '...'
# replaces the whole query; no_code => 1 leaves the code out; path =>
# (default /callback); port => N.
sub callback {
    my ($flow, %o) = @_;
    my $query = $o{raw_query};
    unless (defined $query) {
        my @q;
        push @q, 'code=' . url_escape($o{code} // 'code-1')
            unless $o{no_code};
        push @q, 'state=' . url_escape($flow->{state} // '');
        push @q, $o{query} if defined $o{query};
        $query = join '&', @q;
    }
    return request('GET', ($o{path} // '/callback') . "?$query",
                   owner => exists $o{owner} ? $o{owner} : $flow->{owner},
                   cookie => exists $o{cookie} ? $o{cookie} : $flow->{cookie},
                   port => $o{port});
}

# What the user's page learns: the redirect's oauth_* parameters, or the
# message the popup page posts (plus the origin it is posted to).
sub flow_result {
    my $res = shift;
    if ($res->{status} == 302) {
        # nginx's absolute_redirect prefixes a relative Location with the
        # request's own scheme and host: take them off again.
        (my $loc = header($res, 'location') // '')
            =~ s{^http://(?:127\.0\.0\.1|localhost)(?::\d+)?(?=/)}{};
        my $q = query_params($loc);
        return {
            status   => $q->{oauth_status},
            provider => $q->{oauth_provider},
            account  => $q->{oauth_account},
            error    => $q->{oauth_error},
            location => $loc,
        };
    }
    if ($res->{status} == 200
        && $res->{content} =~ /var m=(\{.*?\});if\(window\.opener\)/s)
    {
        my $m = json_decode($1);
        my ($target) = $res->{content} =~ /postMessage\(m,("[^"]*")\)/;
        $m->{target} = defined $target ? json_decode("[$target]")->[0]
                                       : undef;
        return $m;
    }
    return { status => "HTTP $res->{status}", body => $res->{content} };
}

# connect_flow(owner => 'alice', provider => 'demo' | uri => '/connect/..',
# start_args => 'return_to=/x&region=eu', code => 'code-1', and callback()'s
# options): a whole connect.  Returns the result (flow_result() plus ok,
# start => the start response, callback => the callback response), and in
# list context also the flow and the callback response.
sub connect_flow {
    my (%o) = @_;
    my $owner = delete $o{owner} // 'alice';
    my $provider = delete $o{provider} // 'demo';
    my $uri = delete $o{uri} // "/connect/$provider";
    if (defined(my $args = delete $o{start_args})) {
        $uri .= ($uri =~ /\?/ ? '&' : '?') . $args if length $args;
    }
    my $flow = start_flow(uri => $uri, owner => $owner, port => $o{port});

    my ($r, $res);
    if ($flow->{status} == 302 && defined $flow->{state}) {
        $res = callback($flow, %o);
        $r = flow_result($res);
    }
    else {
        $r = { status => undef,
               error => "start answered $flow->{status}" };
    }
    $r->{ok} = ($r->{status} // '') eq 'connected';
    $r->{start} = $flow->{res};
    $r->{callback} = $res;
    return wantarray ? ($r, $flow, $res) : $r;
}

# connect_flow() that is also a test: fails unless it connected.
sub connect_ok {
    my (%o) = @_;
    my $r = connect_flow(%o);
    Test::More::ok($r->{ok}, 'connect ' . ($o{owner} // 'alice') . ' '
                   . ($o{code} // ''))
        or Test::More::diag(join ', ', map { "$_=" . ($r->{$_} // '') }
                                       qw(status error location));
    return $r;
}

# connections(owner, query, port): what the API lists for the owner.
sub connections {
    my ($owner, $query, $port) = @_;
    my $res = api('GET', 'connections' . ($query ? "?$query" : ''),
                  owner => $owner // 'alice', port => $port);
    die "GET connections answered $res->{status}: $res->{content}"
        unless $res->{status} == 200;
    return json_decode($res->{content});
}

# connection(owner, provider, account): one connection, or undef.
sub connection {
    my ($owner, $provider, $account) = @_;
    my $r = api('GET', "connections/$provider/$account", owner => $owner);
    return $r->{status} == 200 ? $r->{json} : undef;
}

#--------------------------------------------------------------------------
# URLs, JSON, times
#--------------------------------------------------------------------------

sub url_escape {
    my $s = shift;
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub _url_unescape {
    my $s = shift;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# The query of a URL (or "?query") as a hash; a repeated name becomes an
# array ref.
sub query_params {
    my $url = shift // '';
    my (undef, $query) = split /\?/, $url, 2;
    $query =~ s/#.*//s if defined $query;
    my %q;
    for my $pair (split /&/, $query // '') {
        next if $pair eq '';
        my ($k, $v) = map { _url_unescape($_) } split /=/, $pair, 2;
        $v //= '';
        if (exists $q{$k}) {
            $q{$k} = [ ref $q{$k} ? @{ $q{$k} } : $q{$k}, $v ];
        }
        else {
            $q{$k} = $v;
        }
    }
    return \%q;
}

sub json_decode { $JSON->decode(shift) }
sub json_encode { $JSON->encode(shift) }
sub b64 { encode_base64($_[0], '') }

# an RFC 3339 UTC time as seconds since the epoch
sub epoch {
    my ($Y, $M, $D, $h, $m, $s) =
        ($_[0] // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)/
        or return undef;
    require Time::Local;
    return Time::Local::timegm($s, $m, $h, $D, $M - 1, $Y);
}

#--------------------------------------------------------------------------
# Files, logs, polling
#--------------------------------------------------------------------------

sub slurp {
    my $file = shift;
    open my $fh, '<', $file or return '';
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data // '';
}

sub _lines {
    my $file = shift;
    return () unless defined $file && -f $file;
    return split /\n/, slurp($file);
}

# wait_for(sub { ... }, seconds): polls until the sub returns true;
# returns its last value.
sub wait_for {
    my ($cond, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 10);
    while (1) {
        my $r = $cond->();
        return $r if $r || Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);
    }
}

# What the fake received since the block began, oldest first, as
# { method, path, query, head, headers, body, form, auth (Authorization) };
# filters as FakeProvider::requests (path => exact or qr//, method,
# grant_type).
sub fake_requests {
    my @r = $Fake->requests(@_);
    $_->{auth} = FakeProvider::header($_, 'authorization') // '' for @r;
    return \@r;
}

# The fake's requests as "<path>|<Authorization>|<body>" lines; want => N
# waits (up to wait => seconds, default 5) for N lines.
sub rec_lines {
    my %o = @_;
    my $get = sub { map { "$_->{path}|$_->{auth}|$_->{body}" }
                    @{ fake_requests() } };
    my @l = $get->();
    if (defined $o{want}) {
        my $until = Time::HiRes::time() + ($o{wait} // 5);
        while (@l < $o{want} && Time::HiRes::time() < $until) {
            Time::HiRes::sleep(0.05);
            @l = $get->();
        }
    }
    return @l;
}

# Lines of a log an nginx server block of the test writes
# ($TEST_NGINX_OAUTH_DIR/NAME.log), for blocks whose fake must be a part of
# nginx itself (transport cases: chunked, huge or static bodies).  The
# "as" format: log_format as '$request_method $uri auth=[$http_authorization]
# body=[$request_body]'; as_requests() parses it.
sub as_log {
    my $name = shift // 'as';
    return [ _lines("$Dir/$name.log") ];
}

sub as_requests {
    my $name = shift // 'as';
    my @out;
    for my $line (@{ as_log($name) }) {
        next unless $line =~ /^(\S+) (\S+) auth=\[(.*?)\] body=\[(.*)\]$/;
        my %r = (method => $1, uri => $2, path => $2, auth => $3,
                 body => $4);
        $r{form} = query_params("?$r{body}");
        push @out, \%r;
    }
    return \@out;
}

# the lines of this block's audit log ($TEST_NGINX_OAUTH_AUDIT)
sub audit_lines () { _lines($ENV{TEST_NGINX_OAUTH_AUDIT}) }

# Lines of the error log that match $re (a qr//).
sub error_log_grep {
    my $re = shift;
    my $file = ($ENV{TEST_NGINX_SERVER_ROOT} // '') . '/logs/error.log';
    return grep { $_ =~ $re } map { "$_\n" } _lines($file);
}

#--------------------------------------------------------------------------
# nginx processes, concurrency
#--------------------------------------------------------------------------

# The nginx master's pid (with master_on), from the pid file.
sub master_pid {
    my $pid = slurp(($ENV{TEST_NGINX_SERVER_ROOT} // '') . '/logs/nginx.pid');
    $pid =~ s/\s+//g;
    return length $pid ? $pid : undef;
}

# Worker pids of our nginx master (children whose parent is the master).
sub worker_pids {
    my $master = shift // master_pid() // return ();
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = slurp($stat);
        # pid (comm) state ppid ...
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $master;
    }
    return sort { $a <=> $b } @pids;
}

# Reload nginx the way an operator does (HUP to the master) and wait until
# a full set of new workers runs (the old ones may still be draining).
sub reload {
    my %o = @_;
    my $master = master_pid() or return 0;
    my %old = map { $_ => 1 } worker_pids($master);
    kill 'HUP', $master or return 0;
    my $want = $o{workers} // 1;
    return wait_for(sub {
        my @new = grep { !$old{$_} } worker_pids($master);
        return @new >= $want;
    }, $o{timeout} // 10);
}

# Sends n requests at once on n connections (raw sockets, so they really
# are in flight together) and reads every answer.  Returns a list of
# { status, head, body, worker }.  storm_start() and storm_wait() split it,
# for things to do while the requests are in flight.
sub storm {
    my ($n, $path, %o) = @_;
    return storm_wait(storm_start($n, $path, %o), $o{timeout});
}

sub storm_start {
    my ($n, $path, %o) = @_;
    # owners => [...] takes turns; else one owner for all
    my @owners = @{ $o{owners} // [ $o{owner} // 'alice' ] };
    my $extra = join '', map { "$_: $o{headers}{$_}\r\n" }
                         sort keys %{ $o{headers} // {} };

    my @socks;
    for my $i (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => _port(), Proto => 'tcp')
            or die "OAuthKit: connect: $!\n";
        binmode $s;
        push @socks, $s;
    }

    # all connected: now send every request
    for my $i (0 .. $#socks) {
        my $owner = $owners[ $i % @owners ];
        syswrite $socks[$i], "GET $path HTTP/1.0\r\nHost: localhost\r\n"
                             . "X-Owner: $owner\r\n$extra\r\n";
    }

    return \@socks;
}

sub storm_wait {
    my ($socks, $timeout) = @_;
    my (%buf, %done);
    my %idx = map { ($socks->[$_] => $_) } 0 .. $#$socks;
    my $sel = IO::Select->new(@$socks);
    my $end = Time::HiRes::time() + ($timeout // 20);

    while ($sel->count && Time::HiRes::time() < $end) {
        for my $s ($sel->can_read(0.5)) {
            my $i = $idx{$s};
            $buf{$i} //= '';
            my $n = sysread $s, $buf{$i}, 65536, length $buf{$i};
            next if $n;
            $done{$i} = 1;
            $sel->remove($s);
            close $s;
        }
    }
    close $_ for $sel->handles;

    my @res;
    for my $i (0 .. $#$socks) {
        if (!$done{$i}) {
            push @res, { status => 0, error => 'timeout' };
            next;
        }
        my ($head, $body) = split /\r\n\r\n/, $buf{$i} // '', 2;
        my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d+)};
        my ($worker) = ($head // '') =~ m{^X-Worker: (\d+)}mi;
        push @res, { status => $status // 0, head => $head // '',
                     body => $body // '', worker => $worker };
    }

    return @res;
}

#--------------------------------------------------------------------------
# Metrics
#--------------------------------------------------------------------------

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
