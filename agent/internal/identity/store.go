package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
)

// Pending is a new identity on its way into a directory: its key is on disk
// (staged, 0600) before anyone is asked to certify it, and the identity in
// place, if any, is untouched until Commit.
type Pending struct {
	dir    string
	key    *ecdsa.PrivateKey
	change *change
}

// Begin prepares dir (see PrepareDir) and stages key there.
func Begin(dir string, key *ecdsa.PrivateKey) (*Pending, error) {
	if err := PrepareDir(dir); err != nil {
		return nil, err
	}
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return nil, err
	}
	c, err := beginChange(dir, keyPEM)
	if err != nil {
		return nil, err
	}
	return &Pending{dir: dir, key: key, change: c}, nil
}

// Commit checks that certPEM is a client certificate for the staged key,
// issued by ca to info.NodeID, then installs key, certificate, CA and
// agent.json together and loads the result. On an error before the commit
// point nothing changes and the staged files are removed.
func (p *Pending) Commit(certPEM []byte, ca *x509.Certificate, info Info) (*Identity, error) {
	if err := p.stageRest(certPEM, ca, info); err != nil {
		p.change.abort()
		return nil, err
	}
	if err := p.change.commit(); err != nil {
		return nil, err
	}
	return Load(p.dir)
}

func (p *Pending) stageRest(certPEM []byte, ca *x509.Certificate, info Info) error {
	if err := info.validate(); err != nil {
		return fmt.Errorf("refuse identity: %w", err)
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return fmt.Errorf("refuse issued certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if err := checkIssued(cert, p.key, pool); err != nil {
		return fmt.Errorf("refuse issued certificate: %w", err)
	}
	if cert.Subject.CommonName != info.NodeID {
		return fmt.Errorf("refuse issued certificate: its CN %q is not the node id %q", cert.Subject.CommonName, info.NodeID)
	}
	infoJSON, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", InfoFile, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{CertFile, CertificatePEM(cert)},
		{CAFile, CertificatePEM(ca)},
		{InfoFile, append(infoJSON, '\n')},
	} {
		if err := p.change.stage(f.name, f.data); err != nil {
			return err
		}
	}
	return nil
}

// Abort removes the staged key; the identity in place is untouched.
func (p *Pending) Abort() { p.change.abort() }
