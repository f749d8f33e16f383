package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// authFile is a Docker config.json-style credentials file.
type authFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	} `json:"auths"`
}

// loadAuthFile returns the credentials for host in the file at path, or
// (nil, nil) when the file has none for it. Errors never quote the file's
// content.
func loadAuthFile(path, host string) (*authn.AuthConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth_file for %s: %w", host, err)
	}
	var f authFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("auth_file %s for %s: not a Docker config.json-style file (want {\"auths\": {...}})", path, host)
	}
	for key, a := range f.Auths {
		if !sameHost(normalizeAuthKey(key), host) {
			continue
		}
		cfg := &authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("auth_file %s: entry for %s: \"auth\" is not base64", path, key)
			}
			user, pass, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, fmt.Errorf("auth_file %s: entry for %s: \"auth\" is not user:password", path, key)
			}
			cfg.Username, cfg.Password = user, pass
		}
		return cfg, nil
	}
	return nil, nil
}

// normalizeAuthKey strips a scheme and path from a config.json auths key
// ("https://index.docker.io/v1/" → "index.docker.io").
func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	return k
}

// sameHost compares registry hosts, treating Docker Hub's aliases as one.
func sameHost(a, b string) bool {
	return canonicalHost(a) == canonicalHost(b)
}

func canonicalHost(h string) string {
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}

// fileKeychain resolves credentials from per-host auth files.
type fileKeychain struct {
	files map[string]string // canonical host → path
}

func (k *fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	path, ok := k.files[canonicalHost(host)]
	if !ok {
		return authn.Anonymous, nil
	}
	cfg, err := loadAuthFile(path, host)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(*cfg), nil
}
