package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/atomicfile"
)

// The files of an identity directory. KeyFile comes first: staging it first
// and committing it first is what makes the commit atomic (see the package
// documentation).
const (
	KeyFile  = "node.key"
	CertFile = "node.pem"
	CAFile   = "ca.pem"
	InfoFile = "agent.json"
)

// Files lists every file of an identity, KeyFile first.
var Files = []string{KeyFile, CertFile, CAFile, InfoFile}

const (
	pendingSuffix = ".next"
	tmpInfix      = ".tmp-"
	dirMode       = 0o700
	fileMode      = 0o600
)

// PrepareDir creates dir (0700) if it is missing and makes an existing one
// 0700: it holds a private key. It also finishes or undoes a change that a
// crash interrupted, so that what is found there afterwards is whole.
func PrepareDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create identity directory %s: %w", dir, err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("inspect identity directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("identity directory %s is not a directory", dir)
	}
	if info.Mode().Perm() != dirMode {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("make identity directory %s private: %w", dir, err)
		}
	}
	return recoverPending(dir)
}

// Existing returns the identity files present in dir (none when dir does not
// exist), after a change a crash interrupted has been finished or undone.
func Existing(dir string) ([]string, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err := recoverPending(dir); err != nil {
		return nil, err
	}
	var found []string
	for _, name := range Files {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			found = append(found, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("inspect %s: %w", filepath.Join(dir, name), err)
		}
	}
	return found, nil
}

// change is one staged replacement of some identity files. The key is always
// part of it and always staged first.
type change struct {
	dir    string
	staged []string // names, in staging order; KeyFile first
}

// beginChange stages a new key in dir; the caller stages the rest with stage,
// then commits or aborts.
func beginChange(dir string, keyPEM []byte) (*change, error) {
	if err := recoverPending(dir); err != nil {
		return nil, err
	}
	c := &change{dir: dir}
	if err := c.stage(KeyFile, keyPEM); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// stage writes name's new content to name.next, durably, before it returns.
func (c *change) stage(name string, data []byte) error {
	c.staged = append(c.staged, name)
	return writeFileAtomic(c.dir, name+pendingSuffix, data)
}

// commit renames the staged files into place, the key first: once node.key
// has its new content the change has happened, and a crash after that point
// is rolled forward by the next recoverPending.
// If the key cannot be renamed nothing has changed and the staged files are
// removed; a failure after it leaves the rest staged for recoverPending.
func (c *change) commit() error {
	for i, name := range c.staged {
		if err := os.Rename(filepath.Join(c.dir, name+pendingSuffix), filepath.Join(c.dir, name)); err != nil {
			if i == 0 {
				c.abort()
			}
			return fmt.Errorf("install %s: %w", filepath.Join(c.dir, name), err)
		}
	}
	return syncDir(c.dir)
}

// abort removes whatever was staged; the identity in place is untouched.
func (c *change) abort() {
	for _, name := range c.staged {
		_ = os.Remove(filepath.Join(c.dir, name+pendingSuffix))
	}
	_ = syncDir(c.dir)
}

// recoverPending finishes or undoes a change a crash interrupted, and removes
// the temporary files of a write it cut short.
func recoverPending(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read identity directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if isTempName(e.Name()) {
			path := filepath.Join(dir, e.Name())
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove unfinished write %s: %w", path, err)
			}
		}
	}
	pending := make([]string, 0, len(Files))
	for _, name := range Files {
		if _, err := os.Lstat(filepath.Join(dir, name+pendingSuffix)); err == nil {
			pending = append(pending, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("inspect %s: %w", filepath.Join(dir, name+pendingSuffix), err)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	committed := pending[0] != KeyFile // the key's rename is the commit point
	for _, name := range pending {
		next := filepath.Join(dir, name+pendingSuffix)
		var err error
		if committed {
			err = os.Rename(next, filepath.Join(dir, name))
		} else {
			err = os.Remove(next)
		}
		if err != nil {
			return fmt.Errorf("recover interrupted identity change in %s: %w", dir, err)
		}
	}
	return syncDir(dir)
}

// isTempName tells the temporary files of writeFileAtomic (".node.key.tmp-123",
// ".node.key.next.tmp-456") from anything else that may share the directory.
func isTempName(name string) bool {
	for _, f := range Files {
		for _, target := range []string{f, f + pendingSuffix} {
			if strings.HasPrefix(name, "."+target+tmpInfix) {
				return true
			}
		}
	}
	return false
}

// writeFileAtomic gives dir/name the content data (mode 0600) in one rename.
func writeFileAtomic(dir, name string, data []byte) error {
	return atomicfile.Write(dir, name, "."+name+tmpInfix+"*", data, fileMode)
}

// syncDir makes the renames in dir durable (fsync(2) on the directory).
func syncDir(dir string) error {
	return atomicfile.SyncDir(dir)
}
