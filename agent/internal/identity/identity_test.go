package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

const nodeID = "3f1c2a9e-6b4d-4e1f-9a57-0c8d2b7e5f10"

// enrolled writes an identity into a fresh directory through Begin/Commit,
// with a certificate ca issued for notBefore..notAfter, and loads it.
func enrolled(t *testing.T, ca *identitytest.CA, enrollEndpoint string, notBefore, notAfter time.Time) *Identity {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gpulab")
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := Begin(dir, key)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	cert := ca.IssueClient(t, &key.PublicKey, nodeID, notBefore, notAfter)
	if !time.Now().Before(notAfter) {
		// Commit refuses an expired certificate: write what an identity
		// looks like once its certificate has expired.
		pending.Abort()
		keyPEM, _ := KeyPEM(key)
		infoJSON := fmt.Sprintf(`{"node_id":%q,"enroll_endpoint":%q,"heartbeat_endpoint":"localhost:50052"}`,
			nodeID, enrollEndpoint)
		for name, data := range map[string][]byte{
			KeyFile: keyPEM, CertFile: CertificatePEM(cert), CAFile: ca.PEM(), InfoFile: []byte(infoJSON),
		} {
			if err := writeFileAtomic(dir, name, data); err != nil {
				t.Fatal(err)
			}
		}
		id, err := Load(dir)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return id
	}
	id, err := pending.Commit(identitytest.CertPEM(cert), ca.Cert, Info{
		NodeID:            nodeID,
		EnrollEndpoint:    enrollEndpoint,
		HeartbeatEndpoint: "localhost:50052",
	})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return id
}

// inWindow is a validity period whose renewal window is open now.
func inWindow() (time.Time, time.Time) {
	now := time.Now().Truncate(time.Second)
	return now.Add(-6 * 24 * time.Hour), now.Add(24 * time.Hour)
}

// fresh is a validity period that has just begun.
func fresh() (time.Time, time.Time) {
	now := time.Now().Truncate(time.Second)
	return now.Add(-5 * time.Minute), now.Add(7 * 24 * time.Hour)
}

func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
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

func assertModes(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s mode = %04o, want 0700", dir, st.Mode().Perm())
	}
	for _, name := range Files {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %04o, want 0600", name, st.Mode().Perm())
		}
	}
}

func TestRenewalWindowOpensAtTwoThirdsOfTheLifetime(t *testing.T) {
	start := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lifetime time.Duration
		opens    time.Duration
	}{
		{"9 hours", 9 * time.Hour, 6 * time.Hour},
		// pki's default: 7 days from a notBefore backdated by 5 minutes.
		{"7 days and 5 minutes", 7*24*time.Hour + 5*time.Minute, (7*24*time.Hour + 5*time.Minute) * 2 / 3},
		// 2/3 of 10 s is 6.67 s; pki computes it to the microsecond, the
		// agent rounds up to the second so as never to ask too early.
		{"10 seconds", 10 * time.Second, 7 * time.Second},
	}
	ca := identitytest.NewCA(t, "gpulab internal CA")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := NewKey()
			if err != nil {
				t.Fatal(err)
			}
			cert := ca.IssueClient(t, &key.PublicKey, nodeID, start, start.Add(tt.lifetime))
			id := &Identity{cert: tls.Certificate{Leaf: cert}}
			opens := start.Add(tt.opens)
			if got := id.RenewAt(); !got.Equal(opens) {
				t.Errorf("RenewAt = %s, want %s", got, opens)
			}
			if id.NeedsRenewal(opens.Add(-time.Second)) {
				t.Error("NeedsRenewal a second before the window opens")
			}
			if !id.NeedsRenewal(opens) || !id.NeedsRenewal(start.Add(tt.lifetime+time.Hour)) {
				t.Error("NeedsRenewal false in the window or after expiry")
			}
			if id.Expired(start.Add(tt.lifetime-time.Second)) || !id.Expired(start.Add(tt.lifetime)) {
				t.Error("Expired is wrong around notAfter")
			}
		})
	}
}

