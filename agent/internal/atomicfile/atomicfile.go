// Package atomicfile replaces a file's content in one rename: a reader sees
// the old file or the whole new one, never a part, and once Write has
// returned the new content survives a crash (the file and its directory are
// synced).
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write gives dir/name the content data with the given mode. The temporary
// file is created in dir (same file system, so the rename is atomic) from
// tmpPattern as os.CreateTemp reads it; a caller that cleans up after a crash
// looks for that pattern.
func Write(dir, name, tmpPattern string, data []byte, mode fs.FileMode) (err error) {
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, tmpPattern) // created 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir makes the renames in dir durable (fsync(2) on the directory).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
