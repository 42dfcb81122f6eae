// Package enforce keeps each assignment on this node within its share: one
// Enforcer per enforcement mode ("soft", "cgroup", "mig", "container", the
// values of the REST Environment.enforcement_mode), chosen by name from a
// Registry.
//
// Contract for every Enforcer:
//   - Apply is idempotent: calling it twice with the same assignment changes
//     nothing the second time, and calling it with a changed assignment
//     (fewer GPUs, less RAM) converges the node to the new one.
//   - Remove undoes everything Apply did for that assignment, and removing an
//     assignment that is not applied (never was, or already removed) succeeds.
//   - Applied reads the host, not the enforcer's memory, so that an agent
//     restarted after a crash still finds, and can remove, what an earlier
//     run applied.
//   - Every OS effect goes through the host seam every mode is given
//     (hostexec.Host: the root its paths are under, the Runner of its
//     commands, their names) or another seam the tests replace; an Enforcer
//     never trusts a name from the control plane unvalidated.
//
// The reconciler, not the Enforcer, decides what to apply and remove: it
// compares the heartbeat's desired assignments with Applied. It calls Apply
// once the assignment's account exists and before the account's SSH keys are
// written, so that an assignment whose enforcement fails grants no access.
//
// Implementations, each documenting what it guarantees and what it needs on
// the host, and refusing with what is missing when the host lacks it. Every
// one exposes the assigned GPUs to the user's SSH sessions through package
// sshd's drop-ins, and the modes package makes them all, over one host and
// one sshd.Server, detecting the kind of node:
//   - soft/: CUDA_VISIBLE_DEVICES for every SSH session of the user, by sshd
//     drop-in. A convention, not a limit.
//   - cgroup/: the user's systemd slice limited in CPU, memory and devices
//     (only the assigned /dev/nvidiaN), plus soft's variable.
//   - mig/: a MIG GPU instance of the requested profile per assigned GPU,
//     created and destroyed by nvidia-smi, exposed by its MIG UUID.
//   - container/: a container per assignment (Docker Engine API, NVIDIA
//     Container Toolkit) with the GPUs passed through, reached over SSH
//     through the user's host account as a jump host.
//   - proxmox/: on a Proxmox VE host, the container mode: an LXC per
//     assignment made through the PVE API.
package enforce
