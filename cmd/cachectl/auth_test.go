package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestAuthFileFromSpec: a registry that requires basic auth (the real
// docker-registry with htpasswd): the spec's registry { auth_file } logs in
// and apply works; without it the error names the registry and says how to
// log in; the password never appears in any output, plan or index.
func TestAuthFileFromSpec(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	const user, password = "hpcadmin", "s3cret-Pa55word"
	srv := registrytest.StartDistribution(t, registrytest.WithBasicAuth(user, password))
	registrytest.Push(t, registrytest.Image(t, 1, 4096, 7), srv.Addr+"/private/app:1", srv.BasicAuth())
	dir := t.TempDir()
	authFile := registrytest.WriteAuthFile(t, srv.Addr, user, password)
	write := func(name, registryBlock string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(fmt.Sprintf(`%s
cache "sqsh" {
  runtime = "enroot"
  root    = "%s/sqsh"
  images  = ["%s/private/app:1"]
}
`, registryBlock, dir, srv.Addr)), 0o644)
		return p
	}
	withAuth := write("auth.hcl", fmt.Sprintf("registry %q {\n  auth_file = %q\n}\n", srv.Addr, authFile))
	without := write("noauth.hcl", "")
	run := func(spec string, args ...string) (string, int) {
		var out bytes.Buffer
		t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "no-docker-config"))
		code := Run(context.Background(), append([]string{"-f", spec, "--store", filepath.Join(dir, "store"), "--log-level", "debug"}, args...), strings.NewReader(""), &out, &out)
		return out.String(), code
	}
	out, code := run(without, "plan")
	if code != 1 || !strings.Contains(out, srv.Addr) || !strings.Contains(out, "docker login") {
		t.Fatalf("want an auth error naming the registry and how to log in, got %d:\n%s", code, out)
	}
	t.Logf("without credentials:\n%s", out)
	planFile := filepath.Join(dir, "cache.plan")
	out1, code := run(withAuth, "plan", "--out", planFile)
	if code != 0 {
		t.Fatalf("plan with auth_file failed (%d):\n%s", code, out1)
	}
	out2, code := run(withAuth, "apply", "--auto-approve", "--progress", "json")
	if code != 0 || !strings.Contains(out2, "1 added") {
		t.Fatalf("apply with auth_file failed (%d):\n%s", code, out2)
	}
	plan, _ := os.ReadFile(planFile)
	index, _ := os.ReadFile(filepath.Join(dir, "sqsh", ".cachectl", "index.json"))
	b64 := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	for what, text := range map[string]string{"plan output": out1, "apply output": out2, "error output": out, "plan file": string(plan), "index": string(index)} {
		if strings.Contains(text, password) || strings.Contains(text, b64) {
			t.Errorf("the password leaked into the %s", what)
		}
	}
}
