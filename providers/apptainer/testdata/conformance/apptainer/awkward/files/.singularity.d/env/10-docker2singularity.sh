#!/bin/sh
export PATH="/usr/local/bin:/usr/bin:/bin:/opt/my tools/bin"
export DATE="${DATE:-"\$(echo INJECTED)"}"
export BQ="${BQ:-"a\`echo INJECTED\`b"}"
export BS="${BS:-"C:\\temp\\new\\"}"
export DQ="${DQ:-"say \"hi\""}"
export HOMEREF="${HOMEREF:-"\$HOME/x"}"
export BRACE="${BRACE:-"\${HOME:-none}"}"
export TAB="${TAB:-"a	b"}"
export NL="${NL:-"line1
line2"}"
export EMPTY="${EMPTY:-""}"
export EQ="${EQ:-"a=b=c"}"
export SQ="${SQ:-"it's"}"
export SPACES="${SPACES:-" lead and trail "}"
export NOVAL="${NOVAL:-}"
export UNI="${UNI:-"ünïcødé ✓"}"
export ASCII="${ASCII:-"	
 !\"#\$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_\`abcdefghijklmnopqrstuvwxyz{|}~"}"
export SIMPLE="${SIMPLE:-"from-image"}"
export DUP="${DUP:-"first"}"
export DUP="${DUP:-"second"}"
