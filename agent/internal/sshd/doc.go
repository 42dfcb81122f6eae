// Package sshd is how the agent changes the host's OpenSSH server: the
// drop-ins every enforcement mode writes so that each SSH session of an
// assignment's user sees exactly the assigned GPUs, their check by sshd
// itself, and sshd's reload. The modes compose it: soft is DropIns alone;
// cgroup, mig and container add their own limits around their own DropIns.
//
// Mechanism: one sshd drop-in per user and mode, /etc/ssh/sshd_config.d/
// 10-gpulab-<mode>-<user>.conf, holding
//
//	Match User <user>
//		SetEnv CUDA_VISIBLE_DEVICES=GPU-<uuid>,GPU-<uuid>
//	Match all
//
// sshd's SetEnv reaches every session of the user whatever it runs:
// interactive shells, non-interactive `ssh host cmd`, scp and sftp, any login
// shell, and it overrides what the client sends (AcceptEnv) or
// ~/.ssh/environment sets (sshd_config(5)). The alternatives fall short:
// /etc/profile.d only runs for login shells, so `ssh host cmd` misses it;
// pam_env's files are global (pam_env.conf, /etc/environment) or owned by the
// user (~/.pam_environment, deprecated and off by default since PAM 1.5); an
// environment="..." option in authorized_keys needs PermitUserEnvironment,
// which would let users set any variable (LD_PRELOAD included).
//
// UUIDs, not indexes: nvidia-smi indexes change when a GPU fails or the
// driver enumerates in another order, and an index would then expose another
// user's GPU; a UUID names one board. The variable holds the union of the
// GPUs of every assignment of the user in that mode, sorted by index; a user
// whose assignments hold no GPU gets CUDA_VISIBLE_DEVICES= (empty), which
// hides every GPU from CUDA. Each drop-in records its assignments' ids in
// comment lines, so that Applied reads the host, not memory.
//
// What the host needs: OpenSSH 7.8 or later (SetEnv), a main sshd_config that
// includes /etc/ssh/sshd_config.d/*.conf (Debian 11+, Ubuntu 20.04+, RHEL 9
// ship it), and an sshd the agent can reload (below). No earlier Match block
// may set SetEnv for the user: sshd takes the first SetEnv that matches, and
// a matching one replaces a global SetEnv.
//
// Every change is checked before sshd sees it (Server.Write): the drop-in is
// written atomically (temporary file, fsync, rename; the temporary name does
// not end in .conf, so sshd never reads a partial file), then `sshd -T -C
// user=...` must accept the whole configuration and print the expected
// SetEnv for the user. Otherwise the previous drop-in is put back and the
// write fails, so a broken configuration is never reloaded (on RHEL the
// reload is a bare SIGHUP, and sshd exits on a configuration it cannot
// parse). Then the listening sshd is reloaded: sshd hands its configuration
// to each new connection, so without the reload new sessions would not see
// the change. Sessions already open keep the environment they started with.
//
// Reload however sshd runs (reload.go), found out once, by the first reload
// that can, and logged ("will reload sshd ..."): on a host booted with
// systemd (/run/systemd/system exists) whose ssh.service or sshd.service is
// loaded, `systemctl try-reload-or-restart <unit>`; otherwise (no systemd: a
// container, a minimal or non-systemd distribution; or sshd not a unit)
// SIGHUP to the pid in sshd's PID file (the PidFile `sshd -T` prints, then
// /run/sshd.pid and /var/run/sshd.pid), read again on every reload and
// signalled only when /proc/<pid>/comm says it is sshd, so that a stale file
// never signals another process. When neither works, the change fails with
// why each did not, is put back, and the assignment that needed it is
// reported failed: it grants no access.
package sshd
