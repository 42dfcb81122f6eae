// Package reconcile makes a node's local Linux accounts and SSH keys match
// the assignments the control plane sent in its last heartbeat reply.
//
// Contract of Reconciler.Apply:
//   - The desired list is complete: a managed account that no assignment
//     names any more loses its access.
//   - It is idempotent: a second Apply with the same input runs no command
//     and writes no file.
//   - Every name and key from the control plane is validated before anything
//     on the host is touched, and every command runs through hostexec with an
//     argument list, never a shell.
//   - It never touches an account it did not create. Accounts it creates
//     carry the marker "gpulab-managed" at the start of their GECOS comment
//     (useradd refuses a ':' there, so the marker is followed by a space, not
//     a colon). An assignment naming an existing account without the marker
//     fails and that account is left exactly as it was.
//
// What Apply does:
//   - For each username named by a valid, unexpired assignment: create the
//     account if it is missing (useradd --create-home --shell /bin/bash
//     --comment "gpulab-managed ..." --user-group; no password is set, so the
//     password is locked ("!") and only key login works; the new home then
//     gets mode 0700 on its descriptor, as useradd under login.defs' usual
//     UMASK 022 makes it 0755, readable by every other tenant), undo an earlier
//     lock, apply each assignment's enforcement (package enforce, chosen by
//     the assignment's mode), and only then write ~/.ssh/authorized_keys with
//     the union of the keys of the assignments whose enforcement was applied.
//     Keys are the grant of access, so they come last: an assignment whose
//     enforcement fails is FAILED and gives no access.
//   - A mode this agent does not know fails validation before the host is
//     touched: no account is created for it. A mode the host cannot enforce
//     (cgroup without systemd, say) fails at Apply with the enforcer's
//     reason, and the assignment grants no access. One account's
//     assignments on a node must share a mode (each mode's sshd drop-in sets
//     the account's GPUs, and sshd takes the first): the first by id wins,
//     the others fail saying so.
//   - Enforcement no assignment wants any more (revoked, expired, failed,
//     moved to another mode) is removed after the access is gone. Each
//     enforcer reports what the host holds, so a restarted agent removes
//     what an earlier run applied.
//   - For each managed account no valid assignment names: lock it (usermod
//     --lock --expiredate 1), kill its processes (pkill -KILL -u, run only
//     when /proc shows one), and empty its authorized_keys.
//
// Home policy on removal: by default the home is KEPT and the account stays,
// locked and expired. A revoked or expired assignment is often renewed, and
// a user's home holds work (checkpoints, datasets, code) that a revocation
// should not destroy; an admin can delete it deliberately. A locked account
// keeps its uid, so no later account can inherit the files. Config.RemoveHomes
// switches to userdel --remove after the lock and the kill.
//
// authorized_keys is written without following symlinks the user may have
// planted: the home, ~/.ssh and the file are opened with O_NOFOLLOW relative
// to each other's descriptors, the new content goes to a temporary file in
// ~/.ssh that is fsynced and renamed over the old one (rename replaces a
// symlink, it does not write through it), and ownership and modes (0700 for
// ~/.ssh, 0600 for the file) are set on descriptors, never on paths.
//
// Limits: the marker lives in the GECOS field, which chfn may let a user
// change on their own account; at worst such a user hands their own account
// to gpulab. Which assignments were applied before is kept in memory, so an
// agent restarted after a revocation still locks the account (it reads the
// host) but cannot report that assignment as REMOVED. The "!" password useradd sets
// blocks key login when sshd runs with UsePAM no (Debian and RHEL default to
// yes, where it does not).
package reconcile
