package FakeProvider;

# A scripted OAuth 2.0 provider for the Test::Nginx suites: a token endpoint
# and an API endpoint on 127.0.0.1, in a process of its own.
#
#   my $fake = FakeProvider->start;          # port: $fake->port
#   $fake->set(expires_in => 1);             # script the next answers
#   $fake->count('refresh');                 # how often it was called
#   $fake->requests(path => '/token');       # what it received
#   $fake->stop;                             # also done in an END block
#
# Token endpoint, POST /token (form):
#   grant_type=authorization_code: the code names the account ("alice-1");
#     answers access and refresh tokens, expires_in from the script, and the
#     account as user.id / user.name (or the raw body in `code_body`).
#   grant_type=refresh_token: each refresh token works once.  Presenting a
#     spent one is a "reuse": counted, and the whole grant is revoked, the
#     way GitHub Apps and RFC 9700 section 4.14.2 strict providers behave.
#     Knobs: refresh_mode ok|error|invalid_grant|drop|html|unknown_error,
#     refresh_status,
#     rotate (0: answer without refresh_token), delay (seconds, after the
#     new tokens are issued and before the answer is sent).
#   code_delay: seconds before the code exchange's answer (the code is
#     spent already); pkce_codes => { CODE => S256 challenge }: that code
#     only works with the matching code_verifier (RFC 7636 4.6).
# API endpoint, any method on /api/...: answers 200 text/plain with the raw
#   request head it received (byte for byte), X-Token-Valid: yes|no; it
#   answers 401 while api_401 > 0 (counted down), after api_delay seconds.
#
# /echo/... answers the raw request head too (an upstream that is not the
# provider); /missing/... answers 404; /accel/... answers with an
# X-Accel-Redirect to /echo/accel.
# GET /_counts answers the counters as "name=N" lines (not counted itself).
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
    code_delay     => 0,
    pkce_codes     => {},
);

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
    $self->reset;

    my $pid = fork;
    die "FakeProvider: fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        # its own process group: stop() ends the server and its children
        setpgrp(0, 0);
        @Started = ();
        $self->_serve($listen);
        POSIX::_exit(0);
    }

    close $listen;
    $self->{pid} = $pid;
    push @Started, $self;

    return $self;
}

