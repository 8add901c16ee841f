package FakeProvider;

# The one scripted OAuth 2.0 provider of the Test::Nginx suites: a token
# endpoint, an API, userinfo, revocation and an echoing upstream on
# 127.0.0.1, in a process of its own.  Use it through t/lib/OAuthKit.pm
# (OAuthKit::fake()); t/README.md says how to add a scenario.
#
#   my $fake = FakeProvider->start;          # port: $fake->port
#   $fake->set(expires_in => 1);             # script the next answers
#   $fake->count('refresh');                 # how often it was called
#   $fake->requests(path => '/token');       # what it received
#   $fake->route('/token/bad', 400, '{"error":"invalid_grant"}');
#   $fake->stop;                             # also done in an END block
#
# The socket is bound by start(); the server process is forked at once, or
# with start(lazy => 1) by run() (OAuthKit does that before the first
# block, so that scenarios a suite defines at file level, after "use
# OAuthKit", exist in the server).
#
# Scenarios.  A path "/NAME/ENDPOINT..." whose first segment names a
# scenario is answered by that scenario's handler for ENDPOINT (the next
# segment: token, api, userinfo, revoke, echo, ...), falling back to its
# base scenario's, finally to "default"'s.  Other paths use the scenario of
# the knob "scenario" (default "default").  A handler is
#   sub { my ($st, $req) = @_; ...; return FakeProvider::reply(...) }
# with $st the scripted state (knobs, counts, grants; changes are kept) and
# $req { method, path, rel (path without the scenario), query, headers,
# head, body, form, scenario }.  Define one with
#   FakeProvider::scenario(NAME, base => 'default', ENDPOINT => HANDLER...)
#
# Built-in scenarios:
#   default  token: grant_type=authorization_code: the code names the
#            account ("alice-1"); answers access and refresh tokens,
#            expires_in from the script, the account as user.id / user.name
#            (or the raw body in knob code_body).  grant_type=refresh_token:
#            each refresh token works once; presenting a spent one is a
#            "reuse": counted, and the whole grant is revoked (GitHub Apps,
#            RFC 9700 4.14.2).  Knobs: refresh_mode ok|error|invalid_grant|
#            drop|html|unknown_error, refresh_status, rotate (0: answer
#            without refresh_token), delay (seconds, after the new tokens
#            are issued and before the answer is sent), code_delay
#            (seconds before the code exchange's answer; the code is spent
#            already), pkce_codes => { CODE => S256 challenge } (that code
#            only works with the matching code_verifier, RFC 7636 4.6).
#            api/...: 200 text/plain with the raw request head it received,
#            X-Token-Valid: yes|no; 401 while api_401 > 0 (counted down),
#            after api_delay seconds.
#            userinfo: {"sub","id","name"} of the bearer token's account;
#            401 for an unknown token or while knob userinfo_down is set.
#            keycheck: 200 {"id":"checked"} for an X-Api-Key "good-...",
#            else (or while knob keycheck_down is set) 401.
#            revoke: 200, counted.  echo/...: the raw request head (an
#            upstream that is not the provider); missing/...: 404;
#            accel/...: X-Accel-Redirect to /echo/accel; _counts: the
#            counters as "name=N" lines (not counted itself).
#   static   tokens named after the code: access "AT-<code>", refresh
#            "RT-<code>", expires_in 3600; a refresh with "RT-<x>" answers
#            "AT2-<x>" and "RT-<x>" again, expires_in 7200 (no rotation);
#            userinfo {"sub":x,"name":"User x"} for "Bearer AT-x"/"AT2-x";
#            echo/...: "uri=..", "x-api-key=[..]", "authorization=[..]",
#            "x-auth-token=[..]", "x-custom-auth=[..]" lines.
#   refuse   static, but a refresh is refused (400 invalid_grant) and
#            revocation answers 500.
#   down     static, but a refresh gets 503 temporarily_unavailable.
#   short    token: access "AT-short" for account "user_id" s1, expiring in
#            1 s, no refresh token.
#   slowrev  static, revocation answers after 3 s.
#   lazyrev  static, revocation answers after 0.3 s.
#
# Routes: $fake->route(PATH, STATUS, BODY, type => .., delay => ..,
# headers => [..]) answers PATH (exact, without the query) with a fixed
# response, before any scenario.  reset() forgets them.
#
# Every request is logged (method, path, headers, raw head, body) as a JSON
# line.  The state is one JSON file under an flock: the server forks per
# connection, so delays never block other requests.

