package proxmox

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

// DefaultConfigPath is where the agent reads the Proxmox settings.
const DefaultConfigPath = "/etc/gpulab/proxmox.json"

// Defaults filled in by Validate. DefaultURL is the node's own pveproxy; the
// storage, bridge and disk size are what a fresh PVE install offers.
const (
	DefaultURL      = "https://localhost:8006/api2/json"
	DefaultStorage  = "local-lvm"
	DefaultBridge   = "vmbr0"
	DefaultRootfsGB = 16
)

// Config is /etc/gpulab/proxmox.json. Validate fills in the defaults.
type Config struct {
	// URL is the API base, DefaultURL when empty.
	URL string `json:"url"`
	// TokenID is the API token, "USER@REALM!TOKENID" (root@pam!gpulab).
	TokenID string `json:"token_id"`
	// Secret is the token's secret (a UUID). It never appears in errors or
	// in what String prints.
	Secret string `json:"secret"`
	// Node is the PVE node name of this host, its short hostname when empty.
	Node string `json:"node"`
	// OSTemplate is the CT template volume
	// ("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst").
	OSTemplate string `json:"ostemplate"`
	// Storage holds the CTs' root disks, DefaultStorage when empty.
	Storage string `json:"storage"`
	// RootfsGB is the root disk size in GiB, DefaultRootfsGB when 0.
	RootfsGB int `json:"rootfs_gb"`
	// Bridge is the bridge of the CTs' eth0 (DHCP), DefaultBridge when empty.
	Bridge string `json:"bridge"`
	// DefaultMemoryMB is the CT memory for an assignment without a RAM
	// grant; 0 means the node's total memory, the closest PVE comes to "no
	// limit" (an LXC always has a memory limit, 512 MiB unless given).
	DefaultMemoryMB int64 `json:"default_memory_mb"`
	// TLSFingerprint pins pveproxy's certificate by its SHA-256 fingerprint
	// (hex, colons optional, as `pvenode cert info` prints it), the way PVE's
	// own clients trust a self-signed node. CAFile instead trusts a CA
	// (/etc/pve/pve-root-ca.pem). With neither, the system roots apply.
	TLSFingerprint string `json:"tls_fingerprint"`
	CAFile         string `json:"ca_file"`

	// DeviceFor maps an assigned GPU to the host device node passed into its
	// CT; nil means /dev/nvidia<Index>. DeviceFromProc maps by UUID instead.
	DeviceFor func(enforce.GPU) (string, error) `json:"-"`
	// TempDir holds the short-lived file (mode 0600) with a user's SSH keys
	// that `pct push` copies into the CT; os.TempDir() when empty.
	TempDir string `json:"-"`

	fingerprint []byte         // decoded TLSFingerprint
	roots       *x509.CertPool // from CAFile
}

// String prints the settings without the secret, so that logging a Config
// cannot leak it.
func (c Config) String() string {
	return fmt.Sprintf("proxmox.Config{url=%s token_id=%s node=%s ostemplate=%s storage=%s bridge=%s}",
		c.URL, c.TokenID, c.Node, c.OSTemplate, c.Storage, c.Bridge)
}

// GoString keeps %#v from printing the secret too.
func (c Config) GoString() string { return c.String() }

// LoadConfig reads and validates the JSON settings at path. The file holds
// the token's secret, so it must not be readable by group or others.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read Proxmox settings: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Config{}, fmt.Errorf("read Proxmox settings: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Config{}, fmt.Errorf("Proxmox settings %s are readable by others (mode %04o) and hold the API token's secret: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	var c Config
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// encoding/json's messages name fields and offsets, never values,
		// so the secret cannot leak through them.
		return Config{}, fmt.Errorf("parse Proxmox settings %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("Proxmox settings %s: %w", path, err)
	}
	return c, nil
}

