package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrCANotPresented means the server's handshake carried no certificate
// besides its own, so the CA could not be pinned. pki sends its CA
// certificate after its own (OpenSSL completes the chain from the CA it
// trusts for client certificates), so this is not pki, or not pki as built.
var ErrCANotPresented = errors.New("the server did not present a CA certificate in its TLS handshake")

// ErrFingerprintMismatch means no certificate the server presented has the
// pinned SHA-256 fingerprint: a wrong fingerprint, or not our control plane.
var ErrFingerprintMismatch = errors.New("no certificate the server presented matches the CA fingerprint")

// ErrServerNotVerified means the server presented the pinned CA but its own
// certificate does not verify against it for the host name dialled: anyone
// can copy a public CA certificate, only the control plane has a key the CA
// certified.
var ErrServerNotVerified = errors.New("the server's certificate does not verify against the pinned CA")

// ParseFingerprint reads a SHA-256 fingerprint written as 64 hex digits, in
// either case, with or without colons between the bytes ("AB:CD:...", as
// openssl prints it).
func ParseFingerprint(s string) ([]byte, error) {
	clean := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	fp, err := hex.DecodeString(clean)
	if err != nil || len(fp) != sha256.Size {
		return nil, fmt.Errorf("%q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return fp, nil
}

// FetchCA connects to host:port with TLS, trusting nothing in advance, and
// returns the CA certificate the server presents in its handshake once it has
// checked that its SHA-256 equals fingerprint and that the server's own
// certificate verifies against it for host. It sends nothing but the TLS
// handshake and closes the connection; an impostor learns nothing from it.
func FetchCA(ctx context.Context, host, port string, fingerprint []byte) (*x509.Certificate, error) {
	var pinned *x509.Certificate
	dialer := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 15 * time.Second},
		Config: &tls.Config{
			MinVersion: tls.VersionTLS12,
			ServerName: host,
			NextProtos: []string{"h2"}, // pki's front speaks ALPN h2 only, as gRPC does
			// The standard verification needs a root, which is what this
			// connection is for: VerifyConnection, which runs in its place and
			// fails the handshake, does the whole check (pin).
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				ca, err := pin(cs.PeerCertificates, host, fingerprint, time.Now())
				pinned = ca
				return err
			},
		},
	}
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		for _, known := range []error{ErrCANotPresented, ErrFingerprintMismatch, ErrServerNotVerified} {
			if errors.Is(err, known) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", net.JoinHostPort(host, port), err)
	}
	_ = conn.Close()
	return pinned, nil
}

// pin finds the CA among the certificates after the server's own and checks
// the server's certificate against it.
func pin(presented []*x509.Certificate, host string, fingerprint []byte, now time.Time) (*x509.Certificate, error) {
	if len(presented) == 0 {
		return nil, errors.New("the server presented no certificate")
	}
	if len(presented) == 1 {
		return nil, fmt.Errorf("%w (it sent only its own, %q)", ErrCANotPresented, presented[0].Subject.String())
	}
	var ca *x509.Certificate
	seen := make([]string, 0, len(presented)-1)
	for _, c := range presented[1:] {
		sum := sha256.Sum256(c.Raw)
		if subtle.ConstantTimeCompare(sum[:], fingerprint) == 1 {
			ca = c
		}
		seen = append(seen, fmt.Sprintf("%q %s", c.Subject.String(), hex.EncodeToString(sum[:])))
	}
	if ca == nil {
		return nil, fmt.Errorf("%w: want %s, the server presented %s",
			ErrFingerprintMismatch, hex.EncodeToString(fingerprint), strings.Join(seen, ", "))
	}
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return nil, fmt.Errorf("%w: the certificate with that fingerprint is not a CA certificate", ErrFingerprintMismatch)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := presented[0].Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     host,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerNotVerified, err)
	}
	return ca, nil
}
