package proxmox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// The user's SSH keys live in the CT's /root/.ssh/authorized_keys. PVE
// writes them once, at the create (ssh-public-keys); later changes go in
// with `pct push`, which, like `pct set`, runs on the node as root. The
// description records which keys the CT holds, so that an unchanged set
// costs no call.
const (
	// keysLine is the description line with the digest of the keys the CT
	// holds (keysDigest); a CT without it (an older agent's) gets its keys
	// pushed once.
	keysLine = "gpulab-keys "

	sshDir         = "/root/.ssh"
	authorizedKeys = sshDir + "/authorized_keys"
)

// authorizedKeysFile is the authorized_keys the keys make: one a line, and
// no line at all (nobody may log in) without a key.
func authorizedKeysFile(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return strings.Join(keys, "\n") + "\n"
}

// keysDigest is the hex SHA-256 of authorizedKeysFile(keys).
func keysDigest(keys []string) string {
	sum := sha256.Sum256([]byte(authorizedKeysFile(keys)))
	return hex.EncodeToString(sum[:])
}

// recordedKeys reads the digest line of a description, "" without one.
func recordedKeys(desc string) string {
	for line := range strings.Lines(desc) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), keysLine); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// withKeysDigest returns desc with its digest line saying digest, the rest
// untouched: the first such line is replaced (later ones dropped), or one
// is added after the user line (at the end without one).
func withKeysDigest(desc, digest string) string {
	newLine := keysLine + digest + "\n"
	var b strings.Builder
	done := false
	for line := range strings.Lines(desc) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, keysLine) {
			if !done {
				b.WriteString(newLine)
				done = true
			}
			continue
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		b.WriteString(line)
		if !done && strings.HasPrefix(trimmed, userLine) {
			b.WriteString(newLine)
			done = true
		}
	}
	if !done {
		b.WriteString(newLine)
	}
	return b.String()
}

// pushKeys gives a running CT's root exactly keys as authorized_keys, then
// records their digest in the description (desc is the current one). The
// push comes first: should the agent die in between, the old digest makes
// the next Apply push again.
func (e *Enforcer) pushKeys(ctx context.Context, vmid int, id, desc string, keys []string) error {
	what := fmt.Sprintf("push the SSH keys into CT %d of assignment %s", vmid, id)
	f, err := os.CreateTemp(e.cfg.TempDir, "gpulab-keys-*") // mode 0600
	if err != nil {
		return fmt.Errorf("%s: write them to a temporary file: %w", what, err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(authorizedKeysFile(keys))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: write them to a temporary file: %w", what, err)
	}
	ct := strconv.Itoa(vmid)
	if err := e.pct(ctx, what, "exec", ct, "--", "mkdir", "-p", "-m", "0700", sshDir); err != nil {
		return err
	}
	if err := e.pct(ctx, what, "push", ct, f.Name(), authorizedKeys, "--perms", "0600", "--user", "0", "--group", "0"); err != nil {
		return err
	}
	v := url.Values{"description": {withKeysDigest(desc, keysDigest(keys))}}
	if err := e.c.UpdateCT(ctx, vmid, v); err != nil {
		return fmt.Errorf("record the SSH keys pushed into CT %d of assignment %s in its description: %w", vmid, id, err)
	}
	return nil
}

// pct runs `pct args...` on the node through the host's Runner; what says
// what it was for, in errors. pct sets the CTs' devN options and pushes
// changed SSH keys into them (pct exec, pct push), not the API: PVE lets only
// root@pam configure device passthrough, never an API token (403
// "configuring device passthrough is only allowed for root@pam"), the API
// writes no file into a CT, and pct on the node runs as root@pam.
func (e *Enforcer) pct(ctx context.Context, what string, args ...string) error {
	_, stderr, err := e.host.Runner.Run(ctx, e.host.Commands.Pct, args...)
	switch {
	case errors.Is(err, hostexec.ErrNotFound):
		return fmt.Errorf("%s: %s not found; the proxmox mode runs on the PVE node, whose pct acts as root@pam: %w", what, e.host.Commands.Pct, err)
	case err != nil:
		if msg := strings.TrimSpace(string(stderr)); msg != "" {
			return fmt.Errorf("%s: pct %s: %s (%w)", what, args[0], msg, err)
		}
		return fmt.Errorf("%s: pct %s: %w", what, args[0], err)
	}
	return nil
}
