package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/term"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Globals are the flags every command accepts.
type Globals struct {
	Spec     string            `short:"f" name:"spec" default:"cachectl.hcl" predictor:"spec" env:"CACHECTL_SPEC" placeholder:"PATH" help:"Spec file, or a directory of *.hcl files (the compat commands default to /etc/cachectl/cachectl.hcl as root, else ~/.config/cachectl/cachectl.hcl)."`
	Var      []string          `name:"var" sep:"none" placeholder:"NAME=VALUE" help:"Set a variable (repeatable). Overrides -var-file, CACHECTL_VAR_NAME and defaults."`
	VarFile  []string          `name:"var-file" sep:"none" placeholder:"FILE" predictor:"file" help:"Read variables from an HCL file of NAME = VALUE lines (repeatable)."`
	NoColor  bool              `name:"no-color" help:"Never use colour (colour is used only on a terminal, and never when NO_COLOR is set)."`
	Store    string            `name:"store" env:"CACHECTL_STORE" placeholder:"DIR" predictor:"dir" help:"Blob store directory (default: the spec's cachectl { store }, else /var/cache/cachectl/store as root, else ~/.cache/cachectl/store)."`
	LogLevel string            `name:"log-level" default:"warn" enum:"error,warn,info,debug" help:"Log verbosity on stderr: error, warn, info, debug."`
	Env      map[string]string `kong:"-"`
	// SpecGiven is true when the spec was given (-f/--spec or
	// CACHECTL_SPEC), false when Spec is the default "cachectl.hcl": the
	// compat commands look elsewhere by default.
	SpecGiven bool `kong:"-"`
	// Keychain, when set, supplies registry credentials before the default
	// keychain (the compat commands' --username).
	Keychain authn.Keychain `kong:"-"`
}

// CLI is the kong grammar of cachectl.
type CLI struct {
	Globals

	Validate   ValidateCmd   `cmd:"" help:"Check the spec without network or cache directories."`
	Fmt        FmtCmd        `cmd:"" help:"Rewrite spec files in the canonical format."`
	Plan       PlanCmd       `cmd:"" help:"Show what apply would change, and why."`
	Apply      ApplyCmd      `cmd:"" help:"Make the caches match the spec (or apply a saved plan)."`
	Show       ShowCmd       `cmd:"" help:"Print a saved plan."`
	List       ListCmd       `cmd:"" help:"List the artifacts of the caches with their status."`
	Import     ImportCmd     `cmd:"" help:"Adopt an artifact file made elsewhere into a cache."`
	Adopt      AdoptCmd      `cmd:"" help:"Take over the files an existing cache root holds: infer references, write the spec, record them."`
	Compat     CompatCmd     `cmd:"" help:"The HPC launcher's manage-singularity-cache and manage-enroot-cache command lines (also run as those names through a symlink)."`
	EnrootSync EnrootSyncCmd `cmd:"" name:"enroot-sync" help:"Create the calling user's Enroot containers from a cache's .sqsh files (recreated when a file changed)."`
	GC         GCCmd         `cmd:"" name:"gc" help:"Remove blobs from the store that no cache index references."`
	Report     ReportCmd     `cmd:"" help:"Write a drift report: Markdown, Prometheus text-file metrics, JSON, text or JUnit XML."`
	Bundle     BundleCmd     `cmd:"" help:"Write or verify a transfer bundle of the spec's images for air-gapped clusters."`
	History    HistoryCmd    `cmd:"" help:"List the apply and import history of the caches."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script (bash, zsh, fish)."`
	Man        ManCmd        `cmd:"" hidden:"" help:"Write the man page (roff) to stdout; see 'make man'."`
	Stage      StageCmd      `cmd:"" help:"Copy artifacts onto the nodes' local disks (node_cache blocks), one Slurm task per node."`
	Version    VersionCmd    `cmd:"" help:"Print the version of cachectl."`

	BuildTask BuildTaskCmd `cmd:"" name:"build-task" hidden:"" help:"Build one task of apply's Slurm array job (run by the job)."`
	StageTask StageTaskCmd `cmd:"" name:"stage-task" hidden:"" help:"Stage this node (run by stage's job)."`
}

// IO carries the streams and environment a command runs with, so that tests
// can drive commands in-process.
type IO struct {
	Ctx     context.Context
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Getenv  func(string) string
	Environ []string
}

