package identity

import (
	"fmt"
	"os"
	"path/filepath"
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
