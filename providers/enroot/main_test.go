package enroot

import "flag"

var update = flag.Bool("update", false, "rewrite testdata/*.golden")
