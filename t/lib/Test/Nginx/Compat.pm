package Test::Nginx::Compat;

# A small, self-contained implementation of the subset of openresty's
# Test::Nginx::Socket that this project's suites use.  It is loaded through
# t/lib/Test/Nginx/Socket.pm when the real framework is not installed.
#
# Every section keeps the meaning (and, where it matters for `plan tests`, the
# number of test assertions) it has in the real framework, so that a .t file
# passes under both.  Deliberate differences:
#
#   * blocks run in file order (the real framework shuffles them unless
#     no_shuffle() is called; set TEST_NGINX_SHUFFLE=1 to shuffle here too);
#   * a block without "--- config" gets an empty server config instead of
#     silently reusing the previous block's one;
#   * every test file gets its own random ports and its own server root, so
#     files can run in parallel under `prove -j`;
#   * nginx runs in the foreground as our own child (never daemonised), so it
#     can always be stopped and reaped, also on die() and on signals;
#   * $TEST_NGINX_* variables are also expanded in request sections;
#   * an nginx worker killed by SIGSEGV/SIGABRT/... fails the block (the real
#     framework only warns), and so does nginx exiting during a block.
#
# Environment:
#   TEST_NGINX_BINARY        nginx to run (default /usr/sbin/nginx, else PATH)
#   TEST_NGINX_LOAD_MODULES  space separated .so paths -> load_module lines
#   TEST_NGINX_SERVER_PORT   fixed port instead of a random one
#   TEST_NGINX_SERVROOT      server root to use (kept); default t/servroot_<pid>
#   TEST_NGINX_KEEP=1        keep the default server root (it is also kept when
#                            a test failed)
#   TEST_NGINX_USE_HUP=1     one nginx per file, reloaded with HUP per block
#   TEST_NGINX_USE_VALGRIND=1 (or a string of valgrind options) run nginx under
#                            memcheck; a block fails on "valgrind error"
#   TEST_NGINX_VALGRIND_SUPP suppression file(s), ':' or space separated
#   TEST_NGINX_TIMEOUT       client timeout in seconds (default 3)
#   TEST_NGINX_SLEEP         settle delay unit before reading logs (0.015)
#   TEST_NGINX_LOG_LEVEL     error_log level (default debug)
#   TEST_NGINX_MASTER_PROCESS=on  master process by default
#   TEST_NGINX_SHUFFLE=1     run blocks in random order, like the real one
#   TEST_NGINX_CHECK_ACCUM_ERR_LOG=1  error_log checks see the whole block
#   TEST_NGINX_VERBOSE=1     trace what the runner does
#   TEST_NGINX_RANDOMIZE     accepted; ports are always random here
#   TEST_NGINX_COMPAT=1      (read by Socket.pm) use this module even when the
#                            real framework is installed

use Test::Base -base;

use strict;
use warnings;

use Cwd ();
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use Fcntl qw(:flock SEEK_SET);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use HTTP::Response;
use IO::Select;
use IO::Socket::INET;
use List::Util qw(shuffle);
use POSIX ();
use Scalar::Util qw(looks_like_number);
use Socket ();
use Test::LongString ();
use Test::More ();
use Time::HiRes qw(sleep time);

our $VERSION = '0.1';

# Prototyped subs used before their definition.
sub run_test ($);
sub error_log_data ();
sub access_log_data ();
sub bail_out (@);

our @EXPORT = qw(
    run_tests run_test repeat_each no_shuffle workers master_on master_off
    master_process_enabled log_level env_to_nginx add_block_preprocessor
    add_cleanup_handler add_response_body_check no_long_string timeout
    worker_connections no_root_location config_preamble use_hup
    check_accum_error_log server_root html_dir server_port
    server_port_for_client server_addr server_name bail_out is_str
    $ServerPort $ServerPortForClient $ServRoot $ServerAddr $ServerName
    $NoLongString $RepeatEach
);

#--------------------------------------------------------------------------
# Settings (same defaults and environment variables as the real framework)
#--------------------------------------------------------------------------

our $Verbose              = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || _default_nginx_binary();
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind          = $ENV{TEST_NGINX_USE_VALGRIND};
our $UseHup               = $ENV{TEST_NGINX_USE_HUP};
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $Workers              = 1;
our $WorkerConnections    = 64;
our $RepeatEach           = 1;
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoLongString;
our $NoRootLocation       = 0;
our $ConfigPreamble       = '';
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our @ResponseBodyChecks;

# Suppressions for the stock nginx binary's deliberate leaks (see the file).
our $StockSupp = File::Spec->catfile(dirname(Cwd::abs_path(__FILE__)), 'stock-nginx.supp');

# How long nginx may take to start listening.  valgrind slows start-up a lot.
our $StartupTimeout = $UseValgrind ? 120 : 15;

#--------------------------------------------------------------------------
# Ports: random, and never shared with another test process
#--------------------------------------------------------------------------
#
# Several .t files run at once under `prove -j`.  Each port we hand out is
# protected by an flock()ed file in a shared directory, held for the life of
# this process (the kernel drops the lock when we exit, however we exit), so
# two runners never pick the same port even while nginx is stopped between
# blocks.  A bind() test on top skips ports that something else listens on.

my %PortLocks;    # port => locked filehandle (kept open on purpose)
my $PortLockDir = File::Spec->catdir(File::Spec->tmpdir, 'test-nginx-compat-ports');

sub _port_range {
    # Stay below the kernel's ephemeral range: outgoing connections (ours,
    # nginx's upstream ones) take ports from there and could collide.
    my ($lo, $hi) = (20000, 32767);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        my ($eph_lo) = split ' ', (scalar <$fh> // '');
        $hi = $eph_lo - 1 if $eph_lo && $eph_lo =~ /^\d+$/ && $eph_lo - 1 > $lo + 1000;
        close $fh;
    }
    return ($lo, $hi);
}

sub _port_is_free {
    my $port = shift;
    # No SO_REUSEADDR: also refuse ports with lingering TIME_WAIT sockets.
    my $sock = IO::Socket::INET->new(
        LocalAddr => $ServerAddr,
        LocalPort => $port,
        Proto     => 'tcp',
        Listen    => 1,
    );
    return 0 unless $sock;
    close $sock;
    return 1;
}

sub _alloc_port {
    unless (-d $PortLockDir) {
        mkdir $PortLockDir;
        chmod 01777, $PortLockDir;    # shared by all users, like /tmp
    }
    my ($lo, $hi) = _port_range();
    for (1 .. 2000) {
        my $port = $lo + int rand($hi - $lo + 1);
        next if $PortLocks{$port};
        my $file = File::Spec->catfile($PortLockDir, "$port.lock");
        open my $fh, '>>', $file or next;
        if (!flock $fh, LOCK_EX | LOCK_NB) {
            close $fh;
            next;
        }
        if (!_port_is_free($port)) {
            close $fh;
            next;
        }
        $PortLocks{$port} = $fh;
        return $port;
    }
    die "Test::Nginx::Compat: cannot find a free TCP port in $lo..$hi\n";
}

our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || _alloc_port();
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
my %RandPorts;    # TEST_NGINX_RAND_PORT_N => port, allocated on first use

# The real framework publishes the port through %ENV for `eval` sections.
$ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