func TestCommitWritesAPrivateIdentityThatLoads(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	id := enrolled(t, ca, "127.0.0.1:50051", nb, na)
	assertModes(t, id.Dir())
	files := readFiles(t, id.Dir())
	if names := slices.Sorted(maps.Keys(files)); !slices.Equal(names, []string{InfoFile, CAFile, KeyFile, CertFile}) {
		t.Errorf("files = %v, want exactly the identity's", names)
	}
	if !bytes.Equal(files[CAFile], ca.PEM()) {
		t.Error("ca.pem is not the CA certificate")
	}
	loaded, err := Load(id.Dir())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if loaded.NodeID() != nodeID || loaded.Certificate().Subject.CommonName != nodeID {
		t.Errorf("node id = %q, CN = %q", loaded.NodeID(), loaded.Certificate().Subject.CommonName)
	}
	if loaded.Info().HeartbeatEndpoint != "localhost:50052" || loaded.Info().EnrollEndpoint != "127.0.0.1:50051" {
		t.Errorf("info = %+v", loaded.Info())
	}
}

func TestCommitRefusesACertificateForAnotherKeyOrFromAnotherCA(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	other := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	key, _ := NewKey()
	otherKey, _ := NewKey()
	tests := map[string]*x509.Certificate{
		"another key": ca.IssueClient(t, &otherKey.PublicKey, nodeID, nb, na),
		"another CA":  other.IssueClient(t, &key.PublicKey, nodeID, nb, na),
		"another CN":  ca.IssueClient(t, &key.PublicKey, "someone-else", nb, na),
	}
	for name, cert := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pending, err := Begin(dir, key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = pending.Commit(identitytest.CertPEM(cert), ca.Cert, Info{
				NodeID: nodeID, EnrollEndpoint: "h:1", HeartbeatEndpoint: "h:2",
			})
			if err == nil {
				t.Fatal("Commit accepted it")
			}
			if files := readFiles(t, dir); len(files) != 0 {
				t.Errorf("files left behind: %v", files)
			}
		})
	}
}

