package corpus

import (
	"archive/tar"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// path is the PATH of images that set one.
const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// HostGuard is the host path the shapes with escaping /etc symlinks point
// at: a runtime that follows them out of its root writes there. The suite
// refuses to run the runtimes when it exists and checks it is still absent
// afterwards.
const HostGuard = "/cachectl-conformance-host-guard"

// probeEntrypoint runs the probe with fixed arguments before the command.
var probeEntrypoint = []string{"/probe", "from-entrypoint"}

// Shapes returns the corpus, in a fixed order.
func Shapes() []Shape {
	return []Shape{
		{
			Name:  "e2e",
			About: "the end-to-end tests' image (cmd/cachectl): a setuid file, a hard link, usr/bin -> ../bin, a whiteout; ENV with quotes and $HOME, ENTRYPOINT, WORKDIR /etc",
			Layers: [][]Member{
				{
					Dir("bin", 0o755),
					Reg("bin/hello", 0o755, "#!/bin/sh\necho hello\n"),
					Reg("bin/su-helper", 0o4755, "setuid\n"),
					Hardlink("bin/hello-link", "bin/hello"),
					Dir("etc", 0o755),
					Reg("etc/os-release", 0o644, "ID=e2e\n"),
					Reg("etc/obsolete.conf", 0o644, "gone in the next layer\n"),
					Dir("usr", 0o755),
					Symlink("usr/bin", "../bin"),
				},
				{
					Dir("etc", 0o755),
					Whiteout("etc/obsolete.conf"),
					Reg("etc/variant", 0o644, "variant 0\n"),
				},
			},
			Config: v1.Config{
				Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", `GREETING=hello "e2e" $HOME`},
				Entrypoint: []string{"/bin/hello"},
				WorkingDir: "/etc",
			},
		},
		{
			Name:  "rootfs-mixed",
			About: "providers/rootfs crosscheck image \"mixed\": replacement file<->dir<->symlink, whiteouts, opaque dir, hard links across layers, setuid/setgid, a FIFO, escaping symlinks kept verbatim",
			Layers: [][]Member{
				{
					Reg("bin/busybox-v1", 0o755, "busybox v1"),
					Hardlink("bin/sh-v1", "bin/busybox-v1"),
					Reg("bin/su", 0o4755, "setuid"),
					{Name: "bin/wall", Mode: 0o2711, GID: 5, Body: "setgid"},
					Dir("tmp", 0o1777),
					Dir("home", 0o755),
					{Name: "home/user", Type: tar.TypeDir, Mode: 0o750, UID: 1000, GID: 1000},
					{Name: "home/user/.profile", Mode: 0o640, UID: 1000, GID: 1000, Body: "PS1=x"},
					Dir("etc", 0o755),
					Reg("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
					Reg("etc/hostname", 0o644, "box"),
					Symlink("etc/mtab", "/proc/self/mounts"),
					Symlink("etc/escape", "../../../../etc/shadow"),
					Reg("etc/data", 0o600, "data v1"),
					Reg("etc/gone", 0o644, "will be whited out"),
					Reg("var/cache/a", 0o644, "cache a"),
					Reg("var/cache/sub/b", 0o644, "cache b"),
					Reg("opt/tool", 0o755, "tool v1"),
					Reg("lib/libx.so.1", 0o644, "libx"),
					Symlink("lib/libx.so", "libx.so.1"),
					{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o620},
				},
				{
					Whiteout("etc/gone"),
					Opaque("var/cache"),
					{Name: "var/cache/new", UID: 33, GID: 33, Body: "fresh cache"},
					Whiteout("lib/libx.so"),
					Reg("lib/libx.so", 0o644, "now a file"),
					{Name: "opt", Type: tar.TypeDir, Mode: 0o711, UID: 2},
					Whiteout("opt/tool"),
					Hardlink("etc/data.bak", "etc/data"),
					Hardlink("usr/bin/busybox-link", "bin/busybox-v1"),
					Hardlink("usr/bin/su2", "bin/su"),
					{Name: "home/user", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
				},
				{
					Reg("etc/data", 0o644, "data v2, longer"),
					Reg("bin/busybox-v1", 0o755, "busybox v2"),
					Whiteout("bin/sh-v1"),
					Dir("etc/hostname", 0o755),
					Reg("etc/hostname/now-a-dir", 0o644, "x"),
					Whiteout("home/user"),
					Reg("usr/share/doc/README", 0o644, "readme"),
				},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "rootfs-links",
			About: "providers/rootfs crosscheck image \"links\": hard links whose target is whited out or replaced later, symlinked directories, a setuid hard-link group, long unicode names",
			Layers: [][]Member{
				{
					Reg("a/target", 0o755, "target contents"),
					Hardlink("a/l1", "a/target"),
					Hardlink("a/l2", "a/target"),
					Symlink("b/dirlink", "../a"),
					Symlink("b/abs", "/a/target"),
					{Name: "k/orig", Mode: 0o4750, UID: 3, GID: 4, Body: "kept group"},
					Reg("m/z-orig", 0o644, "primary moves"),
					Reg("deep/"+strings.Repeat("n", 120)+"/"+strings.Repeat("m", 150)+"/ünïcode-файл", 0o644, "long name"),
					Hardlink("m/a-link", "m/z-orig"),
				},
				{
					Hardlink("b/from-lower", "a/target"),
					Hardlink("k/copy", "k/orig"),
					Whiteout("a/target"),
					Reg("c/x", 0o644, "x"),
				},
				{
					Opaque("a"),
					Reg("a/fresh", 0o644, "fresh"),
				},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "env-odd",
			About: "ENV values with shell syntax (issue 10 fault 1; apptainer#1165-style reports): $(date), backquotes, backslashes, quotes, $HOME, TAB, newline, empty, '=' in the value, unicode",
			Config: v1.Config{
				Env: []string{
					path,
					"CMDSUB=$(echo injected)",
					"BACKQUOTE=`echo injected`",
					`BACKSLASH=a\b\\c\\\`,
					`DQUOTE=say "hi"`,
					`SQUOTE=it's 'quoted'`,
					"HOMEREF=$HOME/x",
					"BRACES=${HOME}",
					"TAB=a\tb",
					"NEWLINE=one\ntwo",
					"EMPTY=",
					"EQUALS=a=b=c",
					"UNICODE=ünïcødé ✓",
					"SEMI=a; echo injected",
					"DOLLAR=$",
					"TRAIL=ends with backslash\\",
					"SPACES=  lead and trail  ",
					"GLOB=*",
					"COLLIDE=image",
				},
				Entrypoint: probeEntrypoint,
			},
		},
		{
			Name:  "labels-odd",
			About: "labels with newlines (issue 10 fault 2), quotes, $, backquotes and command substitutions, unicode, an empty value",
			Config: v1.Config{
				Env: []string{path},
				Labels: map[string]string{
					"newline":                         "first\ntouch /tmp/label-injected",
					"org.example.q":                   `"double" 'single'`,
					"dollar":                          "$HOME $(id) `id`",
					"unicode":                         "ünïcødé ✓",
					"empty":                           "",
					"with space":                      "a b",
					"backslash":                       `a\b\n`,
					"maintainer":                      "Someone <someone@example.com>",
					"cr":                              "a\rb",
					"org.label-schema.schema-version": "image's own",
				},
				Cmd: []string{"/probe"},
			},
		},
		{
			Name:  "cmd-shellchars",
			About: "ENTRYPOINT, CMD, WORKDIR, VOLUME and USER holding shell syntax, quotes, spaces, TAB, newline and empty arguments",
			Layers: [][]Member{{
				Dir("work dir", 0o755),
			}},
			Config: v1.Config{
				Env:        []string{path},
				Entrypoint: []string{"/probe", "it's", "$HOME", "a b", "`id`", "$(id)", "tab\there", "", `back\slash`, `"dq"`},
				Cmd:        []string{"multi\nline", "; echo injected", "*"},
				WorkingDir: "/work dir",
				Volumes:    map[string]struct{}{"/data": {}, "/v $(id)": {}, "/v'q": {}},
				User:       "1000:1000",
			},
		},
		{
			Name:  "workdir-odd",
			About: "a WORKDIR with shell syntax that does not exist in the image, CMD only",
			Config: v1.Config{
				Env:        []string{path},
				Cmd:        []string{"/probe", "cmd-only"},
				WorkingDir: "/srv/$(id)/`x`/\"q\"",
			},
		},
		{
			Name:   "entrypoint-only",
			About:  "ENTRYPOINT without CMD, no WORKDIR, USER by name",
			Layers: [][]Member{{Reg("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"), Reg("etc/group", 0o644, "root:x:0:\nuser:x:1000:\n")}},
			Config: v1.Config{Env: []string{path}, Entrypoint: []string{"/probe", "ep-only"}, User: "user"},
		},
		{
			Name:   "no-command",
			About:  "neither ENTRYPOINT nor CMD nor ENV: the runtimes' defaults (/bin/sh, their own PATH)",
			Config: v1.Config{},
		},
		{
			Name:  "whiteouts",
			About: "whiteouts of files, directories and symlinks, opaque directories, a whiteout of a path that never existed",
			Layers: [][]Member{
				{
					Reg("w/file", 0o644, "file"),
					Reg("w/dir/inner", 0o644, "inner"),
					Symlink("w/link", "file"),
					Reg("o/old1", 0o644, "old1"),
					Reg("o/sub/old2", 0o644, "old2"),
				},
				{
					Whiteout("w/file"),
					Whiteout("w/dir"),
					Whiteout("w/link"),
					Whiteout("w/never-existed"),
					Opaque("o"),
					Reg("o/new", 0o644, "new"),
				},
				{
					Opaque("o/sub"),
					Reg("w/dir", 0o644, "dir is a file now"),
				},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "hardlinks",
			About: "hard links in one layer, to a setuid file, and a linked file replaced by a later layer",
			Layers: [][]Member{
				{
					Reg("h/a", 0o644, "a"),
					Hardlink("h/a2", "h/a"),
					Reg("h/suid", 0o4755, "suid"),
					Reg("h/replaced", 0o644, "old content"),
					Hardlink("h/keeps-old", "h/replaced"),
				},
				{
					Reg("h/replaced", 0o644, "new content"),
				},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "symlink-dirs",
			About: "symlinked directories (usr-merge style lib -> usr/lib, an absolute /opt/current -> /opt/v2, a dangling link, a link loop)",
			Layers: [][]Member{
				{
					Reg("usr/lib/libz.so.1", 0o644, "libz"),
					Symlink("lib", "usr/lib"),
					Reg("opt/v2/tool", 0o755, "tool"),
					Symlink("opt/current", "/opt/v2"),
					Symlink("dangling", "/does/not/exist"),
					Symlink("loop1", "loop2"),
					Symlink("loop2", "loop1"),
				},
				{
					Reg("usr/lib/libz.so.2", 0o644, "libz2"),
				},
			},
			Config: v1.Config{Env: []string{path, "LD_LIBRARY_PATH=/lib"}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "etc-symlink",
			About: "/etc is a relative symlink to usr/etc (issue 10 fault 3; Clear Linux, some usr-merged images)",
			Layers: [][]Member{{
				Reg("usr/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
				Reg("usr/etc/hosts", 0o644, "127.0.0.1 image\n"),
				Symlink("etc", "usr/etc"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "etc-symlink-abs",
			About: "/etc is an absolute symlink: resolved inside the root, never on the host (HostGuard names a host path that must not exist)",
			Layers: [][]Member{{
				Reg(HostGuard[1:]+"/usr-etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
				Symlink("etc", HostGuard+"/usr-etc"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}, WorkingDir: "/etc/app"},
		},
		{
			Name:  "etc-symlink-escape",
			About: "/etc is a relative symlink that climbs out of the root: resolved inside the root, never on the host",
			Layers: [][]Member{{
				Reg(HostGuard[1:]+"/usr-etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
				Symlink("etc", strings.Repeat("../", 12)+HostGuard[1:]+"/usr-etc"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "modes",
			About: "restrictive and special modes: 0000 directories and files, setuid/setgid/sticky, deep 0500 directories (Enroot's fixperms depth), non-root owners",
			Layers: [][]Member{{
				{Name: "m/none-dir", Type: tar.TypeDir, Mode: NoPerm},
				{Name: "m/none-file", Mode: NoPerm, Body: "secret"},
				{Name: "m/ro-dir", Type: tar.TypeDir, Mode: 0o555},
				{Name: "m/ro-dir/f", Mode: 0o444, Body: "ro"},
				{Name: "m/setuid", Mode: 0o4755, Body: "su"},
				{Name: "m/setgid", Mode: 0o2750, GID: 50, Body: "sg"},
				{Name: "m/sticky", Type: tar.TypeDir, Mode: 0o1777},
				{Name: "m/owned", Mode: 0o640, UID: 1234, GID: 5678, Body: "owned"},
				{Name: "m/exec-only", Mode: 0o111, Body: "x"},
				{Name: "d1/d2/d3/d4/d5", Type: tar.TypeDir, Mode: 0o500},
				{Name: "d1/d2/d3/d4", Type: tar.TypeDir, Mode: 0o500},
				{Name: "d1/d2/d3/d4/d5/f", Mode: 0o400, Body: "deep"},
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:   "many-layers",
			About:  "40 layers, each changing, adding and deleting files (layer ordering, whiteouts across many layers)",
			Layers: manyLayers(40),
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "odd-names",
			About: "file names with spaces, quotes, $, backslashes, a newline, a leading dash, unicode, .wh. look-alikes, 255-byte names",
			Layers: [][]Member{{
				Reg("names/with space", 0o644, "1"),
				Reg("names/'single'", 0o644, "2"),
				Reg(`names/"double"`, 0o644, "3"),
				Reg("names/$HOME", 0o644, "4"),
				Reg(`names/back\slash`, 0o644, "5"),
				Reg("names/new\nline", 0o644, "6"),
				Reg("names/-dash", 0o644, "7"),
				Reg("names/ünïcødé ✓", 0o644, "8"),
				Reg("names/x.wh.y", 0o644, "9"),
				Reg("names/wh.", 0o644, "10"),
				Reg("names/"+strings.Repeat("x", 255), 0o644, "11"),
				Reg("names/*", 0o644, "12"),
				Reg("names/tab\there", 0o644, "13"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "xattrs",
			About: "extended attributes: user.* on a file and a directory, security.capability (ping-style file capabilities)",
			Layers: [][]Member{{
				{Name: "x/dir", Type: tar.TypeDir, Mode: 0o755, Xattrs: map[string]string{"user.dir": "d"}},
				{Name: "x/file", Mode: 0o644, Body: "f", Xattrs: map[string]string{"user.one": "1", "user.two": "two words"}},
				{Name: "x/ping", Mode: 0o755, Body: "ping", Xattrs: map[string]string{
					"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "dev-content",
			About: "an image that ships /dev content and device nodes elsewhere (Enroot drops dev/*; Apptainer keeps them)",
			Layers: [][]Member{{
				Dir("dev", 0o755),
				{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 3},
				Reg("dev/file", 0o644, "in dev"),
				Dir("dev/shm", 0o1777),
				{Name: "other/zero", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 5},
				{Name: "other/fifo", Type: tar.TypeFifo, Mode: 0o644},
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "existing-meta",
			About: "an image that already ships /etc/hosts and /etc/resolv.conf with content, /etc/environment, /etc/rc and a /.singularity.d env file",
			Layers: [][]Member{{
				Reg("etc/hosts", 0o600, "127.0.0.1 image-hosts\n"),
				Reg("etc/resolv.conf", 0o640, "nameserver 192.0.2.1\n"),
				Reg("etc/environment", 0o600, "OLD=1\n"),
				Reg("etc/rc", 0o755, "echo image rc\n"),
				Reg(".singularity.d/env/50-image.sh", 0o755, "export FROM_IMAGE=1\n"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "dangling-meta-links",
			About: "/environment and /etc/resolv.conf are dangling symlinks (Debian-style resolv.conf -> ../run/resolv.conf)",
			Layers: [][]Member{{
				Dir("etc", 0o755),
				Symlink("etc/resolv.conf", "../run/resolv.conf"),
				Symlink("environment", "/custom/env"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "upper-dirs",
			About: "a restrictive /etc (0700) and a WORKDIR below a 0500 directory: the directories a runtime writes its own files into",
			Layers: [][]Member{{
				{Name: "etc", Type: tar.TypeDir, Mode: 0o700, UID: 10, GID: 10},
				Reg("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
				{Name: "srv", Type: tar.TypeDir, Mode: 0o500},
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}, WorkingDir: "/srv/app"},
		},
		{
			Name:  "hardlinks-across-layers",
			About: "hard links to files of a lower layer (Enroot 4.1.2 extracts each layer apart and cannot import these)",
			Layers: [][]Member{
				{Reg("h/a", 0o644, "a"), Reg("h/suid", 0o4755, "suid")},
				{Hardlink("h/a3", "h/a"), Hardlink("other/suid-link", "h/suid")},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "whiteout-readd",
			About: "a file, and a directory, whited out and re-added in the same layer (OCI: the whiteout applies to lower layers only; Enroot 4.1.2 fails to import it); an opaque directory whose layer also adds files to it",
			Layers: [][]Member{
				{Reg("re/added", 0o644, "v1"), Reg("wd/old", 0o644, "old"), Reg("wd/sub/deep", 0o644, "deep"), Reg("op/old", 0o644, "old")},
				{Whiteout("re/added"), Reg("re/added", 0o600, "v2"), Whiteout("wd"), Dir("wd", 0o700), Reg("wd/new", 0o644, "new"), Opaque("op"), Reg("op/new", 0o644, "new")},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "tar-odd",
			About: "layers and tar entries as other tools write them: an uncompressed (rootfs.diff.tar) layer, empty 32-byte gzip layers, the same layer blob twice in the manifest (applied twice: it re-adds what a layer between deleted), empty_layer history entries; a ./ root entry with its own mode, ./ and / prefixes, GNU long names and link names, non-UTF-8 names (GNU raw and PAX), a PAX 1.0 sparse file, mtimes at 0, before 1970, in 2040 and past 2106 (squashfs keeps 32-bit times)",
			Layers: [][]Member{nil, {
				{Name: "./", Type: tar.TypeDir, Mode: 0o711},
				Dir("./dot", 0o755),
				Reg("./dot/file", 0o644, "dot-slash"),
				Reg("/abs/file", 0o644, "absolute"),
				Dir("/abs/dir", 0o750),
				{Name: "gnu/" + strings.Repeat("l", 130) + "/" + strings.Repeat("o", 120), Body: "gnu long name", Format: tar.FormatGNU},
				{Name: "gnu/long-link", Type: tar.TypeSymlink, Link: strings.Repeat("t", 150), Format: tar.FormatGNU},
				{Name: "gnu/caf\xe9-latin1", Body: "latin1 name", Format: tar.FormatGNU},
				{Name: "pax/bad-utf8-\xff\xfe", Body: "bad utf-8 in a PAX path"},
				{Name: "sparse/file", Mode: 0o640, Body: sparseBody, Sparse: []SparseRegion{{0, 512}, {8704, 512}, {13824, int64(len(sparseBody)) - 13824}}},
				{Name: "times/epoch", Body: "0", ModTime: time.Unix(0, 0)},
				{Name: "times/1960", Body: "1960", ModTime: time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC)},
				{Name: "times/2040", Body: "2040", ModTime: time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC)},
				{Name: "times/2200", Body: "2200", ModTime: time.Date(2200, 1, 2, 3, 4, 5, 0, time.UTC)},
				{Name: "times/link-1960", Type: tar.TypeSymlink, Link: "1960", ModTime: time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC)},
			},
				{Reg("u/plain", 0o644, "from an uncompressed layer")},
				{Reg("twice/f", 0o644, "twice")},
				{Whiteout("twice/f"), Reg("between", 0o644, "between")},
				{Reg("twice/f", 0o644, "twice")},
				nil,
			},
			Encodings:         []Encoding{Gzip, Gzip, Uncompressed},
			EmptyLayerHistory: true,
			Config:            v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "tar-duplicates",
			About: "one layer names paths twice (GNU tar appends, rpm-built trees): the last entry wins, a hard link made between keeps the first copy; podman refuses such layers (\"duplicates of file paths not supported\")",
			Layers: [][]Member{{
				Reg("dup/file", 0o600, "first copy"),
				Hardlink("dup/link-to-first", "dup/file"),
				Reg("dup/file", 0o644, "second copy, longer"),
				Dir("dup/dir", 0o755),
				Reg("dup/dir/in", 0o644, "in"),
				Dir("dup/dir", 0o700),
				Reg("dup/file-then-link", 0o644, "file"),
				Symlink("dup/file-then-link", "file"),
				Symlink("dup/link-then-file", "file"),
				Reg("dup/link-then-file", 0o644, "now a file"),
			}},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "replace-kinds",
			About: "an upper layer puts a file where a directory was, a directory where a file or a symlink to a directory was (without whiteouts), and writes and hard-links below a lower layer's symlinked directory (usr-merge lib -> usr/lib; whiteouts through it are in providers/rootfs's umoci crosscheck: Enroot 4.1.2 fails on them)",
			Layers: [][]Member{
				{
					Reg("k/dir-to-file/inner", 0o644, "inner"),
					Reg("k/file-to-dir", 0o644, "file"),
					Reg("k/real/kept", 0o644, "kept"),
					Symlink("k/link-to-dir", "real"),
					Reg("usr/lib/libold.so", 0o644, "old"),
					Symlink("lib", "usr/lib"),
				},
				{
					Reg("k/dir-to-file", 0o600, "now a file"),
					Dir("k/file-to-dir", 0o750),
					Reg("k/file-to-dir/inside", 0o644, "inside"),
					Dir("k/link-to-dir", 0o755),
					Reg("k/link-to-dir/new", 0o644, "new"),
					Reg("lib/libnew.so", 0o644, "new lib"),
					Hardlink("k/new-link", "lib/libnew.so"),
				},
			},
			Config: v1.Config{Env: []string{path}, Cmd: []string{"/probe"}},
		},
		{
			Name:  "oci-layers",
			About: "OCI media types (manifest, config; gzip, uncompressed and zstd layers: a tar+zstd layer above gzip ones)",
			Layers: [][]Member{
				{Reg("o/gz", 0o644, "gzip layer"), Symlink("o/link", "gz"), Reg("z/gz", 0o644, "gzip layer")},
				{Reg("o/plain", 0o644, "uncompressed layer"), Whiteout("o/link")},
				{Reg("z/zstd", 0o644, "zstd layer"), Whiteout("z/gz")},
			},
			Encodings: []Encoding{Gzip, Uncompressed, Zstd},
			OCI:       true,
			Config:    v1.Config{Env: []string{path}, Cmd: []string{"/probe", "oci"}},
		},
		{
			Name:  "config-extras",
			About: "config fields the runtimes mostly ignore: USER name:group, ExposedPorts, Volumes, StopSignal, Healthcheck, Shell, OnBuild, ArgsEscaped; ENV without PATH, a key set twice and an entry without '='",
			Layers: [][]Member{{
				Reg("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nsvc:x:1001:1001::/home/svc:/bin/sh\n"),
				Reg("etc/group", 0o644, "root:x:0:\nsvc:x:1001:\nstaff:x:50:\n"),
			}},
			Config: v1.Config{
				Env:          []string{"TWICE=first", "NOEQUALS", "TWICE=second", "LAST=1"},
				Cmd:          []string{"/probe", "extras"},
				User:         "svc:staff",
				ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
				Volumes:      map[string]struct{}{"/cache": {}},
				StopSignal:   "SIGINT",
				Healthcheck:  &v1.HealthConfig{Test: []string{"CMD", "/probe", "health"}, Interval: 30 * time.Second, Retries: 3},
				Shell:        []string{"/bin/sh", "-ec"},
				OnBuild:      []string{"RUN echo onbuild"},
				ArgsEscaped:  true,
			},
		},
		{
			Name:  "entrypoint-empty",
			About: "ENTRYPOINT [\"\"] (a Dockerfile's way to clear an inherited entrypoint) with CMD holding an empty argument",
			Config: v1.Config{
				Env:        []string{path},
				Entrypoint: []string{""},
				Cmd:        []string{"/probe", "", "after-empty"},
			},
		},
	}
}

// sparseBody is the tar-odd shape's sparse file: data in three 512-byte
// blocks of 14014 bytes.
var sparseBody = "head" + strings.Repeat("\x00", 9000) + "middle" + strings.Repeat("\x00", 5000) + "tail"

// manyLayers returns n layers: layer i adds f/i, rewrites common, and
// deletes f/(i-2).
func manyLayers(n int) [][]Member {
	var out [][]Member
	for i := 0; i < n; i++ {
		ms := []Member{
			Reg(fmt.Sprintf("f/%02d", i), 0o644, fmt.Sprintf("layer %d\n", i)),
			{Name: "common", Mode: 0o644, Body: fmt.Sprintf("written by layer %d\n", i), ModTime: Time.Add(time.Duration(i) * time.Second)},
		}
		if i >= 2 {
			ms = append(ms, Whiteout(fmt.Sprintf("f/%02d", i-2)))
		}
		out = append(out, ms)
	}
	return out
}
