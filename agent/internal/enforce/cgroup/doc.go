// Package cgroup is the "cgroup" enforcement mode: the assignment's user runs
// in a systemd slice whose CPU, memory and device access the kernel limits,
// and their sessions see the assigned GPUs through CUDA_VISIBLE_DEVICES as in
// the soft mode.
//
// Mechanism: a drop-in for the user's slice, written by the agent,
//
//	/etc/systemd/system/user-<uid>.slice.d/50-gpulab-cgroup.conf
//
//	[Slice]
//	CPUQuota=800%
//	MemoryMax=65536M
//	MemorySwapMax=0
//	DevicePolicy=closed
//	DeviceAllow=/dev/nvidiactl rw
//	DeviceAllow=/dev/nvidia-uvm rw
//	DeviceAllow=/dev/nvidia-uvm-tools rw
//	DeviceAllow=/dev/nvidia3 rw
//	...
//
// then `systemctl daemon-reload`. Each GPU's device node is found by its
// UUID in the driver's /proc/driver/nvidia/gpus/<bus id>/information
// ("Device Minor"), never from nvidia-smi's index: the two numberings differ
// on some hosts, and a rule built from the index would open another
// tenant's GPU. The node is looked up again at every Apply, so a reboot that
// renumbers the devices is followed. logind puts every session of the user
// (ssh, su, systemd --user and what it starts) under user-<uid>.slice, so the
// limits cover all of the user's processes, and systemd applies a changed
// drop-in of a running slice at the reload, not only at the next login. A
// user with several cgroup assignments on the node gets their sum (an
// assignment without a CPU or memory limit lifts that limit) and the union
// of their GPUs. The drop-in records each assignment in a comment line, so
// that Applied and Remove read the host, not the agent's memory.
//
// What it guarantees: the user's processes together use at most CPUs cores
// of CPU time (CPUQuota, CFS bandwidth) and RAMMB of memory (MemoryMax; swap
// off, so it cannot spill there; the kernel's OOM killer acts inside the
// slice); they can open no NVIDIA GPU device but the assigned /dev/nvidiaN
// (with the control, UVM devices CUDA needs): the kernel's cgroup device
// filter refuses the others with EPERM whatever the environment says, so
// unlike soft mode the user cannot reach another GPU by unsetting
// CUDA_VISIBLE_DEVICES. DevicePolicy=closed admits the pseudo devices
// (/dev/null, zero, full, random, urandom) and the agent adds terminals
// (/dev/pts, /dev/tty, /dev/ptmx); every other device node is refused too.
//
// What it does not: CPUQuota limits time, not which cores (no cpuset), and
// GPU memory and compute are the whole assigned GPU; two assignments never
// share a GPU because the control plane does not place them so. Processes
// of the user's that systemd places outside their slice are not limited,
// and that includes the user's own cron and at jobs on Debian and Ubuntu:
// their cron and atd run jobs through PAM's common-session-noninteractive,
// which has no pam_systemd (Debian registers it for interactive sessions
// only), so a job stays in cron.service's or atd.service's cgroup under
// system.slice, with every GPU device open to it. Where the cron daemon's
// PAM stack does call pam_systemd (Fedora and RHEL's cronie, through
// password-auth), a job is a logind session in the user's slice and is
// limited. `grep pam_systemd /etc/pam.d/cron* /etc/pam.d/atd` on the node
// tells which; where it finds nothing, deny the managed accounts cron and at
// (/etc/cron.allow and /etc/at.allow naming only the accounts that may use
// them). systemd --user units and timers run in the user's slice
// (user@<uid>.service is in it) and are limited.
//
// What the host needs: systemd as the init system (/run/systemd/system), the
// unified cgroup v2 hierarchy with the cpu and memory controllers (systemd
// 247+ defaults; on cgroup v1 boot with systemd.unified_cgroup_hierarchy=1),
// the NVIDIA driver's device nodes (/dev/nvidiaN), and the soft mode's needs
// (OpenSSH 7.8+ with sshd_config.d). Apply checks all of these first and
// fails with what is missing, touching nothing.
package cgroup
