package enforce

import (
	"fmt"
	"regexp"
)

// The names from the control plane that reach the host: the reconciler
// validates them before any enforcer runs, and each enforcer checks them
// again with CheckNames, because it writes them where another program parses
// them (sshd drop-ins, unit files, container names, state directories), and
// a newline or a pattern character there would change what it reads.
var (
	// UsernameRE is the portable subset of useradd's NAME_REGEX: lower case,
	// a letter or '_' first, at most 32 characters (utmp's ut_user). It holds
	// none of sshd's pattern characters (* ? ! ,) either.
	UsernameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// AssignmentIDRE bounds assignment ids (UUIDs): no ':' or newline to
	// corrupt /etc/passwd's comment, a letter or digit first so that no id is
	// "." or ".." where it names a directory, or an option to a command.
	AssignmentIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// GPUUUIDRE and MIGUUIDRE are nvidia-smi's UUIDs of a board and of a MIG
	// device.
	GPUUUIDRE = regexp.MustCompile(`^GPU-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$`)
	MIGUUIDRE = regexp.MustCompile(`^MIG-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$`)
)

// CheckNames refuses a whose id, username or a GPU's UUID is not one of the
// above, naming mode in the error. A MIG device's UUID passes only when
// migDevices is set (the mig mode's own drop-in).
func CheckNames(mode string, a Assignment, migDevices bool) error {
	if !AssignmentIDRE.MatchString(a.ID) {
		return fmt.Errorf("%s enforcement: assignment id %.70q is not valid", mode, a.ID)
	}
	if !UsernameRE.MatchString(a.LinuxUsername) {
		return fmt.Errorf("%s enforcement: linux username %.40q is not valid", mode, a.LinuxUsername)
	}
	for _, g := range a.GPUs {
		switch {
		case GPUUUIDRE.MatchString(g.UUID):
		case migDevices && MIGUUIDRE.MatchString(g.UUID):
		case migDevices:
			return fmt.Errorf("%s enforcement: GPU %d has UUID %.60q, not GPU-<uuid> or MIG-<uuid> as nvidia-smi reports them", mode, g.Index, g.UUID)
		default:
			return fmt.Errorf("%s enforcement: GPU %d has UUID %.60q, not GPU-<uuid> as nvidia-smi reports a board", mode, g.Index, g.UUID)
		}
	}
	return nil
}
