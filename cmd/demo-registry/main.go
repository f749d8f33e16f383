// Command demo-registry serves an in-memory OCI registry on loopback and
// pushes small generated images into it, for `make demo` (which must work
// offline). It writes the registry's host:port to -addr-file and serves
// until it is killed.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	addrFile := flag.String("addr-file", "", "write host:port here once the images are pushed")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(nopWriter{}, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	addr := ln.Addr().String()
	base := layer(map[string]string{
		"etc/os-release": "NAME=\"cachectl demo\"\nID=demo\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\n",
		"bin/hello":      "#!/bin/sh\necho \"hello from the cachectl demo image\"\n",
	})
	app := layer(map[string]string{"opt/app/README": "The application layer.\n", "opt/app/run.sh": "#!/bin/sh\nexec /bin/hello \"$@\"\n"})
	for _, im := range []struct {
		ref    string
		layers []v1.Layer
		env    []string
	}{
		{"demo/base:1.0", []v1.Layer{base}, []string{"PATH=/usr/local/bin:/usr/bin:/bin"}},
		{"demo/app:2.1", []v1.Layer{base, app}, []string{"PATH=/usr/local/bin:/usr/bin:/bin", "APP_HOME=/opt/app", "GREETING=hello world"}},
	} {
		img, err := mutate.AppendLayers(empty.Image, im.layers...)
		if err != nil {
			log.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture, cf.OS = "amd64", "linux"
		cf.Config.Env = im.env
		cf.Config.Entrypoint = []string{"/bin/sh"}
		cf.Config.Cmd = []string{"/opt/app/run.sh"}
		cf.Config.WorkingDir = "/opt/app"
		cf.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			log.Fatal(err)
		}
		ref, err := name.ParseReference(addr+"/"+im.ref, name.Insecure)
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			log.Fatalf("push %s: %v", ref, err)
		}
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(addr+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(addr)
	select {}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// layer builds a deterministic gzip layer from a map of path → content.
func layer(files map[string]string) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range sortedKeys(files) {
		for i := range p {
			if p[i] == '/' && !dirs[p[:i]] {
				dirs[p[:i]] = true
				tw.WriteHeader(&tar.Header{Name: p[:i] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
			}
		}
		mode := int64(0o644)
		if bytes.HasPrefix([]byte(files[p]), []byte("#!")) {
			mode = 0o755
		}
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(files[p])), ModTime: mtime})
		tw.Write([]byte(files[p]))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		log.Fatal(err)
	}
	return l
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
