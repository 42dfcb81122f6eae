package reconcile

import (
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// fakeHost is a fake root (etc/passwd, etc/shadow, etc/group, home/, proc/)
// edited by the shell scripts of testdata/fakebin, which the Reconciler
// really executes through hostexec and which record their argv.
type fakeHost struct {
	t    *testing.T
	root string
	cfg  Config
}

// The accounts every fake root starts with: two system ones and bob, a
// local user gpulab did not create, with keys of his own.
const (
	basePasswd = "root:x:0:0:root:/root:/bin/bash\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
		"bob:x:1500:1500:Bob,,,:/home/bob:/bin/bash\n"
	baseShadow = "root:*:20000:0:99999:7:::\n" +
		"daemon:*:20000:0:99999:7:::\n" +
		"bob:$6$salt$hash:20000:0:99999:7:::\n"
	baseGroup = "root:x:0:\ndaemon:x:1:\nbob:x:1500:\n"
	bobKeys   = "ssh-ed25519 AAAA-bob's-own-key bob@laptop\n"
)

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "etc/ssh/sshd_config.d", "home", "bin", "home/bob/.ssh", "run/systemd/system"} {
		mustMkdir(t, filepath.Join(root, d))
	}
	mustWrite(t, filepath.Join(root, "etc/passwd"), basePasswd, 0o644)
	mustWrite(t, filepath.Join(root, "etc/shadow"), baseShadow, 0o640)
	mustWrite(t, filepath.Join(root, "etc/group"), baseGroup, 0o644)
	mustWrite(t, filepath.Join(root, "home/bob/.ssh/authorized_keys"), bobKeys, 0o644)

	entries, err := os.ReadDir("testdata/fakebin")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata/fakebin", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(root, "bin", e.Name()), string(data), 0o755)
	}

	cfg := Config{
		Host: hostexec.Host{Root: root, Commands: hostexec.Commands{
			Useradd:   filepath.Join(root, "bin/useradd"),
			Usermod:   filepath.Join(root, "bin/usermod"),
			Userdel:   filepath.Join(root, "bin/userdel"),
			Pkill:     filepath.Join(root, "bin/pkill"),
			Sshd:      filepath.Join(root, "bin/sshd"),
			Systemctl: filepath.Join(root, "bin/systemctl"),
		}},
		Now: func() time.Time { return testNow },
	}
	if euid := os.Geteuid(); euid == 0 {
		// Root can chown, so fake users get distinct uids as useradd gives.
		mustWrite(t, filepath.Join(root, "uid-min"), "2000\n", 0o644)
	} else {
		// Without root the files can only be owned by us: every fake user
		// gets our ids, and the uid floor drops to them if need be.
		mustWrite(t, filepath.Join(root, "fixed-ids"), itoa(euid)+" "+itoa(os.Getegid())+"\n", 0o644)
		cfg.MinUID = min(defaultMinUID, euid)
	}
	return &fakeHost{t: t, root: root, cfg: cfg}
}

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func (h *fakeHost) reconciler() *Reconciler {
	h.t.Helper()
	r, err := New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *fakeHost) path(p string) string { return filepath.Join(h.root, p) }

func (h *fakeHost) read(p string) string {
	h.t.Helper()
	data, err := os.ReadFile(h.path(p))
	if err != nil {
		h.t.Fatalf("read %s: %v", p, err)
	}
	return string(data)
}

// calls returns the commands run since the last call, each as
// [name, args...], and forgets them.
func (h *fakeHost) calls() [][]string {
	h.t.Helper()
	data, err := os.ReadFile(h.path("calls.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.Remove(h.path("calls.log")); err != nil {
		h.t.Fatal(err)
	}
	var out [][]string
	for line := range strings.Lines(string(data)) {
		out = append(out, strings.Split(strings.TrimSuffix(line, "\n"), "\t"))
	}
	return out
}

// accountCalls keeps the account commands of calls, leaving out the soft
// enforcer's sshd and systemctl.
func accountCalls(calls [][]string) [][]string {
	return slices.DeleteFunc(calls, func(c []string) bool { return c[0] == "sshd" || c[0] == "systemctl" })
}

// dropIn returns user's soft-enforcement sshd drop-in, "" when there is none.
func (h *fakeHost) dropIn(user string) string {
	h.t.Helper()
	data, err := os.ReadFile(h.path("etc/ssh/sshd_config.d/10-gpulab-soft-" + user + ".conf"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(data)
}

// account reads name back from the fake root's passwd and shadow.
func (h *fakeHost) account(name string) *account {
	h.t.Helper()
	accts, err := readAccounts(h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	return accts[name]
}

// addProcess makes /proc show a process running as uid.
func (h *fakeHost) addProcess(pid string, uid int) {
	h.t.Helper()
	mustMkdir(h.t, h.path("proc/"+pid))
	u := itoa(uid)
	mustWrite(h.t, h.path("proc/"+pid+"/status"), "Name:\tpython\nUid:\t"+u+"\t"+u+"\t"+u+"\t"+u+"\n", 0o444)
}

func assign(id, user string, keys ...string) *agentv1.Assignment {
	return &agentv1.Assignment{
		AssignmentId:    id,
		LinuxUsername:   user,
		SshPublicKeys:   keys,
		EnforcementMode: agentv1.EnforcementMode_ENFORCEMENT_MODE_SOFT,
		ExpiresAt:       timestamppb.New(testNow.Add(time.Hour)),
	}
}

// sshKey returns a well-formed public key line of type typ: the blob starts
// with the type as an SSH string, as every real key does.
func sshKey(typ string, seed byte, comment string) string {
	blob := binary.BigEndian.AppendUint32(nil, uint32(len(typ)))
	blob = append(blob, typ...)
	body := make([]byte, 32)
	for i := range body {
		body[i] = seed + byte(i)
	}
	blob = binary.BigEndian.AppendUint32(blob, uint32(len(body)))
	blob = append(blob, body...)
	line := typ + " " + base64.StdEncoding.EncodeToString(blob)
	if comment != "" {
		line += " " + comment
	}
	return line
}

// outcome renders a report as "id=STATE" (plus ": error") lines, sorted.
func outcome(st *agentv1.AppliedState) []string {
	var out []string
	for _, a := range st.GetAssignments() {
		s := a.GetAssignmentId() + "=" + strings.TrimPrefix(a.GetState().String(), "APPLY_STATE_")
		if a.GetError() != "" {
			s += ": " + a.GetError()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func keysContent(keys ...string) string {
	return keysHeader + strings.Join(keys, "\n") + "\n"
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
