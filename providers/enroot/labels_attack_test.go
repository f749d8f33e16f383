package enroot

// An image author's label must stay a comment of /etc/rc (the critic's
// review after issue 9). These tests fail on the code they were written
// against, by design: they show the hole.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/buildtest"
)

const peersEnv = "/opt/peers/env.sh"

// TestLabelNewlineIsNotShell: Enroot 4.1.2 writes each label into /etc/rc
// as "# KEY VALUE" with the value's newlines turned into spaces
// (src/docker.sh, docker::configure: jq '"# \(.key) \(.value |
// gsub("\n"; " "))"'). cachectl writes the value as it is, so a label
// value with a newline puts the rest of it on a line of its own: a shell
// command that every "enroot start" of the image (and Pyxis's
// srun --container-image) runs. The image's /etc/rc must hold the label
// on one comment line, and running it must not run the label.
func TestLabelNewlineIsNotShell(t *testing.T) {
	buildtest.RequireTools(t, "bash")
	dir := t.TempDir()
	marker := filepath.Join(dir, "label-ran")
	cfg := v1.Config{
		Labels:     map[string]string{"org.example.note": "harmless\ntouch " + marker},
		Entrypoint: []string{"true"},
		WorkingDir: dir,
	}
	raw := rawConfig(t, cfg)
	f, err := Configure(raw)
	if err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "rc")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(rc, []byte(f.RC), 0o644))
	c := exec.Command("bash", rc)
	c.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("running the rc: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("running the image's /etc/rc ran a command from a label value; the rc begins:\n%s", head(f.RC, 3))
	}
	want := "# org.example.note harmless touch " + marker + "\n"
	if !strings.HasPrefix(f.RC, want) {
		t.Errorf("the label line is not Enroot's: got\n%s\nwant first line %q", head(f.RC, 3), want)
	}

	// The reference: Enroot's own docker::configure on the same config.
	if _, err := os.Stat(peersEnv); err != nil {
		t.Logf("Enroot is not installed (%s missing): not compared with docker::configure", peersEnv)
		return
	}
	buildtest.RequireTools(t, "jq")
	cfgFile := filepath.Join(dir, "config")
	must(os.WriteFile(cfgFile, raw, 0o644))
	rootfs := filepath.Join(dir, "rootfs")
	must(os.Mkdir(rootfs, 0o755))
	script := `set -euo pipefail
shopt -s lastpipe # as bin/enroot
source "$ENROOT_LIBRARY_PATH/docker.sh"
docker::configure "$1" "$2"`
	c = exec.Command("bash", "-c", script, "configure", rootfs, cfgFile)
	c.Env = []string{"PATH=/usr/bin:/bin", "ENROOT_LIBRARY_PATH=/opt/peers/enroot/lib/enroot",
		"ENROOT_CACHE_PATH=" + dir, "ENROOT_CONFIG_PATH=" + dir,
		"ENROOT_TRANSFER_RETRIES=0", "ENROOT_CONNECT_TIMEOUT=1", "ENROOT_TRANSFER_TIMEOUT=1"}
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("enroot's docker::configure: %v\n%s", err, out)
	}
	ref, err := os.ReadFile(filepath.Join(rootfs, "etc", "rc"))
	must(err)
	if string(ref) != f.RC {
		t.Errorf("/etc/rc differs from Enroot 4.1.2's:\n--- enroot\n%s\n--- cachectl\n%s", ref, f.RC)
	}
}

func head(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}
