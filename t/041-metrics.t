# oauth_metrics: a Prometheus text exposition whose counters move as the
# test acts, checked line by line; gauges read from the store; counters
# shared by every worker (this file runs a master with two workers).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use OAuthKit;

master_on();
workers(2);
add_block_preprocessor(\&OAuthKit::api_defaults);
no_shuffle();


my $SAMPLE = qr/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+Inf-]+$/;

# The exposition, line by line: every sample matches $SAMPLE; every family
# has # HELP then # TYPE before its samples, and its samples in one group.
sub check_format {
    my ($text, $what) = @_;
    my (%help, %type, %done, $current);
    my $bad = 0;

    like($text, qr/\n\z/, "$what: ends with a newline");

    for my $l (split /\n/, $text) {
        if ($l =~ /^# HELP ([a-z_]+) \S/) {
            $bad++, diag("$what: HELP twice: $l") if $help{$1}++;
            next;
        }
        if ($l =~ /^# TYPE ([a-z_]+) (counter|gauge|histogram)$/) {
            $bad++, diag("$what: TYPE before HELP: $l") unless $help{$1};
            $bad++, diag("$what: TYPE twice: $l") if $type{$1};
            $type{$1} = $2;
            $done{$current} = 1 if defined $current;
            $current = $1;
            next;
        }
        if ($l !~ $SAMPLE) {
            $bad++;
            diag("$what: not a sample line: [$l]");
            next;
        }

        my ($name) = $l =~ /^([a-z_]+)/;
        my $family = $name;
        if (!$type{$family}) {
            ($family = $name) =~ s/_(bucket|sum|count)$//;
            if (($type{$family} // '') ne 'histogram') {
                $bad++;
                diag("$what: sample before its # TYPE: $l");
                next;
            }
        }
        if ($done{$family} || !defined $current || $current ne $family) {
            $bad++;
            diag("$what: family $family not in one group: $l");
        }
        if ($type{$family} eq 'counter' && $name !~ /_total$/) {
            $bad++;
            diag("$what: a counter not named _total: $l");
        }
        if ($name =~ /_bucket$/ && $l !~ /\{(.*,)?le="[^"]+"/) {
            $bad++;
            diag("$what: a bucket without le: $l");
        }
    }

    is($bad, 0, "$what: every line is well formed");
    return \%type;
}

# A histogram: cumulative buckets, +Inf equal to _count; $labels, the
# series' other labels as written ('provider="p",endpoint="token",')
sub check_histogram {
    my ($m, $name, $what, $labels) = @_;
    my @b;
    $labels //= '';
    for my $k (keys %$m) {
        push @b, [ $1, $m->{$k} ]
            if $k =~ /^${name}_bucket\{\Q$labels\Ele="([^"]+)"\}$/;
    }
    @b = sort { ($a->[0] eq '+Inf' ? 9e99 : $a->[0])
                <=> ($b->[0] eq '+Inf' ? 9e99 : $b->[0]) } @b;
    ok(@b >= 2, "$what: buckets");
    is($b[-1][0], '+Inf', "$what: a +Inf bucket");
    my $mono = 1;
    for my $i (1 .. $#b) {
        $mono = 0 if $b[$i][1] < $b[$i - 1][1];
    }
    ok($mono, "$what: buckets are cumulative");
    (my $l = $labels) =~ s/,$//;
    $l = "{$l}" if length $l;
    is($b[-1][1], $m->{"${name}_count$l"}, "$what: +Inf bucket equals _count");
    ok(defined $m->{"${name}_sum$l"}, "$what: _sum");
    return { map { $_->[0] => $_->[1] } @b };
}

sub scrape {
    my $what = shift;
    my $text = metrics_text();
    check_format($text, $what);
    return metrics_parse($text);
}

