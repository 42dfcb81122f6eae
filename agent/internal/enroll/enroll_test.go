package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/identity"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

const (
	caName  = "gpulab internal CA"
	token   = "0123456789abcdefghijKLMNOPQRSTUVWXYZ-_abcde" // the shape of token_urlsafe(32)
	nodeID  = "3f1c2a9e-6b4d-4e1f-9a57-0c8d2b7e5f10"
	nodeID2 = "7d0e4b1a-2c3f-4a5b-8c6d-9e0f1a2b3c4d"
)

func fingerprint(t *testing.T, ca *identitytest.CA) []byte {
	t.Helper()
	fp, err := ParseFingerprint(ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// controlPlane is pki as deployed, with one valid token for nodeID.
func controlPlane(t *testing.T, cfg identitytest.Config) (*identitytest.CA, *identitytest.Server) {
	t.Helper()
	ca := identitytest.NewCA(t, caName)
	srv := identitytest.NewServer(t, ca, cfg)
	srv.AddToken(token, nodeID)
	return ca, srv
}

func identityDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "etc", "gpulab")
}

func dirContents(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]byte{}
	}
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

func TestEnrollStoresAPrivateIdentityForTheNode(t *testing.T) {
	ca, srv := controlPlane(t, identitytest.Config{HeartbeatEndpoint: "gpulab.example.org:50052"})
	dir := identityDir(t)

	res, err := Run(context.Background(), Config{Server: srv.Addr, Fingerprint: fingerprint(t, ca), Token: token, Dir: dir})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.NodeID != nodeID || res.HeartbeatEndpoint != "gpulab.example.org:50052" || !res.CA.Equal(ca.Cert) {
		t.Errorf("result = %+v", res)
	}
	if got := srv.SeenTokens(); !slices.Equal(got, []string{token}) {
		t.Errorf("tokens the server saw = %q, want the one token once", got)
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s mode = %04o, want 0700", dir, st.Mode().Perm())
	}
	files := dirContents(t, dir)
	if names := slices.Sorted(maps.Keys(files)); !slices.Equal(names, []string{"agent.json", "ca.pem", "node.key", "node.pem"}) {
		t.Fatalf("files = %v, want exactly agent.json ca.pem node.key node.pem", names)
	}
	for name := range files {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %04o, want 0600", name, st.Mode().Perm())
		}
	}
	if !bytes.Equal(files["ca.pem"], ca.PEM()) {
		t.Error("ca.pem is not the pinned CA certificate")
	}
	var info map[string]string
	if err := json.Unmarshal(files["agent.json"], &info); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"node_id": nodeID, "enroll_endpoint": srv.Addr, "heartbeat_endpoint": "gpulab.example.org:50052"}
	if !maps.Equal(info, want) {
		t.Errorf("agent.json = %v, want %v", info, want)
	}
	if !strings.Contains(string(files["node.key"]), "PRIVATE KEY") {
		t.Error("node.key holds no private key")
	}

	id, err := identity.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	cert := id.Certificate()
	if cert.Subject.CommonName != nodeID {
		t.Errorf("certificate CN = %q, want the node id", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: pool(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("the certificate is not a client certificate of the CA: %v", err)
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// Every refusal of the server happens in the TLS handshake, before the
// channel that would carry the token exists: the fake records every token an
// Enroll call brings, and must have seen none.
func TestPinningRefusesTheServerBeforeTheTokenIsSent(t *testing.T) {
	ours := identitytest.NewCA(t, caName)
	impostor := identitytest.NewCA(t, caName) // same subject, another key
	tests := []struct {
		name   string
		ca     *identitytest.CA // signs the server's certificate and node certificates
		cfg    identitytest.Config
		server func(addr string) string
		fp     []byte
		want   error
	}{
		{
			name: "wrong fingerprint",
			ca:   ours,
			fp:   fingerprint(t, impostor),
			want: ErrFingerprintMismatch,
		},
		{
			name: "impostor with its own CA of the same subject",
			ca:   impostor,
			fp:   fingerprint(t, ours),
			want: ErrFingerprintMismatch,
		},
		{
			// The CA certificate is public: anyone can present it. Only a
			// server certificate the CA signed proves the server is ours.
			name: "impostor presenting our CA certificate",
			ca:   impostor,
			cfg:  identitytest.Config{Chain: []*x509.Certificate{ours.Cert}},
			fp:   fingerprint(t, ours),
			want: ErrServerNotVerified,
		},
		{
			name: "our CA but a server certificate for another name",
			ca:   ours,
			cfg:  identitytest.Config{DNSNames: []string{"gpulab.example.org"}},
			fp:   fingerprint(t, ours),
			want: ErrServerNotVerified,
		},
		{
			name: "no CA certificate in the handshake",
			ca:   ours,
			cfg:  identitytest.Config{NoChain: true},
			fp:   fingerprint(t, ours),
			want: ErrCANotPresented,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := identitytest.NewServer(t, tt.ca, tt.cfg)
			srv.AddToken(token, nodeID)
			dir := identityDir(t)
			_, err := Run(context.Background(), Config{Server: srv.Addr, Fingerprint: tt.fp, Token: token, Dir: dir})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if seen := srv.SeenTokens(); len(seen) != 0 {
				t.Errorf("the server received tokens %q", seen)
			}
			if files := dirContents(t, dir); len(files) != 0 {
				t.Errorf("files written: %v", slices.Sorted(maps.Keys(files)))
			}
		})
	}
}

func TestFingerprintIsReadInEitherCaseWithOrWithoutColons(t *testing.T) {
	ca, srv := controlPlane(t, identitytest.Config{})
	lower := ca.Fingerprint()
	var pairs []string
	for i := 0; i < len(lower); i += 2 {
		pairs = append(pairs, strings.ToUpper(lower[i:i+2]))
	}
	for _, written := range []string{lower, strings.ToUpper(lower), strings.Join(pairs, ":")} {
		fp, err := ParseFingerprint(written)
		if err != nil || !bytes.Equal(fp, fingerprint(t, ca)) {
			t.Errorf("ParseFingerprint(%q) = %x, %v", written, fp, err)
		}
	}
	for _, bad := range []string{"", lower[:62], lower + "00", "g" + lower[1:], "sha256:" + lower} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted it", bad)
		}
	}
	fp, _ := ParseFingerprint(strings.Join(pairs, ":"))
	if _, err := Run(context.Background(), Config{Server: srv.Addr, Fingerprint: fp, Token: token, Dir: identityDir(t)}); err != nil {
		t.Fatalf("Run with the pasted fingerprint: %v", err)
	}
}

