package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/term"
)

// fileUID is the owner of a file.
func fileUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// hostKeychain gives fixed credentials for some registry hosts and asks
// the fallback for the others.
type hostKeychain struct {
	auth     map[string]authn.Authenticator
	fallback authn.Keychain
}

func (k hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k.auth[r.RegistryStr()]; ok {
		return a, nil
	}
	return k.fallback.Resolve(r)
}

// enrootCredentialHosts are the netrc machine names Enroot looks up for a
// registry (Docker Hub's token and registry hosts for docker.io).
func enrootCredentialHosts(registry string) []string {
	if registry == name.DefaultRegistry || registry == "docker.io" {
		return []string{"auth.docker.io", "registry-1.docker.io", "index.docker.io", "docker.io"}
	}
	return []string{registry}
}

// useEnrootCredentials sets the run's credentials for user on the
// registries of refs, as manage-enroot-cache --username does with enroot
// import (docker://USER@REGISTRY#IMAGE): the password from Enroot's
// credentials file ($ENROOT_CONFIG_PATH/.credentials, netrc lines "machine
// HOST login USER password PASS"), else asked for on the terminal.
func useEnrootCredentials(g *Globals, iox *IO, user string, refs []string) error {
	cfg := iox.Getenv("ENROOT_CONFIG_PATH")
	if cfg == "" {
		x := iox.Getenv("XDG_CONFIG_HOME")
		if x == "" {
			x = filepath.Join(iox.Getenv("HOME"), ".config")
		}
		cfg = filepath.Join(x, "enroot")
	}
	credFile := filepath.Join(cfg, ".credentials")
	netrc := readNetrc(credFile)
	kc := hostKeychain{auth: map[string]authn.Authenticator{}, fallback: authn.DefaultKeychain}
	for _, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		reg := r.Context().RegistryStr()
		if _, ok := kc.auth[reg]; ok {
			continue
		}
		pass := ""
		for _, h := range enrootCredentialHosts(reg) {
			if e, ok := netrc[h]; ok && e.login == user {
				pass = e.password
				break
			}
		}
		if pass == "" {
			if !stdinTerminal(iox) {
				return fmt.Errorf("%s: no password for %s at %s: add a line \"machine %s login %s password PASSWORD\" to %s (mode 0600), or run on a terminal to be asked", compatEnroot, user, reg, enrootCredentialHosts(reg)[0], user, credFile)
			}
			if pass, err = askSecret(iox, fmt.Sprintf("Password for %s at %s: ", user, reg)); err != nil {
				return err
			}
		}
		kc.auth[reg] = authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
	}
	g.Keychain = kc
	return nil
}

type netrcEntry struct{ login, password string }

// readNetrc reads machine/login/password entries of a netrc file
// (missing or unreadable: none).
func readNetrc(p string) map[string]netrcEntry {
	out := map[string]netrcEntry{}
	f, err := os.Open(p)
	if err != nil {
		return out
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		words = append(words, strings.Fields(line)...)
	}
	var machine string
	var e netrcEntry
	flush := func() {
		if machine != "" {
			out[machine] = e
		}
		machine, e = "", netrcEntry{}
	}
	for i := 0; i < len(words); i++ {
		next := func() string {
			if i+1 < len(words) {
				i++
				return words[i]
			}
			return ""
		}
		switch words[i] {
		case "machine":
			flush()
			machine = next()
		case "login":
			e.login = next()
		case "password":
			e.password = next()
		}
	}
	flush()
	return out
}

func stdinTerminal(iox *IO) bool {
	f, ok := iox.Stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// askSecret asks for a password on the terminal, without echo.
func askSecret(iox *IO, prompt string) (string, error) {
	fmt.Fprint(iox.Stderr, prompt)
	b, err := term.ReadPassword(int(iox.Stdin.(*os.File).Fd()))
	fmt.Fprintln(iox.Stderr)
	return string(b), err
}

// dockerLogin is manage-singularity-cache --docker-login (Apptainer's
// --docker-login): a user name and password for the registries of refs,
// asked on the terminal, or read as two lines from standard input when it
// is not one. They are used for this run only, never written anywhere.
func dockerLogin(g *Globals, iox *IO, refs []string) error {
	var user, pass string
	if stdinTerminal(iox) {
		fmt.Fprint(iox.Stderr, "Enter Docker Username: ")
		line, err := bufio.NewReader(iox.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("%s --docker-login: no user name given", compatSingularity)
		}
		user = strings.TrimSpace(line)
		if pass, err = askSecret(iox, "Enter Docker Password: "); err != nil {
			return err
		}
	} else {
		sc := bufio.NewScanner(iox.Stdin)
		if sc.Scan() {
			user = strings.TrimSpace(sc.Text())
		}
		if sc.Scan() {
			pass = sc.Text()
		}
	}
	if user == "" || pass == "" {
		return fmt.Errorf("%s --docker-login: give a user name and a password (on the terminal, or as two lines on standard input)", compatSingularity)
	}
	kc := hostKeychain{auth: map[string]authn.Authenticator{}, fallback: authn.DefaultKeychain}
	for _, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		kc.auth[r.Context().RegistryStr()] = authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
	}
	g.Keychain = kc
	return nil
}
