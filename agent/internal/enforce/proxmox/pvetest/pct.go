package pvetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// Pct returns a hostexec.Runner standing in for the node's pct, which acts
// as root@pam and so may pass devices. Implemented are:
//
//   - pct set <vmid> [--<option> <value>]... [--delete <list>], with PUT
//     .../config's checks and effects;
//   - pct push <vmid> <file> <destination> [--perms P] [--user U]
//     [--group G]: the local file's content lands in the CT (CTFile), whose
//     destination directory must exist;
//   - pct exec <vmid> -- mkdir [-p] [-m MODE] <dir>...
//
// Push and exec need the CT running ("CT <vmid> not running"). Each call is
// recorded as a Request with Method "CLI" and Path "pct <command> <vmid>";
// its Form holds set's options, push's file, destination, perms, user and
// group, exec's "command" (the argv after "--"). Failures look like pct's:
// the message on stderr and exit status 255 (exec: the command's own).
func (s *Server) Pct() hostexec.Runner { return pct{s} }

// File is a file pct push wrote into a CT.
type File struct {
	Content     string
	Mode        os.FileMode // permission bits
	User, Group string      // as given to pct push ("0" by default)
}

// CTFile returns the file at path inside CT vmid, as pct push (or the
// create's ssh-public-keys) left it.
func (s *Server) CTFile(vmid int, path string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, ok := s.cts[vmid]
	if !ok {
		return File{}, false
	}
	f, ok := ct.files[path]
	return f, ok
}

type pct struct{ s *Server }

var (
	errExit  = errors.New("exit status 255")
	errExit1 = errors.New("exit status 1")
)

const pctUsage = "fake pct: only 'pct set <vmid> --<option> <value>...', 'pct push <vmid> <file> <destination> [OPTIONS]' and 'pct exec <vmid> -- mkdir ...' are implemented\n"

func (p pct) Run(_ context.Context, name string, args ...string) ([]byte, []byte, error) {
	if name != "pct" || len(args) < 2 {
		return nil, []byte(pctUsage), errExit
	}
	switch args[0] {
	case "set":
		return p.set(args)
	case "push":
		return p.push(args)
	case "exec":
		return p.exec(args)
	}
	return nil, []byte(pctUsage), errExit
}

func (p pct) set(args []string) ([]byte, []byte, error) {
	if len(args)%2 != 0 {
		return nil, []byte(pctUsage), errExit
	}
	form := url.Values{}
	for i := 2; i < len(args); i += 2 {
		k, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			return nil, []byte(fmt.Sprintf("400 unable to parse option '%s'\n", args[i])), errExit
		}
		form.Add(k, args[i+1])
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: "CLI", Path: "pct set " + args[1], Form: form})
	perr := checkForm(form, updateSchema)
	if perr == nil {
		n, _ := strconv.Atoi(args[1])
		if ct, ok := s.cts[n]; ok {
			perr = s.applyConfig(ct, form)
		} else {
			perr = fail(500, "Configuration file 'nodes/%s/lxc/%s.conf' does not exist", Node, args[1])
		}
	}
	if perr != nil {
		msg := perr.reason + "\n"
		for _, k := range slices.Sorted(maps.Keys(perr.params)) {
			msg += k + ": " + perr.params[k] + "\n"
		}
		return nil, []byte(msg), errExit
	}
	return nil, nil, nil
}

// runningCT finds a CT pct push or exec may enter; s.mu is held.
func (s *Server) runningCT(vmid string) (*CT, string) {
	n, _ := strconv.Atoi(vmid)
	ct, ok := s.cts[n]
	switch {
	case vmidCheck(vmid) != "":
		return nil, fmt.Sprintf("400 Parameter verification failed.\nvmid: %s\n", vmidCheck(vmid))
	case !ok:
		return nil, fmt.Sprintf("Configuration file 'nodes/%s/lxc/%s.conf' does not exist\n", Node, vmid)
	case ct.Status != "running":
		return nil, fmt.Sprintf("CT %s not running\n", vmid)
	}
	return ct, ""
}

// hasDir: every CT has / and /root (the template's); others are made.
func (ct *CT) hasDir(dir string) bool {
	return dir == "/" || dir == "/root" || ct.dirs[dir]
}

