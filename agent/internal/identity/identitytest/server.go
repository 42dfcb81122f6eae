package identitytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

// Config shapes a Server. The zero value is pki as deployed.
type Config struct {
	// TLSCA signs the server's own TLS certificate; nil means the CA that
	// issues node certificates. An impostor signs with a CA of its own.
	TLSCA *CA
	// Chain is what the server presents after its own certificate; nil means
	// the TLSCA's certificate, as pki does.
	Chain []*x509.Certificate
	// NoChain presents the server's certificate alone.
	NoChain bool
	// DNSNames and IPs are the server certificate's names; both empty means
	// localhost and 127.0.0.1.
	DNSNames []string
	IPs      []net.IP
	// Lifetime of issued node certificates; 0 means 7 days (pki's default).
	Lifetime time.Duration
	// Backdate starts issued certificates this long before now, so that a
	// test can get one that is already in its renewal window.
	Backdate time.Duration
	// HeartbeatEndpoint is returned by Enroll; "" means "localhost:50052".
	HeartbeatEndpoint string
}

// Server is a fake Enrollment service on a loopback port.
type Server struct {
	agentv1.UnimplementedEnrollmentServer

	// Addr is "127.0.0.1:port".
	Addr string
	// CA issues node certificates and verifies client certificates.
	CA  *CA
	cfg Config

	mu          sync.Mutex
	tokens      map[string]string // unused token -> node id
	seenTokens  []string
	renewCalls  int
	revoked     map[string]bool // serial (decimal) -> revoked
	refuseCSR   string          // non-empty: every CSR is refused with this message
	lastRenewed *x509.Certificate
}

// NewServer starts a Server for ca, stopped when the test ends.
func NewServer(t testing.TB, ca *CA, cfg Config) *Server {
	t.Helper()
	if cfg.TLSCA == nil {
		cfg.TLSCA = ca
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 7 * 24 * time.Hour
	}
	if cfg.HeartbeatEndpoint == "" {
		cfg.HeartbeatEndpoint = "localhost:50052"
	}
	if len(cfg.DNSNames) == 0 && len(cfg.IPs) == 0 {
		cfg.DNSNames, cfg.IPs = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	key, leaf := cfg.TLSCA.IssueServer(t, cfg.DNSNames, cfg.IPs)
	chain := [][]byte{leaf.Raw}
	if !cfg.NoChain {
		extra := cfg.Chain
		if extra == nil {
			extra = []*x509.Certificate{cfg.TLSCA.Cert}
		}
		for _, c := range extra {
			chain = append(chain, c.Raw)
		}
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: key, Leaf: leaf}},
		ClientAuth:   tls.VerifyClientCertIfGiven, // pki: CERT_OPTIONAL
		ClientCAs:    clientCAs,
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &Server{
		Addr:    lis.Addr().String(),
		CA:      ca,
		cfg:     cfg,
		tokens:  map[string]string{},
		revoked: map[string]bool{},
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	agentv1.RegisterEnrollmentServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return s
}

// Port is the server's port.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	return port
}

// AddToken makes token valid, once, for nodeID.
func (s *Server) AddToken(token, nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = nodeID
}

// SeenTokens is every token an Enroll call carried, in order.
func (s *Server) SeenTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seenTokens...)
}

// RenewCalls counts the Renew calls that reached the service.
func (s *Server) RenewCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewCalls
}

// LastRenewed is the certificate the last successful Renew issued.
func (s *Server) LastRenewed() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRenewed
}

// Revoke makes Renew refuse cert, as pki does after DELETE /nodes/{id}.
func (s *Server) Revoke(cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[cert.SerialNumber.String()] = true
}

// RefuseCSRs makes every Enroll and Renew answer INVALID_ARGUMENT with msg.
func (s *Server) RefuseCSRs(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseCSR = msg
}

// Enroll implements agentv1.EnrollmentServer as pki does: CSR first (a bad
// one keeps the token), then the token, once.
func (s *Server) Enroll(_ context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seenTokens = append(s.seenTokens, req.GetToken())
	pub, err := s.checkCSR(req.GetCsrPem())
	if err != nil {
		return nil, err
	}
	nodeID, ok := s.tokens[req.GetToken()]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "the enrollment token is unknown, used or expired")
	}
	delete(s.tokens, req.GetToken())
	cert, err := s.issue(pub, nodeID)
	if err != nil {
		return nil, err
	}
	return &agentv1.EnrollResponse{
		NodeId:            nodeID,
		CertificatePem:    string(CertPEM(cert)),
		CaCertificatePem:  string(s.CA.PEM()),
		HeartbeatEndpoint: s.cfg.HeartbeatEndpoint,
	}, nil
}

// Renew implements agentv1.EnrollmentServer as pki does.
func (s *Server) Renew(ctx context.Context, req *agentv1.RenewRequest) (*agentv1.RenewResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renewCalls++
	current := presented(ctx)
	if current == nil {
		return nil, status.Error(codes.Unauthenticated, "no client certificate was presented")
	}
	if s.revoked[current.SerialNumber.String()] {
		return nil, status.Error(codes.Unauthenticated, "the client certificate has been revoked")
	}
	lifetime := current.NotAfter.Sub(current.NotBefore)
	if opens := current.NotBefore.Add(lifetime * 2 / 3); time.Now().Before(opens) {
		return nil, status.Errorf(codes.FailedPrecondition,
			"the certificate can be renewed from %s on (2/3 of its lifetime)", opens.UTC().Format(time.RFC3339))
	}
	pub, err := s.checkCSR(req.GetCsrPem())
	if err != nil {
		return nil, err
	}
	if pub.Equal(current.PublicKey) {
		return nil, status.Error(codes.InvalidArgument, "the CSR must be for a new key")
	}
	cert, err := s.issue(pub, current.Subject.CommonName)
	if err != nil {
		return nil, err
	}
	s.lastRenewed = cert
	return &agentv1.RenewResponse{
		CertificatePem:   string(CertPEM(cert)),
		CaCertificatePem: string(s.CA.PEM()),
		NotAfter:         timestamppb.New(cert.NotAfter),
	}, nil
}

// presented is the client certificate the TLS handshake verified, if any.
func presented(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

func (s *Server) checkCSR(csrPEM string) (*ecdsa.PublicKey, error) {
	if s.refuseCSR != "" {
		return nil, status.Error(codes.InvalidArgument, s.refuseCSR)
	}
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "the CSR is not PEM")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "the CSR cannot be parsed: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Error(codes.InvalidArgument, "the CSR is not signed by its key")
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, status.Error(codes.InvalidArgument, "the CSR's key is not EC P-384")
	}
	return pub, nil
}

func (s *Server) issue(pub *ecdsa.PublicKey, nodeID string) (*x509.Certificate, error) {
	start := time.Now().Add(-s.cfg.Backdate).Truncate(time.Second)
	cert, err := s.CA.sign(pub, &x509.Certificate{
		Subject:     pkix.Name{CommonName: nodeID},
		NotBefore:   start,
		NotAfter:    start.Add(s.cfg.Lifetime),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return cert, nil
}
