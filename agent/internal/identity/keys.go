package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// NewKey makes a node key: EC P-384, the only kind pki signs
// (enrollment.proto, EnrollRequest.csr_pem).
func NewKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-384 key: %w", err)
	}
	return key, nil
}

// KeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CSRPEM makes a PKCS#10 request for key. Its subject is a placeholder: pki
// uses only the public key and names the certificate after the node id.
func CSRPEM(key *ecdsa.PrivateKey) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "gpulab-node"},
	}, key)
	if err != nil {
		return "", fmt.Errorf("create certificate request: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// ParseCertificatePEM parses exactly one PEM "CERTIFICATE" block.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("more than one PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// CertificatePEM encodes cert as a PEM "CERTIFICATE" block.
func CertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Fingerprint is the SHA-256 of a certificate's DER, as 64 lowercase hex
// digits: what REST's ca_fingerprint and `openssl x509 -fingerprint -sha256`
// show (the latter in upper case with colons).
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// SplitEndpoint splits "host:port", "host", "[v6]:port" or "[v6]" into host
// and port, using defaultPort when none is given. It accepts only a port from
// 1 to 65535 and a host without spaces, slashes or a scheme.
func SplitEndpoint(endpoint, defaultPort string) (host, port string, err error) {
	if endpoint == "" {
		return "", "", errors.New("empty endpoint")
	}
	if strings.Contains(endpoint, "://") || strings.ContainsAny(endpoint, "/ \t@?#") {
		return "", "", fmt.Errorf("%q is not HOST[:PORT]", endpoint)
	}
	host, port, err = net.SplitHostPort(endpoint)
	if err != nil {
		// No port, or a bare IPv6 address; anything else is malformed.
		bare := strings.TrimSuffix(strings.TrimPrefix(endpoint, "["), "]")
		if defaultPort == "" || (strings.Count(bare, ":") > 0 && net.ParseIP(bare) == nil) {
			return "", "", fmt.Errorf("%q is not HOST:PORT", endpoint)
		}
		host, port = bare, defaultPort
	}
	if host == "" {
		return "", "", fmt.Errorf("%q has no host", endpoint)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q: the port must be a number from 1 to 65535", endpoint)
	}
	return host, port, nil
}
