package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

// ErrReenrollNeeded means the control plane no longer accepts this node's
// certificate (expired, revoked, or unknown to the CA): renewing cannot help,
// the node must enroll again with a new token from the admin.
var ErrReenrollNeeded = errors.New("the node's certificate is no longer accepted: enroll again with a new token")

// ErrRenewalTooEarly means pki refused Renew because the certificate is not
// yet in its renewal window (FAILED_PRECONDITION); the message names when it
// opens. Seen only when the node's clock is ahead of the control plane's.
var ErrRenewalTooEarly = errors.New("the certificate is not yet in its renewal window")

// Dial opens a gRPC channel to target ("host:port") with TLS configured by
// cfg. It never goes through a proxy from the environment (HTTPS_PROXY):
// enroll's CA probe connects directly too, and both must reach the same
// server.
func Dial(target string, cfg *tls.Config) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithNoProxy(),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	return conn, nil
}

// Renew asks the Enrollment service the node enrolled with for a certificate
// for a fresh P-384 key, authenticating with the current certificate in the
// TLS handshake, then replaces node.key and node.pem together (see the
// package documentation) and starts presenting the new certificate.
//
// Errors: ErrReenrollNeeded when the current certificate has expired (no call
// is made: pki's TLS front would refuse the handshake) or pki answers
// UNAUTHENTICATED (revoked, unknown); ErrRenewalTooEarly for
// FAILED_PRECONDITION. Any other error leaves the identity as it was and the
// call can be retried.
func (id *Identity) Renew(ctx context.Context) error {
	id.renewMu.Lock()
	defer id.renewMu.Unlock()

	current := id.current()
	if now := time.Now(); !now.Before(current.Leaf.NotAfter) {
		return fmt.Errorf("renew certificate: it expired at %s: %w",
			current.Leaf.NotAfter.UTC().Format(time.RFC3339), ErrReenrollNeeded)
	}
	key, err := NewKey()
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	csr, err := CSRPEM(key)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}

	endpoint := id.info.EnrollEndpoint
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("renew certificate: enroll endpoint %q: %w", endpoint, err)
	}
	conn, err := Dial(endpoint, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      id.pool,
		ServerName:   host,
		Certificates: []tls.Certificate{current},
	})
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	defer conn.Close()

	resp, err := agentv1.NewEnrollmentClient(conn).Renew(ctx, &agentv1.RenewRequest{CsrPem: csr})
	if err != nil {
		switch st, _ := status.FromError(err); st.Code() {
		case codes.Unauthenticated:
			return fmt.Errorf("renew certificate at %s: %s: %w", endpoint, st.Message(), ErrReenrollNeeded)
		case codes.FailedPrecondition:
			return fmt.Errorf("renew certificate at %s: %s: %w", endpoint, st.Message(), ErrRenewalTooEarly)
		default:
			return fmt.Errorf("renew certificate at %s: %w", endpoint, err)
		}
	}

	cert, err := ParseCertificatePEM([]byte(resp.GetCertificatePem()))
	if err != nil {
		return fmt.Errorf("renew certificate: refuse the reply: %w", err)
	}
	// The new certificate must chain to the CA pinned at enrollment; a rotated
	// CA in the reply is not trusted on its word (pki has one root and no
	// rotation yet, ADR 0010).
	if err := checkIssued(cert, key, id.pool); err != nil {
		return fmt.Errorf("renew certificate: refuse the reply: %w", err)
	}
	if cert.Subject.CommonName != current.Leaf.Subject.CommonName {
		return fmt.Errorf("renew certificate: refuse the reply: its CN %q is not this node's %q",
			cert.Subject.CommonName, current.Leaf.Subject.CommonName)
	}

	keyPEM, err := KeyPEM(key)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	c, err := beginChange(id.dir, keyPEM)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	if err := c.stage(CertFile, CertificatePEM(cert)); err != nil {
		c.abort()
		return fmt.Errorf("renew certificate: %w", err)
	}
	if err := c.commit(); err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}

	id.mu.Lock()
	id.cert = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	id.mu.Unlock()
	return nil
}