sub port { $_[0]->{port} }
sub url  { 'http://127.0.0.1:' . $_[0]->{port} . ($_[1] // '') }

sub stop {
    my $self = shift;
    return unless $self->{pid} && $$ == $self->{owner};
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

sub _header {
    my ($req, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $req->{headers} };
    return wantarray ? @v : $v[0];
}

sub _handle {
    my ($self, $c) = @_;

    binmode $c;
    my $req = _read_request($c) or return;
    $req->{form} = _form($req->{body})
        if (_header($req, 'content-type') // '') =~ m{x-www-form-urlencoded};
    $req->{time} = time;

    my ($status, $type, $body, $delay, $extra);

    $self->_locked(sub {
        my $st = shift;
        ($status, $type, $body, $delay, $extra) = $self->_answer($st, $req);

        # the log is written under the state lock: one line, whole
        open my $log, '>>', $self->{log} or die;
        my %rec = %$req;
        $rec{status} = $status;
        print $log $JSON->encode(\%rec), "\n";
        close $log;

        return $st;
    });

    sleep $delay if $delay;

    return if $status == 0;     # "drop": close without an answer

    $extra //= '';
    my $msg = $status == 200 ? 'OK' : $status == 401 ? 'Unauthorized'
            : $status == 400 ? 'Bad Request' : 'Error';
    my $out = "HTTP/1.1 $status $msg\r\n"
            . "Content-Type: $type\r\n"
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

sub _s256 {
    require Digest::SHA;
    my $b = Digest::SHA::sha256_base64(shift);
    $b =~ tr{+/}{-_};
    return $b;
}

sub _json { return (shift, 'application/json', $JSON->encode(shift), @_) }

sub _issue {
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

sub _answer {
    my ($self, $st, $req) = @_;
    my $counts = $st->{counts};

    # the named provider quirks (t/lib/FakeQuirks.pm) answer first
    if (my @q = FakeQuirks::answer($st, $req)) {
        return @q;
    }

    if ($req->{path} eq '/token' && $req->{method} eq 'POST') {
        my $f = $req->{form} // {};
        my $gt = $f->{grant_type} // '';

        if ($gt eq 'authorization_code') {
            $counts->{code}++;
            return (200, 'application/json', $st->{code_body},
                    $st->{code_delay})
                if defined $st->{code_body};
            my $account = $f->{code} // 'none';
            my $challenge = $st->{pkce_codes}{$account};
            if (defined $challenge
                && $challenge ne _s256($f->{code_verifier} // ''))
            {
                # RFC 7636 4.6: the code was issued for another verifier
                $counts->{pkce_mismatch}++;
                return _json(400, { error => 'invalid_grant',
                                    error_description => 'PKCE' });
            }
            my $grant = "g" . ($st->{seq} + 1);
            my $tok = _issue($st, $account, $grant, 1);
            $tok->{user} = { id => $account, name => "User $account" };
            return _json(200, $tok, $st->{code_delay});
        }

        if ($gt eq 'refresh_token') {
            $counts->{refresh}++;
            my $mode = $st->{refresh_mode};

            if ($mode eq 'error') {
                $counts->{refresh_error}++;
                return _json($st->{refresh_status},
                             { error => 'temporarily_unavailable' },
                             $st->{delay});
            }
            if ($mode eq 'html') {
                # a firewall's or a wrong URL's page, not an OAuth answer
                $counts->{refresh_error}++;
                return ($st->{refresh_status}, 'text/html',
                        '<html><body>Forbidden</body></html>', $st->{delay});
            }
            if ($mode eq 'unknown_error') {
                $counts->{refresh_error}++;
                return _json($st->{refresh_status},
                             { error => 'rate_limited_by_vendor' },
                             $st->{delay});
            }
            if ($mode eq 'drop') {
                $counts->{refresh_error}++;
                return (0, '', '', $st->{delay});
            }
            if ($mode eq 'invalid_grant') {
                $counts->{refresh_invalid_grant}++;
                return _json(400, { error => 'invalid_grant',
                                    error_description => 'revoked' },
                             $st->{delay});
            }

            my $rt = $f->{refresh_token} // '';
            my $rec = $st->{refresh_tokens}{$rt};

            if (!$rec) {
                $counts->{unknown_refresh_token}++;
                return _json(400, { error => 'invalid_grant' });
            }
            if ($rec->{used} || $st->{revoked}{ $rec->{grant} }) {
                # a spent token again: the grant is compromised
                $counts->{reuse}++ if $rec->{used};
                $st->{revoked}{ $rec->{grant} } = 1;
                return _json(400, { error => 'invalid_grant',
                                    error_description => 'token reused' });
            }

            # a provider that does not rotate keeps the token valid
            $rec->{used} = 1 if $st->{rotate};
            $counts->{refresh_ok}++;
            my $tok = _issue($st, $rec->{account}, $rec->{grant},
                             $st->{rotate});
            return _json(200, $tok, $st->{delay});
        }

        $counts->{token_other}++;
        return _json(400, { error => 'unsupported_grant_type' });
    }

    if ($req->{path} =~ m{^/(echo|missing|accel)(?:/|$)}) {
        # not the provider's API: an echo of what reached it, a 404, or
        # an X-Accel-Redirect to /echo/accel
        my $what = $1;
        $counts->{$what}++;
        return (200, 'text/plain', $req->{head}) if $what eq 'echo';
        return (404, 'text/plain', "not here\n") if $what eq 'missing';
        return (200, 'text/plain', "redirected\n", 0,
                "X-Accel-Redirect: /echo/accel\r\n");
    }

    if ($req->{path} =~ m{^/api(?:/|$)}) {
        $counts->{api}++;
        my ($auth) = _header($req, 'authorization');
        my ($xkey) = _header($req, 'x-api-key');
        my $tok = defined $auth && $auth =~ /^Bearer (\S+)$/ ? $1 : $xkey;
        my $at = defined $tok ? $st->{access_tokens}{$tok} : undef;
        my $valid = $at && !$st->{revoked}{ $at->{grant} };
        $counts->{ $valid ? 'api_valid' : 'api_invalid' }++;

        if ($st->{api_401} > 0) {
            $st->{api_401}--;
            $counts->{api_401}++;
            return (401, 'application/json', '{"error":"invalid_token"}',
                    $st->{api_delay},
                    "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        }

        return (200, 'text/plain', $req->{head}, $st->{api_delay},
                "X-Token-Valid: " . ($valid ? 'yes' : 'no') . "\r\n");
    }

    if ($req->{path} eq '/_counts') {
        my $c = $st->{counts};
        my @k = qw(code refresh refresh_ok refresh_error refresh_invalid_grant
                   reuse unknown_refresh_token api api_valid api_invalid
                   api_401);
        my %seen = map { $_ => 1 } @k;
        push @k, sort grep { !$seen{$_} } keys %$c;
        return (200, 'text/plain',
                join '', map { "$_=" . ($c->{$_} // 0) . "\n" } @k);
    }

    if ($req->{path} eq '/revoke') {
        $counts->{revoke}++;
        return (200, 'application/json', '{}');
    }

    $counts->{not_found}++;
    return _json(404, { error => 'not_found' });
}

1;
