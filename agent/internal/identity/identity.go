package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// Info is agent.json: what the node learnt at enrollment besides its
// certificates.
type Info struct {
	// NodeID is the node's id, the CN of its certificate.
	NodeID string `json:"node_id"`
	// EnrollEndpoint is the Enrollment service ("host:port") the node
	// enrolled with; Renew calls it.
	EnrollEndpoint string `json:"enroll_endpoint"`
	// HeartbeatEndpoint is the Heartbeat service ("host:port") from
	// EnrollResponse.heartbeat_endpoint.
	HeartbeatEndpoint string `json:"heartbeat_endpoint"`
}

func (i Info) validate() error {
	if i.NodeID == "" {
		return errors.New("node_id is empty")
	}
	if _, _, err := SplitEndpoint(i.EnrollEndpoint, ""); err != nil {
		return fmt.Errorf("enroll_endpoint: %w", err)
	}
	if _, _, err := SplitEndpoint(i.HeartbeatEndpoint, ""); err != nil {
		return fmt.Errorf("heartbeat_endpoint: %w", err)
	}
	return nil
}

// renewShare is the share of a certificate's lifetime after which it may be
// renewed: pki refuses Renew before 2/3 (ADR 0010, RENEWAL_SHARE in
// gpulab_pki/ca/issue.py).
const renewNumerator, renewDenominator = 2, 3

// Identity is a loaded identity directory. It is safe for concurrent use:
// Renew swaps key and certificate while connections made with
// ClientTLSConfig keep working, and their next handshakes present the new
// certificate.
type Identity struct {
	dir  string
	info Info
	ca   *x509.Certificate
	pool *x509.CertPool

	renewMu sync.Mutex // one Renew at a time

	mu   sync.RWMutex
	cert tls.Certificate // Leaf is set
}

// Load reads the identity in dir, after finishing or undoing a change that a
// crash interrupted. It checks that key and certificate belong together, that
// the certificate was issued by the CA in ca.pem, and that node.key is not
// readable by group or others.
func Load(dir string) (*Identity, error) {
	if err := recoverPending(dir); err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, KeyFile)
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w (enroll this node first: gpulab-agent enroll)", dir, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load identity: %s is accessible to group or others (mode %04o); it must be 0600",
			keyPath, st.Mode().Perm())
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load identity from %s: %w", dir, err)
		}
		return data, nil
	}
	keyPEM, err := read(KeyFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(CertFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(CAFile)
	if err != nil {
		return nil, err
	}
	infoJSON, err := read(InfoFile)
	if err != nil {
		return nil, err
	}

	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load %s and %s from %s: %w", KeyFile, CertFile, dir, err)
	}
	ca, err := ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(dir, CAFile), err)
	}
	if err := cert.Leaf.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("load identity from %s: %s was not issued by the CA in %s: %w", dir, CertFile, CAFile, err)
	}
	var info Info
	if err := json.Unmarshal(infoJSON, &info); err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(dir, InfoFile), err)
	}
	if err := info.validate(); err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(dir, InfoFile), err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &Identity{dir: dir, info: info, ca: ca, pool: pool, cert: cert}, nil
}

// Dir is the identity's directory.
func (id *Identity) Dir() string { return id.dir }

// Info is what agent.json holds.
func (id *Identity) Info() Info { return id.info }

// NodeID is the node's id (its certificate's CN).
func (id *Identity) NodeID() string { return id.info.NodeID }

// CA is the pinned CA certificate.
func (id *Identity) CA() *x509.Certificate { return id.ca }

// Certificate is the node's current client certificate.
func (id *Identity) Certificate() *x509.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cert.Leaf
}

func (id *Identity) current() tls.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cert
}

// RenewAt is when the current certificate may be renewed: 2/3 of the way
// from its notBefore to its notAfter, rounded up to the second so that the
// agent never asks before pki's own computation allows it.
func (id *Identity) RenewAt() time.Time {
	return renewAt(id.Certificate())
}

func renewAt(cert *x509.Certificate) time.Time {
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	share := lifetime * renewNumerator / renewDenominator
	if rounded := share.Truncate(time.Second); rounded != share {
		share = rounded + time.Second
	}
	return cert.NotBefore.Add(share)
}

// NeedsRenewal reports whether the certificate is in its renewal window at
// now (or past it: an expired certificate also needs a renewal, which Renew
// then refuses with ErrReenrollNeeded).
func (id *Identity) NeedsRenewal(now time.Time) bool {
	return !now.Before(id.RenewAt())
}

// Expired reports whether the current certificate is no longer valid at now.
func (id *Identity) Expired(now time.Time) bool {
	return !now.Before(id.Certificate().NotAfter)
}

// ClientTLSConfig is for mutual TLS with the control plane at serverName: it
// trusts the pinned CA only and presents the node's certificate, the current
// one at each handshake. A reconnect resumes the TLS session of the last
// connection made with the same certificate (the server's session ticket), so
// that every node reconnecting at once after an outage costs the control plane
// a resumed handshake each, not a full one.
func (id *Identity) ClientTLSConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    id.pool,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert := id.current()
			return &cert, nil
		},
		ClientSessionCache: sessionsByCertificate{id, tls.NewLRUClientSessionCache(sessionCacheSize)},
	}
}

// sessionCacheSize: the heartbeat endpoint's sessions, a few in case it
// resolves to several replicas.
const sessionCacheSize = 8

// sessionsByCertificate keeps TLS sessions under the serial of the certificate
// that is current when they are stored and looked up: a session stands for the
// certificate it was made with, so after a renewal the next handshake is a full
// one that presents the new certificate, never a resumption of the old one.
type sessionsByCertificate struct {
	id    *Identity
	cache tls.ClientSessionCache
}

func (c sessionsByCertificate) key(sessionKey string) string {
	return c.id.current().Leaf.SerialNumber.String() + "|" + sessionKey
}

func (c sessionsByCertificate) Get(sessionKey string) (*tls.ClientSessionState, bool) {
	return c.cache.Get(c.key(sessionKey))
}

func (c sessionsByCertificate) Put(sessionKey string, cs *tls.ClientSessionState) {
	c.cache.Put(c.key(sessionKey), cs)
}

// HeartbeatCredentials are the transport credentials for a gRPC channel to
// the Heartbeat endpoint stored at enrollment.
func (id *Identity) HeartbeatCredentials() credentials.TransportCredentials {
	host, _, err := net.SplitHostPort(id.info.HeartbeatEndpoint)
	if err != nil { // validated by Load; keep the whole value rather than guess
		host = id.info.HeartbeatEndpoint
	}
	return credentials.NewTLS(id.ClientTLSConfig(host))
}

// checkIssued checks a certificate the CA returned for key: it is for that
// key and is a client certificate of the pinned CA, valid now.
func checkIssued(cert *x509.Certificate, key *ecdsa.PrivateKey, pool *x509.CertPool) error {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() || !pub.Equal(&key.PublicKey) {
		return errors.New("the certificate is not for the key this node sent")
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("the certificate does not verify against the pinned CA: %w", err)
	}
	return nil
}
