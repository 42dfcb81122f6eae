// Package container is the "container" enforcement mode: each assignment
// gets its own container, gpulab-<assignment id>, with exactly the assigned
// GPUs passed through and its CPU and memory share as the engine's cgroup
// limits, reachable over SSH with the user's own keys.
//
// # How the user gets in
//
// The container runs sshd, published on 127.0.0.1 only, on a port the
// engine chooses. The user's host account (created by the reconciler, with
// the same keys) becomes a jump host and nothing more: an sshd drop-in,
// /etc/ssh/sshd_config.d/10-gpulab-container-<user>.conf, written by the
// package sshd's DropIns with mode "container", says for that user
//
//	AllowTcpForwarding local
//	PermitOpen 127.0.0.1:<port of each of the user's containers>
//	PermitTTY no, X11Forwarding no, no agent, socket or tunnel forwarding
//	ForceCommand echo '<how to connect>'
//	SetEnv CUDA_VISIBLE_DEVICES=   (the account itself sees no GPU)
//
// and the user connects with
//
//	ssh -J <user>@<node> -p <port> root@127.0.0.1
//
// (the node's address as they reach it; exactly 127.0.0.1, which is what
// PermitOpen allows). A plain `ssh <user>@<node>` prints that line. The
// ports are read from the engine at every Apply, so a port that changed
// when the engine restarted a container is in the drop-in within one
// heartbeat. The Enforcer is an enforce.AccessPorter: the reconciler reports
// each applied assignment's port (AppliedAssignment.access_port), and the
// control plane's SSH config names it (ProxyJump through the node).
//
// # What it guarantees
//
//   - The container sees exactly the assigned GPUs, by UUID: they are
//     requested from the NVIDIA Container Toolkit (DeviceRequests, driver
//     "nvidia"), whose device cgroup keeps every other GPU out, and
//     NVIDIA_VISIBLE_DEVICES is set to the same UUIDs ("void" without GPUs)
//     so that an image's own "all" cannot widen it where nvidia is the
//     default runtime. Apply checks that the engine kept the request and
//     fails otherwise, rather than run a container without its GPUs.
//   - CPUs (NanoCpus, a CFS quota: CPUs×1e9) and memory (Memory, with no
//     swap on top) are limits enforced by the engine's cgroups; 0 means
//     none. /dev/shm is half the memory (8 GiB without a limit) and counts
//     against it.
//   - The user is root inside the container only: not privileged, MKNOD and
//     NET_RAW dropped, no-new-privileges, no engine socket inside. sshd
//     accepts public keys only, from the assignment's keys, which a key
//     change rewrites in place (StateDir/<id>/authorized_keys, mounted
//     read-only) without touching the container.
//   - The container changes only when the assignment does: its creation
//     request is hashed into the gpulab.spec label, and a different hash
//     (GPUs, limits, image, user) replaces the container. A repeated Apply
//     sends the engine no mutating request.
//
// # What it does not
//
//   - The container's own files live as long as the container: a changed
//     assignment, or a Remove, deletes them. There is no persistent volume.
//   - sshd's host keys are generated in each new container, so a recreated
//     container (or another one on a reused port) shows the client a new
//     host key for [127.0.0.1]:<port>.
//   - Network egress from the container is the engine's default bridge, not
//     limited. Disk, I/O and process count are not limited.
//   - A user cannot hold a container assignment and a soft, cgroup or mig one
//     on the same node: the jump-only drop-in would shadow the other mode's.
//
// # What it needs on the host
//
//   - A Docker-compatible engine API on a unix socket: Docker's
//     /var/run/docker.sock, or else Podman's /run/podman/podman.sock
//     (Config.Socket overrides), answering /_ping with API 1.40 or later.
//     Without one every Apply fails with "container enforcement needs a
//     Docker-compatible engine API at ...; none found" and changes nothing.
//   - The NVIDIA Container Toolkit configured for that engine (nvidia-ctk
//     runtime configure; for Podman, CDI and an API that honours
//     DeviceRequests), or a start fails with the engine's "could not select
//     device driver" message.
//   - cgroup v2 (or v1) with the cpu and memory controllers, which the
//     engine needs for the limits.
//   - The image (DefaultImage, NVIDIA's CUDA base image, unless
//     Config.Image says otherwise) on the host or pullable from it: a
//     missing one is pulled once, and a failed pull is reported. It needs
//     /bin/sh, and /usr/sbin/sshd or apt-get (the default image installs
//     openssh-server on its first start, which needs network access and
//     takes a minute; an image with sshd built in avoids both).
//   - What package sshd needs for the drop-in: OpenSSH 7.8 or later with
//     sshd_config.d included, sshd under systemd.
package container
