# README.md's Presets table is written from the catalog by
# .ci/readme-presets.pl: it must be current (regenerated, no difference).

use strict;
use warnings;
use FindBin;
use Test::More tests => 2;

my $script = "$FindBin::Bin/../.ci/readme-presets.pl";

ok(-r $script, 'the generator is there');

my $out = qx{perl "$script" --check 2>&1};
is($? >> 8, 0, 'README.md lists every preset as the catalog has it')
    or diag($out);