func TestAnExistingIdentityIsReplacedOnlyWithForce(t *testing.T) {
	ca, srv := controlPlane(t, identitytest.Config{})
	dir := identityDir(t)
	cfg := Config{Server: srv.Addr, Fingerprint: fingerprint(t, ca), Token: token, Dir: dir}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	first := dirContents(t, dir)

	srv.AddToken("second-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", nodeID2)
	cfg.Token = "second-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	_, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrIdentityExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second Run = %v, want ErrIdentityExists naming --force", err)
	}
	if len(srv.SeenTokens()) != 1 {
		t.Error("the refused enrollment reached the server")
	}
	if !maps.EqualFunc(dirContents(t, dir), first, bytes.Equal) {
		t.Error("the identity changed")
	}

	// A forced enrollment that fails keeps the identity in place.
	bad := cfg
	bad.Force, bad.Token = true, "unknown-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if _, err := Run(context.Background(), bad); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("forced Run with a bad token = %v, want ErrTokenRefused", err)
	}
	if !maps.EqualFunc(dirContents(t, dir), first, bytes.Equal) {
		t.Error("a failed forced enrollment changed the identity")
	}

	cfg.Force = true
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("forced Run: %v", err)
	}
	if res.NodeID != nodeID2 {
		t.Errorf("node id = %q, want %q", res.NodeID, nodeID2)
	}
	second := dirContents(t, dir)
	if len(second) != len(first) || bytes.Equal(second["node.key"], first["node.key"]) {
		t.Error("the forced enrollment did not replace the identity with a new key")
	}
}

func TestServerRefusalsAreExplainedAndWriteNothing(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		refuse  string
		want    error
		message string
	}{
		{"unknown, used or expired token", "not-a-valid-token-aaaaaaaaaaaaaaaaaaaaaaa", "", ErrTokenRefused, "ask the admin for a new one"},
		{"CSR refused", token, "the CSR's key is not EC P-384", ErrCSRRefused, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, srv := controlPlane(t, identitytest.Config{})
			if tt.refuse != "" {
				srv.RefuseCSRs(tt.refuse)
			}
			dir := identityDir(t)
			_, err := Run(context.Background(), Config{Server: srv.Addr, Fingerprint: fingerprint(t, ca), Token: tt.token, Dir: dir})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("Run = %v, want %v mentioning %q", err, tt.want, tt.message)
			}
			if files := dirContents(t, dir); len(files) != 0 {
				t.Errorf("files left behind: %v", slices.Sorted(maps.Keys(files)))
			}
		})
	}
}

func TestAnUnreachableServerFailsWithoutWritingAnything(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ca := identitytest.NewCA(t, caName)
	dir := identityDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Run(ctx, Config{Server: addr, Fingerprint: fingerprint(t, ca), Token: token, Dir: dir}); err == nil {
		t.Fatal("Run succeeded against a closed port")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the identity directory was created: %v", err)
	}
}

// Enroll, then renew with the stored identity: what the run loop will do.
func TestAnEnrolledNodeRenewsItsCertificate(t *testing.T) {
	// Certificates start 2/3 of their lifetime ago: renewable at once.
	ca, srv := controlPlane(t, identitytest.Config{Lifetime: 9 * time.Hour, Backdate: 6*time.Hour + time.Minute})
	dir := identityDir(t)
	if _, err := Run(context.Background(), Config{Server: srv.Addr, Fingerprint: fingerprint(t, ca), Token: token, Dir: dir}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	id, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !id.NeedsRenewal(time.Now()) {
		t.Fatal("the enrolled certificate is not in its renewal window")
	}
	old := id.Certificate()
	if err := id.Renew(context.Background()); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if id.Certificate().Equal(old) || id.Certificate().Subject.CommonName != nodeID {
		t.Error("Renew did not replace the certificate with one for the same node")
	}
	srv.Revoke(id.Certificate())
	if err := id.Renew(context.Background()); !errors.Is(err, identity.ErrReenrollNeeded) {
		t.Errorf("Renew with a revoked certificate = %v, want ErrReenrollNeeded", err)
	}
}
