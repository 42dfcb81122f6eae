package sysinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Paths under the root, without the leading "/" that fs.FS refuses.
const (
	cpuinfoPath = "proc/cpuinfo"
	meminfoPath = "proc/meminfo"
	onlinePath  = "sys/devices/system/cpu/online"
)

// Host is the root file system of the machine the agent runs on.
func Host() fs.FS { return os.DirFS("/") }

// CPU is the node's processor as the kernel reports it.
type CPU struct {
	// Model names the processor, e.g. "AMD EPYC 7763 64-Core Processor" or,
	// on Arm, the core ("ARM Neoverse-N1"); empty when nothing names it.
	Model string
	// Cores is the number of logical CPUs (hardware threads) online.
	Cores int
}

// ReadCPU reads the CPU model and the number of logical CPUs online from
// proc/cpuinfo, counting from sys/devices/system/cpu/online where cpuinfo
// has no "processor" entries (s390x numbers them differently).
func ReadCPU(root fs.FS) (CPU, error) {
	b, err := fs.ReadFile(root, cpuinfoPath)
	if err != nil {
		return CPU{}, fmt.Errorf("read CPU model: %w", err)
	}
	cpu := ParseCPUInfo(b)
	if cpu.Cores > 0 {
		return cpu, nil
	}
	online, err := fs.ReadFile(root, onlinePath)
	if err != nil {
		return cpu, fmt.Errorf("count CPUs: %s has no processor entries and: %w", cpuinfoPath, err)
	}
	if cpu.Cores, err = ParseCPUList(string(online)); err != nil {
		return cpu, fmt.Errorf("count CPUs in %s: %w", onlinePath, err)
	}
	return cpu, nil
}

// ParseCPUInfo reads /proc/cpuinfo: the model from the first processor that
// names one, the logical CPUs as its "processor" entries (the kernel lists
// only online CPUs). The model comes from, in order:
//   - "model name": x86, and 32-bit Arm ("ARMv7 Processor rev 4 (v7l)"),
//     which kernels before 3.8 called "Processor";
//   - "CPU implementer" and "CPU part": arm64, whose kernel prints no name,
//     looked up as lscpu does ("ARM Neoverse-N1");
//   - "Hardware": the board on 32-bit Arm and some vendor kernels;
//   - "cpu": POWER ("POWER9, altivec supported").
func ParseCPUInfo(b []byte) CPU {
	var cpu CPU
	first := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	// A line of x86 flags is ~1.5 KiB and grows with each CPU generation.
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "processor" {
			cpu.Cores++
		}
		if _, seen := first[key]; !seen && value != "" {
			first[key] = value
		}
	}
	switch {
	case first["model name"] != "":
		cpu.Model = first["model name"]
	case first["Processor"] != "":
		cpu.Model = first["Processor"]
	case first["CPU implementer"] != "":
		cpu.Model = armModel(first["CPU implementer"], first["CPU part"])
	case first["Hardware"] != "":
		cpu.Model = first["Hardware"]
	default:
		cpu.Model = first["cpu"]
	}
	cpu.Model = clean(cpu.Model)
	return cpu
}

// ParseCPUList counts the CPUs in a kernel CPU list such as "0-63" or
// "0-3,8,10-11" (sys/devices/system/cpu/online).
func ParseCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty CPU list")
	}
	n := 0
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		last := first
		if err == nil && isRange {
			last, err = strconv.Atoi(hi)
		}
		if err != nil || first < 0 || last < first {
			return 0, fmt.Errorf("CPU list %q: %q is not a CPU or a range of CPUs", s, part)
		}
		n += last - first + 1
	}
	return n, nil
}

// ReadMemoryMB reads the total memory in MiB from proc/meminfo.
func ReadMemoryMB(root fs.FS) (int64, error) {
	b, err := fs.ReadFile(root, meminfoPath)
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	mb, err := ParseMemTotalMB(b)
	if err != nil {
		return 0, fmt.Errorf("read memory size from %s: %w", meminfoPath, err)
	}
	return mb, nil
}

// ParseMemTotalMB reads MemTotal from /proc/meminfo, which the kernel writes
// in kB that are KiB ("MemTotal:       24683584 kB"), and returns it in MiB,
// rounded down.
func ParseMemTotalMB(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("MemTotal %q is not a number of kB", strings.TrimSpace(value))
		}
		kib, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kib < 0 {
			return 0, fmt.Errorf("MemTotal %q is not a number of kB", strings.TrimSpace(value))
		}
		return kib / 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no MemTotal line")
}

// clean makes a model name safe to report: valid UTF-8 (protobuf refuses
// anything else in a string), no control characters, and single spaces, as
// older Intel brand strings pad with runs of them ("Intel(R) Xeon(R) CPU
// E5-2680 0 @ 2.70GHz" is written with eleven spaces before "E5").
func clean(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
