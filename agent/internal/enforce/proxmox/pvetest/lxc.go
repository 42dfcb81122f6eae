package pvetest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The endpoints of LXC containers and their tasks.

// ct finds the CT of the path, as PVE reports a missing one.
func (s *Server) ct(r *http.Request) (*CT, *pveError) {
	if err := checkNode(r); err != nil {
		return nil, err
	}
	v := r.PathValue("vmid")
	if msg := vmidCheck(v); msg != "" {
		return nil, badParams(map[string]string{"vmid": msg})
	}
	n, _ := strconv.Atoi(v)
	ct, ok := s.cts[n]
	if !ok {
		return nil, fail(500, "Configuration file 'nodes/%s/lxc/%d.conf' does not exist", Node, n)
	}
	return ct, nil
}

func (s *Server) createCT(r *http.Request, f url.Values) (any, *pveError) {
	if err := checkNode(r); err != nil {
		return nil, err
	}
	if perr := rootOnly(f); perr != nil {
		return nil, perr
	}
	vmid, _ := strconv.Atoi(f.Get("vmid"))
	if _, ok := s.cts[vmid]; ok {
		return nil, fail(500, "CT %d already exists on node '%s'", vmid, Node)
	}
	conf := map[string]string{"lock": "create", "arch": "amd64", "ostype": "debian"}
	for k, v := range f {
		switch k {
		case "vmid", "ostemplate", "storage", "ssh-public-keys", "password", "pool", "start", "force", "unique", "restore", "ignore-unpack-errors", "bwlimit":
		case "rootfs":
			storage, size, _ := strings.Cut(strings.TrimPrefix(v[0], "volume="), ":")
			conf[k] = fmt.Sprintf("%s:vm-%d-disk-0,size=%sG", storage, vmid, size)
		default:
			conf[k] = v[0]
		}
	}
	if _, ok := conf["memory"]; !ok {
		conf["memory"] = "512" // PVE's default
	}
	ct := &CT{VMID: vmid, Status: "stopped", Config: conf, files: map[string]File{}, dirs: map[string]bool{}}
	if keys := f.Get("ssh-public-keys"); keys != "" {
		// PVE's setup writes them as root's, in a directory of root's own.
		ct.dirs["/root/.ssh"] = true
		ct.files["/root/.ssh/authorized_keys"] = File{Content: keys, Mode: 0o600, User: "0", Group: "0"}
	}
	s.cts[vmid] = ct
	return s.startTask("vzcreate", strconv.Itoa(vmid), func(ok bool) {
		if ok {
			delete(ct.Config, "lock")
		} else {
			delete(s.cts, vmid) // PVE cleans up after a failed create
		}
	}), nil
}

// numeric are the config options PVE sends as JSON numbers.
var numeric = []string{"cores", "memory", "swap", "unprivileged", "cpuunits", "onboot", "tty", "console", "protection"}

func (s *Server) getConfig(r *http.Request, f url.Values) (any, *pveError) {
	ct, perr := s.ct(r)
	if perr != nil {
		return nil, perr
	}
	conf := maps.Clone(ct.Config)
	if f.Get("current") != "1" {
		// Without current=1 PVE shows the pending values.
		for k, v := range ct.Pending {
			if v == "" {
				delete(conf, k)
			} else {
				conf[k] = v
			}
		}
	}
	out := map[string]any{}
	for k, v := range conf {
		if n, err := strconv.Atoi(v); err == nil && slices.Contains(numeric, k) {
			out[k] = n
		} else {
			out[k] = v
		}
	}
	sum := sha1.Sum([]byte(fmt.Sprint(ct.Config)))
	out["digest"] = hex.EncodeToString(sum[:])
	return out, nil
}

// rootOnly is PVE's answer to a token that passes devN: only root@pam
// (a ticket, or pct on the node) may configure device passthrough.
func rootOnly(f url.Values) *pveError {
	for k := range f {
		if indexedRE.MatchString(k) && strings.HasPrefix(k, "dev") {
			return fail(http.StatusForbidden, "Permission check failed (configuring device passthrough is only allowed for root@pam)")
		}
	}
	return nil
}

func (s *Server) putConfig(r *http.Request, f url.Values) (any, *pveError) {
	ct, perr := s.ct(r)
	if perr != nil {
		return nil, perr
	}
	if perr := rootOnly(f); perr != nil {
		return nil, perr
	}
	return nil, s.applyConfig(ct, f)
}

