package pvetest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
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
