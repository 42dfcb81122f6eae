// Package enroll makes this machine a gpulab node: it pins the control
// plane's CA by the fingerprint from the install command, spends the one-time
// enrollment token on a certificate for a fresh key, and stores the identity
// (package identity).
//
// Contract: nothing secret leaves the node before the server is known to be
// ours. Run first completes a TLS handshake that trusts nothing in advance
// and checks that the server presents a CA certificate whose SHA-256 is the
// pinned fingerprint and a certificate of its own that this CA issued for the
// host name dialled; only then does it open the gRPC channel, whose only
// trust root is that CA, and send the token. An impostor, or a wrong
// fingerprint, ends the enrollment before the token is sent.
package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity"
)

// DefaultPort is the Enrollment service's port (API.md, GPULAB_ENROLL_PORT).
const DefaultPort = "50051"

// ErrIdentityExists means the directory already holds an identity and Force
// was not set.
var ErrIdentityExists = errors.New("this node already has an identity")

// ErrTokenRefused is pki's UNAUTHENTICATED: the token is unknown, already
// used, replaced by a newer one, or expired.
var ErrTokenRefused = errors.New("the enrollment token was refused (UNAUTHENTICATED: unknown, already used or expired); " +
	"ask the admin for a new one")

// ErrCSRRefused is pki's INVALID_ARGUMENT: it would not sign this node's
// certificate request.
var ErrCSRRefused = errors.New("the control plane refused the certificate request (INVALID_ARGUMENT)")

// Config is one enrollment.
type Config struct {
	// Server is the Enrollment endpoint, "host[:port]" (port DefaultPort).
	Server string
	// Fingerprint is the CA certificate's SHA-256 (see ParseFingerprint).
	Fingerprint []byte
	// Token is the one-time enrollment token.
	Token string
	// Dir is the identity directory.
	Dir string
	// Force replaces an identity already in Dir.
	Force bool
}

// Result is what Run stored.
type Result struct {
	NodeID            string
	HeartbeatEndpoint string
	Dir               string
	// CA is the pinned CA certificate.
	CA *x509.Certificate
}

// Run enrolls the node as described in the package documentation. The
// identity in Dir changes only when Run succeeds.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	host, port, err := identity.SplitEndpoint(cfg.Server, DefaultPort)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.Token == "" {
		return nil, errors.New("no enrollment token")
	}
	if len(cfg.Fingerprint) == 0 {
		return nil, errors.New("no CA fingerprint")
	}
	if !cfg.Force {
		found, err := identity.Existing(cfg.Dir)
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			return nil, fmt.Errorf("%w in %s (%s); to replace it, enroll with --force",
				ErrIdentityExists, cfg.Dir, strings.Join(found, ", "))
		}
	}
	endpoint := net.JoinHostPort(host, port)

	ca, err := FetchCA(ctx, host, port, cfg.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("pin the control plane's CA at %s: %w", endpoint, err)
	}

	key, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := identity.CSRPEM(key)
	if err != nil {
		return nil, err
	}
	pending, err := identity.Begin(cfg.Dir, key)
	if err != nil {
		return nil, err
	}
	resp, err := callEnroll(ctx, endpoint, host, ca, cfg.Token, csr)
	if err != nil {
		pending.Abort()
		return nil, err
	}
	if got := []byte(resp.GetCaCertificatePem()); len(got) > 0 {
		replied, err := identity.ParseCertificatePEM(got)
		if err != nil || !replied.Equal(ca) {
			pending.Abort()
			return nil, fmt.Errorf("enroll at %s: the reply names a CA other than the pinned one (%s)",
				endpoint, identity.Fingerprint(ca))
		}
	}
	id, err := pending.Commit([]byte(resp.GetCertificatePem()), ca, identity.Info{
		NodeID:            resp.GetNodeId(),
		EnrollEndpoint:    endpoint,
		HeartbeatEndpoint: resp.GetHeartbeatEndpoint(),
	})
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: store the identity in %s: %w", endpoint, cfg.Dir, err)
	}
	return &Result{NodeID: id.NodeID(), HeartbeatEndpoint: id.Info().HeartbeatEndpoint, Dir: cfg.Dir, CA: ca}, nil
}

// callEnroll spends the token, over a channel that trusts the pinned CA only.
func callEnroll(ctx context.Context, endpoint, host string, ca *x509.Certificate, token, csr string) (*agentv1.EnrollResponse, error) {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	conn, err := identity.Dial(endpoint, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: host})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := agentv1.NewEnrollmentClient(conn).Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrPem: csr})
	if err != nil {
		switch st, _ := status.FromError(err); st.Code() {
		case codes.Unauthenticated:
			return nil, fmt.Errorf("enroll at %s: %w (server said: %s)", endpoint, ErrTokenRefused, st.Message())
		case codes.InvalidArgument:
			return nil, fmt.Errorf("enroll at %s: %w: %s", endpoint, ErrCSRRefused, st.Message())
		default:
			return nil, fmt.Errorf("enroll at %s: %w", endpoint, err)
		}
	}
	return resp, nil
}