// applyConfig changes a CT's config as PUT .../config and pct set do.
func (s *Server) applyConfig(ct *CT, f url.Values) *pveError {
	if l := ct.Config["lock"]; l != "" {
		return fail(500, "CT is locked (%s)", l)
	}
	// A running CT takes devices, mount points and the root disk at its
	// next start; PVE writes the rest (cores, memory) to its cgroup at once.
	pending := func(k string) bool {
		return ct.Status == "running" && (strings.HasPrefix(k, "dev") || strings.HasPrefix(k, "mp") || k == "rootfs")
	}
	set := func(k, v string) {
		if pending(k) {
			if ct.Pending == nil {
				ct.Pending = map[string]string{}
			}
			ct.Pending[k] = v
		} else if v == "" {
			delete(ct.Config, k)
		} else {
			ct.Config[k] = v
		}
	}
	for _, k := range strings.FieldsFunc(f.Get("delete"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		if f.Has(k) {
			return badParams(map[string]string{k: "unable to delete and set the same option"})
		}
		set(k, "")
	}
	for k, v := range f {
		if k != "delete" && k != "digest" && k != "revert" {
			set(k, v[0])
		}
	}
	return nil
}

func (s *Server) ctStatus(r *http.Request, _ url.Values) (any, *pveError) {
	ct, perr := s.ct(r)
	if perr != nil {
		return nil, perr
	}
	return map[string]any{"vmid": ct.VMID, "status": ct.Status, "name": ct.Config["hostname"], "type": "lxc"}, nil
}

func (s *Server) startCT(r *http.Request, _ url.Values) (any, *pveError) {
	ct, perr := s.ct(r)
	if perr != nil {
		return nil, perr
	}
	if ct.Status == "running" {
		return nil, fail(500, "CT %d already running", ct.VMID)
	}
	if l := ct.Config["lock"]; l != "" {
		return nil, fail(500, "CT is locked (%s)", l)
	}
	id := strconv.Itoa(ct.VMID)
	upid := s.startTask("vzstart", id, func(ok bool) {
		if ok {
			for k, v := range ct.Pending {
				if v == "" {
					delete(ct.Config, k)
				} else {
					ct.Config[k] = v
				}
			}
			ct.Pending = nil
			ct.Status = "running"
		}
	})
	// lxc-start fails on a device node the host lacks.
	for k, v := range ct.Config {
		if strings.HasPrefix(k, "dev") {
			p, _, _ := strings.Cut(strings.TrimPrefix(v, "path="), ",")
			if !slices.Contains(s.devices, p) {
				s.tasks[upid].exit = fmt.Sprintf("startup for container '%s' failed: Device %s does not exist", id, p)
			}
		}
	}
	return upid, nil
}

func (s *Server) stopCT(r *http.Request, _ url.Values) (any, *pveError) {
	ct, perr := s.ct(r)
	if perr != nil {
		return nil, perr
	}
	if ct.Status != "running" {
		return nil, fail(500, "CT %d not running", ct.VMID)
	}
	return s.startTask("vzstop", strconv.Itoa(ct.VMID), func(ok bool) {
		if ok {
			ct.Status = "stopped"
		}
	}), nil
}

func (s *Server) destroyCT(r *http.Request, _ url.Values) (any, *pveError) {
	ct, perr := s.ct(r)
	if perr != nil {
		return nil, perr
	}
	if ct.Status == "running" {
		return nil, fail(500, "unable to destroy CT %d - container is running", ct.VMID)
	}
	if l := ct.Config["lock"]; l != "" {
		return nil, fail(500, "CT is locked (%s)", l)
	}
	return s.startTask("vzdestroy", strconv.Itoa(ct.VMID), func(ok bool) {
		if ok {
			delete(s.cts, ct.VMID)
			// PVE drops a destroyed guest's ACLs whatever purge says.
			path := "/vms/" + strconv.Itoa(ct.VMID)
			s.acls = slices.DeleteFunc(s.acls, func(a ACL) bool { return a.Path == path })
		}
	}), nil
}

func (s *Server) taskStatus(r *http.Request, _ url.Values) (any, *pveError) {
	if err := checkNode(r); err != nil {
		return nil, err
	}
	t, ok := s.tasks[r.PathValue("upid")]
	if !ok {
		return nil, fail(500, "no such task")
	}
	st := map[string]any{"upid": t.upid, "node": Node, "type": t.typ, "id": t.id, "user": TokenID, "status": "running"}
	if !t.done && t.polls > 0 {
		t.polls--
		return st, nil
	}
	if !t.done {
		t.done = true
		t.effect(t.exit == "OK")
	}
	st["status"], st["exitstatus"] = "stopped", t.exit
	return st, nil
}