#--------------------------------------------------------------------------
# Server root: one per test process
#--------------------------------------------------------------------------

# With TEST_NGINX_SERVROOT the user chose the directory: use it, never delete
# it.  Otherwise use servroot_<pid> next to the .t file, removed at the end.
our $ServRootIsOurs = !$ENV{TEST_NGINX_SERVROOT};
our $ServRoot = $ENV{TEST_NGINX_SERVROOT}
    ? File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT})
    : File::Spec->rel2abs(File::Spec->catdir(dirname($0), "servroot_$$"));
$ServRoot =~ s{/+\z}{};

our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $StderrFile = "$LogDir/stderr.log";

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
$ENV{TEST_NGINX_HTML_DIR}    = $HtmlDir;

#--------------------------------------------------------------------------
# Runtime state
#--------------------------------------------------------------------------

my $NginxPid;              # our nginx child (master, or the single process)
my $NginxStatus;           # its wait status once reaped
my $NginxVersion;          # canonical, e.g. 1.022001
my $NginxRawVersion;
my $SupportsErrLogOpt;     # -e (nginx >= 1.19.5)
my $ServRootReady;
my $StartSeq = 0;          # counts nginx starts (names the valgrind logs)
my $ConfigVersion = '';    # HUP mode: served by the Test-Nginx server
my %LogPos;                # file => offset already consumed
my $BlockErrLogPos = 0;    # error.log offset at the start of the block
my $BlockAccLogPos = 0;
my $BlockStderrPos = 0;
my $InChild = 0;

#--------------------------------------------------------------------------
# Public configuration functions
#--------------------------------------------------------------------------

sub repeat_each (@) { $RepeatEach = shift if @_; return $RepeatEach }
sub workers (@) { $Workers = shift if @_; return $Workers }
sub worker_connections (@) { $WorkerConnections = shift if @_; return $WorkerConnections }
sub log_level (@) { $LogLevel = shift if @_; return $LogLevel }
sub timeout (@) { $Timeout = shift if @_; return $Timeout }
sub master_on () { $MasterProcessEnabled = 'on' }
sub master_off () { $MasterProcessEnabled = 'off' }
sub no_shuffle () { $NoShuffle = 1 }
sub no_long_string () { $NoLongString = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub use_hup () { $UseHup = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($) { $ConfigPreamble = shift }
sub server_root () { $ServRoot }
sub html_dir () { $HtmlDir }
sub server_addr (@) { $ServerAddr = shift if @_; return $ServerAddr }
sub server_name (@) { $ServerName = shift if @_; return $ServerName }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = shift() ? 'on' : 'off';
    }
    return $MasterProcessEnabled;
}

sub server_port (@) {
    if (@_) {
        $ServerPort = $ServerPortForClient = shift;
        $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    }
    return $ServerPort;
}

sub server_port_for_client (@) {
    $ServerPortForClient = shift if @_;
    return $ServerPortForClient;
}

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n" if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return Test::More::is($got, $expected, $desc) if $NoLongString;
    return Test::LongString::is_string($got, $expected, $desc);
}

sub bail_out (@) {
    _cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

#--------------------------------------------------------------------------
# Small helpers
#--------------------------------------------------------------------------

sub _default_nginx_binary {
    return '/usr/sbin/nginx' if -x '/usr/sbin/nginx';
    return 'nginx';
}

sub _which {
    my $cmd = shift;
    if ($cmd =~ m{/}) {
        return (-f $cmd && -x _) ? $cmd : undef;
    }
    for my $dir (split /:/, $ENV{PATH} // '') {
        next if $dir eq '';
        my $abs = "$dir/$cmd";
        return $abs if -f $abs && -x _;
    }
    return undef;
}

sub _verbose { warn "# [compat] @_\n" if $Verbose }

sub _parse_time {
    my $tm = shift;
    return undef unless defined $tm;
    $tm =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $tm =~ /^([\d.]+)ms$/;
    return $1 if $tm =~ /^([\d.]+)s$/;
    return $tm;
}

sub _trim {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /g;
    $s =~ s/\s{2,}/ /g;
    return $s;
}

sub _fmt_str {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub _slurp {
    my ($file, $from) = @_;
    open my $fh, '<', $file or return '';
    binmode $fh;
    seek $fh, $from, SEEK_SET if $from;
    local $/;
    my $data = <$fh> // '';
    close $fh;
    return $data;
}

sub _tail {
    my ($text, $n) = @_;
    my @lines = split /\n/, $text // '';
    @lines = @lines[-$n .. -1] if @lines > $n;
    return join '', map { "$_\n" } @lines;
}

sub _rand_str {
    my $len = shift;
    my @chars = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');
    return join '', map { $chars[rand @chars] } 1 .. $len;
}

# Expands $TEST_NGINX_* like the real framework (plus SERVROOT / HTML_DIR).
sub _expand_env {
    my ($text, $name) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s/\$(TEST_NGINX_[_A-Z0-9]+)/_env_value($1, $name)/ge;
    return $text;
}

sub _env_value {
    my ($var, $name) = @_;
    if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
        return $RandPorts{$var} //= _alloc_port();
    }
    return $ServerPort if $var eq 'TEST_NGINX_SERVER_PORT';
    return $ServRoot if $var eq 'TEST_NGINX_SERVROOT' || $var eq 'TEST_NGINX_SERVER_ROOT';
    return $HtmlDir if $var eq 'TEST_NGINX_HTML_DIR';
    return $ENV{$var} if defined $ENV{$var};
    bail_out("$name - No environment $var defined.\n");
}

# Same for requests, which may also be arrays (of arrays) of strings.
sub _expand_deep {
    my ($v, $name) = @_;
    return $v unless defined $v;
    return _expand_env($v, $name) unless ref $v;
    return [ map { _expand_deep($_, $name) } @$v ] if ref $v eq 'ARRAY';
    if (ref $v eq 'HASH') {
        my %h = %$v;
        $h{value} = _expand_env($h{value}, $name) if defined $h{value};
        return \%h;
    }
    return $v;
}

sub _nginx_version {
    return if defined $NginxVersion;
    my $bin = _which($NginxBinary)
        or bail_out("Cannot find the nginx executable \"$NginxBinary\" "
                    . "(set TEST_NGINX_BINARY)\n");
    $NginxBinary = $bin;
    my $out = `'$bin' -V 2>&1`;
    if ($? != 0 || $out !~ m{nginx/(\d+)\.(\d+)\.(\d+)}) {
        bail_out("Failed to get the version of $bin: $out");
    }
    $NginxRawVersion = "$1.$2.$3";
    $NginxVersion = sprintf '%d.%03d%03d', $1, $2, $3;
    # -e sends start-up errors (before error_log is parsed) to our log file
    # rather than to the compiled-in default, which on Debian is stderr.
    $SupportsErrLogOpt = $NginxVersion >= 1.019005;
}

#--------------------------------------------------------------------------
# Server root, config and user files
#--------------------------------------------------------------------------

sub _setup_servroot {
    return if $ServRootReady;
    if (-d $ServRoot) {
        # Only remove what we create, in case TEST_NGINX_SERVROOT points at
        # a directory holding something else too.
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"),
                    glob("$ServRoot/*_cache"));
    }
    make_path($ServRoot, $LogDir, $ConfDir);
    -d $LogDir or bail_out("Cannot create $LogDir: $!\n");
    $ServRootReady = 1;
}

