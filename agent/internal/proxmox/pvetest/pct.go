package pvetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// Pct returns a hostexec.Runner standing in for the node's pct, which acts
// as root@pam and so may pass devices. Only "pct set <vmid> [--<option>
// <value>]... [--delete <list>]" is implemented, with PUT .../config's
// checks and effects; each call is recorded as a Request with Method "CLI"
// and Path "pct set <vmid>". Failures look like pct's: the message on
// stderr and exit status 255.
func (s *Server) Pct() hostexec.Runner { return pct{s} }

type pct struct{ s *Server }

var errExit = errors.New("exit status 255")

func (p pct) Run(_ context.Context, name string, args ...string) ([]byte, []byte, error) {
	if name != "pct" || len(args) < 2 || args[0] != "set" || len(args)%2 != 0 {
		return nil, []byte("fake pct: only 'pct set <vmid> --<option> <value>...' is implemented\n"), errExit
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
