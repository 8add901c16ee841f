package OAuthTest;

# Helpers for the suites that need connections: a real connect flow
# (oauth_start, then oauth_callback with the state and the browser cookie)
# against the scripted FakeProvider, plain and concurrent requests to the
# test nginx, and a few things to poll.
#
#   use OAuthTest;                      # starts the fake, exports its port
#   ...in --- init:
#   OAuthTest::fake()->reset(expires_in => 3600);
#   OAuthTest::connect(owner => 'alice', code => 'alice-1');
#
# The fake's port is in $ENV{TEST_NGINX_FAKE_PORT}; the key file the
# configs use in $ENV{TEST_NGINX_OAUTH_KEY_FILE}; a fresh directory for
# stores in $ENV{TEST_NGINX_OAUTH_DIR}.  Functions are called fully
# qualified: --- init runs in another package under the real framework.

use strict;
use warnings;

use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

use FakeProvider;

our $Fake;
our $Dir;

my $JSON = JSON::PP->new->canonical->utf8;

sub import {
    return if $Fake;

    $Dir = tempdir('oauthtest-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0700, $Dir;

    # a keyring the module accepts: one KID:BASE64 line, 0600
    my $key = join '', map { chr int rand 256 } 1 .. 32;
    my $kf = "$Dir/keys";
    open my $fh, '>', $kf or die "OAuthTest: $kf: $!\n";
    print $fh 'k1:', encode_base64($key, ''), "\n";
    close $fh;
    chmod 0600, $kf;

    $Fake = FakeProvider->start;

    $ENV{TEST_NGINX_FAKE_PORT}      = $Fake->port;
    $ENV{TEST_NGINX_OAUTH_KEY_FILE} = $kf;
    $ENV{TEST_NGINX_OAUTH_DIR}      = $Dir;
}

sub fake { $Fake }

# The block preprocessor: every block gets a store of its own, the keyring,
# the owner (the X-User request header, standing for the operator's own
# authentication), the "demo" provider on the fake and the start, callback
# and API locations, unless it sets them itself.  Responses say which worker
# answered (X-Worker).
my $BlockSeq = 0;

our $DemoProvider = <<'_EOC_';
    oauth_provider demo {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/oauth/callback;
        account_id         user.id;
        account_name       user.name;
        api_base_url       http://127.0.0.1:$TEST_NGINX_FAKE_PORT/api;
        scope              read;
    }
_EOC_

our $BaseLocations = <<'_EOC_';
    add_header X-Worker $pid always;
    location ~ ^/connect/([a-z0-9_]+)$ { oauth_start $1; }
    location = /oauth/callback { oauth_callback; }
    location /oauth/api/ { oauth_api; }
    location = /_counts { proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT; }
_EOC_

sub preprocess {
    my $block = shift;
    my $n = ++$BlockSeq;

    my $http = $block->http_config // '';
    my $base = '';
    $base .= "    oauth_store $Dir/store-$n.mdb;\n"
        unless $http =~ /\boauth_store\b/;
    $base .= "    oauth_key_file \$TEST_NGINX_OAUTH_KEY_FILE;\n"
        unless $http =~ /\boauth_key_file\b/;
    $base .= "    oauth_owner \$http_x_user;\n"
        unless $http =~ /\boauth_owner\b/;
    $base .= $DemoProvider unless $http =~ /\boauth_provider\s+demo\b/;
    $block->set_value(http_config => $base . $http);

    my $config = $block->config // '';
    $block->set_value(config => $BaseLocations . $config)
        unless $config =~ /\boauth_callback\b/;
}


sub port { $ENV{TEST_NGINX_SERVER_PORT} }

sub base { 'http://127.0.0.1:' . port() }

my $Http = HTTP::Tiny->new(max_redirect => 0, timeout => 15,
                           agent => 'oauthtest/1');

# One request; returns HTTP::Tiny's hash (status, headers, content).
sub request {
    my ($method, $path, %opt) = @_;
    my %h = %{ $opt{headers} // {} };
    $h{'X-User'} = $opt{owner} if defined $opt{owner};
    my %args = (headers => \%h);
    if (defined $opt{json}) {
        $args{content} = $JSON->encode($opt{json});
        $h{'Content-Type'} = 'application/json';
    }
    return $Http->request($method, base() . $path, \%args);
}

sub get { request('GET', @_) }

# A connect flow for owner: start, then the callback with the code the fake
# turns into this account.  Returns { ok, status, location, result, ... }.
sub connect {
    my (%o) = @_;
    my $owner = $o{owner} // 'alice';
    my $start = $o{start} // '/connect/demo';
    my $code  = $o{code} // "$owner-acct";
    my $cb    = $o{callback} // '/oauth/callback';

    my $q = join '&', map { "$_=$o{params}{$_}" } sort keys %{ $o{params} // {} };
    my $r = get($start . ($q ? "?$q" : ''), owner => $owner);

    my %out = (start_status => $r->{status});
    return \%out unless $r->{status} == 302;

    my $loc = $r->{headers}{location} // '';
    my ($state) = $loc =~ /[?&]state=([^&]+)/;
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($cookie) = $sc =~ /^([^;]+)/;

    $out{authorize} = $loc;
    return \%out unless $state && $cookie;

    $r = get("$cb?code=$code&state=$state",
             owner => $owner, headers => { Cookie => $cookie });

    $out{status} = $r->{status};
    $out{location} = $r->{headers}{location} // '';
    $out{body} = $r->{content};
    ($out{result}) = $out{location} =~ /[?&]oauth_status=([^&]+)/;
    ($out{account}) = $out{location} =~ /[?&]oauth_account=([^&]+)/;
    ($out{error}) = $out{location} =~ /[?&]oauth_error=([^&]+)/;
    $out{ok} = ($out{result} // '') eq 'connected';

    return \%out;
}

# Like connect(), but fails the test (a Test::More assertion) unless it
# worked.
sub connect_ok {
    my (%o) = @_;
    my $r = OAuthTest::connect(%o);
    Test::More::ok($r->{ok}, "connect " . ($o{owner} // 'alice') . " "
                   . ($o{code} // '')) or Test::More::diag(explain_flow($r));
    return $r;
}

sub explain_flow {
    my $r = shift;
    return join ', ', map { "$_=" . ($r->{$_} // '') } sort keys %$r;
}

# GET <api>/connections[/P/A] as owner, decoded (undef when not JSON).
sub api {
    my ($method, $path, $owner, %o) = @_;
    my $r = request($method, "/oauth/api/$path", owner => $owner, %o);
    my $data = eval { $JSON->decode($r->{content}) };
    return wantarray ? ($r->{status}, $data, $r) : $data;
}

sub connection {
    my ($owner, $provider, $account) = @_;
    my ($status, $data) = api('GET', "connections/$provider/$account",
                              $owner);
    return $status == 200 ? $data : undef;
}

# Seconds since the epoch from an RFC 3339 UTC time.
sub epoch {
    my $t = shift // return undef;
    $t =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)/ or return undef;
    require Time::Local;
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1);
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
                                      PeerPort => port(), Proto => 'tcp')
            or die "OAuthTest: connect: $!\n";
        binmode $s;
        push @socks, $s;
    }

    # all connected: now send every request
    for my $i (0 .. $#socks) {
        my $owner = $owners[ $i % @owners ];
        syswrite $socks[$i], "GET $path HTTP/1.0\r\nHost: localhost\r\n"
                             . "X-User: $owner\r\n$extra\r\n";
    }

    return \@socks;
}

sub storm_wait {
    my ($socks, $timeout) = @_;
    my (%buf, %done);
    my %idx = map { ($socks->[$_] => $_) } 0 .. $#$socks;
    my $sel = IO::Select->new(@$socks);
    my $end = time + ($timeout // 20);

    while ($sel->count && time < $end) {
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

# Polls until $cond->() returns true; returns its last value.
sub wait_for {
    my ($cond, $timeout) = @_;
    my $end = time + ($timeout // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v || time > $end;
        sleep 0.05;
    }
}

# The nginx master's pid (with master_on), from the pid file.
sub master_pid {
    my $file = ($ENV{TEST_NGINX_SERVER_ROOT} // '') . '/logs/nginx.pid';
    open my $fh, '<', $file or return undef;
    my $pid = <$fh>;
    close $fh;
    chomp $pid if defined $pid;
    return $pid;
}

# Worker pids of our nginx master (children whose parent is the master).
sub worker_pids {
    my $master = master_pid() // return ();
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
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
    my %old = map { $_ => 1 } worker_pids();
    kill 'HUP', $master or return 0;
    my $want = $o{workers} // 1;
    return wait_for(sub {
        my @new = grep { !$old{$_} } worker_pids();
        return @new >= $want;
    }, $o{timeout} // 10);
}

# Lines of the error log that match $re (a qr//).
sub error_log_grep {
    my $re = shift;
    my $file = ($ENV{TEST_NGINX_SERVER_ROOT} // '') . '/logs/error.log';
    open my $fh, '<', $file or return ();
    my @l = grep { $_ =~ $re } <$fh>;
    close $fh;
    return @l;
}

1;
