// Package jump is the "jump" enforcement mode, used only on the SSH jump
// host (a node of type jump; docs/adr/0017-managed-jump-host.md). The
// control plane sends the jump host one entry per user holding an active
// assignment anywhere: the user's Linux user name, keys, and ForwardTargets, the
// "host:port" of the sshd of each node they hold. The reconciler creates the
// account with the shell Shell and writes each key as KeyLine makes it:
//
//	restrict,port-forwarding,permitopen="10.0.0.5:22",permitopen="[fd00::7]:2222" ssh-ed25519 AAAA... comment
//
// so that the account can do nothing but forward TCP to those nodes' sshd
// (OpenSSH's ProxyJump, "ssh -W"): no shell, no command, no pty, no agent or
// X11 forwarding, no remote forwarding, no other destination. sshd reads
// authorized_keys at every login, so no sshd reload is needed: a revoke
// that removes the entry (or narrows ForwardTargets) holds from the next
// heartbeat's reconcile on, and removing the account kills its open
// forwardings with its processes.
//
// The mode has no host state of its own beyond the account and its keys,
// which the reconciler keeps: Enforcer's Apply checks the entry, Remove and
// Applied have nothing to do.
package jump

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

// Mode is the mode's name, as the reconciler reports it.
const Mode = "jump"

// Shell is a jump account's login shell: ProxyJump needs none, and an
// account that had one would be one forced command away from a login.
const Shell = "/usr/sbin/nologin"

// MaxPermitOpen bounds the destinations of one entry: one per node the user
// holds an assignment on, and 256 nodes is above any lab gpulab is made for.
// KeyLine checks the line that results against sshd's own limit.
const MaxPermitOpen = 256

// maxKeyLine bounds one authorized_keys line the mode writes: 16 KiB,
// OpenSSH's SSH_MAX_PUBKEY_BYTES, the line buffer older sshd versions read
// authorized_keys with (a longer line would be cut there, and its key
// skipped). The key itself is at most 8 KiB (identity's and the agent's
// limit), so this leaves 8 KiB for the options: MaxPermitOpen IPv6 targets
// of 60 bytes each would not fit, and such an entry is refused whole.
const maxKeyLine = 16 * 1024

// Enforcer is the jump mode's enforce.Enforcer: the account and its keys
// are the reconciler's, so there is nothing else to apply or remove.
type Enforcer struct{}

var _ enforce.Enforcer = Enforcer{}

// Apply succeeds: the entry was checked by ValidatePermitOpen.
func (Enforcer) Apply(context.Context, enforce.Assignment) error { return nil }

// Remove succeeds: removing the account removes the access.
func (Enforcer) Remove(context.Context, string) error { return nil }

// Applied lists nothing: the mode keeps no host state of its own.
func (Enforcer) Applied(context.Context) ([]string, error) { return nil, nil }

// ValidatePermitOpen checks each "host:port" (host an IP address, IPv6 in
// brackets, port 1-65535) and returns them in sshd's spelling. An entry
// without a destination grants nothing and is refused.
func ValidatePermitOpen(dests []string) ([]string, error) {
	if len(dests) == 0 {
		return nil, errors.New("a jump entry names no node to forward to")
	}
	if len(dests) > MaxPermitOpen {
		return nil, fmt.Errorf("a jump entry names %d destinations, more than %d", len(dests), MaxPermitOpen)
	}
	out := make([]string, 0, len(dests))
	for _, d := range dests {
		host, port, err := net.SplitHostPort(d)
		if err != nil {
			return nil, fmt.Errorf("forward target %.64q is not host:port", d)
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || addr.Zone() != "" {
			return nil, fmt.Errorf("forward target %.64q does not name an IP address", d)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return nil, fmt.Errorf("forward target %.64q does not name a port 1-65535", d)
		}
		out = append(out, netip.AddrPortFrom(addr, uint16(n)).String())
	}
	return out, nil
}

// KeyLine is the authorized_keys line of key (already validated by the
// reconciler: "type base64 [comment]", no options) for a jump account that
// may forward to dests (from ValidatePermitOpen).
func KeyLine(key string, dests []string) (string, error) {
	var b strings.Builder
	b.WriteString("restrict,port-forwarding")
	for _, d := range dests {
		b.WriteString(`,permitopen="`)
		b.WriteString(d)
		b.WriteByte('"')
	}
	b.WriteByte(' ')
	b.WriteString(key)
	if b.Len() > maxKeyLine {
		return "", fmt.Errorf("the key with its %d destinations is longer than sshd reads (%d bytes)", len(dests), maxKeyLine)
	}
	return b.String(), nil
}
