package pvetest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

func call(t *testing.T, s *Server, method, path, auth string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.APIURL()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

const token = "PVEAPIToken=" + TokenID + "=" + Secret

func TestTheTokenIsChecked(t *testing.T) {
	s := New(t)
	for auth, status := range map[string]string{"": "401 No ticket", "PVEAPIToken=" + TokenID + "=wrong": "401 authentication failure", token: "200 OK"} {
		if resp, _ := call(t, s, "GET", "/access/users", auth, nil); resp.Status != status {
			t.Errorf("auth %q: status %q, want %q", auth, resp.Status, status)
		}
	}
}

func TestPendingDevicesOfARunningCTApplyAtStart(t *testing.T) {
	s := New(t)
	s.AddCT(CT{VMID: 100, Status: "running", Config: map[string]string{"dev0": "/dev/nvidia0", "cores": "2"}})
	if resp, _ := call(t, s, "PUT", "/nodes/pve1/lxc/100/config", token, url.Values{"dev0": {"/dev/nvidia1"}}); resp.Status != "403 Permission check failed (configuring device passthrough is only allowed for root@pam)" {
		t.Errorf("PUT dev0 with a token: %s, want 403", resp.Status)
	}
	if resp, _ := call(t, s, "PUT", "/nodes/pve1/lxc/100/config", token, url.Values{"cores": {"4"}}); resp.StatusCode != 200 {
		t.Fatalf("PUT config: %s", resp.Status)
	}
	if _, stderr, err := s.Pct().Run(context.Background(), "pct", "set", "100", "--dev0", "/dev/nvidia1"); err != nil {
		t.Fatalf("pct set: %v: %s", err, stderr)
	}
	if _, stderr, err := s.Pct().Run(context.Background(), "pct", "set", "100", "--dev1", "nvidia1"); err == nil || !strings.Contains(string(stderr), "dev1: invalid format") {
		t.Errorf("pct set with a bad device = %v, %q; want pct's parameter error", err, stderr)
	}
	_, pending := call(t, s, "GET", "/nodes/pve1/lxc/100/config", token, nil)
	_, current := call(t, s, "GET", "/nodes/pve1/lxc/100/config?current=1", token, nil)
	pd, cd := pending["data"].(map[string]any), current["data"].(map[string]any)
	if pd["dev0"] != "/dev/nvidia1" || cd["dev0"] != "/dev/nvidia0" || cd["cores"] != float64(4) {
		t.Errorf("config shows dev0 %v (pending) %v (current), cores %v; want the device pending and the cores at once", pd["dev0"], cd["dev0"], cd["cores"])
	}
}

func TestDuplicateVMIDIsA500WithPVEsReason(t *testing.T) {
	s := New(t)
	s.AddCT(CT{VMID: 100})
	resp, body := call(t, s, "POST", "/nodes/pve1/lxc", token, url.Values{"vmid": {"100"}, "ostemplate": {"local:vztmpl/x.tar.zst"}})
	if resp.Status != "500 CT 100 already exists on node 'pve1'" || body["data"] != nil {
		t.Errorf("duplicate create: %q %v", resp.Status, body)
	}
}

func TestPctPushNeedsARunningCTAndAnExistingDirectory(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	s.AddCT(CT{VMID: 104, Config: map[string]string{"memory": "512"}})
	local := t.TempDir() + "/keys"
	if err := os.WriteFile(local, []byte("ssh-ed25519 AAAA x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	push := []string{"push", "104", local, "/root/.ssh/authorized_keys", "--perms", "0600", "--user", "0", "--group", "0"}
	mkdir := []string{"exec", "104", "--", "mkdir", "-p", "-m", "0700", "/root/.ssh"}
	for _, args := range [][]string{push, mkdir} {
		if _, stderr, err := s.Pct().Run(ctx, "pct", args...); err == nil || string(stderr) != "CT 104 not running\n" || err.Error() != "exit status 255" {
			t.Errorf("pct %s on a stopped CT = %v, %q; want pct's refusal", args[0], err, stderr)
		}
	}
	s.SetCTStatus(104, "running")
	if _, stderr, err := s.Pct().Run(ctx, "pct", push...); err == nil || !strings.Contains(string(stderr), "No such file or directory") {
		t.Errorf("pct push into a missing /root/.ssh = %v, %q; want a failure", err, stderr)
	}
	if _, ok := s.CTFile(104, "/root/.ssh/authorized_keys"); ok {
		t.Error("a failed push left a file")
	}
	for _, args := range [][]string{mkdir, mkdir, push} { // mkdir -p twice is fine
		if _, stderr, err := s.Pct().Run(ctx, "pct", args...); err != nil {
			t.Fatalf("pct %q: %v: %s", args, err, stderr)
		}
	}
	if f, ok := s.CTFile(104, "/root/.ssh/authorized_keys"); !ok || f != (File{Content: "ssh-ed25519 AAAA x\n", Mode: 0o600, User: "0", Group: "0"}) {
		t.Errorf("CTFile = %+v, %v; want the pushed content, mode 0600, root's", f, ok)
	}
	var got []string
	for _, r := range s.Requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	if want := []string{"CLI pct push 104", "CLI pct exec 104", "CLI pct push 104", "CLI pct exec 104", "CLI pct exec 104", "CLI pct push 104"}; !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestCreateWritesTheSSHKeys(t *testing.T) {
	s := New(t)
	keys := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc8yQ2Z a@b\n"
	if resp, _ := call(t, s, "POST", "/nodes/pve1/lxc", token, url.Values{"vmid": {"100"}, "ostemplate": {"local:vztmpl/x.tar.zst"}, "ssh-public-keys": {keys}}); resp.StatusCode != 200 {
		t.Fatalf("create: %s", resp.Status)
	}
	if f, ok := s.CTFile(100, "/root/.ssh/authorized_keys"); !ok || f.Content != keys || f.Mode != 0o600 {
		t.Errorf("CTFile = %+v, %v; want the create's keys", f, ok)
	}
}
