// Package dockertest is a fake Docker Engine API on a unix socket, with
// in-memory state, for tests of package container. It implements exactly
// the endpoints that package uses, with the status codes and
// {"message": "..."} error bodies the Engine API documents, and records
// every request so that a test can assert what was (not) sent.
package dockertest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Request is one request the server received.
type Request struct {
	Method string
	// Path is the path without the /v1.xx prefix; Version is that prefix's
	// number ("" for an unversioned request).
	Path, Version string
	Query         url.Values
	Body          []byte
}

// Mutating reports whether the request changes the engine's state.
func (r Request) Mutating() bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }

func (r Request) String() string { return r.Method + " " + r.Path }

// Container is the fake's record of one container.
type Container struct {
	ID, Name string
	Running  bool
	// HostPort is the port the engine chose for 22/tcp on start.
	HostPort int
	// Body is the creation request as received.
	Body []byte
}

// Server is the fake engine. Its exported knobs may be set between calls.
type Server struct {
	// Socket is the unix socket the server listens on.
	Socket string
	// APIVersion is sent in /_ping's Api-Version header.
	APIVersion string
	// PullError fails every pull with this message: as an HTTP 404 answer,
	// or with PullErrorInStream as an error line in a 200 progress stream
	// (how the engine reports a pull that fails once it has begun).
	PullError         string
	PullErrorInStream bool
	// StartError fails every start with this message (HTTP 500), as the
	// engine does when the nvidia device driver is missing.
	StartError string
	// DropDeviceRequests forgets HostConfig.DeviceRequests on create, as
	// an engine that ignores the field does.
	DropDeviceRequests bool

	mu         sync.Mutex
	images     map[string]bool
	containers map[string]*Container // by name
	requests   []Request
	nextID     int
	nextPort   int
}

// New starts a server holding the given images ("repo:tag") and stops it
// when the test ends.
func New(t testing.TB, images ...string) *Server {
	t.Helper()
	// Not t.TempDir(): a unix socket path is limited to 108 bytes, and a
	// test's temporary directory, named after the test, can exceed it.
	dir, err := os.MkdirTemp("", "dockertest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{
		Socket:     filepath.Join(dir, "docker.sock"),
		APIVersion: "1.47",
		images:     make(map[string]bool),
		containers: make(map[string]*Container),
		nextPort:   32768, // Linux's default ip_local_port_range starts here
	}
	for _, im := range images {
		s.images[normalize(im)] = true
	}
	l, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	hs.Listener = l
	hs.Start()
	t.Cleanup(hs.Close)
	return s
}

// Requests returns the requests received so far and forgets them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// Mutating returns the mutating requests among reqs.
func Mutating(reqs []Request) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Mutating() {
			out = append(out, r)
		}
	}
	return out
}

// Container returns a copy of the container called name.
func (s *Server) Container(name string) (Container, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[name]
	if !ok {
		return Container{}, false
	}
	return *c, true
}

// Containers returns the names of all containers, sorted.
func (s *Server) Containers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.containers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Stop stops a container, as `docker stop` or a reboot without the restart
// policy taking effect would.
func (s *Server) Stop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.containers[name]; ok {
		c.Running = false
	}
}

// HasImage reports whether the engine holds image.
func (s *Server) HasImage(image string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.images[normalize(image)]
}

// normalize gives an untagged reference the engine's implied ":latest".
func normalize(ref string) string {
	if strings.Contains(ref, "@") || strings.LastIndex(ref, ":") > strings.LastIndex(ref, "/") {
		return ref
	}
	return ref + ":latest"
}
