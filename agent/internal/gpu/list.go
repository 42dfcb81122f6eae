package gpu

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	// "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16)"
	listGPU = regexp.MustCompile(`^GPU \d+: .* \(UUID: (GPU-[^)\s]+)\)$`)
	// "MIG 1g.10gb     Device  0: (UUID: MIG-feb88891-0321-5fef-9c87-d4af3b54259e)",
	// indented under its GPU; drivers before R470 printed one space between
	// the words and "MIG-GPU-<gpu uuid>/<gi>/<ci>" as the UUID.
	listMIG = regexp.MustCompile(`^MIG (\S+) +Device +(\d+): \(UUID: (MIG-[^)\s]+)\)$`)
)

// ParseList parses the output of `nvidia-smi -L` (ListArgs) into the MIG
// devices of each GPU, keyed by GPU UUID. A GPU without MIG devices has no
// entry. A line that is neither a GPU nor a MIG device is an error, so that
// a change of format is noticed rather than read as "no MIG devices".
func ParseList(out []byte) (map[string][]MIGDevice, error) {
	devices := make(map[string][]MIGDevice)
	gpu := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if m := listGPU.FindStringSubmatch(line); m != nil {
			gpu = m[1]
			continue
		}
		m := listMIG.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: %q is neither a GPU nor a MIG device", n, line)
		}
		if gpu == "" {
			return nil, fmt.Errorf("line %d: MIG device %s before any GPU", n, m[3])
		}
		index, err := strconv.Atoi(m[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: MIG device index %q: %w", n, m[2], err)
		}
		devices[gpu] = append(devices[gpu], MIGDevice{Index: index, Profile: m[1], UUID: m[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read nvidia-smi -L output: %w", err)
	}
	return devices, nil
}
