package identity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

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
