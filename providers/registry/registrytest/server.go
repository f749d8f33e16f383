// Package registrytest starts registries for tests: the real distribution
// registry (Debian's /usr/bin/docker-registry) on a free loopback port, an
// in-process go-containerregistry registry for unit tests, and a
// fault-injecting proxy; and it builds and pushes deterministic test images.
//
// Tests that need an external program skip when it is missing, unless the
// environment variable CACHECTL_REQUIRE_TOOLS is set (as in CI), in which
// case they fail.
package registrytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// DistributionBinary is the registry program StartDistribution runs.
var DistributionBinary = "/usr/bin/docker-registry"

// RequireTool returns the path of program (an absolute path or a name
// looked up in PATH), or skips the test when it is missing, failing instead
// when CACHECTL_REQUIRE_TOOLS is set.
func RequireTool(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("CACHECTL_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is required (CACHECTL_REQUIRE_TOOLS is set) but missing: %v; install it (see .ci/deps.sh)", program, err)
	}
	t.Skipf("%s not installed (%v); set CACHECTL_REQUIRE_TOOLS=1 to make this a failure", program, err)
	return ""
}

// Server is a running registry.
type Server struct {
	// Addr is host:port ("127.0.0.1:41234"), the registry part of references.
	Addr string
	// URL is "http://" + Addr.
	URL string
	// Username and Password are the accepted credentials when the server
	// requires basic auth (WithBasicAuth); empty otherwise.
	Username, Password string
	// Dir is the storage directory (real registry only).
	Dir string
	// CAFile is the PEM certificate to trust (WithTLS only).
	CAFile string
}

// Ref returns Addr + "/" + repoAndTag.
func (s *Server) Ref(repoAndTag string) string { return s.Addr + "/" + repoAndTag }

// Option configures StartDistribution.
type Option func(*config)

type config struct {
	user, password string
	tls            bool
	storage        string
}

// WithStorage makes the registry keep its blobs in dir (created if
// missing) instead of a temporary directory, so that images pushed once
// (a benchmark's large image) are still there for the next run.
func WithStorage(dir string) Option {
	return func(c *config) { c.storage = dir }
}

// WithTLS makes the registry serve HTTPS with a fresh self-signed
// certificate for 127.0.0.1; Server.CAFile names the PEM file to trust.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithBasicAuth makes the registry require HTTP basic auth (distribution's
// htpasswd auth, bcrypt hashes made by the htpasswd program) with these
// credentials.
func WithBasicAuth(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// StartDistribution starts the real distribution registry on a free port of
// 127.0.0.1 with temporary storage (deletes enabled), waits until /v2/
// answers, and stops it when the test ends.
func StartDistribution(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := RequireTool(t, DistributionBinary)
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	if cfg.storage != "" {
		storage = cfg.storage
	}
	if err := os.MkdirAll(storage, 0o755); err != nil {
		t.Fatal(err)
	}
	authYAML := ""
	if cfg.user != "" {
		htpasswd := RequireTool(t, "htpasswd")
		out, err := exec.Command(htpasswd, "-Bbn", cfg.user, cfg.password).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		hp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(hp, bytes.TrimSpace(out), 0o600); err != nil {
			t.Fatal(err)
		}
		authYAML = fmt.Sprintf("auth:\n  htpasswd:\n    realm: cachectl-test\n    path: %s\n", hp)
	}
	tlsYAML, caFile, scheme := "", "", "http"
	if cfg.tls {
		var keyFile string
		caFile, keyFile = selfSigned(t, dir)
		tlsYAML = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", caFile, keyFile)
		scheme = "https"
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		addr := freeAddr(t)
		conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: cachectl-test-secret
%s%s`, storage, addr, tlsYAML, authYAML)
		cp := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cp, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		cmd := exec.Command(bin, "serve", cp)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitReady(scheme+"://"+addr, exited, 15*time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("%w; registry output:\n%s", err, logs.String())
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		return &Server{Addr: addr, URL: scheme + "://" + addr, Username: cfg.user, Password: cfg.password, Dir: storage, CAFile: caFile}
	}
	t.Fatalf("docker-registry did not start: %v", lastErr)
	return nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitReady(base string, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("registry exited: %v", err)
		default:
		}
		resp, err := cl.Get(base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("registry at %s not ready after %s", base, timeout)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartInProcess starts go-containerregistry's in-memory registry on a
// loopback httptest server, for unit tests.
func StartInProcess(t testing.TB) *Server {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	return &Server{Addr: addr, URL: srv.URL}
}

// WriteAuthFile writes a Docker config.json-style credentials file for host
// into a temporary directory and returns its path.
func WriteAuthFile(t testing.TB, host, user, password string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Context returns a context cancelled when the test ends.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
