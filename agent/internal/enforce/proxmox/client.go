package proxmox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// requestTimeout bounds one API call. PVE answers synchronously only for
// quick work (long work becomes a task, polled by WaitTask), so a call that
// takes longer than this is a hung pveproxy.
const requestTimeout = 30 * time.Second

// Client talks to the PVE REST API with an API token. It is safe for
// concurrent use.
type Client struct {
	base    string // the API base URL, no trailing slash
	tokenID string
	auth    string // the Authorization header value; holds the secret
	node    string
	hc      *http.Client

	// pollMin and pollMax bound WaitTask's backoff; tests shorten them.
	pollMin, pollMax time.Duration
}

// NewClient returns a Client for cfg, which must have passed Validate.
func NewClient(cfg Config) (*Client, error) {
	if !cfg.validated() {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.roots}
	if pin := cfg.fingerprint; pin != nil {
		// Pinning replaces chain and name checks, as PVE's own clients do
		// for a node's self-signed certificate: only a server holding that
		// exact certificate's key gets the token.
		tlsCfg.InsecureSkipVerify = true
		tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], pin) {
				return fmt.Errorf("certificate fingerprint %s is not the pinned tls_fingerprint %s",
					formatFingerprint(got[:]), formatFingerprint(pin))
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = nil // the API is local; a proxy from the environment would see the token
	return &Client{
		base:    cfg.URL,
		tokenID: cfg.TokenID,
		auth:    "PVEAPIToken=" + cfg.TokenID + "=" + cfg.Secret,
		node:    cfg.Node,
		hc:      &http.Client{Transport: tr, Timeout: requestTimeout},
		pollMin: 200 * time.Millisecond,
		pollMax: 2 * time.Second,
	}, nil
}

// String keeps printing a Client from printing its secret.
func (c *Client) String() string { return "proxmox.Client{" + c.base + " " + c.tokenID + "}" }

// Node is the PVE node this client manages.
func (c *Client) Node() string { return c.node }

// APIError is an HTTP error answer of the API. PVE puts the reason in the
// status line ("500 CT 100 already exists") and sometimes in the body's
// "message"; a parameter check failure (400) names each bad parameter in the
// body's "errors".
type APIError struct {
	URL     string // the API base URL
	TokenID string
	Method  string
	Path    string // relative to URL
	Status  int
	Message string
	Params  map[string]string // parameter -> what is wrong with it
}

func (e *APIError) Error() string {
	msg := strings.TrimSpace(e.Message)
	if len(e.Params) > 0 {
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(e.Params)) {
			ps = append(ps, k+": "+strings.TrimSpace(e.Params[k]))
		}
		msg += " (" + strings.Join(ps, "; ") + ")"
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("Proxmox API at %s refused the token %s: %d %s", e.URL, e.TokenID, e.Status, msg)
	case http.StatusForbidden:
		return fmt.Sprintf("Proxmox API at %s: the token %s lacks a privilege for %s %s: %d %s", e.URL, e.TokenID, e.Method, e.Path, e.Status, msg)
	}
	return fmt.Sprintf("Proxmox API %s %s: %d %s", e.Method, e.Path, e.Status, msg)
}

// StatusOf returns the HTTP status of an APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Get, Post, Put and Delete call the API at path (relative to the base URL,
// its segments already escaped) and decode the answer's "data" into out
// (unless out is nil). GET and DELETE send params in the query, POST and PUT
// form-encoded in the body, as PVE expects.
func (c *Client) Get(ctx context.Context, path string, params url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, params, out)
}

func (c *Client) Post(ctx context.Context, path string, params url.Values, out any) error {
	return c.do(ctx, http.MethodPost, path, params, out)
}

func (c *Client) Put(ctx context.Context, path string, params url.Values, out any) error {
	return c.do(ctx, http.MethodPut, path, params, out)
}

func (c *Client) Delete(ctx context.Context, path string, params url.Values, out any) error {
	return c.do(ctx, http.MethodDelete, path, params, out)
}

func (c *Client) do(ctx context.Context, method, path string, params url.Values, out any) error {
	u := c.base + path
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("Proxmox API %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("Proxmox API %s %s: %w", method, path, ctx.Err())
		}
		// *url.Error prints the URL (no secret: it is in a header only).
		return fmt.Errorf("Proxmox API at %s unreachable: %w", c.base, err)
	}
	defer resp.Body.Close()
	// PVE's answers are small; 16 MiB bounds a confused server.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("Proxmox API %s %s: read answer: %w", method, path, err)
	}
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	jsonErr := json.Unmarshal(raw, &env)
	if resp.StatusCode >= 300 {
		msg := env.Message
		if msg == "" {
			// The status line's reason, which PVE sets to the error text.
			msg = strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
		}
		return &APIError{URL: c.base, TokenID: c.tokenID, Method: method, Path: path,
			Status: resp.StatusCode, Message: msg, Params: env.Errors}
	}
	if jsonErr != nil {
		return fmt.Errorf("Proxmox API %s %s: answer is not PVE's JSON: %w", method, path, jsonErr)
	}
	if out == nil || len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("Proxmox API %s %s: decode data: %w", method, path, err)
	}
	return nil
}

// pathf builds an API path, escaping each argument as one path segment.
func pathf(format string, args ...any) string {
	esc := make([]any, len(args))
	for i, a := range args {
		esc[i] = url.PathEscape(fmt.Sprint(a))
	}
	return fmt.Sprintf(format, esc...)
}

// flexInt decodes a number PVE sends as a JSON number or a string: the
// type depends on how the value was last touched in PVE's Perl, so vmids,
// /cluster/nextid and config values come either way.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = flexInt(n)
	return nil
}
