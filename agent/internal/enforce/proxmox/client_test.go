package proxmox

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox/pvetest"
)

func newClient(t *testing.T, s *pvetest.Server, edit ...func(*Config)) *Client {
	t.Helper()
	cfg := testConfig(s)
	for _, f := range edit {
		f(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	c.pollMin, c.pollMax = time.Millisecond, 4*time.Millisecond
	return c
}

// startedTask makes a stopped CT and starts it, returning the start task.
func startedTask(t *testing.T, s *pvetest.Server, c *Client) string {
	t.Helper()
	s.AddCT(pvetest.CT{VMID: 100, Config: map[string]string{"hostname": "x"}})
	upid, err := c.StartCT(context.Background(), 100)
	if err != nil {
		t.Fatalf("StartCT: %v", err)
	}
	return upid
}

var upidRE = regexp.MustCompile(`^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzstart:100:root@pam!gpulab:$`)

func TestWaitTaskPollsUntilTheTaskStops(t *testing.T) {
	s := pvetest.New(t)
	s.SetTaskPolls(2)
	c := newClient(t, s)
	upid := startedTask(t, s, c)
	if !upidRE.MatchString(upid) {
		t.Errorf("UPID %q is not in PVE's format", upid)
	}
	s.Requests()
	if err := c.WaitTask(context.Background(), upid); err != nil {
		t.Fatalf("WaitTask: %v", err)
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("WaitTask polled %d times, want 3 (running, running, stopped)", n)
	}
	if ct, _ := s.CT(100); ct.Status != "running" {
		t.Errorf("CT status = %q after its start task, want running", ct.Status)
	}
}

func TestWaitTaskFailsWithTheExitStatus(t *testing.T) {
	s := pvetest.New(t)
	c := newClient(t, s)
	s.FailNextTask("vzstart", "startup for container '100' failed")
	err := c.WaitTask(context.Background(), startedTask(t, s, c))
	var te *TaskError
	if !errors.As(err, &te) || te.ExitStatus != "startup for container '100' failed" {
		t.Fatalf("WaitTask = %v, want a TaskError with the exit status", err)
	}
	if want := "Proxmox task vzstart 100 failed: startup for container '100' failed"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestWaitTaskEndsWithItsContext(t *testing.T) {
	s := pvetest.New(t)
	s.SetTaskPolls(1 << 30)
	c := newClient(t, s)
	upid := startedTask(t, s, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.WaitTask(ctx, upid)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitTask = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WaitTask took %v to notice its context", d)
	}
}

func TestBadTokenIsAClearError(t *testing.T) {
	s := pvetest.New(t)
	cfg := testConfig(s)
	cfg.Secret = "00000000-dead-beef-0000-000000000000"
	e, err := New(testHost(s), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Applied(context.Background())
	want := "Proxmox API at " + s.APIURL() + " refused the token root@pam!gpulab: 401 authentication failure"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("Applied = %v, want it to end in %q", err, want)
	}
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("StatusOf = %d, want 401", StatusOf(err))
	}
	if strings.Contains(err.Error(), "dead-beef") {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestParameterErrorsAreSurfaced(t *testing.T) {
	s := pvetest.New(t)
	c := newClient(t, s)
	err := c.Post(context.Background(), "/nodes/pve1/lxc", url.Values{"vmid": {"99"}, "dev0": {"nvidia0"}, "bogus": {"1"}}, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("Post = %v, want a 400 APIError", err)
	}
	for param, msg := range map[string]string{
		"vmid":       "value must have a minimum value of 100",
		"ostemplate": "property is missing and it is not optional",
		"dev0":       "invalid format - path must be below /dev/",
		"bogus":      "property is not defined in schema and the schema does not allow additional properties",
	} {
		if ae.Params[param] != msg {
			t.Errorf("error for %s = %q, want %q", param, ae.Params[param], msg)
		}
	}
	if !strings.Contains(err.Error(), "400 Parameter verification failed. (bogus: property is not defined") {
		t.Errorf("error text %q lacks the reason and the parameters", err)
	}
}

func TestServerErrorsCarryPVEsReason(t *testing.T) {
	s := pvetest.New(t)
	c := newClient(t, s)
	s.AddCT(pvetest.CT{VMID: 100})
	_, err := c.CreateCT(context.Background(), url.Values{"vmid": {"100"}, "ostemplate": {template}})
	if StatusOf(err) != 500 || !strings.Contains(err.Error(), "CT 100 already exists") {
		t.Errorf("duplicate create = %v, want 500 CT 100 already exists", err)
	}
	// A 401 carries its reason in the status line only.
	_, err = newClient(t, s, func(c *Config) { c.Secret = "x" }).Users(context.Background())
	if !strings.Contains(err.Error(), "401 authentication failure") {
		t.Errorf("401 = %v, want the status line's reason", err)
	}
}

func TestTLSFingerprintIsPinned(t *testing.T) {
	s := pvetest.New(t)
	c := newClient(t, s, func(c *Config) { c.TLSFingerprint = strings.Repeat("AB:", 31) + "AB" })
	_, err := c.Users(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is not the pinned tls_fingerprint AB:AB") {
		t.Fatalf("Users with a wrong pin = %v, want a refusal", err)
	}
	if rs := s.Requests(); len(rs) != 0 {
		t.Errorf("the server got %d requests (and the token) despite the wrong certificate", len(rs))
	}
	// Lower case without colons names the same certificate.
	fp := strings.ToLower(strings.ReplaceAll(s.Fingerprint(), ":", ""))
	if _, err := newClient(t, s, func(c *Config) { c.TLSFingerprint = fp }).Users(context.Background()); err != nil {
		t.Errorf("Users with the right pin: %v", err)
	}
}

func TestCAFileOrSystemRoots(t *testing.T) {
	s := pvetest.New(t)
	ca := filepath.Join(t.TempDir(), "pve-root-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, s, func(c *Config) { c.TLSFingerprint, c.CAFile = "", ca }).Users(context.Background()); err != nil {
		t.Errorf("Users trusting ca_file: %v", err)
	}
	_, err := newClient(t, s, func(c *Config) { c.TLSFingerprint = "" }).Users(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Users with system roots and a self-signed server = %v, want a certificate error", err)
	}
}

func TestUnreachableAPIIsAClearError(t *testing.T) {
	s := pvetest.New(t)
	u := s.APIURL()
	s.Close()
	_, err := newClient(t, s, func(c *Config) { c.URL = u }).Users(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Proxmox API at "+u+" unreachable") {
		t.Errorf("Users = %v, want it to say the API is unreachable", err)
	}
}

func TestUPIDNode(t *testing.T) {
	if n, err := UPIDNode("UPID:pve2:0000A1B2:0003C4D5:65A1B2C3:vzcreate:100:root@pam!gpulab:"); err != nil || n != "pve2" {
		t.Errorf("UPIDNode = %q, %v", n, err)
	}
	if _, err := UPIDNode("UPID:pve2:vzcreate"); err == nil {
		t.Error("UPIDNode accepted a truncated UPID")
	}
}
