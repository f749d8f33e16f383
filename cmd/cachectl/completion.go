package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"github.com/cachectl/cachectl/spec"
)

// CompletionCmd prints a shell completion script.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

// Help shows how to install the scripts.
func (CompletionCmd) Help() string {
	return `Completes commands, flags, cache names (list, history, import) and artifact
addresses (-target, -replace) from the spec that -f/--spec, CACHECTL_SPEC or
./cachectl.hcl names. The shell calls cachectl itself to complete (cachectl
must be on PATH).

Examples:
  cachectl completion bash > /etc/bash_completion.d/cachectl
  source <(cachectl completion bash)                            # in ~/.bashrc
  source <(cachectl completion zsh)                             # in ~/.zshrc, after compinit
  cachectl completion fish > ~/.config/fish/completions/cachectl.fish`
}

// completionScripts are the shell glue of posener/complete (as kongplete
// installs it): the shell runs cachectl with COMP_LINE set to the line
// being completed, and cachectl prints the candidates, one per line.
var completionScripts = map[string]string{
	"bash": `# bash completion for cachectl (cachectl completion bash)
complete -o default -C cachectl cachectl
`,
	"zsh": `# zsh completion for cachectl (cachectl completion zsh); source it after compinit
autoload -U +X bashcompinit && bashcompinit
complete -o default -C cachectl cachectl
`,
	"fish": `# fish completion for cachectl (cachectl completion fish)
function __complete_cachectl
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    cachectl
end
complete -f -c cachectl -a "(__complete_cachectl)"
`,
}

// Run prints the script.
func (c *CompletionCmd) Run(iox *IO) error {
	_, err := fmt.Fprint(iox.Stdout, completionScripts[c.Shell])
	return err
}

// complete answers a shell's completion request (COMP_LINE set) and reports
// whether it did; the exit goes through the parser's Exit.
func completeLine(parser *kong.Kong) {
	if os.Getenv("COMP_LINE") == "" {
		return
	}
	kongplete.Complete(parser, kongplete.WithPredictors(map[string]complete.Predictor{
		"cache":   complete.PredictFunc(func(a complete.Args) []string { return completeSpec(a, cacheCandidates) }),
		"address": complete.PredictFunc(func(a complete.Args) []string { return completeSpec(a, addressCandidates(a.Last)) }),
		"file":    complete.PredictFiles("*"),
		"dir":     complete.PredictDirs("*"),
		"spec":    complete.PredictOr(complete.PredictFiles("*.hcl"), complete.PredictDirs("*")),
	}))
}

// completeSpec loads the spec the line being completed names (-f/--spec,
// else CACHECTL_SPEC, else cachectl.hcl, with its --var and --var-file)
// quietly, and returns what pick makes of it; nothing when it does not load.
func completeSpec(a complete.Args, pick func(*spec.Model) []string) []string {
	path := os.Getenv("CACHECTL_SPEC")
	if path == "" {
		path = "cachectl.hcl"
	}
	var opts spec.Options
	// The whole line: a holds only the words after the subcommand.
	line := os.Getenv("COMP_LINE")
	if p, err := strconv.Atoi(os.Getenv("COMP_POINT")); err == nil && p >= 0 && p < len(line) {
		line = line[:p]
	}
	words := strings.Fields(line)
	for i := 0; i < len(words); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(words[i], "-"), "=")
		if !strings.HasPrefix(words[i], "-") {
			continue
		}
		if !hasVal && i+1 < len(words) {
			val = words[i+1]
		}
		switch name {
		case "f", "spec":
			path = val
		case "var":
			opts.Vars = append(opts.Vars, val)
		case "var-file":
			opts.VarFiles = append(opts.VarFiles, val)
		}
	}
	opts.Environ = os.Environ()
	m, _ := spec.Load(path, opts)
	if m == nil {
		return nil
	}
	out := pick(m)
	sort.Strings(out)
	return out
}

func cacheCandidates(m *spec.Model) []string { return cacheNames(m) }

// addressCandidates returns the artifact addresses of the spec, quoted for
// the shell: in single quotes, unless the word typed so far started with
// a double quote.
func addressCandidates(typed string) func(*spec.Model) []string {
	return func(m *spec.Model) []string {
		var out []string
		for _, c := range m.Caches {
			for _, a := range c.Artifacts {
				addr := a.Address()
				if strings.HasPrefix(typed, `"`) {
					out = append(out, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(addr)+`"`)
				} else {
					out = append(out, "'"+strings.ReplaceAll(addr, "'", `'\''`)+"'")
				}
			}
		}
		return out
	}
}
