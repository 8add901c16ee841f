package Test::Nginx::Socket;

# Shim for the Test::Nginx::Socket API.
#
# The suites in t/ are written for openresty's test-nginx.  That framework is
# not packaged by Debian and CPAN may be unreachable, so the project ships a
# small implementation of the subset it uses (Test::Nginx::Compat).  This file
# decides which one a test gets:
#
#   * if another Test/Nginx/Socket.pm exists further down @INC (the real
#     framework installed from CPAN or a checkout), load that one, so the very
#     same .t files run unchanged under the reference implementation;
#   * otherwise, or when TEST_NGINX_COMPAT=1, use Test::Nginx::Compat.
#
# TEST_NGINX_REAL=1 (make test-nginx-real) makes a missing real framework an
# error instead of a silent fallback, so that run proves what it claims.
#
# Never add a t/lib/Test/Nginx/Util.pm: the real Socket.pm loads that name and
# must find its own.

use strict;
use warnings;

use Cwd ();
use File::Spec ();

# The @INC entry this file was loaded from (…/t/lib), as an absolute path, so
# that it can be skipped however it was spelled in @INC (-I t/lib, FindBin, …).
my $SelfFile = Cwd::abs_path(__FILE__);
my $SelfDir  = do {
    my $d = $SelfFile;
    $d =~ s{/Test/Nginx/Socket\.pm\z}{};
    $d;
};

sub _find_real_framework {
    return if $ENV{TEST_NGINX_COMPAT};

    for my $dir (@INC) {
        next if ref $dir;    # code refs / objects in @INC cannot be scanned
        my $abs_dir = Cwd::abs_path($dir);
        next if !defined $abs_dir || $abs_dir eq $SelfDir;

        my $candidate = File::Spec->catfile($abs_dir, 'Test', 'Nginx', 'Socket.pm');
        next unless -f $candidate;

        my $abs = Cwd::abs_path($candidate);
        next if !defined $abs || $abs eq $SelfFile;
        return $abs;
    }
    return;
}

if (my $real = _find_real_framework()) {
    # Compile the real module into this very package.  `do` needs an
    # absolute path on perl >= 5.26 (no '.' in @INC), which abs_path gives.
    local $@;
    my $ok = do $real;
    die "Test::Nginx::Socket: failed to load the real framework from $real: $@"
        if $@;
    die "Test::Nginx::Socket: cannot read $real: $!" unless defined $ok;
    $INC{'Test/Nginx/Socket.pm'} = $real;
    our $Implementation = 'real';
}
else {
    die "Test::Nginx::Socket: TEST_NGINX_REAL is set but no other "
        . "Test/Nginx/Socket.pm is in \@INC (@INC)\n"
        if $ENV{TEST_NGINX_REAL} && !$ENV{TEST_NGINX_COMPAT};

    require Test::Nginx::Compat;

    # Inherit import() (Test::Base's: handles 'no_plan' / tests => N and the
    # exports) and everything else from the compat implementation.
    our @ISA = ('Test::Nginx::Compat');
    our $Implementation = 'compat';

    # Fully qualified calls such as Test::Nginx::Socket::run_tests() are not
    # method calls, so inheritance does not cover them: alias the API here.
    no strict 'refs';
    for my $sym (@Test::Nginx::Compat::EXPORT) {
        if ($sym =~ /^\$(\w+)\z/) {
            *{"Test::Nginx::Socket::$1"} = \${"Test::Nginx::Compat::$1"};
        }
        elsif ($sym =~ /^\w+\z/ && defined &{"Test::Nginx::Compat::$sym"}) {
            *{"Test::Nginx::Socket::$sym"} = \&{"Test::Nginx::Compat::$sym"};
        }
    }
}

1;