sub delta {
    my ($m0, $m1, $name, %l) = @_;
    return (metric($m1, $name, %l) // 0) - (metric($m0, $name, %l) // 0);
}

# The outbound series present: { "provider/endpoint" => _count }, each
# checked as a histogram
sub calls {
    my ($m, $what) = @_;
    my %c;
    for my $k (keys %$m) {
        next unless $k =~ /^oauth_outbound_duration_seconds_count
                           \{provider="([^"]*)",endpoint="([^"]*)"\}$/x;
        $c{"$1/$2"} = $m->{$k};
        check_histogram($m, 'oauth_outbound_duration_seconds', "$what $1/$2",
                        qq{provider="$1",endpoint="$2",});
    }
    return \%c;
}

# The injection series that are not 0: { "provider/result" => n }
sub injections {
    my $m = shift;
    my %c;
    for my $k (keys %$m) {
        next unless $k =~ /^oauth_token_injections_total
                           \{provider="([^"]*)",result="([^"]*)"\}$/x;
        $c{"$1/$2"} = $m->{$k} if $m->{$k};
    }
    return \%c;
}

sub connected_ok {
    my ($owner, $provider, $code, @rest) = @_;
    my $c = connect_flow(owner => $owner, provider => $provider, code => $code,
        start_args => join(q{&}, q{return_to=/done}, +{@rest}->{start_args} // ()));
    is($c->{status}, 'connected', "$owner connects $provider/$code");
    return $c;
}

#--------------------------------------------------------------------------

sub t_counters {
    my $m0 = scrape('first scrape');

    for my $p (qw(fake refuser keys)) {
        is(metric($m0, 'oauth_flows_started_total', provider => $p), 0,
           "started{$p} starts at 0");
        is(metric($m0, 'oauth_connections', provider => $p,
                  status => 'connected'), 0, "connections{$p} start at 0");
    }
    for my $res (qw(ok unauthenticated not_connected account_required
                    reauthorization_required provider_unavailable error)) {
        is(metric($m0, 'oauth_token_injections_total', provider => 'fake',
                  result => $res), 0, "injections{fake,$res} start at 0");
    }
    is(metric($m0, 'oauth_token_injections_total', result => 'ok'), undef,
       'no injection series without a provider');
    is_deeply(calls($m0, 'first scrape'), {},
              'no outbound series before a call');
    my $h0 = check_histogram($m0, 'oauth_outbound_request_duration_seconds',
                             'first scrape');
    is($m0->{oauth_outbound_request_duration_seconds_count}, 0,
       'no outbound call yet');

    # flows: two completed, one abandoned, one refused by the user
    connected_ok('alice', 'fake', 'a1');
    connected_ok('alice', 'fake', 'a2');
    request('GET', '/connect/fake', owner => 'alice');

    my $s = request('GET', '/connect/fake', owner => 'alice');
    my ($state) = (OAuthKit::header($s, 'location') // '') =~ /[?&]state=([^&]+)/;
    my ($cookie) = (OAuthKit::header($s, 'set-cookie') // '') =~ /^([^;]+)/;
    my $cb = request('GET', "/callback?error=access_denied&state=$state",
                     owner => 'alice', headers => [ Cookie => $cookie ]);
    like(OAuthKit::header($cb, 'location') // '', qr/oauth_status=error/,
         'a refused authorization');

    my $m1 = scrape('after the flows');
    is(delta($m0, $m1, 'oauth_flows_started_total', provider => 'fake'), 4,
       'four flows started');
    is(delta($m0, $m1, 'oauth_flows_completed_total', provider => 'fake',
             result => 'connected'), 2, 'two completed: connected');
    is(delta($m0, $m1, 'oauth_flows_completed_total', provider => 'fake',
             result => 'error'), 1, 'one completed: error');
    is(delta($m0, $m1, 'oauth_flows_started_total', provider => 'refuser'),
       0, 'other providers do not move');
    is(metric($m1, 'oauth_connections', provider => 'fake',
              status => 'connected'), 2, 'gauge: two fake connections');
    is(delta($m0, $m1, 'oauth_outbound_request_duration_seconds_count'), 4,
       'four outbound calls (token and userinfo, twice)');
    is_deeply(calls($m1, 'after the flows'),
              { 'fake/token' => 2, 'fake/userinfo' => 2 },
              'by provider and endpoint: two code exchanges, two userinfo');

    # refreshes by result
    is(api('POST', 'connections/fake/a1/refresh', owner => 'alice')->{status},
       200, 'refresh ok');
    connected_ok('alice', 'refuser', 'r1');
    is(api('POST', 'connections/refuser/r1/refresh',
           owner => 'alice')->{status}, 502, 'refresh refused');

    my $m2 = scrape('after the refreshes');
    is(delta($m1, $m2, 'oauth_refreshes_total', provider => 'fake',
             result => 'ok'), 1, 'refreshes{fake,ok} +1');
    is(delta($m1, $m2, 'oauth_refreshes_total', provider => 'refuser',
             result => 'refused'), 1, 'refreshes{refuser,refused} +1');
    is(delta($m1, $m2, 'oauth_refreshes_total', provider => 'fake',
             result => 'refused'), 0, 'refreshes{fake,refused} unchanged');
    is(metric($m2, 'oauth_connections', provider => 'refuser',
              status => 'error'), 1, 'gauge: the refused one is in error');
    is(metric($m2, 'oauth_connections', provider => 'refuser',
              status => 'connected'), 0, 'gauge: and no longer connected');
    is_deeply(calls($m2, 'after the refreshes'),
              { 'fake/token' => 2, 'fake/userinfo' => 2, 'fake/refresh' => 1,
                'refuser/token' => 1, 'refuser/userinfo' => 1,
                'refuser/refresh' => 1 },
              'refreshes are timed as endpoint="refresh"');

    # token injections by result
    is(request('GET', '/proxy/fake/x?account=a1', owner => 'alice')->{status},
       200, 'injected');
    is(request('GET', '/proxy/fake/x?account=a2', owner => 'alice')->{status},
       200, 'injected');
    is(request('GET', '/proxy/fake/x', owner => 'bob')->{status}, 401,
       'not connected');
    is(request('GET', '/proxy/fake/x')->{status}, 401, 'no owner');
    is(request('GET', '/proxy/fake/x', owner => 'alice')->{status}, 409,
       'two accounts, none chosen');
    is(request('GET', '/proxy/refuser/x', owner => 'alice')->{status}, 401,
       'refused refresh: reauthorization required');
    is(request('GET', '/by-name/x?p=nosuch', owner => 'alice')->{status},
       404, 'a name no provider has');

    my $m3 = scrape('after the injections');
    is_deeply(injections($m3),
              { 'fake/ok' => 2, 'fake/not_connected' => 1,
                'fake/unauthenticated' => 1, 'fake/account_required' => 1,
                'refuser/reauthorization_required' => 1, '/error' => 1 },
              'injections by provider and result: exactly these');

    # disconnect: the gauge goes down, revocation calls are timed
    api('DELETE', 'connections/fake/a2', owner => 'alice');
    my $m4 = scrape('after a disconnect');
    is(metric($m4, 'oauth_connections', provider => 'fake',
              status => 'connected'), 1, 'gauge: one fake connection left');
    is(delta($m3, $m4, 'oauth_outbound_request_duration_seconds_count'), 2,
       'two revocation calls timed');
    is(calls($m4, 'after a disconnect')->{'fake/revoke'}, 2,
       'as endpoint="revoke"');
    my $sum = 0;
    $sum += $_ for values %{ calls($m4, 'sum') };
    is($sum, $m4->{oauth_outbound_request_duration_seconds_count},
       'the series by provider and endpoint add up to every call');

    # every counter only ever goes up
    for my $k (keys %$m4) {
        next unless $k =~ /_total\{|_bucket\{|_count$|_sum$/;
        ok($m4->{$k} >= ($m0->{$k} // 0), "$k is monotonic")
            or diag("$m0->{$k} -> $m4->{$k}");
    }

    my $h4 = check_histogram($m4, 'oauth_outbound_request_duration_seconds',
                             'last scrape');
    is($m4->{oauth_outbound_request_duration_seconds_count}, 4 + 2 + 2 + 2,
       'ten outbound calls in all');
    ok($m4->{oauth_outbound_request_duration_seconds_sum} >= 0
       && $m4->{oauth_outbound_request_duration_seconds_sum} < 10,
       'a plausible _sum');
    is($h4->{'0.05'} + 0 > 0, 1, 'loopback calls land in the first bucket');
}

# { state => value } of a provider's oauth_circuit_state, every state
sub circuit {
    my ($m, $p) = @_;
    my %s;
    for my $k (keys %$m) {
        $s{$1} = $m->{$k}
            if $k =~ /^oauth_circuit_state\{provider="\Q$p\E",state="([^"]+)"\}$/;
    }
    return \%s;
}

sub t_gauges {
    connected_ok('alice', 'short', 's1');
    connected_ok('bob', 'short', 's1');
    api('POST', 'connections/keys', owner => 'alice',
        json => { account => 'k1', credentials => { api_key => 'v' } });

    my $m = scrape('gauges');
    # (a slow run may see them expire already: 1 s tokens)
    is(metric($m, 'oauth_connections', provider => 'short',
              status => 'connected')
       + metric($m, 'oauth_connections', provider => 'short',
                status => 'expired'), 2, 'two connections, of two owners');
    is(metric($m, 'oauth_connections', provider => 'keys',
              status => 'connected'), 1, 'an API key is a connection');

    sleep 2.2;

    $m = scrape('gauges after expiry');
    is(api('GET', 'connections/short/s1', owner => 'alice')->{json}{status},
       'expired', 'the API says expired');
    is(metric($m, 'oauth_connections', provider => 'short',
              status => 'expired'), 2, 'the gauge says expired too');
    is(metric($m, 'oauth_connections', provider => 'short',
              status => 'connected'), 0, 'and not connected');

    # the circuit: two failed refreshes open it
    is(metric($m, 'oauth_circuit_open', provider => 'down'), 0,
       'circuit closed');
    is_deeply(circuit($m, 'down'), { closed => 1, open => 0, half_open => 0 },
              'oauth_circuit_state: closed');
    connected_ok('alice', 'down', 'd1');
    for (1 .. 2) {
        is(api('POST', 'connections/down/d1/refresh',
               owner => 'alice')->{status}, 502, 'the provider is down');
    }
    $m = scrape('circuit');
    is(metric($m, 'oauth_circuit_open', provider => 'down'), 1,
       'circuit open');
    is(metric($m, 'oauth_circuit_open', provider => 'fake'), 0,
       'other circuits stay closed');
    is_deeply(circuit($m, 'down'), { closed => 0, open => 1, half_open => 0 },
              'oauth_circuit_state: open');
    is_deeply(circuit($m, 'fake'), { closed => 1, open => 0, half_open => 0 },
              'oauth_circuit_state of another: closed');
    is_deeply(calls($m, 'circuit')->{'down/refresh'}, 2,
              'both failed refreshes timed');
    is(metric($m, 'oauth_refreshes_total', provider => 'down',
              result => 'unavailable'), 2, 'refreshes{down,unavailable}');
    my ($down) = grep { $_->{name} eq 'down' }
                 @{ api('GET', 'providers', owner => 'alice')->{json} };
    is($down->{circuit}, 'open', 'GET providers agrees');
}

sub t_workers {
    my (%pids, $n);
    my $port = $ENV{TEST_NGINX_API_PORT2};

    for (1 .. 24) {
        my $r = request('GET', '/connect/fake', owner => 'alice',
                        port => $port);
        $n++ if $r->{status} == 302;
        $pids{ OAuthKit::header($r, 'x-worker') // '?' }++;
    }
    is($n, 24, 'every start redirected');
    ok(keys %pids >= 2, 'the starts were served by both workers')
        or diag(explain(\%pids));

    my %seen;
    for (1 .. 8) {
        my $r = request('GET', '/metrics', port => $port);
        $seen{ OAuthKit::header($r, 'x-worker') // '?' }++;
        my $m = metrics_parse($r->{body});
        is(metric($m, 'oauth_flows_started_total', provider => 'fake'), 24,
           'every scrape counts the starts of both workers');
    }
    diag('scrapes served by ' . join(', ', sort keys %seen))
        if keys %seen < 2;
}

# HUP the master with the configuration changed by $edit; wait until the
# new workers answer (GET providers shows the display_name $marker)
sub reload_with {
    my ($edit, $marker) = @_;
    no warnings 'once';
    my $root = $Test::Nginx::Util::ServRoot // $Test::Nginx::Compat::ServRoot;
    my $conf = "$root/conf/nginx.conf";

    open my $in, '<', $conf or die "$conf: $!";
    my $text = do { local $/; <$in> };
    close $in;
    $edit->($text);
    open my $out, '>', $conf or die "$conf: $!";
    print $out $text;
    close $out;

    my ($pidfile) = $text =~ /^\s*pid\s+(\S+);/m;
    open my $pf, '<', $pidfile or die "$pidfile: $!";
    chomp(my $pid = <$pf>);
    close $pf;
    kill 'HUP', $pid or die "HUP $pid: $!";

    my $until = time + 10;
    while (time < $until) {
        my $r = api('GET', 'providers', owner => 'alice');
        return 1 if grep { $_->{display_name} eq $marker }
                    @{ $r->{json} || [] };
        select undef, undef, undef, 0.1;
    }
    return 0;
}

sub t_reload {
    connected_ok('alice', 'fake', 'a1');
    connected_ok('alice', 'refuser', 'r1');
    is(api('POST', 'connections/fake/a1/refresh', owner => 'alice')->{status},
       200, 'refreshed');
    is(request('GET', '/proxy/fake/x', owner => 'alice')->{status}, 200,
       'injected');
    my $m0 = scrape('before the reload');

    # the providers change places: keys first, fake after it
    ok(reload_with(sub {
        $_[0] =~ s/(\n\s*oauth_provider keys \{.*?\n\s*\}\n)//s
            or die 'no keys block';
        my $keys = $1;
        $keys =~ s/display_name "Keys"/display_name "Keys 2"/ or die;
        $_[0] =~ s/(\n\s*oauth_provider fake \{)/$keys$1/ or die;
    }, 'Keys 2'), 'reloaded with the providers reordered');

    my $m1 = scrape('after the reload');
    for my $k (qw(oauth_flows_started_total oauth_flows_completed_total
                  oauth_refreshes_total oauth_token_injections_total
                  oauth_outbound_request_duration_seconds_bucket
                  oauth_outbound_request_duration_seconds_count
                  oauth_outbound_duration_seconds_bucket
                  oauth_outbound_duration_seconds_count))
    {
        for my $s (grep { /^\Q$k\E(\{|$)/ } sort keys %$m0) {
            is($m1->{$s}, $m0->{$s}, "a reload keeps $s");
        }
    }
    is(metric($m1, 'oauth_flows_started_total', provider => 'fake'), 1,
       'fake keeps its own count');
    is(metric($m1, 'oauth_flows_started_total', provider => 'keys'), 0,
       'keys does not inherit it');
    is(metric($m1, 'oauth_token_injections_total', provider => 'keys',
              result => 'ok'), 0, 'nor its injections');

    # the new workers count on
    request('GET', '/connect/fake', owner => 'alice');
    is(api('POST', 'connections/fake/a1/refresh', owner => 'alice')->{status},
       200, 'refreshed after the reload');

    # two more reloads: the block of the first reload is freed
    for my $n (3, 4) {
        ok(reload_with(sub {
            $_[0] =~ s/display_name "Keys \d"/display_name "Keys $n"/ or die;
        }, "Keys $n"), "reload $n");
    }

    my $m2 = scrape('after three reloads');
    is(metric($m2, 'oauth_flows_started_total', provider => 'fake'), 2,
       'started{fake} counted on');
    is(metric($m2, 'oauth_refreshes_total', provider => 'fake',
              result => 'ok'), 2, 'refreshes{fake,ok} counted on');
    is(metric($m2, 'oauth_flows_started_total', provider => 'refuser'), 1,
       'started{refuser} kept');
}

# Failed connect attempts: { "provider/reason" => n } of the series that
# are not 0
sub failures {
    my $m = shift;
    my %c;
    for my $k (keys %$m) {
        next unless $k =~ /^oauth_connect_failures_total
                           \{provider="([^"]*)",reason="([^"]*)"\}$/x;
        $c{"$1/$2"} = $m->{$k} if $m->{$k};
    }
    return \%c;
}

sub failed_ok {
    my ($res, $error, $what) = @_;
    is(OAuthKit::flow_result($res)->{error}, $error, "$what: $error");
}

sub t_failures {
    my $m0 = scrape('before the failures');
    like(metrics_text(), qr/^# TYPE oauth_connect_failures_total counter$/m,
         'the family is there');
    is_deeply(failures($m0), {}, 'no failure series yet');

    my $f = start_flow(uri => '/connect/fake', owner => 'alice');
    failed_ok(callback($f, cookie => undef), 'browser_mismatch',
              'no binding cookie');

    $f = start_flow(uri => '/connect/fake', owner => 'alice');
    failed_ok(callback($f, owner => 'mallory'), 'owner_mismatch',
              'another owner');

    $f = start_flow(uri => '/connect/fake', owner => 'alice');
    failed_ok(callback($f, owner => 'mallory'), 'owner_mismatch',
              'another owner again');

    $f = start_flow(uri => '/connect/issued', owner => 'alice');
    failed_ok(callback($f, query => 'iss=https%3A%2F%2Fevil.example'),
              'issuer_mismatch', 'another issuer');

    $f = start_flow(uri => '/connect/fake', owner => 'alice');
    failed_ok(callback($f, no_code => 1, query => 'error=access_denied'),
              'access_denied', 'the user said no');

    $f = start_flow(uri => '/connect/nowhere', owner => 'alice');
    failed_ok(callback($f), 'token_request_failed', 'no token endpoint');

    # a state no flow ever had: the provider is not known
    my $forged = { state => 'A' x 43, cookie => undef, owner => 'alice' };
    is(callback($forged)->{status}, 400, 'a forged state: 400');
    is(callback({ state => 'short' })->{status}, 400, 'a malformed state');

    my $ok = connected_ok('alice', 'fake', 'a1');
    is($ok->{status}, 'connected', 'a connect is no failure');

    my $m1 = scrape('after the failures');
    is_deeply(failures($m1),
              { 'fake/browser_mismatch' => 1, 'fake/owner_mismatch' => 2,
                'issued/issuer_mismatch' => 1, 'fake/access_denied' => 1,
                'nowhere/token_request_failed' => 1,
                '/invalid_state' => 2 },
              'oauth_connect_failures_total: exactly these');
    is(delta($m0, $m1, 'oauth_flows_completed_total', provider => 'fake',
             result => 'error'), 4, 'the known flows completed in error');
}

run_tests();

__DATA__

=== TEST 1: counters move as the test acts; the format is checked line by line
--- config eval
OAuthKit::api_locations() . <<'_EOC_';

    location /proxy/refuser/ {
        oauth_token refuser;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/echo/;
    }

    location /by-name/ {
        oauth_token $arg_p;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/echo/;
    }
_EOC_
--- init
main::t_counters();
--- request
GET /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4
--- response_body_like
^# HELP oauth_flows_started_total .*
oauth_token_injections_total\{provider="fake",result="ok"\} 2
--- no_error_log
[alert]
[emerg]



=== TEST 2: gauges: connections by provider and status, open circuits
--- http_config
    oauth_provider short {
        client_id short-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/short/token;
        account_id user_id;
    }
--- init
main::t_gauges();
--- request
POST /metrics
--- error_code: 405
--- no_error_log
[alert]
[emerg]



=== TEST 3: two workers: every scrape shows the counts of both
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_API_PORT2 reuseport;
        oauth_owner $http_x_owner;
        add_header X-Worker $pid always;

        location ~ ^/connect/(?<oauth_p>[a-z0-9_]+)$ {
            oauth_start $oauth_p;
        }

        location = /metrics {
            oauth_metrics;
        }
    }
--- init
main::t_workers();
--- request
GET /metrics
--- response_body_like: oauth_flows_started_total\{provider="fake"\} 24
--- no_error_log
[alert]
[emerg]



=== TEST 4: a reload keeps the counts, by provider name
--- init
main::t_reload();
--- request
GET /metrics
--- response_body_like: oauth_flows_started_total\{provider="fake"\} 2\n
--- no_error_log
[alert]
[emerg]
[crit]



=== TEST 5: failed connect attempts, by provider and reason
--- http_config
    oauth_provider issued {
        client_id issued-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/token;
        issuer https://issuer.example;
        account_id sub;
    }

    oauth_provider nowhere {
        client_id nowhere-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url http://127.0.0.1:1/token;
        account_id sub;
    }
--- init
main::t_failures();
--- request
GET /metrics
--- response_body_like: oauth_connect_failures_total\{provider="fake",reason="owner_mismatch"\} 2\n(?:.*\n)*oauth_connect_failures_total\{provider="",reason="invalid_state"\} 2\n
--- no_error_log
[alert]
[emerg]
