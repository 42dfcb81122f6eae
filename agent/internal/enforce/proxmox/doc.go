// Package proxmox enforces assignments on a Proxmox VE node (node type
// "proxmox") through PVE's REST API: each assignment gets an LXC container
// (CT) of its own with exactly its GPUs passed through, and a PVE user who
// may use that CT. Client is the API client (API token, form-encoded
// requests, {"data": ...} answers, typed errors, WaitTask polling tasks by
// UPID); Enforcer is the enforce.Enforcer for the "container" mode on
// Proxmox nodes; pvetest is a fake PVE API for tests.
//
// What it guarantees. The CT is the isolation boundary. The user logs in
// as root of an unprivileged CT (root there is an unprivileged uid on the
// host), by exactly the assignment's SSH keys: the create writes them
// (ssh-public-keys), and when they change Apply replaces root's
// /root/.ssh/authorized_keys in the running CT (`pct push`, mode 0600,
// owned by root; /root/.ssh made 0700 if missing), so a removed key stops
// logging in and a new one starts; no key at all leaves the file empty.
// The description line "gpulab-keys <sha256>" records the digest of the
// file's content (the keys, one a line), written only after the push, so
// unchanged keys cost no call and an interrupted change is redone; a CT
// without the line (an older agent's) gets its keys pushed once. The CT holds
// exactly the assigned GPUs' /dev/nvidiaN plus /dev/nvidiactl,
// /dev/nvidia-uvm and /dev/nvidia-uvm-tools (dev0, dev1, ... options; none
// at all without a GPU); the devices cgroup PVE sets up denies every other
// GPU, whatever the user does inside. Cores and memory are PVE's cgroup
// limits ("cores", "memory"); an assignment without a RAM grant gets
// default_memory_mb, or the node's total memory when that is 0. A changed
// assignment is applied to the same CT (PUT .../config, pct set), not by
// recreating it, so the user's files survive a change of GPUs: cores and
// memory take effect at once, and a change of devices stops and starts the
// CT, because a running CT takes devices only when it starts and a GPU
// taken away must be gone now. The config is read with current=1, so a
// device change left pending (an agent that died before the restart) is
// seen and finished. Idempotent: Apply reads (users, CTs, their
// current config, ACLs) and writes only what differs; a host already right
// sees no mutating call. Remove stops and destroys the CT (purge=1, which
// also drops its ACLs) and deletes the PVE user unless another CT of this
// node or an ACL elsewhere in the cluster (users are cluster-wide) still
// uses it.
//
// What is the agent's. A CT is the agent's only if it has the tag "gpulab"
// and a description line "gpulab-assignment <id>" (the next line names the
// user); a PVE user only if its comment contains "managed by gpulab-agent".
// Nothing else is ever changed or deleted: Apply refuses, changing
// nothing, when <user>@pve exists without the marker. Applied lists the
// ids of the marked CTs of this node, read from PVE.
//
// What it does not do. The CT's root can change anything inside it,
// including its network identity on the bridge (use PVE's firewall or a
// VLAN to fence CTs), and its own authorized_keys: the agent rewrites that
// file only when the assignment's keys change, not when the user edits it
// (a key the user adds there logs in until the next change). The PVE user has
// no password: it records ownership and gets PVEVMUser on /vms/<vmid>, so
// an admin who sets a password (pveum passwd) gives it console and power
// control in PVE's GUI. QEMU VMs are not made. An agent restarted while
// PVE creates a CT may not recognize it until the create task ends (the
// marker is written with the config); within one agent run a second create
// is prevented. A Remove cut short after the CT is destroyed leaves the PVE
// user (without ACLs, so without access).
//
// Devices and key changes go through pct, not the API: PVE lets only
// root@pam configure device passthrough ("configuring device passthrough
// is only allowed for root@pam", 403, to any API token, root@pam's own
// included), and the API has no call that writes a file into a CT; pct,
// run by the agent on the node as root, does both. Everything else uses
// the token, so the token itself never holds that power. The keys reach
// pct push through a temporary file (mode 0600, Config.TempDir), removed
// after the push.
//
// What the host needs. Proxmox VE 8.1 or later (the devN options), the
// agent running as root on the PVE node itself (pct). An API token, in
// /etc/gpulab/proxmox.json (mode 0600), with these privileges (with
// privilege separation, the token's own): VM.Allocate, VM.Audit,
// VM.Config.CPU, VM.Config.Memory, VM.Config.Disk, VM.Config.Network,
// VM.Config.Options, VM.PowerMgmt on /vms; Datastore.AllocateSpace on the
// rootfs storage and Datastore.AllocateTemplate (or Datastore.Audit) on the
// template's storage; SDN.Use on the bridge (PVE 8 checks it for vmbrN);
// Sys.Audit on /nodes/<node> (the node's memory, and to list users);
// User.Modify on /access/groups (create and delete users) and
// Permissions.Modify on /vms (ACLs). The NVIDIA driver loaded on the host
// with its device nodes present from boot (nvidia-uvm too:
// nvidia-persistenced, or `nvidia-modprobe -u -c=0`; a missing node fails
// the CT's start), the CT template downloaded (`pveam download`), and in
// that template the NVIDIA user-space libraries of the host's driver
// version (the .run installer's --no-kernel-module), without which CUDA in
// the CT finds no driver.
package proxmox
