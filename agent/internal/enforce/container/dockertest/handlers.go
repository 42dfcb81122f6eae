package dockertest

// The endpoints, as the Engine API documents them.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var versioned = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path, version := r.URL.Path, ""
	if m := versioned.FindStringSubmatch(path); m != nil {
		version, path = m[1], m[2]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: path, Version: version, Query: r.URL.Query(), Body: body})

	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && path == "/_ping":
		w.Header().Set("Api-Version", s.APIVersion)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK"))
	case version == "":
		// The real engine serves unversioned paths too; this package
		// must not rely on it.
		fail(w, http.StatusBadRequest, "dockertest: request without an API version prefix")
	case r.Method == http.MethodPost && path == "/containers/create":
		s.create(w, r.URL.Query().Get("name"), body)
	case r.Method == http.MethodGet && path == "/containers/json":
		s.list(w, r.URL.Query())
	case r.Method == http.MethodPost && path == "/images/create":
		s.pull(w, r.URL.Query())
	case len(parts) == 3 && parts[0] == "containers" && r.Method == http.MethodPost && parts[2] == "start":
		s.start(w, parts[1])
	case len(parts) == 3 && parts[0] == "containers" && r.Method == http.MethodGet && parts[2] == "json":
		s.inspect(w, parts[1])
	case len(parts) == 2 && parts[0] == "containers" && r.Method == http.MethodDelete:
		s.remove(w, parts[1], r.URL.Query().Get("force") == "true" || r.URL.Query().Get("force") == "1")
	default:
		fail(w, http.StatusNotFound, "page not found")
	}
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// find looks a container up by name or id, as the engine does.
func (s *Server) find(ref string) *Container {
	if c, ok := s.containers[ref]; ok {
		return c
	}
	for _, c := range s.containers {
		if c.ID == ref {
			return c
		}
	}
	return nil
}

type createReq struct {
	Image      string
	Labels     map[string]string
	HostConfig map[string]json.RawMessage
}

func (s *Server) create(w http.ResponseWriter, name string, body []byte) {
	var req createReq
	if err := json.Unmarshal(body, &req); err != nil {
		fail(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if c, ok := s.containers[name]; ok && name != "" {
		fail(w, http.StatusConflict, fmt.Sprintf(`Conflict. The container name "/%s" is already in use by container "%s". You have to remove (or rename) that container to be able to reuse that name.`, name, c.ID))
		return
	}
	if !s.images[normalize(req.Image)] {
		fail(w, http.StatusNotFound, "No such image: "+normalize(req.Image))
		return
	}
	if s.DropDeviceRequests {
		delete(req.HostConfig, "DeviceRequests")
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if hc, ok := m["HostConfig"].(map[string]any); ok {
			delete(hc, "DeviceRequests")
		}
		body, _ = json.Marshal(m)
	}
	s.nextID++
	id := fmt.Sprintf("%064x", s.nextID)
	s.containers[name] = &Container{ID: id, Name: name, Body: body}
	writeJSON(w, http.StatusCreated, map[string]any{"Id": id, "Warnings": []string{}})
}

func (s *Server) start(w http.ResponseWriter, ref string) {
	c := s.find(ref)
	switch {
	case c == nil:
		fail(w, http.StatusNotFound, "No such container: "+ref)
	case c.Running:
		w.WriteHeader(http.StatusNotModified)
	case s.StartError != "":
		fail(w, http.StatusInternalServerError, s.StartError)
	default:
		c.Running = true
		// An engine-chosen port (HostPort "") is allocated at every start.
		c.HostPort = s.nextPort
		s.nextPort++
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) inspect(w http.ResponseWriter, ref string) {
	c := s.find(ref)
	if c == nil {
		fail(w, http.StatusNotFound, "No such container: "+ref)
		return
	}
	var req map[string]json.RawMessage
	_ = json.Unmarshal(c.Body, &req)
	status := "created"
	if c.Running {
		status = "running"
	} else if c.HostPort != 0 {
		status = "exited"
	}
	ports := map[string][]map[string]string{}
	if c.Running {
		ports["22/tcp"] = []map[string]string{{"HostIp": "127.0.0.1", "HostPort": strconv.Itoa(c.HostPort)}}
	}
	var hc json.RawMessage = []byte("{}")
	if v, ok := req["HostConfig"]; ok {
		hc = v
	}
	delete(req, "HostConfig") // the rest is the container's Config
	writeJSON(w, http.StatusOK, map[string]any{
		"Id":   c.ID,
		"Name": "/" + c.Name,
		"State": map[string]any{
			"Status": status, "Running": c.Running, "ExitCode": 0, "Error": "",
		},
		"Config":          req,
		"HostConfig":      hc,
		"NetworkSettings": map[string]any{"Ports": ports},
	})
}

func (s *Server) remove(w http.ResponseWriter, ref string, force bool) {
	c := s.find(ref)
	switch {
	case c == nil:
		fail(w, http.StatusNotFound, "No such container: "+ref)
	case c.Running && !force:
		fail(w, http.StatusConflict, "cannot remove container \"/"+c.Name+"\": container is running: stop the container before removing or force remove")
	default:
		delete(s.containers, c.Name)
		w.WriteHeader(http.StatusNoContent)
	}
}

// list implements GET /containers/json with all and the label filter
// ("key" or "key=value").
func (s *Server) list(w http.ResponseWriter, q url.Values) {
	var filters map[string][]string
	if f := q.Get("filters"); f != "" {
		if err := json.Unmarshal([]byte(f), &filters); err != nil {
			fail(w, http.StatusBadRequest, "invalid filter: "+err.Error())
			return
		}
	}
	all := q.Get("all") == "true" || q.Get("all") == "1"
	out := []map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(s.containers)) {
		c := s.containers[name]
		var req createReq
		_ = json.Unmarshal(c.Body, &req)
		if (!all && !c.Running) || !matches(req.Labels, filters["label"]) {
			continue
		}
		state, ports := "created", []map[string]any{}
		if c.Running {
			state = "running"
			ports = append(ports, map[string]any{"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": c.HostPort, "Type": "tcp"})
		} else if c.HostPort != 0 {
			state = "exited"
		}
		out = append(out, map[string]any{
			"Id": c.ID, "Names": []string{"/" + name}, "Image": req.Image,
			"Labels": req.Labels, "State": state, "Ports": ports,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func matches(labels map[string]string, want []string) bool {
	for _, f := range want {
		k, v, hasValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// pull implements POST /images/create?fromImage=&tag=: a progress stream of
// JSON lines, ending in an error line when the pull fails midway.
func (s *Server) pull(w http.ResponseWriter, q url.Values) {
	from, tag := q.Get("fromImage"), q.Get("tag")
	if from == "" {
		fail(w, http.StatusBadRequest, "fromImage is required")
		return
	}
	if tag == "" && !strings.Contains(from, "@") {
		// The engine would pull every tag; no caller should ask that.
		fail(w, http.StatusBadRequest, "dockertest: pull without a tag pulls every tag")
		return
	}
	if s.PullError != "" && !s.PullErrorInStream {
		fail(w, http.StatusNotFound, s.PullError)
		return
	}
	ref := from
	if tag != "" {
		ref += ":" + tag
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]string{"status": "Pulling from " + from, "id": tag})
	if s.PullError != "" {
		_ = enc.Encode(map[string]any{"errorDetail": map[string]string{"message": s.PullError}, "error": s.PullError})
		return
	}
	s.images[ref] = true
	_ = enc.Encode(map[string]string{"status": "Status: Downloaded newer image for " + ref})
}
