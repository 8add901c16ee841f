#!/usr/bin/perl
# Writes the "Presets" table of README.md from the catalog
# (ngx_oauth_module/providers.json): one row per preset, with the quirks
# the module handles for it and what the operator registers or adds.
#
#   perl .ci/readme-presets.pl            rewrites README.md in place
#   perl .ci/readme-presets.pl --check    exits 1 when README.md is stale
#
# The table sits between the lines "<!-- presets:begin -->" and
# "<!-- presets:end -->"; nothing else of README.md is touched.

use strict;
use warnings;
use FindBin;
use JSON::PP;

my $root = "$FindBin::Bin/..";
my $catalog = "$root/ngx_oauth_module/providers.json";
my $readme = "$root/README.md";

sub slurp {
    my $f = shift;
    open my $fh, '<:raw', $f or die "$f: $!\n";
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

sub cell {
    my $s = shift;
    $s =~ s/\|/\\|/g;
    $s =~ s/\n/ /g;
    return $s;
}

sub quirks {
    my $e = shift;
    my @q;
    my $kind = $e->{kind} // 'oauth2';

    if ($kind ne 'oauth2') {
        my $h = $e->{token_header} // {};
        push @q, "$kind: credentials through the API";
        push @q, 'each request signed (AWS Signature Version 4)'
            if $kind eq 'aws_sigv4';
        push @q, "sent as `$h->{name}: $h->{prefix}...`"
            if $h->{name} && ($h->{name} ne 'Authorization'
                              || ($h->{prefix} // '') ne 'Bearer ');
        return @q;
    }

    push @q, "code in `$e->{code_param}`" if $e->{code_param};
    push @q, "client id as `$e->{client_id_param}`" if $e->{client_id_param};
    for my $cp (@{ $e->{connection_params} // [] }) {
        push @q, "per-connection `$cp->{name}`"
                 . ($cp->{strip_suffix} ? " (`$cp->{strip_suffix}` accepted)"
                                        : '');
    }
    if (my $ap = $e->{authorization_params}) {
        push @q, 'authorization ' . join ', ',
                 map { "`$_=$ap->{$_}`" } sort keys %$ap;
    }
    if (my $th = $e->{token_headers}) {
        push @q, 'token request headers ' . join ', ',
                 map { "`$_`" } sort keys %$th;
    }
    push @q, "token under `$e->{token_path}`" if $e->{token_path};
    push @q, 'token requests as JSON'
        if ($e->{token_encoding} // '') eq 'json';
    push @q, 'callback `hmac` verified' if $e->{callback_hmac};
    push @q, 'long-lived token exchange' if $e->{exchange_url};
    push @q, 'own refresh grant' if $e->{refresh_url};
    push @q, 'client-credentials grant (no code; a refresh asks again)'
        if ($e->{token_grant} // '') eq 'client_credentials';
    push @q, "refresh authenticated by `$e->{refresh_token_auth}`"
        if $e->{refresh_token_auth};
    push @q, 'PKCE' if $e->{pkce};
    push @q, 'no refresh' if defined $e->{refresh} && !$e->{refresh};
    my $acc = $e->{account_id} // '';
    if ($acc =~ /^callback:(.+)$/) {
        push @q, "account: callback `$1`";
    } elsif ($acc eq 'single') {
        push @q, 'one connection per owner (account `default`)';
    } elsif ($acc) {
        push @q, "account: `$acc`";
    }
    my @keep = ((map { ref $_ ? $_->{name} : $_ }
                 @{ $e->{keep_callback_params} // [] }),
                map { $_->{as} // $_->{path} } @{ $e->{keep_token_fields} // [] });
    push @q, 'keeps ' . join ', ', map { "`$_`" } @keep if @keep;
    for my $l (@{ $e->{lookups} // [] }) {
        my ($name, $url, $path, @opt) = @$l;
        push @q, "looks up `$name` (`$path` of GET $url)"
                 . ((grep { $_ eq 'optional' } @opt) ? ', optional' : '');
    }
    if (my $ah = $e->{api_headers}) {
        push @q, 'API headers ' . join ', ', map { "`$_`" } sort keys %$ah;
    }
    my $h = $e->{token_header} // {};
    push @q, "sent as `$h->{name}: $h->{prefix}...`"
        if $h->{name} && ($h->{name} ne 'Authorization'
                          || ($h->{prefix} // '') ne 'Bearer ');
    if ($e->{revocation_url}) {
        my $how = join ' ', grep { $_ } $e->{revocation_method},
                  $e->{revocation_auth}, ($e->{revocation_body} ? 'body' : '');
        push @q, 'revoked at disconnect' . ($how ? " ($how)" : ' (RFC 7009)');
    } else {
        push @q, 'no revocation endpoint';
    }
    push @q, 'scope ' . join(' ', map { "`$_`" } @{ $e->{scope_required} })
             . ' always asked' if @{ $e->{scope_required} // [] };
    return @q;
}

sub you {
    my $e = shift;
    my @y;
    push @y, $e->{register} if $e->{register};
    push @y, 'client_id, client_secret, redirect_uri'
        if ($e->{kind} // 'oauth2') eq 'oauth2';
    push @y, $e->{notes} if $e->{notes};
    for my $need (@{ $e->{requires} // [] }) {
        push @y, $need =~ /^authorization_param:(.+)$/
                 ? "`authorization_param $1 ...`" : "`$need ...`";
    }
    return @y;
}

sub table {
    my $cat = JSON::PP->new->decode(slurp($catalog));
    my $n = scalar keys %$cat;
    my $t = "The catalog ([`providers.json`](ngx_oauth_module/providers.json),"
          . " compiled\ninto the module) has $n entries. This table is"
          . " written from it by\n`.ci/readme-presets.pl` (the test suite"
          . " fails when it is stale).\n\n"
          . "| preset | platform | handled by the preset | you register / add |\n"
          . "|---|---|---|---|\n";
    for my $k (sort keys %$cat) {
        my $e = $cat->{$k};
        $t .= '| `' . $k . '` | ' . cell($e->{display_name} // $k) . ' | '
            . cell(join '; ', quirks($e)) . ' | '
            . cell(join '; ', you($e)) . " |\n";
    }
    return $t;
}

my $text = slurp($readme);
my ($head, $old, $tail) = $text =~
    /\A(.*<!-- presets:begin -->\n)(.*?)(<!-- presets:end -->.*)\z/s
    or die "README.md: no <!-- presets:begin/end --> markers\n";

my $new = table();

if (@ARGV && $ARGV[0] eq '--check') {
    if ($old ne $new) {
        print STDERR "README.md: the Presets table is stale; run "
                   . "perl .ci/readme-presets.pl\n";
        exit 1;
    }
    exit 0;
}

open my $out, '>:raw', $readme or die "$readme: $!\n";
print $out $head, $new, $tail;
close $out or die "$readme: $!\n";
