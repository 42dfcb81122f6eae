// Package identitytest provides a throwaway CA and a fake pki Enrollment
// server, speaking real gRPC over real TLS, for the tests of packages that
// enroll or renew.
//
// Contract: Server behaves as pki's enrollment port does (enrollment.proto,
// ADR 0010): it presents its serverAuth certificate followed by the CA
// certificate (what pki's OpenSSL front sends), asks for but does not require
// a client certificate, and fails the handshake of one it cannot verify.
// Enroll spends a one-time token and names the certificate after the node;
// Renew requires a valid, unrevoked client certificate in its window. It
// records every token and call it sees, so a test can assert that nothing
// secret reached it.
package identitytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA is a self-signed EC P-384 root like pki's (pathlen 0, no intermediates).
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a root named cn. Two CAs made with the same cn have the same
// subject and differ only in key and serial: an impostor's CA.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-5 * time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, Key: key}
}

// PEM is the CA certificate as PEM.
func (ca *CA) PEM() []byte { return CertPEM(ca.Cert) }

// Fingerprint is SHA-256 of the CA certificate's DER, 64 lowercase hex digits.
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// IssueClient signs a clientAuth certificate for pub with CN cn, valid from
// notBefore to notAfter.
func (ca *CA) IssueClient(t testing.TB, pub any, cn string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	return ca.issue(t, pub, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// IssueServer makes a key and a serverAuth certificate for it valid for the
// given DNS names and IP addresses.
func (ca *CA) IssueServer(t testing.TB, dnsNames []string, ips []net.IP) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key := newKey(t)
	cn := "server"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	cert := ca.issue(t, &key.PublicKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-5 * time.Minute),
		NotAfter:    time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	})
	return key, cert
}

func (ca *CA) issue(t testing.TB, pub any, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	cert, err := ca.sign(pub, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (ca *CA) sign(pub any, tmpl *x509.Certificate) (*x509.Certificate, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	tmpl.SerialNumber = n.Add(n, big.NewInt(1))
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return cert, nil
}

// CertPEM encodes cert as PEM, for tests that write identity files by hand.
func CertPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}
