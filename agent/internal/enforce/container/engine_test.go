package container

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/container/dockertest"
)

func TestWithoutAnEngineApplyFailsClearlyAndChangesNothing(t *testing.T) {
	h := newFakeHost(t)
	cfg := h.config()
	cfg.Socket = filepath.Join(t.TempDir(), "docker.sock") // nothing there
	e := New(h.host(), nil, cfg)
	ctx := context.Background()

	err := e.Apply(ctx, assignment("a-1", "alice"))
	want := "container enforcement needs a Docker-compatible engine API at " + cfg.Socket +
		" (Docker with the NVIDIA Container Toolkit, or Podman's socket); none found"
	if err == nil || err.Error() != want {
		t.Errorf("Apply error = %v\nwant %s", err, want)
	}
	if _, err := os.Stat(h.stateDir); !os.IsNotExist(err) {
		t.Errorf("state directory created (%v)", err)
	}
	if _, ok := h.dropIn("alice"); ok {
		t.Error("drop-in written")
	}
	if c := h.Take(); len(c) != 0 {
		t.Errorf("ran %q", c)
	}
	// A node without an engine has no container to list or remove: the
	// reconciler's every-heartbeat Applied must not fail there.
	if ids, err := e.Applied(ctx); err != nil || len(ids) != 0 {
		t.Errorf("Applied = %q, %v", ids, err)
	}
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Errorf("Remove: %v", err)
	}
}

func TestAnEngineThatDoesNotAnswerIsAClearError(t *testing.T) {
	h := newFakeHost(t)
	cfg := h.config()
	cfg.Socket = filepath.Join(t.TempDir(), "docker.sock")
	if err := os.WriteFile(cfg.Socket, nil, 0o600); err != nil { // a file, no listener
		t.Fatal(err)
	}
	e := New(h.host(), nil, cfg)
	err := e.Apply(context.Background(), assignment("a-1", "alice"))
	if err == nil || !strings.Contains(err.Error(), "needs a Docker-compatible engine API at "+cfg.Socket) ||
		!strings.Contains(err.Error(), "it does not answer") {
		t.Errorf("Apply error = %v", err)
	}
	if _, err := os.Stat(h.stateDir); !os.IsNotExist(err) {
		t.Errorf("state directory created (%v)", err)
	}
	if _, err := e.Applied(context.Background()); err == nil {
		t.Error("Applied succeeded against an engine that does not answer")
	}
}

func TestAMissingImageIsPulledByItsTagAndTheCreateRetried(t *testing.T) {
	h := newFakeHost(t, "some/other:1")
	if err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	reqs := dockertest.Mutating(h.docker.Requests())
	wantCalls(t, reqs, "POST /containers/create", "POST /images/create", "POST /containers/create", "POST /containers/gpulab-a-1/start")
	if q := reqs[1].Query; q.Get("fromImage") != "docker.io/nvidia/cuda" || q.Get("tag") != "12.6.3-base-ubuntu24.04" {
		t.Errorf("pull query = %v", q)
	}
	if !h.docker.HasImage(DefaultImage) {
		t.Error("image not pulled")
	}
}

func TestAFailedPullIsAClearErrorAndCreatesNothing(t *testing.T) {
	const msg = "pull access denied for docker.io/nvidia/cuda, repository does not exist or may require 'docker login'"
	for name, inStream := range map[string]bool{"refused": false, "failed midway": true} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t, "some/other:1")
			h.docker.PullError, h.docker.PullErrorInStream = msg, inStream
			err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice"))
			if err == nil || !strings.Contains(err.Error(), "image "+DefaultImage+" is not on this host and pulling it failed: "+msg) ||
				!strings.Contains(err.Error(), "allowed to pull") {
				t.Errorf("Apply error = %v", err)
			}
			if n := h.docker.Containers(); len(n) != 0 {
				t.Errorf("containers: %q", n)
			}
			if _, ok := h.dropIn("alice"); ok {
				t.Error("drop-in written: the user would get access to nothing")
			}
		})
	}
}

func TestTheEnginesMessageIsInTheError(t *testing.T) {
	h := newFakeHost(t)
	h.docker.StartError = `could not select device driver "nvidia" with capabilities: [[gpu]]`
	err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0}))
	want := `container enforcement: start container gpulab-a-1: engine says: could not select device driver "nvidia" with capabilities: [[gpu]] (HTTP 500)`
	if err == nil || err.Error() != want {
		t.Errorf("Apply error = %v\nwant %s", err, want)
	}
}

