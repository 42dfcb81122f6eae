// Package mig is the "mig" enforcement mode: on each GPU of an assignment
// it creates one Multi-Instance GPU instance of the requested profile (a GPU
// instance with its default compute instance, "nvidia-smi mig -cgi <profile>
// -C"), makes those MIG devices the only CUDA devices of the user's SSH
// sessions, and destroys them when the assignment goes.
//
// What it guarantees. The MIG partition is hardware: an instance has its own
// streaming multiprocessors, L2 cache slices, memory controllers and DRAM,
// so a program on it cannot use, or slow down through, the compute or
// memory of another instance (NVIDIA MIG User Guide, "Concepts"). A user
// sharing a GPU with other assignments, each on its own instance, gets the
// memory and SMs of the profile and no more. Sessions see the instances
// through CUDA_VISIBLE_DEVICES=MIG-<uuid>,... set by an sshd drop-in,
// /etc/ssh/sshd_config.d/10-gpulab-mig-<user>.conf, exactly as in the soft
// mode (package sshd's DropIns, mode "mig"), with the MIG devices sorted by the index
// of their GPU.
//
// What it does not guarantee. Which instance a process runs on is chosen by
// CUDA_VISIBLE_DEVICES alone, and that is a convention, as in the soft mode:
// a user who unsets or changes it reaches every MIG device of the node,
// other users' included, because nothing stops a process from opening
// another instance's device files. A hard wall needs cgroup device rules
// that deny the /dev/nvidia-caps/nvidia-cap<N> capability files of the
// other instances (and so a cgroup per session); this package does not set
// them. CPU and RAM shares are not enforced either. Processes already running
// keep the devices they opened.
//
// What the host needs: an NVIDIA driver R470 or later with nvidia-smi (MIG
// device UUIDs of the MIG-<uuid> form; older drivers print
// MIG-GPU-<uuid>/<gi>/<ci>, which is refused), MIG-capable GPUs (A100, A30,
// H100, H200 and later) with MIG mode enabled by an admin beforehand
// (`nvidia-smi -i N -mig 1` and a GPU reset; the agent never switches modes,
// which needs an idle GPU and a reset), the agent running as root (creating
// instances needs it), and what the soft mode needs for sshd (an sshd that
// includes /etc/ssh/sshd_config.d/*.conf, OpenSSH 7.8+, systemd). Apply
// refuses, before it changes anything, when nvidia-smi is missing, when a
// GPU is absent, not MIG-capable or not in MIG mode, when the GPU does not
// offer the profile, or when the GPU reports no free room for it.
//
// Profiles: Assignment.MIGProfile names a GPU-instance profile as nvidia-smi
// prints it ("1g.10gb", "3g.40gb", "1g.10gb+me"); empty means the largest
// the GPU offers (most compute slices, then most memory: 7g.40gb on an A100
// 40GB, 7g.80gb on an H100), the whole GPU behind a MIG boundary. Placement
// is left to the driver, which may refuse a profile that the free counts
// allow when the free slices are not contiguous; that failure is reported
// and what this Apply had created is destroyed again.
//
// State: nvidia-smi does not say who created an instance, so the enforcer
// records its own in /var/lib/gpulab/mig.json (StateFile, 0600, written
// atomically): per assignment, each instance's GPU UUID, GPU and compute
// instance ids, MIG device UUID and profile. An instance counts as present
// only while both its GPU instance (same id and profile, `nvidia-smi mig
// -lgi`) and its MIG device (`nvidia-smi -L`) exist, so a GPU instance that
// someone else created with a reused id after a GPU reset is never taken for
// ours. MIG instances do not survive a GPU reset or a reboot: Apply then
// creates them again (with new MIG UUIDs, and rewrites the drop-in); Remove
// finds them gone and succeeds. Instances created outside the enforcer (by
// an admin, or by another assignment) are never destroyed. An agent killed
// between nvidia-smi creating an instance and the state being written leaves
// that instance unrecorded: it then holds its GPU slices until an admin
// destroys it.
//
// Apply and Remove hold one mutex, so the MIG device an Apply created is the
// one `nvidia-smi -L` lists after and not before. Remove takes the drop-in
// away first, then destroys the compute and GPU instances; nvidia-smi refuses
// to while a process uses one ("In use by another client"), and the instance
// then stays recorded and Remove fails, to be retried by the next reconcile
// (which ends the user's processes first). Applied reads the state file and
// the drop-ins and runs no nvidia-smi, so that a hung driver or a node
// without GPUs does not fail every heartbeat.
package mig
