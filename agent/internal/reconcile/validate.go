package reconcile

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

// reservedNames are accounts a distribution creates or that tools treat as
// special. Validation refuses them even when they are absent here, so that a
// control-plane mistake never creates a "root"-looking account.
var reservedNames = map[string]bool{
	"root": true, "daemon": true, "bin": true, "sys": true, "sync": true,
	"games": true, "man": true, "lp": true, "mail": true, "news": true,
	"uucp": true, "proxy": true, "www-data": true, "backup": true,
	"list": true, "irc": true, "gnats": true, "nobody": true, "nogroup": true,
	"sshd": true, "messagebus": true, "adm": true, "admin": true,
	"operator": true, "halt": true, "shutdown": true, "ftp": true,
	"wheel": true, "sudo": true, "staff": true, "users": true,
	"gpulab": true, "gpulab-agent": true,
}

func validateUsername(name string) error {
	if !enforce.UsernameRE.MatchString(name) {
		return fmt.Errorf("linux username %q is not valid (want 1-32 of a-z, 0-9, '_' or '-', starting with a letter or '_')", name)
	}
	if reservedNames[name] || strings.HasPrefix(name, "systemd-") {
		return fmt.Errorf("linux username %q is reserved for the system", name)
	}
	return nil
}

func validateAssignmentID(id string) error {
	if !enforce.AssignmentIDRE.MatchString(id) {
		return fmt.Errorf("assignment id %q is not valid (want 1-64 of A-Z, a-z, 0-9, '.', '_' or '-', a letter or digit first)", id)
	}
	return nil
}

// keyTypes are the public key types accepted, without certificates or
// options: exactly what a user's own key line holds. ssh-dss is left out,
// OpenSSH no longer accepts it.
var keyTypes = map[string]bool{
	"ssh-ed25519":                        true,
	"ecdsa-sha2-nistp256":                true,
	"ecdsa-sha2-nistp384":                true,
	"ecdsa-sha2-nistp521":                true,
	"ssh-rsa":                            true,
	"sk-ssh-ed25519@openssh.com":         true,
	"sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// maxKeyLine bounds one key line. A 16384-bit RSA key, the largest OpenSSH
// generates, is about 2.8 KB of base64; 8 KiB leaves room for a comment.
// The control plane stores no longer key (SSH_KEY_MAX_BYTES in
// gpulab_core.contracts.identity; a test there reads this line), so a key
// it accepted is never refused here.
const maxKeyLine = 8 << 10

// validateKey checks one authorized_keys line and returns it with the
// surrounding whitespace trimmed. It accepts "type base64 [comment]" only:
// a line starting with options (command=, from=, ...) does not start with a
// key type and is refused.
func validateKey(line string) (string, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("it is empty")
	}
	if len(line) > maxKeyLine {
		return "", fmt.Errorf("it is longer than %d bytes", maxKeyLine)
	}
	for _, c := range line {
		if c < 0x20 || c == 0x7f {
			return "", errors.New("it contains a control character or a line break")
		}
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return "", errors.New(`it is not "type base64 [comment]"`)
	}
	typ, b64 := fields[0], fields[1]
	if !keyTypes[typ] {
		return "", fmt.Errorf("type %.40q is not a supported key type (options before the key are not allowed)", typ)
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", errors.New("its key is not valid base64")
	}
	// The blob starts with the key type as an SSH string (RFC 4253 §6.6);
	// a mismatch means a truncated or pasted-together key.
	if len(blob) < 4 {
		return "", errors.New("its key is truncated")
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != typ {
		return "", fmt.Errorf("its key data does not hold a %s key", typ)
	}
	return line, nil
}

func validateKeys(lines []string) ([]string, error) {
	out := make([]string, 0, len(lines))
	for i, l := range lines {
		k, err := validateKey(l)
		if err != nil {
			return nil, fmt.Errorf("ssh key %d is refused: %w", i+1, err)
		}
		out = append(out, k)
	}
	return out, nil
}