use strict;
use warnings;

use Errno qw(EINTR);
use Fcntl qw(:flock SEEK_SET);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use FakeQuirks;

our @Started;

my $JSON = JSON::PP->new->canonical->utf8;

my %Defaults = (
    expires_in     => 3600,
    rotate         => 1,
    refresh_mode   => 'ok',
    refresh_status => 503,
    delay          => 0,
    code_body      => undef,
    api_401        => 0,
    api_delay      => 0,
    userinfo_down  => 0,
    keycheck_down  => 0,
    code_delay     => 0,
    pkce_codes     => {},
    scenario       => 'default',
);

our %Scenarios;

sub start {
    my ($class, %opt) = @_;

    my $dir = $opt{dir} // tempdir('fakeprov-XXXXXX', TMPDIR => 1,
                                   CLEANUP => 1);
    my $self = bless {
        dir   => $dir,
        state => "$dir/state.json",
        lock  => "$dir/state.lock",
        log   => "$dir/requests.jsonl",
        owner => $$,
    }, $class;

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $opt{port} // 0,
        Proto     => 'tcp',
        Listen    => 128,
        ReuseAddr => 1,
    ) or die "FakeProvider: cannot listen: $!\n";

    $self->{port} = $listen->sockport;
    $self->{listen} = $listen;
    push @Started, $self;
    $self->reset;
    $self->run unless $opt{lazy};

    return $self;
}

# Forks the server unless it runs.
sub run {
    my $self = shift;
    my $listen = delete $self->{listen} or return $self;

    my $pid = fork;
    die "FakeProvider: fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        # its own process group: stop() ends the server and its children
        setpgrp(0, 0);
        @Started = ();
        # nothing the test process holds by now (the runner's reserved
        # ports, client sockets) may stay open in the server: a listening
        # socket kept here would take connections meant for nginx.  Each
        # is replaced by /dev/null rather than closed: a Perl handle may
        # still own the number, and a file opened later on that number
        # would then never really close (Perl counts the number's users),
        # an flock of the state included: every request would wait for
        # the slowest answer.
        my $keep = fileno $listen;
        my $null = POSIX::open('/dev/null', POSIX::O_RDWR());
        for my $fd (map { m{/(\d+)\z} ? $1 : () } glob '/proc/self/fd/*') {
            next if $fd <= 2 || $fd == $keep || $fd == $null;
            POSIX::dup2($null, $fd);
        }
        $self->_serve($listen);
        POSIX::_exit(0);
    }

    close $listen;
    $self->{pid} = $pid;
    return $self;
}