# A fresh html dir per block, as the real framework (which recreates its
# whole server root per nginx start) gives: user_files of one block must not
# leak into the next.
sub _reset_html_dir {
    remove_tree($HtmlDir) if -d $HtmlDir;
    make_path($HtmlDir);
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!\n");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

sub _write_user_files {
    my $block = shift;
    my $name  = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        my ($fname, $body, $date);
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+?))?\s*$/) {
                push @list, [ $fname, $body, $date ] if defined $fname;
                ($fname, $date, $body) = ($1, $2, undef);
            }
            else {
                $body .= $line;
            }
        }
        push @list, [ $fname, $body, $date ] if defined $fname;
        $files = \@list;
    }
    elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for --- user_files: " . ref($files)
                 . ", only scalar or ARRAY are accepted\n");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        my $dir = dirname($path);
        make_path($dir) unless -d $dir;
        $body = _expand_env($body, $name);
        open my $out, '>', $path or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - Failed to set the date $date on $path\n");
        }
    }
}

sub _write_config {
    my ($block, $config) = @_;
    my $name = $block->name;

    my $http_config      = _expand_env($block->http_config // '', $name);
    my $main_config      = _expand_env($block->main_config // '', $name);
    my $post_main_config = _expand_env($block->post_main_config // '', $name);
    my $preamble         = _expand_env($ConfigPreamble // '', $name);
    my $server_name      = $block->server_name // $ServerName;
    my $log_level        = $block->log_level || $LogLevel;

    # Reloading with the master off is not supported by nginx.
    my $master = $UseHup ? 'on' : $MasterProcessEnabled;

    my $modules = '';
    if ($LoadModules) {
        # Absolute paths: nginx resolves relative ones against -p (servroot).
        $modules = join '', map { 'load_module ' . File::Spec->rel2abs($_) . ";\n" }
                            grep { length } split /\s+/, $LoadModules;
    }

    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" } @EnvToNginx;

    my $user = ($> == 0 && $master eq 'on') ? "user root;\n" : '';

    # Keep nginx's temp files inside the server root (the compiled-in paths
    # point at /var/lib/nginx), unless the test sets them itself.
    my $temp_paths = '';
    for my $kind (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http_config =~ /\b${kind}_temp_path\b/;
        $temp_paths .= "    ${kind}_temp_path $ServRoot/${kind}_temp;\n";
    }

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $hup_server = !$UseHup ? '' : <<"_EOC_";
    server {
        listen          $ServerAddr:$ServerPort;
        server_name     'Test-Nginx';

        location = /ver {
            return 200 '$ConfigVersion';
        }
    }
_EOC_

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<"_EOC_";
# written by Test::Nginx::Compat for: $name
worker_processes  $Workers;
daemon off;
master_process $master;
error_log $ErrLogFile $log_level;
pid       $PidFile;
$user$modules$env
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$temp_paths
$http_config

    server {
        listen          $ServerAddr:$ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$preamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
$hup_server}

$post_main_config

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
_EOC_
    close $out or bail_out("Can't write $ConfFile: $!\n");
}

#--------------------------------------------------------------------------
# Logs
#--------------------------------------------------------------------------

# Lines appended to $file since the last call (only complete lines: nginx
# writes each entry with one write(), a partial line is still being written).
sub _read_new_lines {
    my ($file, $advance) = @_;
    my $pos = $LogPos{$file} // 0;
    my $data = _slurp($file, $pos);
    my $end = rindex($data, "\n");
    return [] if $end < 0;
    $data = substr($data, 0, $end + 1);
    $LogPos{$file} = $pos + length $data if $advance;
    return [ split /^/m, $data ];
}

sub _mark_block_start {
    my $name = shift;
    # A marker makes a kept error.log readable; the block's lines start after.
    if (open my $fh, '>>', $ErrLogFile) {
        print $fh "=== [test-nginx-compat] $name\n";
        close $fh;
    }
    $BlockErrLogPos = $LogPos{$ErrLogFile} = (-s $ErrLogFile) || 0;
    $BlockAccLogPos = (-s $AccLogFile) || 0;
    $BlockStderrPos = (-s $StderrFile) || 0;
}

sub error_log_data () {
    # Log-phase messages are written after the response went out; give the
    # server a moment, as the real framework does.
    sleep $TestNginxSleep * 3;
    if ($CheckAccumErrLog) {
        local $LogPos{$ErrLogFile} = $BlockErrLogPos;
        return _read_new_lines($ErrLogFile, 0);
    }
    return _read_new_lines($ErrLogFile, 1);
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    local $LogPos{$AccLogFile} = $BlockAccLogPos;
    return _read_new_lines($AccLogFile, 0);
}

sub _block_log_text {
    my $text = _slurp($ErrLogFile, $BlockErrLogPos);
    my $err  = _slurp($StderrFile, $BlockStderrPos);
    $text .= "--- nginx stderr ---\n$err" if length $err;
    return $text;
}

#--------------------------------------------------------------------------
# Starting and stopping nginx
#--------------------------------------------------------------------------

# prctl(PR_SET_PDEATHSIG) makes the kernel send nginx SIGTERM (fast shutdown)
# if this perl process is SIGKILLed: the one case END and signal handlers
# cannot cover.  Best effort, Linux only: the syscall number per architecture
# (syscall.ph would pull hundreds of subs into main::).
my $SysPrctl = do {
    require Config;
    my %nr = (x86_64 => 157, aarch64 => 167, riscv64 => 167, i386 => 172,
              i486 => 172, i586 => 172, i686 => 172, arm => 172, s390x => 172,
              powerpc64 => 171, ppc64 => 171, ppc64le => 171);
    my ($arch) = ($Config::Config{archname} // '') =~ /^([^-]+)/;
    $^O eq 'linux' && $arch ? $nr{$arch} : undef;
};

sub _nginx_command {
    my ($use_valgrind) = @_;
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    push @cmd, '-e', $ErrLogFile if $SupportsErrLogOpt;
    return @cmd unless $use_valgrind;

    my $vg = _which('valgrind') or bail_out("TEST_NGINX_USE_VALGRIND is set but valgrind is not in PATH\n");
    my @opts = $UseValgrind =~ /^\d+$/
        ? ('--tool=memcheck', '--leak-check=full', '--show-possibly-lost=no',
           '--errors-for-leak-kinds=definite', '--num-callers=50')
        : split ' ', $UseValgrind;
    my @supp = grep { length } split /[\s:]+/, $ENV{TEST_NGINX_VALGRIND_SUPP} // '';
    push @supp, 'valgrind.suppress' if !@supp && -f 'valgrind.suppress';
    # nginx's own never-freed start-up allocations, shipped next to us.
    push @supp, $StockSupp if -f $StockSupp;
    push @opts, map { '--suppressions=' . File::Spec->rel2abs($_) } @supp;
    push @opts, '--gen-suppressions=all', "--log-file=$LogDir/valgrind-$StartSeq.%p.log";
    return ($vg, @opts, @cmd);
}

sub _spawn_nginx {
    my ($use_valgrind) = @_;
    $StartSeq++;
    my @cmd = _nginx_command($use_valgrind);
    _verbose("starting: @cmd");

    my $parent = $$;
    my $pid = fork;
    bail_out("fork() failed: $!\n") unless defined $pid;
    if ($pid == 0) {
        $InChild = 1;
        # Own process group: Ctrl-C on the terminal reaches only us (we then
        # stop nginx properly), and the group lets us kill leftover workers.
        setpgrp(0, 0);
        if ($SysPrctl) {
            syscall($SysPrctl, 1, POSIX::SIGTERM());    # PR_SET_PDEATHSIG
            POSIX::_exit(1) if getppid() != $parent;    # parent already gone
        }
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $StderrFile;
        open STDERR, '>>', $StderrFile;
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP QUIT PIPE);
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0] failed: $!\n";
        POSIX::_exit(127);
    }
    $NginxPid = $pid;
    undef $NginxStatus;
    return $pid;
}

# Reaps our nginx if it has exited; returns true when it is gone.
sub _reap_nginx {
    my $flags = shift // POSIX::WNOHANG();
    return 1 unless $NginxPid;
    my $r = waitpid($NginxPid, $flags);
    if ($r == $NginxPid || $r == -1) {
        $NginxStatus = $r == -1 ? 0 : $?;
        return 1;
    }
    return 0;
}

sub _nginx_running { return $NginxPid && !defined $NginxStatus && !_reap_nginx() }

# Whether something listens on $ServerAddr:$port (or on the wildcard
# address), read from /proc so that no probe connection shows up in the
# error log as "client closed connection".
sub _is_listening {
    my $port = shift;
    my $port_hex = sprintf '%04X', $port;
    # /proc prints the address as a host-order integer.
    my $addr_hex = sprintf '%08X', unpack('L', Socket::inet_aton($ServerAddr) // "\0\0\0\0");
    my %ok = map { ($_ => 1) } ("$addr_hex:$port_hex", "00000000:$port_hex",
                               ('0' x 32) . ":$port_hex");
    my $found_proc;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        $found_proc = 1;
        while (<$fh>) {
            # "sl local_address rem_address st ...": state 0A is LISTEN.
            my (undef, $local, undef, $st) = split ' ';
            return 1 if defined $st && $st eq '0A' && $ok{$local};
        }
    }
    return 0 if $found_proc;
    # No /proc: fall back to connecting (nginx then logs a closed connection).
    my $s = IO::Socket::INET->new(PeerAddr => $ServerAddr, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 0.5)
        or return 0;
    close $s;
    return 1;
}

# Waits until nginx listens on our port, exits, or the deadline passes.
sub _wait_for_nginx {
    my ($timeout) = @_;
    my $deadline = time + $timeout;
    my $step = 0.005;
    while (time < $deadline) {
        return 'exited' if _reap_nginx();
        return 'ready' if _is_listening($ServerPort);
        sleep $step;
        $step *= 1.5 if $step < 0.1;
    }
    return _reap_nginx() ? 'exited' : 'timeout';
}

sub _describe_status {
    my $st = shift;
    return 'not reaped' unless defined $st;
    return 'exit code ' . ($st >> 8) unless $st & 127;
    return 'signal ' . ($st & 127) . (($st & 128) ? ' (core dumped)' : '');
}

# Stops nginx: QUIT (graceful), then TERM, then KILL to the whole process
# group, each followed by waitpid.  Returns the wait status, or undef when
# nginx had already exited by itself (the caller reports that).
sub _stop_nginx {
    return 0 unless $NginxPid;
    my $pid = $NginxPid;
    my $unexpected = _reap_nginx();

    unless ($unexpected) {
        my $grace = $UseValgrind ? 60 : $Timeout + 2;
        STOP: for my $step ([QUIT => $grace], [TERM => 3], [KILL => 5]) {
            my ($sig, $wait) = @$step;
            _verbose("sending $sig to nginx $pid");
            # KILL goes to the process group: workers must not survive.
            kill $sig, ($sig eq 'KILL' ? -$pid : $pid);
            my $deadline = time + $wait;
            while (time < $deadline) {
                last STOP if _reap_nginx();
                sleep 0.01;
            }
            warn "WARNING: nginx $pid did not exit after SIG$sig\n" if $sig ne 'QUIT' || $Verbose;
        }
    }

    # Workers of a master that died abnormally may linger in the group.
    if (kill 0, -$pid) {
        kill 'KILL', -$pid;
        sleep 0.05;
    }
    unlink $PidFile;
    undef $NginxPid;
    return $unexpected ? undef : ($NginxStatus // 0);
}

sub _cleanup {
    return if $InChild;
    for my $hdl (@CleanupHandlers) {
        eval { $hdl->() };
        warn "cleanup handler failed: $@" if $@;
    }
    @CleanupHandlers = ();
    _stop_nginx() if $NginxPid;
}

# Returns true when the server is up and running the block's config.
sub _start_nginx {
    my ($block) = @_;
    my $name = $block->name;

    _spawn_nginx($UseValgrind);
    my $state = _wait_for_nginx($StartupTimeout);
    return 1 if $state eq 'ready';

    my $why = $state eq 'exited'
        ? 'nginx exited at start-up (' . _describe_status($NginxStatus) . ')'
        : "nginx did not listen on $ServerAddr:$ServerPort within ${StartupTimeout}s";
    _stop_nginx();
    Test::More::fail("$name - nginx failed to start: $why");
    Test::More::diag("command: " . join(' ', _nginx_command($UseValgrind)));
    Test::More::diag("error.log / stderr (tail):\n" . _tail(_block_log_text(), 30));
    return 0;
}

# HUP mode: reload and wait until the new config answers on /ver.
#
# After a HUP the master starts new workers and only ~100ms later tells the
# old ones to stop, so for a while both accept connections.  The reload is
# complete once every old worker has closed its listening sockets: it is gone,
# its title says "shutting down", or it logged "gracefully shutting down".
sub _reload_nginx {
    my ($block) = @_;
    my $master = $NginxPid;
    my @old_workers = _children_of($master);
    my $hup_pos = (-s $ErrLogFile) || 0;
    kill 'HUP', $master or return 0;

    my $deadline = time + ($UseValgrind ? 60 : 10);
    my $seen_new = 0;
    while (time < $deadline) {
        return 0 unless _nginx_running();
        my $log = _slurp($ErrLogFile, $hup_pos);
        # A config that fails to load leaves the old one running.
        return 0 if $log =~ /\[emerg\]/;

        if (!$seen_new) {
            my $ver = _simple_get('Test-Nginx', '/ver');
            $seen_new = defined $ver && $ver eq $ConfigVersion;
        }
        if ($seen_new) {
            @old_workers = grep { !_worker_stopped_listening($_, $log) } @old_workers;
            return 1 unless @old_workers;
        }
        sleep 0.01;
    }
    return 0;
}

sub _children_of {
    my $ppid = shift;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        next unless $line =~ /^(\d+) \(.*\) \S+ (\d+) /s;
        push @kids, $1 if $2 == $ppid;
    }
    return @kids;
}

sub _worker_stopped_listening {
    my ($pid, $log) = @_;
    return 1 unless kill 0, $pid;
    return 1 if $log =~ /\b$pid#\d+: gracefully shutting down/;
    if (open my $fh, '<', "/proc/$pid/cmdline") {
        my $title = do { local $/; <$fh> } // '';
        close $fh;
        return 1 if $title =~ /shutting down/;
    }
    return 0;
}

sub _simple_get {
    my ($host, $uri) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr, PeerPort => $ServerPort,
                                     Proto => 'tcp', Timeout => 1) or return undef;
    local $SIG{PIPE} = 'IGNORE';
    print $sock "GET $uri HTTP/1.0\r\nHost: $host\r\n\r\n";
    my $resp = '';
    my $sel = IO::Select->new($sock);
    while ($sel->can_read(2)) {
        my $n = sysread $sock, my $buf, 4096;
        last unless $n;
        $resp .= $buf;
    }
    close $sock;
    return $resp =~ m{^HTTP/1\.\d 200 .*?\r\n\r\n(.*)\z}s ? $1 : undef;
}

# Stops an nginx left running by an earlier block (HUP mode), still checking
# its valgrind logs.
sub _stop_previous_nginx {
    my $block = shift;
    return unless $NginxPid;
    my $seq = $StartSeq;
    _stop_nginx();
    _check_valgrind($block, $seq) if $UseValgrind;
}

# Everything to check once nginx has been stopped after a block.
sub _after_stop_checks {
    my ($block, $status, $started_seq) = @_;
    my $name = $block->name;

    if (!defined $status) {
        Test::More::fail("$name - nginx exited unexpectedly during the test ("
                         . _describe_status($NginxStatus) . ")");
        Test::More::diag("error.log / stderr (tail):\n" . _tail(_block_log_text(), 30));
    }

    # A worker killed by SEGV/ABRT/BUS/FPE/ILL is a bug even if the request
    # looked fine (the real framework only prints a warning for it).
    my $log = _slurp($ErrLogFile, $BlockErrLogPos);
    for my $line (split /\n/, $log) {
        if ($line =~ /exited on signal (?:4|6|7|8|11)\b/) {
            Test::More::fail("$name - nginx process crashed: $line");
        }
    }

    _check_valgrind($block, $started_seq) if $UseValgrind;
}

sub _check_valgrind {
    my ($block, $seq) = @_;
    my $name = $block->name;
    for my $file (sort glob("$LogDir/valgrind-$seq.*.log")) {
        my $text = _slurp($file);
        next unless $text =~ /ERROR SUMMARY: ([1-9]\d*) errors?/;
        my $n = $1;
        Test::More::fail("$name - valgrind error ($n reported in $file)");
        my @lines = split /\n/, $text;
        @lines = @lines[0 .. 199] if @lines > 200;
        Test::More::diag(join "\n", @lines);
    }
}

#--------------------------------------------------------------------------
# Running the blocks
#--------------------------------------------------------------------------

my $SignalsInstalled;

sub _install_signal_handlers {
    return if $SignalsInstalled++;
    for my $sig (qw(INT TERM HUP)) {
        $SIG{$sig} = sub {
            # Stop nginx before dying, then die of the same signal so the
            # caller (prove, a shell) sees what happened.
            _cleanup();
            _remove_servroot();
            $SIG{$sig} = 'DEFAULT';
            # Perl blocks the signal while its handler runs: unblock it so
            # the re-raised one is delivered now.
            my $signo = POSIX->can("SIG$sig")->();
            POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), POSIX::SigSet->new($signo));
            kill $sig, $$;
            POSIX::_exit(128 + $signo);
        };
    }
}

