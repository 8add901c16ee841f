# Every example in conf-examples/ passes `nginx -t` the way a Debian
# operator installs it: this machine's /etc/nginx copied to a scratch
# prefix, the module enabled in modules-enabled/, the example's conf.d/
# snippet (http context, no http {} of its own) and its sites-available/
# server block linked from sites-enabled/, next to Debian's default site.

use strict;
use warnings;
use Test::More;
use File::Basename qw(basename);
use Cwd qw(abs_path);
use FindBin;

require "$FindBin::Bin/debian/layout.pl";

my $top = abs_path("$FindBin::Bin/..");
my $module = $ENV{NGX_OAUTH_MODULE}
    || "$top/build/ngx_http_oauth_module.so";
my $cli = $ENV{NGX_OAUTH_CLI} || "$top/build/ngx-oauth";

plan skip_all => 'no /etc/nginx (Debian nginx) on this machine'
    unless -f '/etc/nginx/nginx.conf';
BAIL_OUT("module not built: $module (run make)") unless -f $module;
BAIL_OUT("ngx-oauth not built: $cli (run make)") unless -x $cli;

my @examples = grep { -d "$_/conf.d" } sort glob("$top/conf-examples/*");
ok(@examples >= 3, 'there are examples') or BAIL_OUT('no examples');

for my $ex (@examples) {
    my $name = basename($ex);

    # what Debian's nginx.conf would choke on
    for my $f (glob("$ex/conf.d/*"), glob("$ex/sites-available/*")) {
        my $text = debian_read($f);
        $text =~ s/#.*//g;
        unlike($text, qr/^\s*(http|events)\s*\{|^\s*load_module\b/m,
               "$name/" . basename($f) . ': no main-context block');
    }
    my @sites = glob("$ex/sites-available/*");
    ok(@sites, "$name: has a server block");

    my $p = debian_layout(module => $module);
    debian_install($p, $ex, cli => $cli);
    debian_no_dns($p);

    my ($rc, $out) = debian_nginx_t($p);
    is($rc, 0, "$name passes nginx -t in the Debian layout") or diag($out);
    like($out, qr/test is successful/, "$name: test is successful");
    unlike($out, qr/secret-[\w.-]+-not-for-logs/, "$name: no secret printed");
}

# the one shared snippet is valid in a location
my $p = debian_layout(module => $module);
debian_install($p, "$top/conf-examples/quickstart", cli => $cli);
debian_no_dns($p);
ok(-f "$p/etc/nginx/snippets/oauth-upstream.conf",
   'snippets/oauth-upstream.conf laid out');

# an example wrapped in http {} is refused in conf.d, as the old ones were:
# proves the layout really includes conf.d inside http {}
debian_write("$p/etc/nginx/conf.d/wrapped.conf", "http { }\n");
my ($rc, $out) = debian_nginx_t($p);
isnt($rc, 0, 'an http {} block in conf.d fails nginx -t');
like($out, qr/"http" directive is not allowed here/, '... as on Debian');

done_testing();
