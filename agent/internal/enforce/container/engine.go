package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// API versions. The engine is spoken to at min(its newest, newestAPI):
// Docker 29 refuses anything below 1.44, Podman's compatible API answers
// 1.41, and Docker 19.03 (API 1.40) is the oldest with DeviceRequests, the
// field GPUs are passed in. Every field this package sends and reads is
// unchanged from 1.40 to newestAPI.
const (
	oldestAPI = "1.40"
	newestAPI = "1.47"
	// fallbackAPI is used when /_ping names no version (no engine this
	// package knows omits it).
	fallbackAPI = "1.44"
)

// Bounds on one call, so that a hung engine cannot hold the reconciler
// forever. A pull of a CUDA image (several GiB) is given much longer.
const (
	callTimeout = 2 * time.Minute
	pullTimeout = 30 * time.Minute
)

// engine is a client of the Docker Engine API on a unix socket.
type engine struct {
	socket  string
	version string // negotiated, "1.47"
	hc      *http.Client
}

func newEngine(socket string) *engine {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 2,
	}
	return &engine{socket: socket, hc: &http.Client{Transport: tr}}
}

func (g *engine) close() { g.hc.CloseIdleConnections() }

// apiError is an answer of the engine with an error status; Message is the
// engine's own explanation, from its {"message": "..."} body.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// ping checks that the engine answers and settles the API version.
func (g *engine) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// Unversioned: every engine answers /_ping whatever versions it speaks.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_ping answered HTTP %d", resp.StatusCode)
	}
	v := resp.Header.Get("Api-Version")
	if _, ok := parseVersion(v); !ok {
		v = fallbackAPI
	}
	if less(v, oldestAPI) {
		return fmt.Errorf("the engine speaks API %s; GPU device requests need %s (Docker 19.03) or later", v, oldestAPI)
	}
	if less(newestAPI, v) {
		v = newestAPI
	}
	g.version = v
	return nil
}

func parseVersion(v string) ([2]int, bool) {
	maj, min, ok := strings.Cut(v, ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	return [2]int{a, b}, ok && err1 == nil && err2 == nil
}

// less compares API versions as numbers ("1.9" < "1.10").
func less(a, b string) bool {
	x, _ := parseVersion(a)
	y, _ := parseVersion(b)
	return x[0] < y[0] || (x[0] == y[0] && x[1] < y[1])
}

// call sends one request and decodes a 2xx answer's JSON into out (when
// non-nil). An error status becomes an *apiError carrying the engine's
// message.
func (g *engine) call(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := g.send(ctx, method, path, query, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read the engine's answer to %s %s: %w", method, path, err)
	}
	if out != nil && resp.StatusCode/100 == 2 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode the engine's answer to %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// send does the request; on an error status it reads the body into an
// *apiError and closes it.
func (g *engine) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	u := "http://engine/v" + g.version + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(data))
		}
		if m.Message == "" {
			m.Message = http.StatusText(resp.StatusCode)
		}
		return nil, &apiError{Status: resp.StatusCode, Message: m.Message}
	}
	return resp, nil
}

// inspected is the part of GET /containers/{id}/json this package reads.
type inspected struct {
	ID    string `json:"Id"`
	State struct {
		Status   string
		Running  bool
		ExitCode int
		Error    string
	}
	Config struct {
		Labels map[string]string
	}
	HostConfig struct {
		DeviceRequests []deviceRequest
	}
	NetworkSettings struct {
		Ports map[string][]portBinding
	}
}

// inspect returns the container called name, or nil when there is none.
func (g *engine) inspect(ctx context.Context, name string) (*inspected, error) {
	var c inspected
	_, err := g.call(ctx, http.MethodGet, "/containers/"+name+"/json", nil, nil, &c)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func (g *engine) create(ctx context.Context, name string, body *createBody) error {
	_, err := g.call(ctx, http.MethodPost, "/containers/create", url.Values{"name": {name}}, body, nil)
	return err
}

// start starts the container; one already running (304) is no error.
func (g *engine) start(ctx context.Context, name string) error {
	_, err := g.call(ctx, http.MethodPost, "/containers/"+name+"/start", nil, nil, nil)
	return err
}

// remove deletes the container, stopping it first and taking its anonymous
// volumes along; one already gone (404) is no error.
func (g *engine) remove(ctx context.Context, name string) error {
	q := url.Values{"force": {"true"}, "v": {"true"}}
	_, err := g.call(ctx, http.MethodDelete, "/containers/"+name, q, nil, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// listed is one entry of GET /containers/json.
type listed struct {
	ID     string `json:"Id"`
	Labels map[string]string
	State  string
	Ports  []struct {
		IP          string
		PrivatePort int
		PublicPort  int
		Type        string
	}
}

// list returns every container, running or not, carrying label key.
func (g *engine) list(ctx context.Context, key string) ([]listed, error) {
	filters, _ := json.Marshal(map[string][]string{"label": {key}})
	q := url.Values{"all": {"true"}, "filters": {string(filters)}}
	var out []listed
	_, err := g.call(ctx, http.MethodGet, "/containers/json", q, nil, &out)
	return out, err
}

// pull fetches image. The engine answers 200 before the download ends and
// reports a failure later in the stream, as {"error": "..."} (with
// errorDetail), so the whole stream is read.
func (g *engine) pull(ctx context.Context, image string) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	from, tag := splitImage(image)
	q := url.Values{"fromImage": {from}}
	if tag != "" {
		q.Set("tag", tag)
	}
	resp, err := g.send(ctx, http.MethodPost, "/images/create", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the pull's progress: %w", err)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// splitImage splits a reference into fromImage and tag for a pull. A
// reference without a tag gets "latest": an empty tag would make the
// engine pull every tag of the repository. A digest stays in fromImage,
// which the engine then pulls by digest.
func splitImage(ref string) (from, tag string) {
	if strings.Contains(ref, "@") {
		return ref, ""
	}
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, "latest"
}
