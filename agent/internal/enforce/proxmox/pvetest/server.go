// Package pvetest is a fake Proxmox VE API for tests: an httptest TLS
// server holding users, ACLs, LXC containers and tasks in memory. It
// follows the endpoints, parameters and answers of PVE's API viewer for the
// calls the agent makes: the PVEAPIToken header (401 otherwise), form
// parameters checked against the documented schema (400 with
// {"data":null,"errors":{...}}), errors' text in the HTTP status line as
// pveproxy sends it, and asynchronous work as tasks with real-format UPIDs
// that report "running" for a poll or two before they stop. It records
// every request.
package pvetest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The token the server accepts.
const (
	TokenID = "root@pam!gpulab"
	Secret  = "5f0c2a1e-7d3b-4c9a-8e6f-1b2d3c4e5f60"
	Node    = "pve1"
)

// User is a PVE user.
type User struct {
	UserID, Comment string
}

// ACL is one entry of PVE's access control list.
type ACL struct {
	Path, RoleID, Type, UGID string
}

// CT is an LXC container. Config holds what the CT runs with; Pending what
// PUT .../config changed while it ran and a start will apply (an empty
// value deletes the option).
type CT struct {
	VMID    int
	Status  string // running or stopped
	Config  map[string]string
	Pending map[string]string

	// What pct push and pct exec wrote inside it (CTFile): files by path,
	// and the directories made besides / and /root.
	files map[string]File
	dirs  map[string]bool
}

func (c CT) clone() CT {
	c.Config, c.Pending = maps.Clone(c.Config), maps.Clone(c.Pending)
	c.files, c.dirs = maps.Clone(c.files), maps.Clone(c.dirs)
	return c
}

// Request is one request the server answered.
type Request struct {
	Method string
	Path   string // below /api2/json, decoded
	Form   url.Values
}

// Server is the fake PVE API. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	users    map[string]User
	acls     []ACL
	cts      map[int]*CT
	tasks    map[string]*task
	requests []Request
	pid      int
	// taskPolls is how many status polls a new task answers "running"
	// before it stops (SetTaskPolls).
	taskPolls int
	fail      map[string]string // task type -> exit status of its next task
	devices   []string          // the host's device nodes a CT can be given
	onRequest func(Request)
}

// OnRequest makes f see each request the server answers, before the answer
// leaves (a test cancels a context at a chosen point with it).
func (s *Server) OnRequest(f func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

// New starts a Server on a TLS localhost port; it stops when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		users:     map[string]User{"root@pam": {UserID: "root@pam", Comment: "Built-in Superuser"}},
		cts:       map[int]*CT{},
		tasks:     map[string]*task{},
		taskPolls: 1,
		fail:      map[string]string{},
		devices:   []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"},
		pid:       0x1a2b,
	}
	for i := range 8 {
		s.devices = append(s.devices, fmt.Sprintf("/dev/nvidia%d", i))
	}
	s.Server = httptest.NewTLSServer(s.routes())
	t.Cleanup(s.Close)
	return s
}

// APIURL is the API base URL ("https://127.0.0.1:port/api2/json").
func (s *Server) APIURL() string { return s.URL + "/api2/json" }

// Fingerprint is the SHA-256 fingerprint of the server's certificate, as
// `pvenode cert info` prints it.
func (s *Server) Fingerprint() string {
	sum := sha256.Sum256(s.Certificate().Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// SetTaskPolls sets how many status polls each new task answers "running".
func (s *Server) SetTaskPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taskPolls = n
}

// FailNextTask makes the next task of type typ (vzcreate, vzstart, vzstop,
// vzdestroy) stop with exitStatus instead of "OK".
func (s *Server) FailNextTask(typ, exitStatus string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[typ] = exitStatus
}

// AddUser, AddACL and AddCT put objects on the fake host, as an admin would.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.UserID] = u
}

func (s *Server) AddACL(a ACL) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acls = append(s.acls, a)
}

func (s *Server) AddCT(ct CT) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct = ct.clone()
	if ct.Config == nil {
		ct.Config = map[string]string{}
	}
	ct.files, ct.dirs = map[string]File{}, map[string]bool{}
	if ct.Status == "" {
		ct.Status = "stopped"
	}
	s.cts[ct.VMID] = &ct
}

// SetCTStatus changes a CT's status behind the agent's back (a reboot, an
// admin's pct stop).
func (s *Server) SetCTStatus(vmid int, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ct, ok := s.cts[vmid]; ok {
		ct.Status = status
	}
}

// User returns the user userid.
func (s *Server) User(userid string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userid]
	return u, ok
}

// ACLs returns the ACL entries.
func (s *Server) ACLs() []ACL {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acls)
}

// CT returns the CT vmid.
func (s *Server) CT(vmid int) (CT, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, ok := s.cts[vmid]
	if !ok {
		return CT{}, false
	}
	return ct.clone(), true
}

// CTIDs returns the vmids of the CTs, sorted.
func (s *Server) CTIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.cts))
}

// Requests returns the requests answered so far and forgets them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// Mutations filters the requests that may change something (all but GET).
func Mutations(rs []Request) []Request {
	var out []Request
	for _, r := range rs {
		if r.Method != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

// task is an asynchronous PVE operation. effect runs once when it stops,
// with whether it succeeded.
type task struct {
	upid, typ, id string
	polls         int
	exit          string
	done          bool
	effect        func(ok bool)
}

// startTask registers a task; s.mu is held.
func (s *Server) startTask(typ, id string, effect func(ok bool)) string {
	s.pid++
	now := time.Now().Unix()
	upid := fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", Node, s.pid, 0x3c4d5e+s.pid, now, typ, id, TokenID)
	exit := "OK"
	if e, ok := s.fail[typ]; ok {
		exit = e
		delete(s.fail, typ)
	}
	s.tasks[upid] = &task{upid: upid, typ: typ, id: id, polls: s.taskPolls, exit: exit, effect: effect}
	return upid
}

// writeData answers 200 {"data": v}.
func writeData(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": v})
}

// writeError answers as pveproxy does: the reason in the status line, and
// a body with "data": null plus the per-parameter errors or the message.
// net/http cannot set a status line's reason, so the connection is
// hijacked and the answer written by hand.
func writeError(w http.ResponseWriter, code int, reason string, params map[string]string, withMessage bool) {
	body := map[string]any{"data": nil}
	if len(params) > 0 {
		body["errors"] = params
	} else if withMessage {
		body["message"] = reason + "\n"
	}
	b, _ := json.Marshal(body)
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, reason, code)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, strings.ReplaceAll(reason, "\n", " "), len(b), b)
	_ = buf.Flush()
}

// pveError is a handler's failure.
type pveError struct {
	code   int
	reason string
	params map[string]string
}

func fail(code int, format string, args ...any) *pveError {
	return &pveError{code: code, reason: fmt.Sprintf(format, args...)}
}

func badParams(params map[string]string) *pveError {
	return &pveError{code: http.StatusBadRequest, reason: "Parameter verification failed.", params: params}
}
