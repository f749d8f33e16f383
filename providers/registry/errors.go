package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// AuthError reports that a registry refused access (HTTP 401 or 403). Its
// message names the registry and says how to log in; it never contains
// credentials.
type AuthError struct {
	// Registry is the host that refused ("docker.io", "127.0.0.1:5000").
	Registry string
	// Repository is the repository path asked for.
	Repository string
	// StatusCode is 401 or 403.
	StatusCode int
	// HadCredentials tells whether credentials were sent.
	HadCredentials bool
}

func (e *AuthError) Error() string {
	how := fmt.Sprintf(`log in with "docker login %s" (or podman login --authfile), or set auth_file in the spec's registry %q block`, e.Registry, e.Registry)
	switch {
	case e.StatusCode == http.StatusForbidden:
		return fmt.Sprintf("registry %s denied access to %s (HTTP 403): the credentials used lack pull permission; %s", e.Registry, e.Repository, how)
	case e.HadCredentials:
		return fmt.Sprintf("registry %s rejected the credentials for %s (HTTP 401): %s", e.Registry, e.Repository, how)
	default:
		return fmt.Sprintf("registry %s requires authentication for %s (HTTP 401) and no credentials were found: %s", e.Registry, e.Repository, how)
	}
}

// StatusError is an unexpected HTTP status from a registry.
type StatusError struct {
	Registry   string
	Repository string
	// What names the object asked for ("manifest 3.20", "blob sha256:…").
	What       string
	StatusCode int
	// Detail is the registry's error message, if it sent one.
	Detail string
}

func (e *StatusError) Error() string {
	obj := e.What + " of " + e.Repository
	if kind, ident, ok := strings.Cut(e.What, " "); ok && kind == "manifest" {
		sep := ":"
		if strings.Contains(ident, ":") {
			sep = "@"
		}
		obj = "manifest " + e.Repository + sep + ident
	}
	msg := fmt.Sprintf("registry %s: %s: HTTP %d %s", e.Registry, obj, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.StatusCode == http.StatusNotFound {
		msg += " (check the repository name and the tag or digest)"
	}
	return msg
}

// NotFound reports whether err says a manifest or blob does not exist.
func NotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusNotFound
}

// IsAuth reports whether err is an authentication or authorization failure.
func IsAuth(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae)
}

// statusError builds the error for an unexpected response and closes its
// body. hadCreds tells whether credentials were available.
func statusError(resp *http.Response, registry, repo, what string, hadCreds bool) error {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		return &AuthError{Registry: registry, Repository: repo, StatusCode: resp.StatusCode, HadCredentials: hadCreds}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	return &StatusError{Registry: registry, Repository: repo, What: what, StatusCode: resp.StatusCode, Detail: detail(body)}
}

// detail extracts the distribution API's error messages from a body.
func detail(body []byte) string {
	var er struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &er) == nil && len(er.Errors) > 0 {
		var parts []string
		for _, e := range er.Errors {
			parts = append(parts, strings.TrimSpace(e.Code+" "+e.Message))
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

// pingError explains a failed ping/token exchange of target t that took
// took. When the registry answered with a status, that answer is the
// error: go-containerregistry's probe of HTTPS before HTTP (for insecure
// registries) adds an error of the HTTPS attempt that says nothing about
// the failure, so it is left out.
func pingError(err error, t target, hadCreds bool, took time.Duration) error {
	reg := t.repo.RegistryStr()
	var te *transport.Error
	if !errors.As(err, &te) {
		return fmt.Errorf("registry %s: %w", reg, err)
	}
	// The HTTPS probe's error matters unless the server speaks plain HTTP
	// (net/http's message for that case has no type of its own).
	if !strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") && te.Request != nil && te.Request.URL.Scheme == "http" {
		return translate(fmt.Errorf("registry %s: %w", reg, err), reg, t.repo.RepositoryStr(), hadCreds)
	}
	if err := translate(te, reg, t.repo.RepositoryStr(), hadCreds); err != te {
		return err
	}
	if retryableStatus(te.StatusCode) {
		return fmt.Errorf("registry %s answered HTTP %d to every attempt; gave up after %s (the retry time is %s): %w",
			reg, te.StatusCode, took.Round(100*time.Millisecond), t.host.budget, te)
	}
	return fmt.Errorf("registry %s: %w", reg, te)
}

// translate turns go-containerregistry transport errors (from the ping and
// token exchange) into AuthError where they are 401/403.
func translate(err error, registry, repo string, hadCreds bool) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return &AuthError{Registry: registry, Repository: repo, StatusCode: te.StatusCode, HadCredentials: hadCreds}
	}
	return err
}
