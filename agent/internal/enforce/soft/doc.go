// Package soft is the "soft" enforcement mode: every SSH session of an
// assignment's user sees exactly the assigned GPUs, through
// CUDA_VISIBLE_DEVICES set to their UUIDs by an sshd drop-in (package sshd
// says how, and what the host needs). It is a convention, not a limit: the
// user can unset or change the variable (export, env -u, their own
// ~/.pam_environment where PAM reads it) and reach every GPU of the node, and
// tools that do not use CUDA's device list (nvidia-smi, NVML) show all GPUs.
// CPU and RAM shares are not enforced at all in this mode.
package soft
