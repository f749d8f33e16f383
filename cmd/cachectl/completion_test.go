package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// The completion scripts are valid for their shells: bash -n, zsh -n and
// fish --no-execute (where those shells are installed; CI installs them).
func TestCompletionScriptsParse(t *testing.T) {
	for shell, check := range map[string][]string{
		"bash": {"-n"},
		"zsh":  {"-n"},
		"fish": {"--no-execute"},
	} {
		t.Run(shell, func(t *testing.T) {
			prog := registrytest.RequireTool(t, shell)
			var out bytes.Buffer
			if code := Run(t.Context(), []string{"completion", shell}, nil, &out, os.Stderr); code != 0 {
				t.Fatalf("completion %s: exit %d", shell, code)
			}
			f := filepath.Join(t.TempDir(), "cachectl."+shell)
			if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(prog, append(check, f)...)
			if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
				t.Fatalf("%s %v: %v\n%s\n%s", shell, check, err, b, out.String())
			}
		})
	}
}

// The bash script, sourced into a real bash, registers cachectl for
// completion with -C cachectl (what bash then runs with COMP_LINE set).
func TestCompletionBashRegisters(t *testing.T) {
	bash := registrytest.RequireTool(t, "bash")
	var out bytes.Buffer
	Run(t.Context(), []string{"completion", "bash"}, nil, &out, os.Stderr)
	cmd := exec.Command(bash, "-c", out.String()+"\ncomplete -p cachectl")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "-C 'cachectl' cachectl") {
		t.Fatalf("%v: %s", err, b)
	}
}

// The generated man page renders with man -l, without groff warnings, and
// shows every command.
func TestManPageRenders(t *testing.T) {
	man := registrytest.RequireTool(t, "man")
	var page bytes.Buffer
	if code := Run(t.Context(), []string{"man"}, nil, &page, os.Stderr); code != 0 {
		t.Fatalf("man: exit %d", code)
	}
	f := filepath.Join(t.TempDir(), "cachectl.1")
	if err := os.WriteFile(f, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(man, "--warnings", "-l", f)
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("man -l: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("man -l warnings:\n%s", stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{"CACHECTL(1)", "NAME", "cachectl - keep shared HPC container image caches",
		"cachectl apply [<planfile>] [flags]", "cachectl history [<cache>] [flags]", "cachectl bundle verify <file>",
		"-f, --spec=PATH", "--auto-approve", "EXIT STATUS", "cachectl plan -out cache.plan"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if strings.Contains(text, "cachectl man") {
		t.Error("the hidden man command is in the page")
	}
	// Prose is filled to the page width (MANWIDTH=100): only example
	// lines, kept as written, may be longer; a paragraph wrapped in the
	// help text is reflowed (in list's help, "changed" ends a source line
	// and "since" starts the next).
	for _, l := range strings.Split(text, "\n") {
		if s := strings.TrimSpace(l); len([]rune(l)) > 100 && !strings.HasPrefix(s, "cachectl ") && !strings.HasPrefix(s, "manage-") {
			t.Errorf("a rendered line longer than the page (100): %q", l)
		}
	}
	if !regexp.MustCompile(`(?m)^ +Status is ok, .*the file changed since`).MatchString(text) {
		t.Errorf("list's help paragraph is not filled:\n%s", text[strings.Index(text, "cachectl list ["):][:1500])
	}
}
