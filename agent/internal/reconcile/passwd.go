package reconcile

import (
	"bufio"
	"bytes"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// markerPrefix starts the GECOS comment of every account gpulab creates.
const markerPrefix = "gpulab-managed"

// account is one local account from /etc/passwd and /etc/shadow.
type account struct {
	name     string
	uid, gid int
	gecos    string
	home     string
	password string // the shadow password field; "!" for a password-less account
	expire   string // the shadow expire field (days since 1970); "" for never
}

func (a *account) managed() bool {
	return a.gecos == markerPrefix || strings.HasPrefix(a.gecos, markerPrefix+" ")
}

// locked reports whether lockArgs has been applied: the password is locked
// and the account expired on day 1.
func (a *account) locked() bool {
	return a.expire == lockExpireDay && strings.HasPrefix(a.password, "!")
}

// readAccounts reads root/etc/passwd and root/etc/shadow. Only local accounts
// count: useradd creates local ones, and one that exists only in a directory
// (LDAP) makes useradd fail, which is reported.
func readAccounts(root string) (map[string]*account, error) {
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		return nil, fmt.Errorf("read the account list: %w", err)
	}
	accts := make(map[string]*account)
	for fields := range records(passwd, 7) {
		uid, err1 := strconv.Atoi(fields[2])
		gid, err2 := strconv.Atoi(fields[3])
		if err1 != nil || err2 != nil {
			continue // not an account useradd wrote; never ours
		}
		accts[fields[0]] = &account{name: fields[0], uid: uid, gid: gid, gecos: fields[4], home: fields[5]}
	}
	shadow, err := os.ReadFile(filepath.Join(root, "etc", "shadow"))
	if err != nil {
		return nil, fmt.Errorf("read the shadow passwords: %w", err)
	}
	for fields := range records(shadow, 9) {
		if a, ok := accts[fields[0]]; ok {
			a.password, a.expire = fields[1], fields[7]
		}
	}
	return accts, nil
}

// records yields the ':'-separated fields of each line holding exactly n of
// them; comments, NIS "+"/"-" entries and malformed lines are skipped.
func records(data []byte, n int) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
				continue
			}
			fields := strings.Split(line, ":")
			if len(fields) != n {
				continue
			}
			if !yield(fields) {
				return
			}
		}
	}
}

// hasProcesses reports whether any process under root/proc runs with
// effective uid uid, the uid `pkill -u` matches. A missing /proc (a test's
// fake root) has no processes.
func hasProcesses(root string, uid int) (bool, error) {
	procDir := filepath.Join(root, "proc")
	entries, err := os.ReadDir(procDir)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list processes: %w", err)
	}
	want := strconv.Itoa(uid)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join(procDir, e.Name(), "status"))
		if err != nil {
			continue // the process ended while we looked
		}
		for line := range strings.Lines(string(status)) {
			// "Uid:\treal\teffective\tsaved\tfs" (proc(5)).
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
				if f[2] == want {
					return true, nil
				}
				break
			}
		}
	}
	return false, nil
}
