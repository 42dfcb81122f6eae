package pvetest

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// handler answers one endpoint with s.mu held: data for "data", or an error.
type handler func(r *http.Request, f url.Values) (any, *pveError)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, sc schema, h handler) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" /api2/json"+path, func(w http.ResponseWriter, r *http.Request) {
			form, perr := parseForm(r, sc)
			s.mu.Lock()
			s.requests = append(s.requests, Request{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, "/api2/json"), Form: form})
			var data any
			if perr == nil {
				data, perr = h(r, form)
			}
			hook := s.onRequest
			s.mu.Unlock()
			if hook != nil {
				hook(Request{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, "/api2/json"), Form: form})
			}
			if perr != nil {
				writeError(w, perr.code, perr.reason, perr.params, perr.code >= 500)
				return
			}
			writeData(w, data)
		})
	}
	handle("GET /access/users", schema{"enabled": optional(tBool), "full": optional(tBool)}, s.listUsers)
	handle("POST /access/users", schema{
		"userid": required(tPattern(userIDRE, "userid")), "comment": optional(tString(2048)),
		"email": optional(nil), "enable": optional(tBool), "expire": optional(tInt(0, 1<<62)),
		"firstname": optional(nil), "lastname": optional(nil), "groups": optional(nil), "keys": optional(nil),
		"password": optional(tString(64)),
	}, s.createUser)
	handle("DELETE /access/users/{userid}", schema{}, s.deleteUser)
	handle("GET /access/acl", schema{}, s.listACL)
	handle("PUT /access/acl", schema{
		"path": required(tPattern(aclPathRE, "ACL path")), "roles": required(nil), "users": optional(nil),
		"groups": optional(nil), "tokens": optional(nil), "propagate": optional(tBool), "delete": optional(tBool),
	}, s.updateACL)
	handle("GET /cluster/nextid", schema{"vmid": optional(vmidCheck)}, s.nextID)
	handle("GET /nodes/{node}/status", schema{}, s.nodeStatus)
	handle("GET /nodes/{node}/lxc", schema{}, s.listCTs)
	handle("POST /nodes/{node}/lxc", createSchema, s.createCT)
	handle("GET /nodes/{node}/lxc/{vmid}/config", schema{"current": optional(tBool), "snapshot": optional(nil)}, s.getConfig)
	handle("PUT /nodes/{node}/lxc/{vmid}/config", updateSchema, s.putConfig)
	handle("GET /nodes/{node}/lxc/{vmid}/status/current", schema{}, s.ctStatus)
	handle("POST /nodes/{node}/lxc/{vmid}/status/start", schema{"skiplock": optional(tBool), "debug": optional(tBool)}, s.startCT)
	handle("POST /nodes/{node}/lxc/{vmid}/status/stop", schema{"skiplock": optional(tBool), "overrule-shutdown": optional(tBool)}, s.stopCT)
	handle("DELETE /nodes/{node}/lxc/{vmid}", schema{
		"purge": optional(tBool), "force": optional(tBool), "destroy-unreferenced-disks": optional(tBool),
	}, s.destroyCT)
	handle("GET /nodes/{node}/tasks/{upid}/status", schema{}, s.taskStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, fmt.Sprintf("Method '%s %s' not implemented", r.Method, r.URL.Path), nil, true)
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// pveproxy answers 401 with the reason in the status line only.
		switch r.Header.Get("Authorization") {
		case "PVEAPIToken=" + TokenID + "=" + Secret:
			mux.ServeHTTP(w, r)
		case "":
			writeError(w, http.StatusUnauthorized, "No ticket", nil, false)
		default:
			writeError(w, http.StatusUnauthorized, "authentication failure", nil, false)
		}
	})
}

