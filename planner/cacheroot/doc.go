// Package cacheroot is a cache root on disk: the one place where cachectl
// reads and changes files under a root. It holds the index of what
// cachectl placed (<root>/.cachectl/index.json), the lock, the staging
// area, the scan of a root (RootState: the index, a stat of every managed
// file, the unmanaged files, a fingerprint), and the placement protocol
// (Session: Begin locks a root, WorkDir gives a builder a private
// directory, Place renames a finished file into place, Update and Delete
// change only the very file placed).
//
// Every operation goes through a handle of the root and of each directory
// on the way, opened one component at a time with O_NOFOLLOW, never
// through a path string that another user could change between a check
// and an action; see Root and docs/security.md for the threat model. The
// state directory is checked on every run (a real directory of the runner,
// writable by nobody else), and the index is input to validate: every
// name in it must pass the spec's naming rules.
package cacheroot
