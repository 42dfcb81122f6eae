package proxmox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSecret = "5f0c2a1e-7d3b-4c9a-8e6f-1b2d3c4e5f60"

func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "proxmox.json")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigFillsInTheDefaults(t *testing.T) {
	p := writeConfig(t, `{"token_id": "root@pam!gpulab", "secret": "`+testSecret+`",
		"ostemplate": "`+template+`", "tls_fingerprint": "`+strings.Repeat("0a:", 31)+`0a"}`, 0o600)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	if c.URL != DefaultURL || c.Storage != "local-lvm" || c.Bridge != "vmbr0" || c.RootfsGB != 16 || c.Node != short {
		t.Errorf("defaults = url %q storage %q bridge %q rootfs %d node %q", c.URL, c.Storage, c.Bridge, c.RootfsGB, c.Node)
	}
	cl, err := NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(cl)} {
		if strings.Contains(s, testSecret) {
			t.Errorf("printing the Config shows the secret: %s", s)
		}
	}
}

func TestLoadConfigRefusesAFileOthersCanRead(t *testing.T) {
	p := writeConfig(t, `{}`, 0o644)
	_, err := LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadConfig of a 0644 file = %v, want a refusal saying chmod 600", err)
	}
}

func TestLoadConfigRefusesUnknownFields(t *testing.T) {
	p := writeConfig(t, `{"token": "root@pam!gpulab"}`, 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), `unknown field "token"`) {
		t.Errorf("LoadConfig = %v, want the unknown field named", err)
	}
}

func TestValidateNamesEachBadField(t *testing.T) {
	good := func() Config {
		return Config{TokenID: "root@pam!gpulab", Secret: testSecret, Node: "pve1", OSTemplate: template}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"http url", func(c *Config) { c.URL = "http://localhost:8006/api2/json" }, "must be an https URL"},
		{"token without name", func(c *Config) { c.TokenID = "root@pam" }, "token_id \"root@pam\" must be an API token id"},
		{"no secret", func(c *Config) { c.Secret = "" }, "secret is missing"},
		{"secret with spaces", func(c *Config) { c.Secret = "not a secret-value" }, "secret is malformed"},
		{"no template", func(c *Config) { c.OSTemplate = "" }, "ostemplate is missing"},
		{"bad template", func(c *Config) { c.OSTemplate = "debian.tar.zst" }, "must be a volume id"},
		{"bad node", func(c *Config) { c.Node = "pve_1" }, "not a PVE node name"},
		{"bad storage", func(c *Config) { c.Storage = "local lvm" }, "not a PVE storage id"},
		{"negative disk", func(c *Config) { c.RootfsGB = -1 }, "rootfs_gb -1"},
		{"tiny default memory", func(c *Config) { c.DefaultMemoryMB = 8 }, "default_memory_mb 8"},
		{"short fingerprint", func(c *Config) { c.TLSFingerprint = "AB:CD" }, "must be a SHA-256 fingerprint"},
		{"pin and CA", func(c *Config) { c.TLSFingerprint, c.CAFile = strings.Repeat("00", 32), "/x.pem" }, "both set"},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "ca_file: open /nonexistent/ca.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "not a secret-value") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	c := good()
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of a good Config: %v", err)
	}
}