// Logger returns the run's logger: plain text lines on w (stderr) at the
// --log-level threshold. Library packages never log; commands do.
func (g *Globals) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	switch g.LogLevel {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// IsTerminalFile reports whether f is a terminal.
func IsTerminalFile(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Color reports whether output to w may use colour.
func (g *Globals) Color(w io.Writer) bool {
	return !g.NoColor && os.Getenv("NO_COLOR") == "" && IsTerminal(w)
}

// exitError carries a specific exit code (2 for "changes present") out of a
// command without printing anything more.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// silentError is an error that has already been reported to the user.
var errReported = errors.New("reported")

// Run parses args, runs the selected command and returns the exit code:
// 0 success (no changes), 1 error, 2 changes present (with --detailed-exitcode).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cli := &CLI{}
	exit := -1
	parser, err := kong.New(cli,
		kong.Name("cachectl"),
		kong.Description("Keep shared HPC container image caches (Apptainer SIF, Enroot .sqsh, Podman OCI archives) in the state an HCL spec describes."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, Summary: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code; panic(exitPanic{}) }),
		kong.Vars{"version": Version},
	)
	if err != nil {
		fmt.Fprintf(stderr, "cachectl: %v\n", err)
		return 1
	}
	code := func() (code int) {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(exitPanic); ok {
					code = exit
					return
				}
				panic(r)
			}
		}()
		completeLine(parser)
		kctx, err := parser.Parse(singleDashLong(args, parser))
		var perr *kong.ParseError
		if errors.As(err, &perr) && perr.Context != nil && perr.Context.Selected() == nil && strings.HasPrefix(err.Error(), "expected one of") {
			// No command (bare "cachectl", or global flags alone): the help.
			perr.Context.PrintUsage(false)
			fmt.Fprintln(stderr, "cachectl: error: no command given; the commands are above (\"cachectl COMMAND --help\" for each)")
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "cachectl: error: %v\n", err)
			if kctx != nil && len(args) > 0 {
				fmt.Fprintf(stderr, "Run \"cachectl %s --help\" for usage.\n", commandPath(kctx))
			} else {
				fmt.Fprintln(stderr, "Run \"cachectl --help\" for usage.")
			}
			return 1
		}
		cli.Globals.SpecGiven = specGiven(kctx)
		if cli.Globals.Spec == "" && !cli.Globals.SpecGiven {
			cli.Globals.Spec = "cachectl.hcl" // CACHECTL_SPEC set but empty: the default
		}
		iox := &IO{Ctx: ctx, Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, Environ: os.Environ()}
		err = kctx.Run(&cli.Globals, iox)
		return exitCode(err, stderr)
	}()
	return code
}

type exitPanic struct{}

// specGiven reports whether the command line (-f/--spec) or the
// environment (CACHECTL_SPEC, as kong reads it) gave the spec, as opposed
// to the default: a default and an explicit "cachectl.hcl" are the same
// string.
func specGiven(kctx *kong.Context) bool {
	for _, p := range kctx.Path {
		if p.Flag != nil && p.Flag.Name == "spec" {
			return true
		}
	}
	return os.Getenv("CACHECTL_SPEC") != ""
}

func commandPath(kctx *kong.Context) string {
	var parts []string
	for _, p := range kctx.Path {
		if p.Command != nil {
			parts = append(parts, p.Command.Name)
		}
	}
	return strings.Join(parts, " ")
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && !errors.Is(ee.err, errReported) {
			fmt.Fprintf(stderr, "Error: %s\n", views.PrintableText(ee.err.Error()))
		}
		return ee.code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "Error: %s\n", views.PrintableText(err.Error()))
	}
	return 1
}

// singleDashLong rewrites Terraform-style one-dash long flags (-out, -var,
// -detailed-exitcode) into kong's two-dash spelling. Only names kong knows
// as long flags are rewritten; "-" alone and everything after "--" is kept.
func singleDashLong(args []string, parser *kong.Kong) []string {
	known := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			known[f.Name] = true
			if f.IsBool() {
				known["no-"+f.Name] = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name := a[1:]
			if k := strings.IndexByte(name, '='); k >= 0 {
				name = name[:k]
			}
			if len(name) > 1 && known[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
