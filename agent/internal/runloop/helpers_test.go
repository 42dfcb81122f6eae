package runloop

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

const testNodeID = "7d0e4c1a-2b3f-4a5e-8c6d-9e0f1a2b3c4d"

// hbServer is a fake inventory Heartbeat service on a loopback port, over
// mutual TLS as deployed: it requires a client certificate of the CA. It can
// be stopped and started again on the same address, as a control plane
// that goes down and comes back.
type hbServer struct {
	agentv1.UnimplementedHeartbeatServer

	Addr   string
	t      testing.TB
	tlsCfg *tls.Config

	mu      sync.Mutex
	gs      *grpc.Server
	done    chan struct{}
	reqs    []*agentv1.HeartbeatRequest
	serials []string // serial of the client certificate, per request
	// reply answers the n-th request (1-based); nil: interval 1 s, nothing assigned.
	reply func(n int, req *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error)
	// entered, when set, gets a value when a call arrives; the call then
	// waits for release.
	entered chan struct{}
	release chan struct{}
}

func newHBServer(t testing.TB, ca *identitytest.CA) *hbServer {
	t.Helper()
	key, leaf := ca.IssueServer(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	s := &hbServer{t: t, tlsCfg: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}}
	s.Addr = "127.0.0.1:0"
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start serves on Addr (a free port the first time).
func (s *hbServer) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gs != nil {
		return
	}
	lis, err := net.Listen("tcp", s.Addr)
	if err != nil {
		s.t.Fatalf("listen on %s: %v", s.Addr, err)
	}
	s.Addr = lis.Addr().String()
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(s.tlsCfg)))
	agentv1.RegisterHeartbeatServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	s.gs, s.done = gs, done
}

// stop closes the listener and every connection: the port refuses.
func (s *hbServer) stop() {
	s.mu.Lock()
	gs, done := s.gs, s.done
	s.gs = nil
	s.mu.Unlock()
	if gs != nil {
		gs.Stop()
		<-done
	}
}

func (s *hbServer) Heartbeat(ctx context.Context, req *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
	serial := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
			serial = info.State.VerifiedChains[0][0].SerialNumber.String()
		}
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, proto.Clone(req).(*agentv1.HeartbeatRequest))
	s.serials = append(s.serials, serial)
	n, reply, entered, release := len(s.reqs), s.reply, s.entered, s.release
	s.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
		<-release
	}
	if reply == nil {
		return &agentv1.HeartbeatResponse{HeartbeatIntervalS: 1}, nil
	}
	return reply(n, req)
}

func (s *hbServer) setReply(f func(n int, req *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = f
}

func (s *hbServer) requests() ([]*agentv1.HeartbeatRequest, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*agentv1.HeartbeatRequest(nil), s.reqs...), append([]string(nil), s.serials...)
}

func (s *hbServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// newIdentity stores an identity for testNodeID in a fresh directory, with a
// certificate from ca valid notBefore..notAfter, and loads it.
func newIdentity(t testing.TB, ca *identitytest.CA, heartbeat, enroll string, notBefore, notAfter time.Time) *identity.Identity {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gpulab")
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := identity.Begin(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.IssueClient(t, &key.PublicKey, testNodeID, notBefore, notAfter)
	id, err := pending.Commit(identitytest.CertPEM(cert), ca.Cert, identity.Info{
		NodeID:            testNodeID,
		EnrollEndpoint:    enroll,
		HeartbeatEndpoint: heartbeat,
	})
	if err != nil {
		t.Fatalf("store identity: %v", err)
	}
	return id
}

// freshValidity is a certificate period that has just begun (pki's 7 days).
func freshValidity() (time.Time, time.Time) {
	now := time.Now().Truncate(time.Second)
	return now.Add(-5 * time.Minute), now.Add(7 * 24 * time.Hour)
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// fakeClock passes time only when the loop sleeps, at once, and records
// each sleep. onSleep, if set, runs after a sleep is recorded (n is 1-based).
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	sleeps  []time.Duration
	onSleep func(n int, d time.Duration)
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	n, hook := len(c.sleeps), c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(n, d)
	}
	// A moment of real time, so that a loop that keeps failing does not
	// starve the test's goroutines.
	select {
	case <-ctx.Done():
	case <-time.After(time.Millisecond):
	}
	return ctx.Err()
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// recReconciler records what it is asked to apply, and when, and reports
// every assignment applied.
type recReconciler struct {
	clock Clock
	mu    sync.Mutex
	calls [][]string
	at    []time.Time
}

func (r *recReconciler) Apply(_ context.Context, desired []*agentv1.Assignment) *agentv1.AppliedState {
	state := &agentv1.AppliedState{}
	ids := []string{}
	for _, a := range desired {
		ids = append(ids, a.GetAssignmentId())
		state.Assignments = append(state.Assignments, &agentv1.AppliedAssignment{
			AssignmentId: a.GetAssignmentId(), State: agentv1.ApplyState_APPLY_STATE_APPLIED,
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, ids)
	if r.clock != nil {
		r.at = append(r.at, r.clock.Now())
	}
	return state
}

func (r *recReconciler) applied() ([][]string, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.calls...), append([]time.Time(nil), r.at...)
}

// fakeHardware is a fixed inventory with fixed problems.
type fakeHardware struct{ problems []string }

var testHardware = &agentv1.Hardware{CpuModel: "Test CPU", CpuCores: 8, RamMb: 64 * 1024,
	Gpus: []*agentv1.Gpu{{Index: 0, Uuid: "GPU-0", Name: "NVIDIA H200", MemoryMb: 143771}}}

func (h fakeHardware) Collect(context.Context) (*agentv1.Hardware, []string) {
	return proto.Clone(testHardware).(*agentv1.Hardware), append([]string(nil), h.problems...)
}

// logBuffer is a log safe for the loop's goroutine and the test's.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines counts the log lines that contain s.
func (b *logBuffer) lines(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (b *logBuffer) logger() *slog.Logger { return NewLogger(b) }

// startLoop runs Run in the background; wait returns its result.
func startLoop(t *testing.T, ctx context.Context, cfg Config) (wait func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	return func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("the loop did not stop within 30 s")
			return nil
		}
	}
}

func assignment(id string, expires time.Time) *agentv1.Assignment {
	a := &agentv1.Assignment{
		AssignmentId:    id,
		LinuxUsername:   "u_" + id,
		SshPublicKeys:   []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl " + id},
		EnforcementMode: agentv1.EnforcementMode_ENFORCEMENT_MODE_SOFT,
	}
	if !expires.IsZero() {
		a.ExpiresAt = timestamppb.New(expires)
	}
	return a
}

// within fails unless d is in [lo, hi].
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %v, want between %v and %v", what, d, lo, hi)
	}
}

// saveState writes resp as id's saved desired state, as an earlier run of
// the agent left it.
func saveState(t *testing.T, id *identity.Identity, resp *agentv1.HeartbeatResponse) {
	t.Helper()
	data, err := encodeState(id.NodeID(), resp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeState(id.Dir(), data); err != nil {
		t.Fatal(err)
	}
}
