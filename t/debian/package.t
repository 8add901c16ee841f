# The Debian package (make deb; make test-deb runs this file with it):
# installed on this machine with dpkg -i, it enables the module, ships
# the tool, its man page, README.Debian and the examples, makes the store
# directory for www-data; nginx -t passes on a copy of this machine's
# /etc/nginx with the module enabled, alone and with a shipped example
# (conf.d snippet and site) laid out; dpkg --purge
# leaves the machine as it was.  Run by make test-deb only (not under
# t/*.t): without a built .deb or without root it fails and says why; it
# leaves alone a package that was installed before it.

use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use Fcntl qw(:flock);
use File::Basename qw(basename);
use FindBin;

require "$FindBin::Bin/layout.pl";

my $top = abs_path("$FindBin::Bin/../..");
my $pkg = 'libnginx-mod-http-oauth';
my $deb = $ENV{NGX_OAUTH_DEB} || (glob("$top/build/deb/${pkg}_*.deb"))[0];

BAIL_OUT('no package built: run make test-deb (it builds one first)')
    unless $deb && -f $deb;
BAIL_OUT('dpkg -i needs root: run make test-deb as root') unless $> == 0;

# one package test at a time on this machine
open my $lock, '>', '/tmp/ngx-oauth-deb-test.lock' or die $!;
flock $lock, LOCK_EX or die $!;

sub installed {
    my $s = `dpkg-query -W -f='\${Status}' $pkg 2>/dev/null`;
    return $s =~ /installed|config-files|unpacked/;
}

BAIL_OUT("$pkg was installed before this test: not touching it"
         . " (purge it, or use another machine)") if installed();

my $state_dir = '/var/lib/nginx/oauth';
my $had_state_dir = -e $state_dir;
my @enabled_before = sort glob('/etc/nginx/modules-enabled/*');

# dpkg refuses to run while apt or another dpkg holds its lock
sub dpkg {
    my @args = @_;
    my $out;
    for (1 .. 30) {
        $out = `dpkg @args 2>&1`;
        return (0, $out) if $? == 0;
        last unless $out =~ /lock/i;
        sleep 2;
    }
    return (1, $out);
}

my $ours = 0;
END {
    dpkg('--purge', $pkg) if $ours && installed();
}

my ($rc, $out) = dpkg('-i', $deb);
$ours = 1;
is($rc, 0, 'dpkg -i ' . basename($deb)) or BAIL_OUT($out);

my %files = map { chomp; $_ => 1 } `dpkg -L $pkg`;
for my $f ('/usr/lib/nginx/modules/ngx_http_oauth_module.so',
           '/usr/share/nginx/modules-available/mod-http-oauth.conf',
           '/usr/sbin/ngx-oauth',
           '/usr/share/man/man8/ngx-oauth.8.gz',
           "/usr/share/doc/$pkg/README.Debian",
           "/usr/share/doc/$pkg/copyright",
           "/usr/share/doc/$pkg/examples/quickstart/conf.d/oauth.conf",
           "/usr/share/doc/$pkg/examples/snippets/oauth-upstream.conf",
           $state_dir)
{
    ok($files{$f}, "ships $f");
}

my $depends = `dpkg-query -W -f='\${Depends}' $pkg`;
like($depends, qr/nginx-abi-[\d.]+-\d+/, 'depends on the nginx ABI');
like($depends, qr/libcurl/, '... and on libcurl (shlibs)');

is(debian_read('/usr/share/nginx/modules-available/mod-http-oauth.conf'),
   "load_module modules/ngx_http_oauth_module.so;\n",
   'mod-http-oauth.conf loads the module');
my $link = '/etc/nginx/modules-enabled/50-mod-http-oauth.conf';
is(readlink($link), '/usr/share/nginx/modules-available/mod-http-oauth.conf',
   'enabled in modules-enabled/');

my @st = stat $state_dir;
is(scalar getpwuid($st[4]), 'www-data', "$state_dir belongs to www-data");
is(sprintf('%o', $st[2] & 07777), '700', '... mode 0700');

like(`/usr/sbin/ngx-oauth --version`, qr/^ngx-oauth \d/, 'ngx-oauth runs');
like(`/usr/sbin/ngx-oauth keygen k1`, qr/^k1:[A-Za-z0-9+\/]{43}=$/,
     'ngx-oauth keygen');
like(`man -l /usr/share/man/man8/ngx-oauth.8.gz 2>/dev/null | head -5`
     . `zcat /usr/share/man/man8/ngx-oauth.8.gz`, qr/NGX-OAUTH/,
     'the man page');

# The machine's own configuration is copied, not tested in place: nginx -t
# would chown the compiled-in temp directories under /var/lib/nginx.
# First with the module loaded and no oauth_ directive, then with a
# shipped example as README.Debian lays it out.
my $p0 = debian_layout();
($rc, $out) = debian_nginx_t($p0);
is($rc, 0, "Debian's nginx.conf passes nginx -t with the module enabled")
    or diag($out);

my $p = debian_layout();
my $copy = "$p/etc/nginx/modules-enabled/50-mod-http-oauth.conf";
ok(-l $copy, 'the copy has the package\'s modules-enabled link');
my $ex = "$p/examples";
debian_sh('cp', '-r', "/usr/share/doc/$pkg/examples", $ex);
debian_sh('sh', '-c', "find '$ex' -name '*.gz' -exec gunzip {} +");
debian_install($p, "$ex/quickstart", cli => '/usr/sbin/ngx-oauth');
debian_no_dns($p);
($rc, $out) = debian_nginx_t($p);
is($rc, 0, 'nginx -t with the quickstart conf.d snippet and site')
    or diag($out);
unlike($out, qr/secret-[\w.-]+-not-for-logs/, 'no secret printed');

($rc, $out) = dpkg('--purge', $pkg);
is($rc, 0, 'dpkg --purge') or diag($out);
$ours = 0;

ok(!installed(), 'not installed any more');
ok(!-e '/usr/lib/nginx/modules/ngx_http_oauth_module.so', '.so removed');
ok(!-e '/usr/sbin/ngx-oauth', 'ngx-oauth removed');
is_deeply([sort glob('/etc/nginx/modules-enabled/*')], \@enabled_before,
          'modules-enabled/ as it was');
is(-e $state_dir ? 1 : 0, $had_state_dir ? 1 : 0,
   "$state_dir as it was");
($rc, $out) = debian_nginx_t(debian_layout());
is($rc, 0, "Debian's nginx.conf still passes nginx -t") or diag($out);

done_testing();