sub run_tests () {
    _nginx_version();
    _install_signal_handlers();
    _setup_servroot();

    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks if $ENV{TEST_NGINX_SHUFFLE} && !$NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value('name', $0 . ' ' . $block->name);
        run_test($block);
    }

    # HUP mode keeps one nginx for all blocks: stop it and check it once.
    if ($UseHup && $NginxPid && @blocks) {
        _after_stop_checks($blocks[-1], _stop_nginx(), $StartSeq);
    }

    _cleanup();

    # `use Test::Nginx::Socket;` without any plan: close the plan here rather
    # than letting Test::Base's END hook try its own comparisons.
    my $tb = Test::More->builder;
    if (!$tb->has_plan) {
        Test::More::diag("no plan declared: use Test::Nginx::Socket 'no_plan' "
                         . "or plan tests => ...");
        if ($tb->current_test) {
            Test::More::plan(tests => $tb->current_test);
        }
        else {
            Test::More::plan(skip_all => 'no test blocks');
        }
    }
}

sub _skip_info {
    my $block = shift;
    my $name  = $block->name;

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ m{^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*?))?\s*$}
            or bail_out("$name - Invalid --- skip_nginx spec: $spec\n");
        my ($n, $op, $reason) = ($1, $2, $6);
        my $ver = sprintf '%d.%03d%03d', $3, $4, $5;
        my $skip = eval "$NginxVersion $op $ver";
        return ($n, $reason || "nginx version $op $3.$4.$5") if $skip;
    }

    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ m{^\s*(\d+)\s*:\s*(.*)}s
            or bail_out("$name - Invalid --- skip_eval spec: $spec\n");
        my ($n, $code) = ($1, $2);
        my $skip = _eval_in_main($code);
        bail_out("$name - skip_eval - failed to eval the Perl code \"$code\": $@") if $@;
        return ($n, 'skip_eval') if $skip;
    }

    return;
}