func (p pct) push(args []string) ([]byte, []byte, error) {
	if len(args) < 4 || len(args)%2 != 0 {
		return nil, []byte("400 not enough arguments\npct push <vmid> <file> <destination> [OPTIONS]\n"), errExit
	}
	form := url.Values{"file": {args[2]}, "destination": {args[3]}}
	for i := 4; i < len(args); i += 2 {
		k, ok := strings.CutPrefix(args[i], "--")
		if !ok || (k != "perms" && k != "user" && k != "group") {
			return nil, []byte(fmt.Sprintf("Unknown option: %s\n400 unable to parse option\n", strings.TrimLeft(args[i], "-"))), errExit
		}
		form.Set(k, args[i+1])
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: "CLI", Path: "pct push " + args[1], Form: form})
	ct, msg := s.runningCT(args[1])
	if ct == nil {
		return nil, []byte(msg), errExit
	}
	f := File{Mode: 0o644, User: "0", Group: "0"}
	if v := form.Get("perms"); v != "" {
		n, err := strconv.ParseUint(v, 8, 32)
		if h, ok := strings.CutPrefix(v, "0x"); ok {
			n, err = strconv.ParseUint(h, 16, 32)
		}
		if err != nil || n > 0o7777 {
			return nil, []byte(fmt.Sprintf("invalid permissions: %s\n", v)), errExit
		}
		f.Mode = os.FileMode(n)
	}
	for _, k := range []string{"user", "group"} {
		v := form.Get(k)
		if v == "" {
			continue
		}
		if _, err := strconv.Atoi(v); err != nil && v != "root" {
			return nil, []byte(fmt.Sprintf("invalid %s name: %s\n", k, v)), errExit
		}
		if k == "user" {
			f.User = v
		} else {
			f.Group = v
		}
	}
	dest := args[3]
	switch {
	case !path.IsAbs(dest) || !ct.hasDir(path.Dir(dest)):
		return nil, []byte(fmt.Sprintf("failed to open %s for writing: No such file or directory\n", dest)), errExit
	case ct.hasDir(dest):
		return nil, []byte(fmt.Sprintf("failed to open %s for writing: Is a directory\n", dest)), errExit
	}
	data, err := os.ReadFile(args[2])
	if err != nil {
		return nil, []byte(fmt.Sprintf("failed to open %s: %v\n", args[2], errors.Unwrap(err))), errExit
	}
	f.Content = string(data)
	ct.files[dest] = f
	return nil, nil, nil
}

func (p pct) exec(args []string) ([]byte, []byte, error) {
	cmd := args[2:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: "CLI", Path: "pct exec " + args[1], Form: url.Values{"command": cmd}})
	ct, msg := s.runningCT(args[1])
	if ct == nil {
		return nil, []byte(msg), errExit
	}
	if len(cmd) == 0 || cmd[0] != "mkdir" {
		return nil, []byte(pctUsage), errExit
	}
	parents := false
	var dirs []string
	for i := 1; i < len(cmd); i++ {
		switch a := cmd[i]; {
		case a == "-p":
			parents = true
		case a == "-m" && i+1 < len(cmd):
			if _, err := strconv.ParseUint(cmd[i+1], 8, 32); err != nil {
				return nil, []byte(fmt.Sprintf("mkdir: invalid mode '%s'\n", cmd[i+1])), errExit1
			}
			i++
		case strings.HasPrefix(a, "-"):
			return nil, []byte(fmt.Sprintf("mkdir: invalid option -- '%s'\n", strings.TrimLeft(a, "-"))), errExit1
		default:
			dirs = append(dirs, path.Clean(a))
		}
	}
	if len(dirs) == 0 {
		return nil, []byte("mkdir: missing operand\n"), errExit1
	}
	for _, d := range dirs {
		_, isFile := ct.files[d]
		switch {
		case !path.IsAbs(d):
			return nil, []byte(fmt.Sprintf("fake pct: mkdir of relative path '%s'\n", d)), errExit1
		case isFile || (ct.hasDir(d) && !parents):
			return nil, []byte(fmt.Sprintf("mkdir: cannot create directory '%s': File exists\n", d)), errExit1
		case !parents && !ct.hasDir(path.Dir(d)):
			return nil, []byte(fmt.Sprintf("mkdir: cannot create directory '%s': No such file or directory\n", d)), errExit1
		}
		for ; !ct.hasDir(d); d = path.Dir(d) {
			ct.dirs[d] = true
		}
	}
	return nil, nil, nil
}