sub port { $_[0]->{port} }
sub url  { 'http://127.0.0.1:' . $_[0]->{port} . ($_[1] // '') }

sub stop {
    my $self = shift;
    return unless $$ == $self->{owner};
    close delete $self->{listen} if $self->{listen};
    return unless $self->{pid};
    my $pid = delete $self->{pid};
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    for (1 .. 50) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

END {
    $_->stop for @Started;
}

#--------------------------------------------------------------------------
# Scripting, from the test process
#--------------------------------------------------------------------------

# Forgets every grant and request, then applies the knobs given.
sub reset {
    my ($self, %knobs) = @_;
    $self->_locked(sub {
        my $st = { %Defaults, %knobs };
        $st->{seq} = 0;
        $st->{routes} = {};
        $st->{counts} = {};
        $st->{refresh_tokens} = {};
        $st->{access_tokens} = {};
        $st->{revoked} = {};
        truncate $self->{log}, 0 if -e $self->{log};
        return $st;
    });
}

sub set {
    my ($self, %knobs) = @_;
    $self->_locked(sub {
        my $st = shift;
        @$st{keys %knobs} = values %knobs;
        return $st;
    });
}

# A fixed answer for one path (see the top of the file).
sub route {
    my ($self, $path, $status, $body, %o) = @_;
    $self->_locked(sub {
        my $st = shift;
        $st->{routes}{$path} = { status => $status, body => $body // '',
                                 type => $o{type} // 'application/json',
                                 delay => $o{delay} // 0,
                                 headers => $o{headers} // [] };
        return $st;
    });
}

sub state {
    my $self = shift;
    my $copy;
    $self->_locked(sub { $copy = shift; return undef });
    return $copy;
}

# Counters: code, refresh, refresh_ok, refresh_error, refresh_invalid_grant,
# reuse, unknown_refresh_token, api, api_valid, api_invalid, api_401, ...
sub count {
    my ($self, $name) = @_;
    return $self->state->{counts}{$name} // 0;
}

# The refresh tokens that were issued and not spent yet (normally one per
# grant: the latest).
sub live_refresh_tokens {
    my $self = shift;
    my $st = $self->state;
    my $rts = $st->{refresh_tokens};
    return sort grep { !$rts->{$_}{used} && !$st->{revoked}{$rts->{$_}{grant}} }
                keys %$rts;
}

# Logged requests, oldest first; filters: path (exact or qr//), method.
sub requests {
    my ($self, %f) = @_;
    my @out;
    open my $fh, '<', $self->{log} or return ();
    while (my $line = <$fh>) {
        my $r = eval { $JSON->decode($line) } or next;
        if (defined $f{path}) {
            next if ref $f{path} ? $r->{path} !~ $f{path} : $r->{path} ne $f{path};
        }
        next if defined $f{method} && $r->{method} ne $f{method};
        next if defined $f{grant_type}
                && ($r->{form}{grant_type} // '') ne $f{grant_type};
        push @out, $r;
    }
    close $fh;
    return @out;
}

# Polls until $cond->() is true; returns its last value.
sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $end = time + ($timeout // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v || time > $end;
        sleep 0.05;
    }
}

sub _locked {
    my ($self, $code) = @_;
    open my $lk, '>>', $self->{lock} or die "FakeProvider: $self->{lock}: $!\n";
    flock $lk, LOCK_EX or die "FakeProvider: flock: $!\n";
    my $st = {};
    if (-s $self->{state}) {
        open my $in, '<', $self->{state} or die "FakeProvider: $!\n";
        local $/;
        $st = $JSON->decode(<$in>);
        close $in;
    }
    my $new = $code->($st);
    if ($new) {
        my $tmp = "$self->{state}.$$";
        open my $out, '>', $tmp or die "FakeProvider: $tmp: $!\n";
        print $out $JSON->encode($new);
        close $out or die "FakeProvider: $tmp: $!\n";
        rename $tmp, $self->{state} or die "FakeProvider: rename: $!\n";
    }
    # unlocked before the close: the lock must never outlive this call
    flock $lk, LOCK_UN;
    close $lk;
}

#--------------------------------------------------------------------------
# The server
#--------------------------------------------------------------------------

sub _serve {
    my ($self, $listen) = @_;

    my %kids;
    my $done = 0;

    $SIG{TERM} = sub { $done = 1 };
    $SIG{PIPE} = 'IGNORE';

    my $sel = IO::Select->new($listen);

    until ($done) {
        # the test process went away without stopping us: go too
        last if getppid() != $self->{owner} && !kill(0, $self->{owner});

        while ((my $k = waitpid(-1, WNOHANG)) > 0) {
            delete $kids{$k};
        }

        next unless $sel->can_read(0.2);

        my $c = $listen->accept or next;

        my $pid = fork;
        if (!defined $pid) {
            close $c;
            next;
        }

        if ($pid == 0) {
            close $listen;
            $SIG{TERM} = 'DEFAULT';
            alarm 60;
            eval { $self->_handle($c) };
            POSIX::_exit(0);
        }

        $kids{$pid} = 1;
        close $c;
    }

    kill 'KILL', keys %kids;
    1 while waitpid(-1, 0) > 0;
}

sub _read_request {
    my ($c) = @_;
    my $buf = '';
    my $end;
    while (($end = index $buf, "\r\n\r\n") < 0) {
        my $n = sysread $c, $buf, 8192, length $buf;
        return undef unless $n;
    }
    my $head = substr $buf, 0, $end + 2;
    my $rest = substr $buf, $end + 4;

    my ($line, @lines) = split /\r?\n/, $head;
    my ($method, $target) = split / /, $line;
    my @headers = map { /^([^:]+):[ \t]*(.*?)[ \t]*$/ ? [$1, $2] : [$_, undef] }
                  @lines;

    my ($len) = map { $_->[1] } grep { lc $_->[0] eq 'content-length' } @headers;
    my ($expect) = grep { lc $_->[0] eq 'expect' } @headers;
    if ($expect && $len && length $rest < $len) {
        syswrite $c, "HTTP/1.1 100 Continue\r\n\r\n";
    }
    $len //= 0;
    while (length $rest < $len) {
        my $n = sysread $c, $rest, $len - length $rest, length $rest;
        last unless $n;
    }

    my ($path, $query) = split /\?/, $target, 2;

    return {
        method  => $method,
        target  => $target,
        path    => $path,
        query   => $query // '',
        headers => \@headers,
        head    => $head,
        body    => $rest,
    };
}

sub _form {
    my $s = shift // '';
    my %f;
    for my $pair (split /&/, $s) {
        my ($k, $v) = split /=/, $pair, 2;
        for ($k, $v) {
            next unless defined;
            tr/+/ /;
            s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        }
        $f{$k} = $v;
    }
    return \%f;
}


sub _handle {
    my ($self, $c) = @_;

    binmode $c;
    my $req = _read_request($c) or return;
    my $ct = _header($req, 'content-type') // '';
    $req->{form} = _form($req->{body}) if $ct =~ m{x-www-form-urlencoded};

    # a JSON object of strings stands for the form (token_encoding json);
    # {json} tells a scenario which of the two came
    if ($ct =~ m{^application/json}) {
        my $j = eval { $JSON->decode($req->{body}) };
        if (ref $j eq 'HASH' && !grep { ref } values %$j) {
            $req->{form} = $j;
            $req->{json} = 1;
        }
    }
    $req->{time} = time;

    my $rep;

    $self->_locked(sub {
        my $st = shift;
        $rep = _dispatch($st, $req);
        my $status = $rep->{status};

        # the log is written under the state lock: one line, whole
        open my $log, '>>', $self->{log} or die;
        my %rec = %$req;
        $rec{status} = $status;
        print $log $JSON->encode(\%rec), "\n";
        close $log;

        return $st;
    });

    sleep $rep->{delay} if $rep->{delay};

    my $status = $rep->{status};
    return if $status == 0;     # "drop": close without an answer

    my $body = $rep->{body};
    my @h = @{ $rep->{headers} };
    my $extra = '';
    while (my ($k, $v) = splice @h, 0, 2) {
        $extra .= "$k: $v\r\n";
    }
    my $msg = $status == 200 ? 'OK' : $status == 401 ? 'Unauthorized'
            : $status == 400 ? 'Bad Request' : 'Error';
    my $out = "HTTP/1.1 $status $msg\r\n"
            . "Content-Type: $rep->{type}\r\n"
            . "Content-Length: " . length($body) . "\r\n"
            . "Connection: close\r\n"
            . $extra
            . "\r\n" . $body;

    my $off = 0;
    while ($off < length $out) {
        my $n = syswrite $c, $out, length($out) - $off, $off;
        last unless $n;
        $off += $n;
    }
    shutdown $c, 1;
    # let the client read everything before the socket goes
    my $sink;
    1 while sysread $c, $sink, 4096;
    close $c;
}


#--------------------------------------------------------------------------
# Answers: scenarios
#--------------------------------------------------------------------------

# reply(STATUS, json => DATA | body => TEXT, type => .., delay => seconds,
# headers => [ Name => value, ... ]): what a handler returns.  STATUS 0
# closes the connection without an answer.
sub reply {
    my ($status, %o) = @_;
    my $body = exists $o{json} ? $JSON->encode($o{json}) : $o{body} // '';
    my $type = $o{type} // (exists $o{json} ? 'application/json'
                                            : 'text/plain');
    return { status => $status, body => $body, type => $type,
             delay => $o{delay} // 0, headers => $o{headers} // [] };
}

# scenario(NAME, base => PARENT, ENDPOINT => HANDLER, ...): defines NAME,
# or adds endpoints to it.  Define scenarios before the server runs (at
# file level of a suite, before run_tests()).
sub scenario {
    my ($name, %def) = @_;
    my $s = $Scenarios{$name} //= {};
    @$s{keys %def} = values %def;
    return $s;
}

sub header {
    my ($req, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name }
                                 @{ $req->{headers} };
    return wantarray ? @v : $v[0];
}
*_header = \&header;

sub _handler {
    my ($name, $endpoint) = @_;
    my %seen;
    while (defined $name && !$seen{$name}++) {
        my $s = $Scenarios{$name} or last;
        return $s->{$endpoint} if $s->{$endpoint};
        $name = $s->{base} // ($name eq 'default' ? undef : 'default');
    }
    return;
}

sub _dispatch {
    my ($st, $req) = @_;

    if (my $r = ($st->{routes} // {})->{ $req->{path} }) {
        $st->{counts}{route}++;
        return reply($r->{status}, body => $r->{body}, type => $r->{type},
                     delay => $r->{delay}, headers => $r->{headers});
    }

    # the named provider quirks (t/lib/FakeQuirks.pm) answer first, in
    # the list form (status, type, body, delay, extra header lines)
    if (my @q = FakeQuirks::answer($st, $req)) {
        my ($status, $type, $body, $delay, $extra) = @q;
        my @h = map { /^([^:]+):\s*(.*)$/ ? ($1, $2) : () }
                split /\r\n/, $extra // '';
        return reply($status, body => $body, type => $type,
                     delay => $delay, headers => \@h);
    }

    my ($first, $rest) = $req->{path} =~ m{^/([^/]*)(.*)\z}s;
    my $name = $st->{scenario} // 'default';
    $req->{rel} = $req->{path};
    if (defined $first && $Scenarios{$first} && $first ne 'default') {
        $name = $first;
        $req->{rel} = length $rest ? $rest : '/';
    }
    $req->{scenario} = $name;

    my ($endpoint) = $req->{rel} =~ m{^/([^/]*)};
    my $code = _handler($name, $endpoint // '');
    if (!$code) {
        $st->{counts}{not_found}++;
        return reply(404, json => { error => 'not_found' });
    }
    return $code->($st, $req);
}

sub _s256 {
    require Digest::SHA;
    my $b = Digest::SHA::sha256_base64(shift);
    $b =~ tr{+/}{-_};
    return $b;
}

# Tokens of the default scenario: access "at-N-ACCOUNT", refresh
# "rt-N-ACCOUNT", remembered with their grant.
sub issue {
    my ($st, $account, $grant, $with_refresh) = @_;
    my $n = ++$st->{seq};
    my $at = "at-$n-$account";
    $st->{access_tokens}{$at} = {
        account => $account,
        grant   => $grant,
        expires => time + $st->{expires_in},
    };
    my %tok = (
        access_token => $at,
        token_type   => 'Bearer',
        expires_in   => $st->{expires_in},
        scope        => 'read write',
    );
    if ($with_refresh) {
        my $rt = "rt-$n-$account";
        $st->{refresh_tokens}{$rt} = { account => $account, grant => $grant,
                                       used => 0 };
        $tok{refresh_token} = $rt;
    }
    return \%tok;
}

# the list form of an answer, for FakeQuirks.pm
sub _json { return (shift, 'application/json', $JSON->encode(shift), @_) }
*_issue = \&issue;

# The scripted refresh failures (knob refresh_mode), or undef for "ok".
sub refresh_failure {
    my $st = shift;
    my $mode = $st->{refresh_mode} // 'ok';
    my $d = $st->{delay};
    my $c = $st->{counts};

    if ($mode eq 'error') {
        $c->{refresh_error}++;
        return reply($st->{refresh_status},
                     json => { error => 'temporarily_unavailable' },
                     delay => $d);
    }
    if ($mode eq 'html') {
        # a firewall's or a wrong URL's page, not an OAuth answer
        $c->{refresh_error}++;
        return reply($st->{refresh_status}, type => 'text/html',
                     body => '<html><body>Forbidden</body></html>',
                     delay => $d);
    }
    if ($mode eq 'unknown_error') {
        $c->{refresh_error}++;
        return reply($st->{refresh_status},
                     json => { error => 'rate_limited_by_vendor' },
                     delay => $d);
    }
    if ($mode eq 'drop') {
        $c->{refresh_error}++;
        return reply(0, delay => $d);
    }
    if ($mode eq 'invalid_grant') {
        $c->{refresh_invalid_grant}++;
        return reply(400, json => { error => 'invalid_grant',
                                    error_description => 'revoked' },
                     delay => $d);
    }
    return;
}

# The default scenario's token endpoint; a scenario may call it and adjust
# the reply.
sub default_token {
    my ($st, $req) = @_;
    my $counts = $st->{counts};
    return reply(405, json => { error => 'invalid_request' })
        unless $req->{method} eq 'POST';

    my $f = $req->{form} // {};
    my $gt = $f->{grant_type} // '';

    if ($gt eq 'authorization_code') {
        $counts->{code}++;
        return reply(200, type => 'application/json',
                     body => $st->{code_body}, delay => $st->{code_delay})
            if defined $st->{code_body};
        my $account = $f->{code} // 'none';
        my $challenge = ($st->{pkce_codes} // {})->{$account};
        if (defined $challenge
            && $challenge ne _s256($f->{code_verifier} // ''))
        {
            # RFC 7636 4.6: the code was issued for another verifier
            $counts->{pkce_mismatch}++;
            return reply(400, json => { error => 'invalid_grant',
                                        error_description => 'PKCE' });
        }
        my $grant = "g" . ($st->{seq} + 1);
        my $tok = issue($st, $account, $grant, 1);
        $tok->{user} = { id => $account, name => "User $account" };
        return reply(200, json => $tok, delay => $st->{code_delay});
    }

    if ($gt eq 'refresh_token') {
        $counts->{refresh}++;
        if (my $fail = refresh_failure($st)) {
            return $fail;
        }

        my $rt = $f->{refresh_token} // '';
        my $rec = $st->{refresh_tokens}{$rt};

        if (!$rec) {
            $counts->{unknown_refresh_token}++;
            return reply(400, json => { error => 'invalid_grant' });
        }
        if ($rec->{used} || $st->{revoked}{ $rec->{grant} }) {
            # a spent token again: the grant is compromised
            $counts->{reuse}++ if $rec->{used};
            $st->{revoked}{ $rec->{grant} } = 1;
            return reply(400, json => { error => 'invalid_grant',
                                        error_description => 'token reused' });
        }

        # a provider that does not rotate keeps the token valid
        $rec->{used} = 1 if $st->{rotate};
        $counts->{refresh_ok}++;
        my $tok = issue($st, $rec->{account}, $rec->{grant}, $st->{rotate});
        return reply(200, json => $tok, delay => $st->{delay});
    }

    $counts->{token_other}++;
    return reply(400, json => { error => 'unsupported_grant_type' });
}

# The account of a bearer token (or X-Api-Key) the default scenario issued,
# undef when unknown or revoked.
sub _bearer {
    my ($st, $req) = @_;
    my $auth = header($req, 'authorization');
    my $xkey = header($req, 'x-api-key');
    my $tok = defined $auth && $auth =~ /^Bearer (\S+)$/ ? $1 : $xkey;
    my $at = defined $tok ? $st->{access_tokens}{$tok} : undef;
    return $at && !$st->{revoked}{ $at->{grant} } ? $at : undef;
}

sub _default_api {
    my ($st, $req) = @_;
    my $counts = $st->{counts};
    $counts->{api}++;
    my $valid = _bearer($st, $req);
    $counts->{ $valid ? 'api_valid' : 'api_invalid' }++;

    if ($st->{api_401} > 0) {
        $st->{api_401}--;
        $counts->{api_401}++;
        return reply(401, json => { error => 'invalid_token' },
                     delay => $st->{api_delay},
                     headers => [ 'WWW-Authenticate'
                                  => 'Bearer error="invalid_token"' ]);
    }

    return reply(200, body => $req->{head}, delay => $st->{api_delay},
                 headers => [ 'X-Token-Valid' => $valid ? 'yes' : 'no' ]);
}

sub _default_userinfo {
    my ($st, $req) = @_;
    $st->{counts}{userinfo}++;
    my $at = $st->{userinfo_down} ? undef : _bearer($st, $req);
    return reply(401, json => { error => 'invalid_token' }) unless $at;
    return reply(200, json => { sub => $at->{account}, id => $at->{account},
                                name => "User $at->{account}" });
}

sub _counts {
    my ($st) = @_;
    my $c = $st->{counts};
    my @k = qw(code refresh refresh_ok refresh_error refresh_invalid_grant
               reuse unknown_refresh_token api api_valid api_invalid
               api_401);
    my %seen = map { $_ => 1 } @k;
    push @k, sort grep { !$seen{$_} } keys %$c;
    return reply(200, body => join '', map { "$_=" . ($c->{$_} // 0) . "\n" }
                                           @k);
}

scenario(default =>
    token    => \&default_token,
    api      => \&_default_api,
    userinfo => \&_default_userinfo,
    keycheck => sub {
        my ($st, $req) = @_;
        $st->{counts}{keycheck}++;
        return reply(401, json => { error => 'invalid_key' })
            if $st->{keycheck_down}
               || (header($req, 'x-api-key') // '') !~ /^good-/;
        return reply(200, json => { id => 'checked' });
    },
    revoke   => sub { $_[0]{counts}{revoke}++; reply(200, json => {}) },
    echo     => sub { $_[0]{counts}{echo}++; reply(200, body => $_[1]{head}) },
    missing  => sub { $_[0]{counts}{missing}++;
                      reply(404, body => "not here\n") },
    accel    => sub { $_[0]{counts}{accel}++;
                      reply(200, body => "redirected\n",
                            headers => [ 'X-Accel-Redirect'
                                         => '/echo/accel' ]) },
    _counts  => \&_counts,
);

# static: tokens named after the code, no rotation (see the top); refresh
# => sub { reply } replaces the answer to a refresh grant.
sub static_token {
    my ($st, $req, %o) = @_;
    my $f = $req->{form} // {};
    my $gt = $f->{grant_type} // '';
    if ($gt eq 'refresh_token') {
        $st->{counts}{refresh}++;
        return $o{refresh}->() if $o{refresh};
        my ($x) = ($f->{refresh_token} // '') =~ /^RT-(.*)\z/s;
        return reply(400, json => { error => 'invalid_grant' })
            unless defined $x;
        return reply(200, json => { access_token => "AT2-$x",
                                    refresh_token => "RT-$x",
                                    token_type => 'Bearer',
                                    expires_in => 7200 });
    }
    $st->{counts}{code}++;
    my $c = $f->{code} // 'none';
    return reply(200, json => { access_token => "AT-$c",
                                refresh_token => "RT-$c",
                                token_type => 'Bearer', expires_in => 3600,
                                scope => 'read write' });
}

scenario(static =>
    token    => \&static_token,
    userinfo => sub {
        my ($st, $req) = @_;
        $st->{counts}{userinfo}++;
        my ($x) = (header($req, 'authorization') // '')
                  =~ /^Bearer AT2?-([A-Za-z0-9_.~%-]+)$/;
        return reply(401, json => { error => 'invalid_token' })
            if $st->{userinfo_down} || !defined $x;
        return reply(200, json => { sub => $x, name => "User $x" });
    },
    revoke   => sub { $_[0]{counts}{revoke}++; reply(200, body => "ok\n") },
    echo     => sub {
        my ($st, $req) = @_;
        $st->{counts}{echo}++;
        my $out = "uri=$req->{rel}\n";
        $out .= "$_=[" . (header($req, $_) // '') . "]\n"
            for qw(x-api-key authorization x-auth-token x-custom-auth);
        return reply(200, body => $out);
    },
);

scenario(refuse => base => 'static',
    token  => sub {
        my ($st, $req) = @_;
        static_token($st, $req, refresh => sub {
            reply(400, json => { error => 'invalid_grant',
                                 error_description => 'grant revoked' }) });
    },
    revoke => sub { $_[0]{counts}{revoke}++; reply(500, body => "failed\n") },
);

scenario(down => base => 'static',
    token => sub {
        my ($st, $req) = @_;
        static_token($st, $req, refresh => sub {
            reply(503, json => { error => 'temporarily_unavailable' }) });
    },
);

# knob short_expires_in: the token's lifetime (default 1 s)
scenario(short =>
    token => sub {
        $_[0]{counts}{code}++;
        reply(200, json => { access_token => 'AT-short',
                             token_type => 'Bearer',
                             expires_in => $_[0]{short_expires_in} // 1,
                             user_id => 's1' });
    },
);

scenario(slowrev => base => 'static',
    revoke => sub { $_[0]{counts}{revoke}++;
                    reply(200, body => "late\n", delay => 3) },
);

scenario(lazyrev => base => 'static',
    revoke => sub { $_[0]{counts}{revoke}++;
                    reply(200, body => "ok\n", delay => 0.3) },
);

1;