sub _eval_in_main {
    my $code = shift;
    ## no critic (ProhibitStringyEval)
    my $r = eval "package main; no strict; no warnings; $code";
    return $r;
}

sub run_test ($) {
    my $block = shift;
    my $name  = $block->name;

    _nginx_version();
    _setup_servroot();

    if (my ($n, $reason) = _skip_info($block)) {
        SKIP: { Test::More::skip("$name - $reason", $n) }
        return;
    }

    my $config = _expand_env($block->config // '', $name);

    if (defined $block->must_die) {
        _run_must_die($block, $config);
        return;
    }

    my $running = 0;

    if ($UseHup && _nginx_running()) {
        _reset_html_dir();
        _write_user_files($block);
        $ConfigVersion = _rand_str(10);
        _mark_block_start($name);
        _write_config($block, $config);
        if (_reload_nginx($block)) {
            $running = 1;
        }
        else {
            warn "WARNING: $name - reloading nginx failed, restarting it\n";
            _stop_previous_nginx($block);
        }
    }

    unless ($running) {
        _stop_previous_nginx($block);
        _reset_html_dir();
        _write_user_files($block);
        $ConfigVersion = _rand_str(10) if $UseHup;
        _mark_block_start($name);
        _write_config($block, $config);
        return unless _start_nginx($block);
    }

    if (defined(my $init = $block->init)) {
        _eval_in_main($init);
        if ($@) {
            Test::More::fail("$name - init failed: $@");
            _after_stop_checks($block, _stop_nginx(), $StartSeq) unless $UseHup;
            return;
        }
    }

    $LogPos{$ErrLogFile} = $BlockErrLogPos;
    for my $rep (0 .. $RepeatEach - 1) {
        _write_user_files($block) if $rep > 0;
        _run_requests($block, $rep);
    }

    unless ($UseHup) {
        my $status = _stop_nginx();
        _after_stop_checks($block, $status, $StartSeq);
    }
    elsif (!_nginx_running()) {
        _after_stop_checks($block, undef, $StartSeq);
        _stop_nginx();
    }
}

# "--- must_die": starting nginx with this config must fail.
sub _run_must_die {
    my ($block, $config) = @_;
    my $name = $block->name;
    my $must_die = $block->must_die;

    # The real framework runs must_die blocks without valgrind and HUP.
    _stop_previous_nginx($block);

    for my $rep (0 .. $RepeatEach - 1) {
        _reset_html_dir();
        _write_user_files($block);
        _mark_block_start($name);
        _write_config($block, $config);

        _spawn_nginx(0);
        my $deadline = time + ($Timeout > 5 ? $Timeout : 5);
        my $exited = 0;
        my $listening_since;
        while (time < $deadline) {
            if (_reap_nginx()) { $exited = 1; last }
            # Up and serving for a while: it is not going to die.
            if (_is_listening($ServerPort)) {
                $listening_since //= time;
                last if time - $listening_since > 1;
            }
            sleep 0.01;
        }

        if (!$exited) {
            Test::More::fail("$name - die as expected");
            Test::More::diag("nginx is still running; stopping it");
            _stop_nginx();
        }
        else {
            my $status = $NginxStatus;
            undef $NginxPid;
            my $exit_code = $status >> 8;
            if ($status & 128) {
                Test::More::fail("$name - nginx core dumped");
            }
            elsif (looks_like_number($must_die)) {
                Test::More::is($must_die, $exit_code, "$name - die with the expected exit code");
            }
            else {
                Test::More::isnt($status, 0, "$name - die as expected");
            }
        }

        # nginx reports why it died in the error log (thanks to -e) and on
        # stderr; the error_log sections look at both.
        my $lines = _read_new_lines($ErrLogFile, 1);
        my $stderr = _slurp($StderrFile, $BlockStderrPos);
        push @$lines, split /^/m, $stderr;
        _check_error_log($block, undef, $rep, 0, $lines, 1);
    }
}

#--------------------------------------------------------------------------
# Building requests
#--------------------------------------------------------------------------

sub _parse_more_headers {
    my $in = shift // '';
    my ($out, $is_chunked) = ('', 0);
    for my $header (split /\n+/, $in) {
        next if $header =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        next unless defined $key && length $key;
        $val //= '';
        $is_chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# "GET /uri [HTTP/x.y]\nbody" -> the bytes to send, as the real framework
# builds them: Host and Connection headers unless given, Content-Length for
# a non-chunked body (which is trimmed of surrounding white space).
sub _build_request {
    my ($name, $request, $more_headers, $conn) = @_;
    bail_out("$name - Request line should be non-empty\n")
        unless defined $request && length $request;

    # Leading blank lines and "# comment" lines are ignored.
    1 while $request =~ s/^\s*#[^\n]+\s+|^\s+//s;

    my ($first, $content) = split /\n/, $request, 2;
    $content //= '';
    $first =~ s/\s+\z//;
    my @parts = split ' ', $first;
    bail_out("$name - Request line is not valid. Should be 'meth [url [version]]' "
             . "but got \"$first\".\n") if @parts < 1 || @parts > 3;
    my ($meth, $url, $ver) = @parts;
    $url //= '/';
    $ver //= 'HTTP/1.1';

    my ($hdr, $is_chunked) = _parse_more_headers($more_headers);

    my $len_header = '';
    if (!$is_chunked && $content ne '' && $hdr !~ /(?:^|\n)Content-Length:/i) {
        $content =~ s/^\s+|\s+$//gs;
        $len_header = 'Content-Length: ' . length($content) . "\r\n";
    }

    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $hdr !~ /(?:^|\n)Host:/i;
    $headers .= "Connection: $conn\r\n" if $hdr !~ /(?:^|\n)Connection/i;
    $headers .= "$hdr$len_header\r\n";

    return "$meth $url $ver\r\n$headers$content";
}

sub _more_headers_for {
    my ($name, $more_headers, $idx) = @_;
    return $more_headers unless ref $more_headers eq 'ARRAY';
    my $h = $more_headers->[$idx];
    bail_out("$name - --- more_headers lacks data for request $idx\n") unless defined $h;
    return $h;
}

# Returns a list of requests; each is a list of {value, delay_before} chunks
# sent on one connection.
sub _requests_from_block {
    my $block = shift;
    my $name  = $block->name;
    my $more_headers = _expand_deep(scalar($block->more_headers) // '', $name);

    if (defined(my $raw = $block->raw_request)) {
        $raw = _expand_deep($raw, $name);
        my @chunks = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [ map { ref $_ eq 'HASH' ? $_ : { value => $_ } } @chunks ];
    }

    if (defined(my $reqs = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests\n")
            unless ref $reqs eq 'ARRAY';
        $reqs = _expand_deep($reqs, $name);
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $all .= _build_request($name, $reqs->[$i],
                                   _more_headers_for($name, $more_headers, $i), $conn);
        }
        return [ { value => $all } ];
    }

    my $request = _expand_deep(scalar $block->request, $name);
    if (!ref $request) {
        return [ { value => _build_request($name, $request,
                                           _more_headers_for($name, $more_headers, 0),
                                           'close') } ];
    }
    bail_out("$name - invalid --- request: MUST be string or array of requests\n")
        unless ref $request eq 'ARRAY';

    my @list;
    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        bail_out("$name - request $i: arrays of packets are not supported by "
                 . "Test::Nginx::Compat; use --- raw_request\n") if ref $one;
        push @list, [ { value => _build_request($name, $one,
                                                _more_headers_for($name, $more_headers, $i),
                                                'close') } ];
    }
    return @list;
}

#--------------------------------------------------------------------------
# Sending requests and parsing responses
#--------------------------------------------------------------------------

sub _send_request {
    my ($block, $chunks, $timeout) = @_;
    my $name = $block->name;
    my @queue = @$chunks;

    my $sock;
    for my $try (1 .. 10) {
        $sock = IO::Socket::INET->new(
            PeerAddr => $ServerAddr,
            PeerPort => $ServerPortForClient,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        last if $sock;
        sleep 0.05 * $try;
    }
    if (!$sock) {
        Test::More::fail("$name - Can't connect to $ServerAddr:$ServerPortForClient: $@");
        return undef;
    }
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my $middle_delay = _parse_time($block->raw_request_middle_delay);
    my $shutdown = $block->shutdown;
    my $sel = IO::Select->new($sock);
    my $resp = '';
    my $wbuf = (shift @queue)->{value} // '';
    my $writing = 1;

    while (1) {
        if ($writing && $wbuf eq '') {
            if (my $next = shift @queue) {
                my $delay = $next->{delay_before} // $middle_delay;
                sleep $delay if $delay;
                $wbuf = $next->{value} // '';
                next;
            }
            $writing = 0;
            if (defined $shutdown) {
                shutdown $sock, ($shutdown =~ /^\s*$/ ? 1 : $shutdown);
            }
        }

        $! = 0;
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$r && !$w) {
            next if $! == EINTR;
            if (!defined $block->abort) {
                Test::More::fail("ERROR: client socket timed out - $name");
            }
            last;
        }

        if ($w && @$w) {
            my $n = syswrite $sock, $wbuf;
            if (defined $n) {
                substr($wbuf, 0, $n, '');
            }
            elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                # The server closed early (e.g. an error response before the
                # whole body was sent): stop writing, read what it said.
                _verbose("$name - write failed: $!");
                $writing = 0;
            }
        }

        if ($r && @$r) {
            my $n = sysread $sock, my $buf, 65536;
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $buf;
        }
    }
    close $sock;
    return $resp;
}

# Parses one response off the front of $raw.  Returns (HTTP::Response or
# undef, raw header text, bytes left over after this response).
sub _parse_response {
    my ($name, $raw, $head_req) = @_;

    my ($head, $rest);
    if ($raw =~ /\A(.*?\r?\n)\r?\n(.*)\z/s) {
        ($head, $rest) = ($1, $2);
    }
    else {
        ($head, $rest) = ($raw, '');
    }

    my $res = HTTP::Response->parse($head);
    $res->content('');
    my $code = $res->code;
    if (!defined $code || $code !~ /^\d+$/) {
        $res->code(undef);
        $res->content($rest);
        return ($res, $head, undef);
    }

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $left;

    if ($head_req || $code == 304 || $code == 204 || $code =~ /^1/) {
        $left = $rest;
    }
    elsif (defined $enc && $enc =~ /\bchunked\b/i) {
        my $decoded = '';
        my $pos = 0;
        while (1) {
            if ($rest !~ /\G[ \t]*([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
                my $got = substr($rest, $pos);
                Test::More::fail(length $got
                    ? "$name - invalid chunked body received: " . _fmt_str($got)
                    : "$name - no last chunk found");
                last;
            }
            my $size = hex $1;
            $pos = pos $rest;
            if ($size == 0) {
                # Skip trailers up to the final empty line.
                if ($rest =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc) {
                    $left = substr($rest, pos $rest);
                }
                else {
                    Test::More::fail("$name - invalid chunked body: no CRLF after the last chunk");
                }
                last;
            }
            if (length($rest) - $pos < $size) {
                Test::More::fail("$name - invalid chunked data received "
                                 . "(not enough octets for the data section)");
                $decoded .= substr($rest, $pos);
                last;
            }
            $decoded .= substr($rest, $pos, $size);
            $pos += $size;
            pos($rest) = $pos;
            if ($rest !~ /\G\r\n/gc) {
                Test::More::fail("$name - invalid chunked data received (expected CRLF).");
                last;
            }
            $pos = pos $rest;
        }
        $res->content($decoded);
    }
    elsif (defined $len && $len =~ /^\s*(\d+)\s*$/) {
        $len = $1;
        if (length $rest < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got "
                . length($rest) . "\n";
            $res->content($rest);
        }
        else {
            $res->content(substr $rest, 0, $len);
            $left = substr $rest, $len;
        }
    }
    else {
        $res->content($rest);
    }

    return ($res, $head, $left);
}

#--------------------------------------------------------------------------
# Checks (test names and counts follow the real framework)
#--------------------------------------------------------------------------

sub _indexed {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.\n");
    }
    return $value->[0] if ref $value eq 'ARRAY';
    return $value;
}

sub _parse_headers {
    my $s = shift // '';
    my @headers;
    for my $line (split /\n/, $s) {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @headers, [ $line, undef ];
        }
        else {
            my ($key, $val) = split /\s*:\s*/, $line, 2;
            push @headers, [ $key, $val // '' ];
        }
    }
    return @headers;
}

# One check per header name, the last line winning, as in the real framework
# (which keeps them in a hash).
sub _parse_headers_uniq {
    my @all = _parse_headers(@_);
    my %last;
    $last{ $all[$_][0] } = $_ for 0 .. $#all;
    return map { $all[$_] } grep { $last{ $all[$_][0] } == $_ } 0 .. $#all;
}

sub _subst_server_port {
    my $s = shift;
    return $s if !defined $s || ref $s;
    $s =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
    $s =~ s/\$ServerPort\b/$ServerPort/g;
    return $s;
}

sub _check_response {
    my ($block, $res, $raw_headers, $idx, $rep, $need_array) = @_;
    my $name = $block->name;

    # Status code (always checked: 200 unless error_code says otherwise).
    my $code = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $pat = _indexed($name, $block->error_code_like, $idx, $need_array);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");
    }
    elsif (defined $block->error_code) {
        my $want = _indexed($name, $block->error_code, $idx, $need_array);
        Test::More::is($code, $want, "$name - status code ok");
    }
    else {
        Test::More::is($code, 200, "$name - status code ok");
    }

    if (defined $block->raw_response_headers_like) {
        my $pat = _indexed($name, $block->raw_response_headers_like, $idx, $need_array);
        Test::More::like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = _indexed($name, $block->raw_response_headers_unlike, $idx, $need_array);
        Test::More::unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }

    if (defined $block->response_headers) {
        for my $h (_parse_headers_uniq(_indexed($name, $block->response_headers, $idx, $need_array))) {
            my ($key, $val) = @$h;
            if (!defined $val) {
                Test::More::unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/mi,
                                   "$name - header $key not present in the raw headers");
                next;
            }
            my $actual = $res ? $res->header($key) : undef;
            Test::More::is($actual // '', _subst_server_port($val), "$name - header $key ok");
        }
    }
    elsif (defined $block->response_headers_like) {
        for my $h (_parse_headers_uniq(_indexed($name, $block->response_headers_like, $idx, $need_array))) {
            my ($key, $val) = @$h;
            my $actual = $res ? $res->header($key) : undef;
            $val //= '';
            Test::More::like($actual // '', qr/^$val$/, "$name - header $key like ok");
        }
    }

    _filter_response_body($block, $res, $idx);

    my $content = $res ? $res->content : undef;
    if (defined $block->response_body) {
        my $expected = _subst_server_port(_indexed($name, $block->response_body, $idx, $need_array));
        my $desc = "$name - response_body - response is expected (repeated req $rep, req $idx)";
        if (ref $expected) {
            Test::More::like($content, $expected,
                             "$name - response_body - like (repeated req $rep, req $idx)");
        }
        elsif ($NoLongString) {
            Test::More::is($content, $expected, $desc);
        }
        else {
            Test::LongString::is_string($content, $expected, $desc);
        }
    }
    elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $like = defined $block->response_body_like;
        my $type = $like ? 'like' : 'unlike';
        my $pat  = _subst_server_port(_indexed($name,
                       $like ? $block->response_body_like : $block->response_body_unlike,
                       $idx, $need_array));
        my $summary = _trim($content) // '';
        my $desc = "$name - response_body_$type - response is expected ($summary)";
        if ($like) {
            Test::More::like($content, qr/$pat/s, $desc);
        }
        else {
            Test::More::unlike($content, qr/$pat/s, $desc);
        }
    }

    $_->($block, $content, $idx, $rep, 0) for @ResponseBodyChecks;
}

sub _filter_response_body {
    my ($block, $res, $idx) = @_;
    my $filters = $block->response_body_filters;
    return unless defined $filters && $res && defined $res->content;
    my $name = $block->name;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//g;
        $filters = [ split /\s+/, $filters ];
    }
    elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    if (@$filters && ref $filters->[0] eq 'ARRAY') {
        $filters = $filters->[$idx]
            or bail_out("$name - no --- response_body_filters for request $idx\n");
    }

    my %builtin = (
        md5_hex  => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
        sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
        uc       => sub { uc $_[0] },
        lc       => sub { lc $_[0] },
        ucfirst  => sub { ucfirst $_[0] },
        lcfirst  => sub { lcfirst $_[0] },
        length   => sub { length $_[0] },
    );
    my $content = $res->content;
    for my $f (@$filters) {
        my $code = ref $f eq 'CODE' ? $f : $builtin{$f}
            or bail_out("$name - unknown filter \"$f\" in --- response_body_filters\n");
        $content = $code->($content);
    }
    $res->content($content);
}

sub _patterns {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [ split /\n+/, $pats ];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub _value_contains {
    my ($val, $pat) = @_;
    return 0 unless defined $val;
    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';
    if (ref $val eq 'ARRAY') {
        for (@$val) { return 1 if _value_contains($_, $pat) }
    }
    return 0;
}

sub _line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

# $lines may be passed in (must_die); otherwise the new error.log lines.
sub _check_error_log {
    my ($block, $res, $rep, $need_array, $lines, $must_die) = @_;
    my $name = $block->name;
    # [emerg] is what a must_die block expects: no warning for it there.
    my %warn_for = map { $_ => 1 } $must_die ? qw(alert crit) : qw(alert crit emerg);

    if (defined(my $grep = $block->grep_error_log)) {
        my $pat = ref $grep eq 'ARRAY' ? $grep->[$rep] : $grep;
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined\n")
            unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';
        $lines //= error_log_data();
        my $matched = '';
        for my $line (@$lines) {
            if (ref $pat ? $line =~ /$pat/ : $line =~ /\Q$pat\E/) {
                $matched .= "$&\n" if $& !~ /\n/;
            }
        }
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        is_str($matched, $expected, "$name - grep_error_log_out (req $rep)");
    }

    if (defined(my $pats = $block->error_log)) {
        for my $lvl (keys %warn_for) { delete $warn_for{$lvl} if _value_contains($pats, "[$lvl") }
        $pats = _patterns($pats);
        $lines //= error_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (_line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"$pat\" matches a line in error.log (req $rep)");
                    undef $pat;
                }
            }
        }
        for my $pat (grep { defined } @$pats) {
            Test::More::fail("$name - pattern \"$pat\" should match a line in error.log (req $rep)");
        }
    }

    if (defined(my $pats = $block->no_error_log)) {
        for my $lvl (keys %warn_for) { delete $warn_for{$lvl} if _value_contains($pats, "[$lvl") }
        $pats = _patterns($pats);
        $lines //= error_log_data();
        my %found;
        for my $i (0 .. $#$lines) {
            my $line = $lines->[$i];
            for my $pat (@$pats) {
                next unless defined $pat;
                next unless _line_matches($line, $pat);
                $found{$pat} = 1;
                my @more = @$lines[ $i + 1 .. ($i + 9 < $#$lines ? $i + 9 : $#$lines) ];
                Test::More::fail("$name - pattern \"" . _fmt_str($pat) . "\" should not match "
                                 . "any line in error.log but matches line \"" . _fmt_str($line)
                                 . "\" (req $rep)\n" . join('', @more));
            }
        }
        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};
            Test::More::pass("$name - pattern \"" . _fmt_str($pat)
                             . "\" does not match a line in error.log (req $rep)");
        }
    }

    # Like the real framework: unexpected [alert]/[crit]/[emerg] lines are
    # reported as warnings, failed assertions as failures.
    $lines //= error_log_data();
    for my $line (@$lines) {
        if ($line =~ /\[(alert|crit|emerg)\]/ && $warn_for{$1}) {
            warn "WARNING: $name - " . _fmt_str($line) . "\n";
        }
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            Test::More::fail("$name - $l");
        }
    }
}