func (s *Server) listUsers(*http.Request, url.Values) (any, *pveError) {
	out := []map[string]any{}
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[id]
		m := map[string]any{"userid": u.UserID, "enable": 1, "expire": 0}
		if u.Comment != "" {
			m["comment"] = u.Comment
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *Server) createUser(_ *http.Request, f url.Values) (any, *pveError) {
	id := f.Get("userid")
	if _, ok := s.users[id]; ok {
		return nil, fail(500, "create user failed: user '%s' already exists", id)
	}
	s.users[id] = User{UserID: id, Comment: f.Get("comment")}
	return nil, nil
}

func (s *Server) deleteUser(r *http.Request, _ url.Values) (any, *pveError) {
	id := r.PathValue("userid")
	if _, ok := s.users[id]; !ok {
		return nil, fail(500, "delete user failed: no such user ('%s')", id)
	}
	delete(s.users, id)
	s.acls = slices.DeleteFunc(s.acls, func(a ACL) bool { return a.Type == "user" && a.UGID == id })
	return nil, nil
}

func (s *Server) listACL(*http.Request, url.Values) (any, *pveError) {
	out := []map[string]any{}
	for _, a := range s.acls {
		out = append(out, map[string]any{"path": a.Path, "roleid": a.RoleID, "type": a.Type, "ugid": a.UGID, "propagate": 1})
	}
	return out, nil
}

// builtinRoles are PVE's predefined roles.
var builtinRoles = []string{"Administrator", "NoAccess", "PVEAdmin", "PVEAuditor", "PVEDatastoreAdmin",
	"PVEDatastoreUser", "PVEPoolAdmin", "PVEPoolUser", "PVESysAdmin", "PVETemplateUser", "PVEUserAdmin",
	"PVEVMAdmin", "PVEVMUser"}

func (s *Server) updateACL(_ *http.Request, f url.Values) (any, *pveError) {
	if f.Get("groups") != "" || f.Get("tokens") != "" {
		return nil, fail(500, "fake PVE: only user ACLs are implemented")
	}
	var roles, users []string
	for _, r := range strings.Split(f.Get("roles"), ",") {
		if !slices.Contains(builtinRoles, r) {
			return nil, fail(500, "role '%s' does not exist", r)
		}
		roles = append(roles, r)
	}
	for _, u := range strings.FieldsFunc(f.Get("users"), func(r rune) bool { return r == ',' }) {
		if _, ok := s.users[u]; !ok {
			return nil, fail(500, "user '%s' does not exist", u)
		}
		users = append(users, u)
	}
	del := slices.Contains([]string{"1", "yes", "on", "true"}, strings.ToLower(f.Get("delete")))
	for _, u := range users {
		for _, role := range roles {
			a := ACL{Path: f.Get("path"), RoleID: role, Type: "user", UGID: u}
			s.acls = slices.DeleteFunc(s.acls, func(x ACL) bool { return x == a })
			if !del {
				s.acls = append(s.acls, a)
			}
		}
	}
	return nil, nil
}

func (s *Server) nextID(_ *http.Request, f url.Values) (any, *pveError) {
	if v := f.Get("vmid"); v != "" {
		n, _ := strconv.Atoi(v)
		if _, ok := s.cts[n]; ok {
			return nil, badParams(map[string]string{"vmid": fmt.Sprintf("VM %d already exists", n)})
		}
		return v, nil
	}
	for n := 100; ; n++ {
		if _, ok := s.cts[n]; !ok {
			return strconv.Itoa(n), nil // PVE sends this one as a string
		}
	}
}

func checkNode(r *http.Request) *pveError {
	if n := r.PathValue("node"); n != Node {
		return fail(500, "hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", n, n)
	}
	return nil
}

func (s *Server) nodeStatus(r *http.Request, _ url.Values) (any, *pveError) {
	if err := checkNode(r); err != nil {
		return nil, err
	}
	const total = 256 << 30
	return map[string]any{"memory": map[string]any{"total": total, "used": 8 << 30, "free": total - 8<<30}, "cpuinfo": map[string]any{"cpus": 64}}, nil
}

func (s *Server) listCTs(r *http.Request, _ url.Values) (any, *pveError) {
	if err := checkNode(r); err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, id := range slices.Sorted(maps.Keys(s.cts)) {
		ct := s.cts[id]
		m := map[string]any{"vmid": id, "status": ct.Status, "name": ct.Config["hostname"], "type": "lxc"}
		for _, k := range []string{"tags", "lock"} {
			if v, ok := ct.Config[k]; ok {
				m[k] = v
			}
		}
		out = append(out, m)
	}
	return out, nil
}
