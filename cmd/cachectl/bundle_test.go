package main

import (
	"archive/tar"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// scriptRegistries holds the private registry of each script that started
// one (the shared $REGISTRY of TestE2E must stay up for the other scripts).
var scriptRegistries sync.Map // *testscript.TestScript → *scriptRegistry

type scriptRegistry struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	addr   string
	once   sync.Once
}

// registryCmd is the "registry" script command:
//
//	registry start   start a private real registry (docker-registry) for this
//	                 script and point $REGISTRY and $REGISTRY_PORT at it
//	registry stop    stop it; afterwards its address refuses connections
func registryCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: registry start|stop")
	}
	switch args[0] {
	case "start":
		r, err := startScriptRegistry(ts.MkAbs(".registry"))
		ts.Check(err)
		scriptRegistries.Store(ts, r)
		ts.Defer(func() { r.stop() })
		ts.Setenv("REGISTRY", r.addr)
		ts.Setenv("REGISTRY_PORT", r.addr[strings.LastIndexByte(r.addr, ':')+1:])
	case "stop":
		v, ok := scriptRegistries.LoadAndDelete(ts)
		if !ok {
			ts.Fatalf("registry stop: no registry started by this script")
		}
		r := v.(*scriptRegistry)
		r.stop()
		if c, err := net.DialTimeout("tcp", r.addr, time.Second); err == nil {
			c.Close()
			ts.Fatalf("registry %s still accepts connections after stop", r.addr)
		}
	default:
		ts.Fatalf("usage: registry start|stop")
	}
}

func startScriptRegistry(dir string) (*scriptRegistry, error) {
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().String()
		l.Close()
		conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  secret: cachectl-test-secret\n", storage, addr)
		cp := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cp, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(registrytest.DistributionBinary, "serve", cp)
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting %s: %w", registrytest.DistributionBinary, err)
		}
		r := &scriptRegistry{cmd: cmd, exited: make(chan struct{}), addr: addr}
		go func() { cmd.Wait(); close(r.exited) }()
		if lastErr = r.waitReady(15 * time.Second); lastErr == nil {
			return r, nil
		}
		r.stop()
	}
	return nil, lastErr
}

func (r *scriptRegistry) waitReady(timeout time.Duration) error {
	cl := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-r.exited:
			return fmt.Errorf("registry exited: %v", r.cmd.ProcessState)
		default:
		}
		if resp, err := cl.Get("http://" + r.addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("registry at %s not ready after %s", r.addr, timeout)
}

// stop interrupts the registry and waits for it to exit (kills it after
// 5 s). Calling it again is harmless.
func (r *scriptRegistry) stop() {
	r.once.Do(func() {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
}

// bundleDamageCmd is the "bundledamage" script command:
//
//	bundledamage truncate IN OUT   OUT is the first half of IN
//	bundledamage layer IN OUT      OUT is IN with one byte flipped in the
//	                               middle of its largest layer (gzip blob)
//	bundledamage json IN OUT       ... of its largest manifest or config
func bundleDamageCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: bundledamage truncate|layer|json IN OUT")
	}
	raw, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	switch args[0] {
	case "truncate":
		raw = raw[:len(raw)/2]
	case "layer", "json":
		f, err := os.Open(ts.MkAbs(args[1]))
		ts.Check(err)
		defer f.Close()
		tr := tar.NewReader(f)
		var at, size int64
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			ts.Check(err)
			off, _ := f.Seek(0, io.SeekCurrent)
			gzipped := h.Size > 2 && raw[off] == 0x1f && raw[off+1] == 0x8b
			if strings.HasPrefix(h.Name, "blobs/") && h.Size > size && gzipped == (args[0] == "layer") {
				at, size = off, h.Size
			}
		}
		if size == 0 {
			ts.Fatalf("%s has no %s blob", args[1], args[0])
		}
		raw[at+size/2] ^= 0xff
	default:
		ts.Fatalf("usage: bundledamage truncate|layer|json IN OUT")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), raw, 0o644))
}
