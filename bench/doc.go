// Package bench holds cachectl's end-to-end benchmarks against the
// runtimes' own tools: the real `cachectl apply` binary beside `apptainer
// build`, `enroot import` and `skopeo copy`, on the same image from the
// same loopback registry (Debian's docker-registry), optionally behind a
// bandwidth-limited proxy, interleaved in one run so that the machine's
// load hits them alike. It has no code of its own; the benchmark is a
// test, skipped unless CACHECTL_BENCH is set (see ngc_test.go and
// BENCHMARKS.md for the commands and the results).
package bench
