package main

// FmtCmd formats specs. (Being written.)
type FmtCmd struct{}

// Run formats.
func (FmtCmd) Run(g *Globals, io *IO) error { return nil }