func TestLoadRefusesAKeyOthersCanRead(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	id := enrolled(t, ca, "127.0.0.1:50051", nb, na)
	if err := os.Chmod(filepath.Join(id.Dir(), KeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(id.Dir()); err == nil {
		t.Fatal("Load accepted a node.key with mode 0640")
	}
}

func TestLoadRefusesAKeyThatIsNotTheCertificates(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	id := enrolled(t, ca, "127.0.0.1:50051", nb, na)
	key, _ := NewKey()
	keyPEM, _ := KeyPEM(key)
	if err := writeFileAtomic(id.Dir(), KeyFile, keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(id.Dir()); err == nil {
		t.Fatal("Load accepted a key that does not match node.pem")
	}
}

// The two states a crash can leave a change in, and one with a write cut short.
func TestLoadFinishesOrUndoesAnInterruptedChange(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	stage := func(t *testing.T, id *Identity) (*change, *x509.Certificate) {
		t.Helper()
		key, _ := NewKey()
		keyPEM, _ := KeyPEM(key)
		c, err := beginChange(id.Dir(), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cert := ca.IssueClient(t, &key.PublicKey, nodeID, nb, na)
		if err := c.stage(CertFile, CertificatePEM(cert)); err != nil {
			t.Fatal(err)
		}
		return c, cert
	}

	t.Run("crash before the key was renamed: the old identity stays", func(t *testing.T) {
		id := enrolled(t, ca, "127.0.0.1:50051", nb, na)
		before := readFiles(t, id.Dir())
		stage(t, id)
		if err := os.WriteFile(filepath.Join(id.Dir(), "."+CertFile+tmpInfix+"123"), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := Load(id.Dir())
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !loaded.Certificate().Equal(id.Certificate()) {
			t.Error("Load did not keep the old certificate")
		}
		if after := readFiles(t, id.Dir()); len(after) != len(before) || !bytes.Equal(after[KeyFile], before[KeyFile]) {
			t.Errorf("files after recovery: %d, key changed: %v", len(after), !bytes.Equal(after[KeyFile], before[KeyFile]))
		}
	})

	t.Run("crash after the key was renamed: the new identity is completed", func(t *testing.T) {
		id := enrolled(t, ca, "127.0.0.1:50051", nb, na)
		_, cert := stage(t, id)
		if err := os.Rename(filepath.Join(id.Dir(), KeyFile+pendingSuffix), filepath.Join(id.Dir(), KeyFile)); err != nil {
			t.Fatal(err)
		}
		loaded, err := Load(id.Dir())
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !loaded.Certificate().Equal(cert) {
			t.Error("Load did not complete the new certificate")
		}
		if n := len(readFiles(t, id.Dir())); n != len(Files) {
			t.Errorf("%d files after recovery, want %d", n, len(Files))
		}
	})
}

func TestRenewReplacesKeyAndCertificateTogether(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	srv := identitytest.NewServer(t, ca, identitytest.Config{})
	nb, na := inWindow()
	id := enrolled(t, ca, srv.Addr, nb, na)
	before := readFiles(t, id.Dir())
	old := id.Certificate()
	if !id.NeedsRenewal(time.Now()) {
		t.Fatal("the test certificate is not in its renewal window")
	}

	if err := id.Renew(context.Background()); err != nil {
		t.Fatalf("Renew: %v", err)
	}

	renewed := srv.LastRenewed()
	if renewed == nil || !id.Certificate().Equal(renewed) {
		t.Fatal("the identity does not hold the renewed certificate")
	}
	if renewed.Subject.CommonName != nodeID {
		t.Errorf("renewed CN = %q", renewed.Subject.CommonName)
	}
	after := readFiles(t, id.Dir())
	if len(after) != len(Files) {
		t.Errorf("files after Renew: %d, want %d (no temporary or staged file left)", len(after), len(Files))
	}
	if bytes.Equal(after[KeyFile], before[KeyFile]) || bytes.Equal(after[CertFile], before[CertFile]) {
		t.Error("node.key or node.pem was not replaced")
	}
	if !bytes.Equal(after[CertFile], CertificatePEM(renewed)) {
		t.Error("node.pem is not the renewed certificate")
	}
	if !bytes.Equal(after[CAFile], before[CAFile]) || !bytes.Equal(after[InfoFile], before[InfoFile]) {
		t.Error("ca.pem or agent.json changed")
	}
	assertModes(t, id.Dir())
	loaded, err := Load(id.Dir())
	if err != nil {
		t.Fatalf("Load after Renew: %v", err)
	}
	if !loaded.Certificate().Equal(renewed) || loaded.Certificate().Equal(old) {
		t.Error("Load does not find the renewed certificate")
	}
	// New handshakes present the new certificate.
	got, err := id.ClientTLSConfig("localhost").GetClientCertificate(nil)
	if err != nil || !got.Leaf.Equal(renewed) {
		t.Error("ClientTLSConfig still presents the old certificate")
	}
	if id.NeedsRenewal(time.Now()) {
		t.Error("a certificate renewed just now needs renewal")
	}
}

func TestRenewErrorsLeaveTheIdentityAsItWas(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	tests := []struct {
		name      string
		validity  func() (time.Time, time.Time)
		prepare   func(*identitytest.Server, *Identity)
		want      error
		wantCalls int
	}{
		{
			name:      "revoked",
			validity:  inWindow,
			prepare:   func(s *identitytest.Server, id *Identity) { s.Revoke(id.Certificate()) },
			want:      ErrReenrollNeeded,
			wantCalls: 1,
		},
		{
			// pki's TLS front would fail the handshake: the agent does not try.
			name: "expired",
			validity: func() (time.Time, time.Time) {
				now := time.Now().Truncate(time.Second)
				return now.Add(-8 * 24 * time.Hour), now.Add(-time.Hour)
			},
			want:      ErrReenrollNeeded,
			wantCalls: 0,
		},
		{name: "too early", validity: fresh, want: ErrRenewalTooEarly, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := identitytest.NewServer(t, ca, identitytest.Config{})
			nb, na := tt.validity()
			id := enrolled(t, ca, srv.Addr, nb, na)
			if tt.prepare != nil {
				tt.prepare(srv, id)
			}
			before := readFiles(t, id.Dir())
			err := id.Renew(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Renew = %v, want %v", err, tt.want)
			}
			if got := srv.RenewCalls(); got != tt.wantCalls {
				t.Errorf("Renew calls at the server = %d, want %d", got, tt.wantCalls)
			}
			if after := readFiles(t, id.Dir()); len(after) != len(before) ||
				!bytes.Equal(after[KeyFile], before[KeyFile]) || !bytes.Equal(after[CertFile], before[CertFile]) {
				t.Error("the identity on disk changed")
			}
		})
	}
}

func TestRenewRefusesAServerTheCADidNotCertify(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	impostor := identitytest.NewCA(t, "gpulab internal CA")
	srv := identitytest.NewServer(t, ca, identitytest.Config{TLSCA: impostor, Chain: []*x509.Certificate{ca.Cert}})
	nb, na := inWindow()
	id := enrolled(t, ca, srv.Addr, nb, na)
	if err := id.Renew(context.Background()); err == nil || errors.Is(err, ErrReenrollNeeded) {
		t.Fatalf("Renew = %v, want a connection error", err)
	}
	if srv.RenewCalls() != 0 {
		t.Error("the impostor received a Renew call")
	}
}

// HeartbeatCredentials do mutual TLS with a server the pinned CA certified,
// and nothing else: no system root is consulted.
func TestHeartbeatCredentialsPresentTheNodeCertificateAndTrustOnlyThePinnedCA(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	other := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	id := enrolled(t, ca, "127.0.0.1:50051", nb, na)

	for name, serverCA := range map[string]*identitytest.CA{"pinned CA": ca, "another CA": other} {
		t.Run(name, func(t *testing.T) {
			key, cert := serverCA.IssueServer(t, []string{"localhost"}, nil)
			clientCAs := x509.NewCertPool()
			clientCAs.AddCert(ca.Cert)
			lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, serverCA.Cert.Raw}, PrivateKey: key}},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    clientCAs,
				NextProtos:   []string{"h2"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			seen := make(chan string, 1)
			go func() {
				conn, err := lis.Accept()
				if err != nil {
					seen <- ""
					return
				}
				defer conn.Close()
				tc := conn.(*tls.Conn)
				if tc.Handshake() != nil || len(tc.ConnectionState().PeerCertificates) == 0 {
					seen <- ""
					return
				}
				seen <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}()

			raw, err := net.Dial("tcp", lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_, port, _ := net.SplitHostPort(lis.Addr().String())
			conn, _, err := id.HeartbeatCredentials().ClientHandshake(context.Background(), "localhost:"+port, raw)
			if serverCA == ca {
				if err != nil {
					t.Fatalf("handshake with the control plane: %v", err)
				}
				conn.Close()
				if cn := <-seen; cn != nodeID {
					t.Errorf("server saw client CN %q, want %q", cn, nodeID)
				}
			} else if err == nil {
				conn.Close()
				t.Fatal("handshake succeeded with a server another CA certified")
			}
		})
	}
}

func TestSplitEndpoint(t *testing.T) {
	tests := []struct {
		in, host, port string
	}{
		{"gpulab.example.org", "gpulab.example.org", "50051"},
		{"gpulab.example.org:6000", "gpulab.example.org", "6000"},
		{"10.0.0.5", "10.0.0.5", "50051"},
		{"[::1]", "::1", "50051"},
		{"::1", "::1", "50051"},
		{"[fd00::5]:6000", "fd00::5", "6000"},
	}
	for _, tt := range tests {
		host, port, err := SplitEndpoint(tt.in, "50051")
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("SplitEndpoint(%q) = %q, %q, %v; want %q, %q", tt.in, host, port, err, tt.host, tt.port)
		}
	}
	for _, bad := range []string{"", "https://gpulab.example.org", "h:0", "h:70000", "h:x", ":50051", "a:b:c", "h/x", "h :1"} {
		if _, _, err := SplitEndpoint(bad, "50051"); err == nil {
			t.Errorf("SplitEndpoint(%q) accepted it", bad)
		}
	}
	if _, _, err := SplitEndpoint("h", ""); err == nil {
		t.Error("SplitEndpoint without a default port accepted a host without one")
	}
}

func TestPrepareDirMakesAnExistingDirectoryPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpulab")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := PrepareDir(dir); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("mode = %04o, want 0700", st.Mode().Perm())
	}
}
