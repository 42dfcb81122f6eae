package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

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

// A reconnect resumes the last TLS session, and a renewal ends that: the
// first handshake after it is a full one that presents the new certificate.
func TestReconnectsResumeTheSessionUntilTheCertificateIsRenewed(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab internal CA")
	nb, na := fresh()
	id := enrolled(t, ca, "127.0.0.1:50051", nb, na)
	key, cert := ca.IssueServer(t, []string{"localhost"}, nil)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, ca.Cert.Raw}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	type seen struct {
		resumed bool
		serial  string
	}
	handshakes := make(chan seen, 8)
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			if tc.Handshake() == nil {
				state := tc.ConnectionState()
				handshakes <- seen{state.DidResume, state.PeerCertificates[0].SerialNumber.String()}
				tc.Write([]byte{1}) // lets the client read the TLS 1.3 ticket that follows the handshake
			}
			tc.Close()
		}
	}()
	cfg := id.ClientTLSConfig("localhost")
	dial := func() seen {
		t.Helper()
		conn, err := tls.Dial("tcp", lis.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn.Read(make([]byte, 1))
		conn.Close()
		return <-handshakes
	}
	first := dial()
	again := dial()
	if first.resumed || !again.resumed || again.serial != first.serial {
		t.Fatalf("first %+v, then %+v: want a full handshake, then a resumed one", first, again)
	}

	// A renewal (as Renew swaps it): a new certificate for the same key.
	id.mu.Lock()
	priv := id.cert.PrivateKey.(*ecdsa.PrivateKey)
	renewed := ca.IssueClient(t, &priv.PublicKey, nodeID, nb, na)
	id.cert = tls.Certificate{Certificate: [][]byte{renewed.Raw}, PrivateKey: priv, Leaf: renewed}
	id.mu.Unlock()
	after := dial()
	if after.resumed || after.serial != renewed.SerialNumber.String() {
		t.Fatalf("after the renewal: %+v, want a full handshake with serial %s", after, renewed.SerialNumber)
	}
	if next := dial(); !next.resumed || next.serial != after.serial {
		t.Fatalf("then %+v: want the new certificate's session resumed", next)
	}
}
