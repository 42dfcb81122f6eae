package reconcile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

const (
	sshDirName  = ".ssh"
	keysName    = "authorized_keys"
	keysTmpName = ".authorized_keys.gpulab-tmp"
	sshDirMode  = 0o700
	keysMode    = 0o600
	// maxKeysFile bounds how much of an existing authorized_keys is read
	// to compare it; anything larger differs from what gpulab writes.
	maxKeysFile = 1 << 20
	// oPath is Linux's O_PATH (010000000 in asm-generic/fcntl.h, shared by
	// amd64 and arm64), which the syscall package does not export.
	oPath = 0o10000000
)

// syncAuthorizedKeys makes home/.ssh/authorized_keys hold exactly content,
// owned by uid:gid with mode 0600, in a ~/.ssh of mode 0700. With create
// false (removing access) a missing home, ~/.ssh or file already counts as
// empty and nothing is created. It reports whether it changed anything.
//
// No path under home is ever resolved through a symlink: each step opens the
// next one relative to the previous descriptor with O_NOFOLLOW, and the new
// file replaces the old one by rename, which replaces a symlink rather than
// writing through it.
func syncAuthorizedKeys(home string, uid, gid int, content []byte, create bool) (changed bool, err error) {
	homeFd, err := syscall.Open(home, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	switch {
	case err == nil:
	case errors.Is(err, syscall.ENOENT) && !create:
		return false, nil
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
		return false, fmt.Errorf("home %s is a symlink or not a directory; refusing to follow it", home)
	default:
		return false, fmt.Errorf("open home %s: %w", home, err)
	}
	defer syscall.Close(homeFd)

	sshPath := filepath.Join(home, sshDirName)
	sshDir, err := openDirAt(homeFd, sshDirName, sshPath)
	if errors.Is(err, syscall.ENOENT) {
		if !create {
			return false, nil
		}
		if err := syscall.Mkdirat(homeFd, sshDirName, sshDirMode); err != nil && !errors.Is(err, syscall.EEXIST) {
			return false, fmt.Errorf("create %s: %w", sshPath, err)
		}
		changed = true
		sshDir, err = openDirAt(homeFd, sshDirName, sshPath)
	}
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return changed, fmt.Errorf("%s is a symlink or not a directory; refusing to follow it", sshPath)
	}
	if err != nil {
		return changed, fmt.Errorf("open %s: %w", sshPath, err)
	}
	defer sshDir.Close()

	fixed, err := fixOwnerAndMode(sshDir, uid, gid, sshDirMode)
	changed = changed || fixed
	if err != nil {
		return changed, fmt.Errorf("set owner and mode of %s: %w", sshPath, err)
	}

	sshFd := int(sshDir.Fd())
	keysPath := filepath.Join(sshPath, keysName)
	same, exists, err := keysFileHolds(sshFd, content, uid, gid)
	if err != nil {
		return changed, fmt.Errorf("read %s: %w", keysPath, err)
	}
	if same || (!create && !exists) {
		return changed, nil
	}
	if err := replaceFileAt(sshFd, content, uid, gid); err != nil {
		return changed, fmt.Errorf("write %s: %w", keysPath, err)
	}
	return true, nil
}

// openDirAt opens the directory name under dirFd without following a
// symlink: a symlink fails with ELOOP or ENOTDIR.
func openDirAt(dirFd int, name, path string) (*os.File, error) {
	fd, err := syscall.Openat(dirFd, name, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// fixOwnerAndMode sets f's owner and permission bits through its descriptor
// where they differ, and reports whether it changed either.
func fixOwnerAndMode(f *os.File, uid, gid int, perm os.FileMode) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	changed := false
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
		if err := f.Chown(uid, gid); err != nil {
			return false, err
		}
		changed = true
	}
	if fi.Mode().Perm() != perm || fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
		if err := f.Chmod(perm); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// keysFileHolds reports whether authorized_keys under sshFd is a regular,
// singly linked file of mode 0600 owned by uid:gid holding exactly content
// (same), and whether anything exists under that name.
func keysFileHolds(sshFd int, content []byte, uid, gid int) (same, exists bool, err error) {
	// O_PATH first: it opens neither a FIFO nor a device, so a planted one
	// cannot block or disturb the agent; only a regular file is read.
	pathFd, err := syscall.Openat(sshFd, keysName, oPath|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return false, false, nil
	}
	if err != nil {
		return false, true, err
	}
	var st syscall.Stat_t
	err = syscall.Fstat(pathFd, &st)
	syscall.Close(pathFd)
	if err != nil {
		return false, true, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 || st.Mode&0o7777 != keysMode ||
		int(st.Uid) != uid || int(st.Gid) != gid || st.Size != int64(len(content)) {
		return false, true, nil
	}
	fd, err := syscall.Openat(sshFd, keysName, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false, true, err
	}
	f := os.NewFile(uintptr(fd), keysName)
	defer f.Close()
	var again syscall.Stat_t
	if err := syscall.Fstat(fd, &again); err != nil {
		return false, true, err
	}
	if again.Dev != st.Dev || again.Ino != st.Ino {
		return false, true, nil // replaced while we looked: rewrite it
	}
	got, err := io.ReadAll(io.LimitReader(f, maxKeysFile))
	if err != nil {
		return false, true, err
	}
	return bytes.Equal(got, content), true, nil
}

// replaceFileAt writes content to a temporary file under sshFd, sets its
// owner and mode, fsyncs it and renames it over authorized_keys, then fsyncs
// the directory so that the rename survives a crash.
func replaceFileAt(sshFd int, content []byte, uid, gid int) (err error) {
	// A temporary file left by a crash; unlinkat removes a symlink or file
	// of that name without following it.
	if err := syscall.Unlinkat(sshFd, keysTmpName); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove stale %s: %w", keysTmpName, err)
	}
	fd, err := syscall.Openat(sshFd, keysTmpName,
		syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, keysMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", keysTmpName, err)
	}
	f := os.NewFile(uintptr(fd), keysTmpName)
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = syscall.Unlinkat(sshFd, keysTmpName)
		}
	}()
	if _, err := f.Write(content); err != nil {
		return err
	}
	if _, err := fixOwnerAndMode(f, uid, gid, keysMode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		f = nil
		return err
	}
	f = nil
	if err := syscall.Renameat(sshFd, keysTmpName, sshFd, keysName); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	return syscall.Fsync(sshFd)
}