// The shapes PVE accepts. tokenIDRE: a userid (name@realm, no whitespace,
// ':' or '/'), '!', and PVE's token name format; nodeRE: PVE's node names
// (DNS labels); storageRE: PVE's storage ids; templateRE: "<storage>:<volume>".
var (
	tokenIDRE  = regexp.MustCompile(`^[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]*![A-Za-z][A-Za-z0-9.\-_]*$`)
	secretRE   = regexp.MustCompile(`^[A-Za-z0-9\-]{1,128}$`)
	nodeRE     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?$`)
	storageRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.]*$`)
	bridgeRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]{0,14}$`)
	templateRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.]*:\S+$`)
)

// Validate checks the settings and fills in the defaults. Its errors name the
// field and what is expected, never the secret.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.URL == "" {
		c.URL = DefaultURL
	}
	if u, err := url.Parse(c.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" {
		bad("url %q must be an https URL like %s", c.URL, DefaultURL)
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if !tokenIDRE.MatchString(c.TokenID) {
		bad("token_id %q must be an API token id like root@pam!gpulab (USER@REALM!TOKENID)", c.TokenID)
	}
	if c.Secret == "" {
		bad("secret is missing (the API token's secret, shown once when the token was created)")
	} else if !secretRE.MatchString(c.Secret) {
		bad("secret is malformed (expected the token's UUID)")
	}
	if c.Node == "" {
		host, err := os.Hostname()
		if err != nil {
			bad("node is not set and the hostname is unknown: %v", err)
		}
		c.Node, _, _ = strings.Cut(host, ".")
	}
	if !nodeRE.MatchString(c.Node) {
		bad("node %q is not a PVE node name", c.Node)
	}
	if c.OSTemplate == "" {
		bad("ostemplate is missing (a CT template volume such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst; see `pveam available`)")
	} else if !templateRE.MatchString(c.OSTemplate) {
		bad("ostemplate %q must be a volume id <storage>:vztmpl/<file>", c.OSTemplate)
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	if !storageRE.MatchString(c.Storage) {
		bad("storage %q is not a PVE storage id", c.Storage)
	}
	if c.RootfsGB == 0 {
		c.RootfsGB = DefaultRootfsGB
	}
	if c.RootfsGB < 1 || c.RootfsGB > 131072 {
		bad("rootfs_gb %d must be between 1 and 131072", c.RootfsGB)
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if !bridgeRE.MatchString(c.Bridge) {
		bad("bridge %q is not a network interface name", c.Bridge)
	}
	if c.DefaultMemoryMB < 0 || (c.DefaultMemoryMB > 0 && c.DefaultMemoryMB < 16) {
		bad("default_memory_mb %d must be 0 (the node's memory) or at least 16", c.DefaultMemoryMB)
	}
	if c.TLSFingerprint != "" && c.CAFile != "" {
		bad("tls_fingerprint and ca_file are both set; set one")
	}
	if c.TLSFingerprint != "" {
		fp, err := hex.DecodeString(strings.ReplaceAll(c.TLSFingerprint, ":", ""))
		if err != nil || len(fp) != 32 {
			bad("tls_fingerprint %q must be a SHA-256 fingerprint, 32 hex bytes (see `pvenode cert info`)", c.TLSFingerprint)
		}
		c.fingerprint = fp
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			bad("ca_file: %v", err)
		} else {
			c.roots = x509.NewCertPool()
			if !c.roots.AppendCertsFromPEM(pem) {
				bad("ca_file %s holds no PEM certificate", c.CAFile)
			}
		}
	}
	return errors.Join(errs...)
}

// validated reports whether Validate ran and succeeded on c: NewClient
// refuses a Config that skipped it.
func (c *Config) validated() bool {
	return c.URL != "" && c.Storage != "" && c.Bridge != "" && c.RootfsGB > 0 && c.Node != "" &&
		(c.TLSFingerprint == "" || len(c.fingerprint) == 32) && (c.CAFile == "" || c.roots != nil)
}

// formatFingerprint prints a SHA-256 fingerprint as PVE does (AB:CD:...).
func formatFingerprint(fp []byte) string {
	var b bytes.Buffer
	for i, x := range fp {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}
