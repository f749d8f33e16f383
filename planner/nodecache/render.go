package nodecache

// Drifted reports whether any node's coverage drifted.
func Drifted(covs []Coverage) bool {
	for _, c := range covs {
		if c.Drifted() {
			return true
		}
	}
	return false
}