func TestAnEngineThatDropsTheGPURequestIsRefused(t *testing.T) {
	h := newFakeHost(t)
	h.docker.DropDeviceRequests = true
	err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0}))
	if err == nil || !strings.Contains(err.Error(), "NVIDIA Container Toolkit") || !strings.Contains(err.Error(), uuid0) {
		t.Errorf("Apply error = %v", err)
	}
	if _, ok := h.dropIn("alice"); ok {
		t.Error("drop-in written for a container without its GPUs")
	}
}

func TestTheAPIVersionIsNegotiated(t *testing.T) {
	cases := map[string]string{
		"1.52": newestAPI, // Docker 29: its newest is too new for us, its oldest (1.44) is below ours
		"1.41": "1.41",    // Podman's compatible API
		"":     fallbackAPI,
	}
	for offered, want := range cases {
		t.Run(offered, func(t *testing.T) {
			h := newFakeHost(t)
			h.docker.APIVersion = offered
			if err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice")); err != nil {
				t.Fatal(err)
			}
			for _, r := range h.docker.Requests()[1:] {
				if r.Version != want {
					t.Errorf("%s at %q, want %s", r, r.Version, want)
				}
			}
		})
	}
	h := newFakeHost(t)
	h.docker.APIVersion = "1.39"
	err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice"))
	if err == nil || !strings.Contains(err.Error(), "GPU device requests need 1.40") {
		t.Errorf("Apply against API 1.39: %v", err)
	}
}

func TestSplitImage(t *testing.T) {
	for ref, want := range map[string][2]string{
		"docker.io/nvidia/cuda:12.6.3-base-ubuntu24.04": {"docker.io/nvidia/cuda", "12.6.3-base-ubuntu24.04"},
		"ubuntu":                                {"ubuntu", "latest"},
		"registry:5000/team/img":                {"registry:5000/team/img", "latest"},
		"registry:5000/team/img:v2":             {"registry:5000/team/img", "v2"},
		"img@sha256:" + strings.Repeat("a", 64): {"img@sha256:" + strings.Repeat("a", 64), ""},
	} {
		if f, tag := splitImage(ref); f != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q; want %q", ref, f, tag, want)
		}
	}
}

func TestTheDropInMakesTheAccountAJumpHostToTheUsersContainers(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	for _, id := range []string{"a-1", "a-2"} {
		if err := e.Apply(ctx, assignment(id, "alice", enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Apply(ctx, assignment("c-1", "carol")); err != nil {
		t.Fatal(err)
	}
	d, _ := h.dropIn("alice")
	want := []string{
		"Match User alice",
		"\tSetEnv CUDA_VISIBLE_DEVICES=",
		"\tAllowTcpForwarding local",
		"\tPermitOpen 127.0.0.1:32768 127.0.0.1:32769",
		"\tAllowAgentForwarding no",
		"\tAllowStreamLocalForwarding no",
		"\tPermitTunnel no",
		"\tPermitTTY no",
		"\tX11Forwarding no",
		"\tPermitUserRC no",
		"\tForceCommand echo 'gpulab: this account only forwards to your GPU container - connect with: ssh -J alice@THIS-HOST -p PORT root@127.0.0.1 - PORT is one of 32768 32769'",
		"Match all",
	}
	if !strings.Contains(d, strings.Join(want, "\n")+"\n") {
		t.Errorf("alice's drop-in =\n%s\nwant it to hold\n%s", d, strings.Join(want, "\n"))
	}
	// Carol's container is not alice's to reach, and the reverse.
	if c, _ := h.dropIn("carol"); !strings.Contains(c, "\tPermitOpen 127.0.0.1:32770\n") || strings.Contains(d, "32770") {
		t.Errorf("carol's drop-in =\n%s", c)
	}
	safe := regexp.MustCompile(`(?m)^\tForceCommand echo '[A-Za-z0-9 .:@-]*'$`)
	if !safe.MatchString(d) {
		t.Error("ForceCommand holds characters a shell could interpret")
	}

	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	d, _ = h.dropIn("alice")
	if !strings.Contains(d, "\tPermitOpen 127.0.0.1:32769\n") ||
		!strings.Contains(d, "ssh -J alice@THIS-HOST -p 32769 root@127.0.0.1'\n") {
		t.Errorf("after removing a-1 alice's drop-in =\n%s", d)
	}
	if got, _ := e.Applied(ctx); !slices.Equal(got, []string{"a-2", "c-1"}) {
		t.Errorf("Applied = %q", got)
	}
}
