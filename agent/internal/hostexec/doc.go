// Package hostexec is the one seam through which the agent runs OS commands
// (nvidia-smi, useradd, systemctl, ...), and Host, the seam every enforcement
// mode and the reconciler reach the node through (root, runner, command names).
//
// Contract:
//   - A command is a program name and an argument list. Nothing is ever passed
//     through a shell, so no argument is ever interpreted: a username such as
//     "alice; rm -rf /" stays one literal argument. Callers still validate
//     names from the control plane before they get here.
//   - Run returns the command's complete stdout and stderr, and an error when
//     the command could not start, exited non-zero or was cancelled.
//   - A program that is not installed yields an error matching ErrNotFound
//     (errors.Is), so that callers can tell "absent" from "failed".
//
// Production code depends on the Runner interface; tests substitute
// hostexectest.Fake, so `go test ./...` never needs root, a GPU or any of the
// programs the agent drives.
package hostexec
