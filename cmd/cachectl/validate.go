package main

// ValidateCmd checks the spec. (Being written.)
type ValidateCmd struct{}

// Run validates.
func (ValidateCmd) Run(g *Globals, io *IO) error { return nil }