sub _check_access_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    return unless defined $block->access_log || defined $block->no_access_log;
    my $lines = access_log_data();

    if (defined(my $pats = $block->access_log)) {
        $pats = _patterns($pats);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && _line_matches($line, $pat);
                Test::More::pass("$name - pattern \"$pat\" matches a line in access.log (req $rep)");
                undef $pat;
            }
        }
        Test::More::fail("$name - pattern \"$_\" should match a line in access.log (req $rep)")
            for grep { defined } @$pats;
    }

    if (defined(my $pats = $block->no_access_log)) {
        $pats = _patterns($pats);
        my %found;
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && _line_matches($line, $pat);
                $found{$pat} = 1;
                Test::More::fail("$name - pattern \"" . _fmt_str($pat) . "\" should not match any "
                                 . "line in access.log but matches line \"" . _fmt_str($line)
                                 . "\" (req $rep)");
            }
        }
        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};
            Test::More::pass("$name - pattern \"" . _fmt_str($pat)
                             . "\" does not match a line in access.log (req $rep)");
        }
    }
}

sub _run_requests {
    my ($block, $rep) = @_;
    my $name = $block->name;

    my @reqs = _requests_from_block($block);
    my $timeout = _parse_time($block->timeout) // $Timeout;

    my ($need_array, $pipelined);
    if (defined $block->pipelined_requests) {
        $pipelined = @{ $block->pipelined_requests };
        $need_array = 1;
    }
    else {
        $need_array = @reqs > 1;
    }

    my $idx = 0;
    my $res;
    for my $r (0 .. $#reqs) {
        my $chunks = $reqs[$r];
        my $all = join '', map { $_->{value} // '' } @$chunks;
        my $head_req = $all =~ /^\s*HEAD\s+/ ? 1 : 0;

        my $raw = _send_request($block, $chunks, $timeout) // '';
        _verbose("response: [$raw]");

        my $n = $pipelined || 1;
        for my $k (1 .. $n) {
            my ($raw_headers, $left);
            unless (defined $block->ignore_response) {
                ($res, $raw_headers, $left) = _parse_response($name, $raw, $head_req);
                _check_response($block, $res, $raw_headers, $idx, $rep, $need_array);
            }
            if ($k == $n && defined $left && length $left && !defined $block->ignore_response) {
                (my $l = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk in response: \"$l\"\n";
            }
            $raw = $left // '';

            my $more = $k < $n || $r < $#reqs;
            if ($more) {
                sleep $block->wait if $block->wait;
                _check_error_log($block, $res, $rep, $need_array);
                _check_access_log($block, $rep) unless defined $block->ignore_response;
            }
            $idx++;
        }
    }

    sleep $block->wait if $block->wait;
    _check_error_log($block, $res, $rep, $need_array);
    _check_access_log($block, $rep) unless defined $block->ignore_response;
}

#--------------------------------------------------------------------------
# End of the process
#--------------------------------------------------------------------------

sub _remove_servroot {
    return if $InChild;
    return unless $ServRootIsOurs && -d $ServRoot;
    return if $ENV{TEST_NGINX_KEEP};
    # Keep it for inspection when something failed.
    my $tb = Test::More->builder;
    if (!$tb->is_passing) {
        print STDERR "# servroot kept for inspection: $ServRoot\n";
        return;
    }
    remove_tree($ServRoot) if $ServRoot =~ m{/servroot_\d+\z};
}

END {
    unless ($InChild) {
        local $?;    # Test::Builder's own END sets the exit status after us
        _cleanup();
        _remove_servroot();
    }
}

1;
