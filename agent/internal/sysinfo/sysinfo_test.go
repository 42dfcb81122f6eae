package sysinfo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadRecordedHosts(t *testing.T) {
	tests := []struct {
		host   string
		want   CPU
		wantMB int64
	}{
		{"azure-nc24ads-a100-v4", CPU{Model: "AMD EPYC 7V13 64-Core Processor", Cores: 24}, 225252},
		{"aws-g4dn-xlarge", CPU{Model: "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", Cores: 4}, 15623},
		{"aws-g5g-xlarge", CPU{Model: "ARM Neoverse-N1", Cores: 4}, 7763},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			root := os.DirFS(filepath.Join("testdata", tt.host))
			cpu, err := ReadCPU(root)
			if err != nil || cpu != tt.want {
				t.Errorf("ReadCPU = %+v, %v; want %+v", cpu, err, tt.want)
			}
			mb, err := ReadMemoryMB(root)
			if err != nil || mb != tt.wantMB {
				t.Errorf("ReadMemoryMB = %d, %v; want %d", mb, err, tt.wantMB)
			}
		})
	}
}

func TestParseCPUInfoNamesEveryKindOfCPU(t *testing.T) {
	tests := []struct {
		name    string
		cpuinfo string
		want    CPU
	}{
		{
			name:    "old Intel brand string padded with spaces",
			cpuinfo: "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU           E5-2680 0 @ 2.70GHz\n\n",
			want:    CPU{Model: "Intel(R) Xeon(R) CPU E5-2680 0 @ 2.70GHz", Cores: 1},
		},
		{
			name: "NVIDIA Grace",
			cpuinfo: "processor\t: 0\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd4f\nCPU revision\t: 0\n\n" +
				"processor\t: 1\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd4f\nCPU revision\t: 0\n\n",
			want: CPU{Model: "ARM Neoverse-V2", Cores: 2},
		},
		{
			name:    "AmpereOne",
			cpuinfo: "processor\t: 0\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0xc0\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xac3\nCPU revision\t: 1\n\n",
			want:    CPU{Model: "Ampere Ampere-1", Cores: 1},
		},
		{
			name:    "an Arm core the table does not know",
			cpuinfo: "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd99\n\n",
			want:    CPU{Model: "ARM CPU part 0xd99", Cores: 1},
		},
		{
			name:    "an Arm implementer the table does not know",
			cpuinfo: "processor\t: 0\nCPU implementer\t: 0x6d\nCPU part\t: 0xd49\n\n",
			want:    CPU{Model: "CPU implementer 0x6d part 0xd49", Cores: 1},
		},
		{
			name: "Raspberry Pi with its Hardware line",
			cpuinfo: "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n\n" +
				"Hardware\t: BCM2835\nRevision\t: a02082\nSerial\t\t: 00000000e215d8c0\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n",
			want: CPU{Model: "ARMv7 Processor rev 4 (v7l)", Cores: 1},
		},
		{
			name:    "only a Hardware line names it",
			cpuinfo: "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n\nHardware\t: Ampere(R) Altra(R) Processor\n",
			want:    CPU{Model: "Ampere(R) Altra(R) Processor", Cores: 2},
		},
		{
			name:    "kernels before 3.8 on 32-bit Arm",
			cpuinfo: "Processor\t: ARMv7 Processor rev 10 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 790.52\n\nHardware\t: Freescale i.MX6\n",
			want:    CPU{Model: "ARMv7 Processor rev 10 (v7l)", Cores: 1},
		},
		{
			name:    "POWER9 (IBM AC922, a V100 host)",
			cpuinfo: "processor\t: 0\ncpu\t\t: POWER9, altivec supported\nclock\t\t: 3800.000000MHz\nrevision\t: 2.2 (pvr 004e 1202)\n\n",
			want:    CPU{Model: "POWER9, altivec supported", Cores: 1},
		},
		{
			name:    "nothing names it",
			cpuinfo: "processor\t: 0\nBogoMIPS\t: 50.00\n\n",
			want:    CPU{Model: "", Cores: 1},
		},
		{
			name:    "bytes that are not text",
			cpuinfo: "processor\t: 0\nmodel name\t: Bad\xff\x00CPU\r\n",
			want:    CPU{Model: "Bad CPU", Cores: 1},
		},
		{name: "empty", cpuinfo: "", want: CPU{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCPUInfo([]byte(tt.cpuinfo)); got != tt.want {
				t.Errorf("ParseCPUInfo = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadCPUCountsOnlineCPUsWhenCpuinfoListsNone(t *testing.T) {
	// s390x writes "processor 0: version = ..." lines, not "processor : 0".
	root := fstest.MapFS{
		"proc/cpuinfo":                  {Data: []byte("vendor_id       : IBM/S390\n# processors    : 4\nprocessor 0: version = FF,  identification = 0133E8,  machine = 3906\n")},
		"sys/devices/system/cpu/online": {Data: []byte("0-3\n")},
	}
	if got, err := ReadCPU(root); err != nil || got.Cores != 4 {
		t.Errorf("ReadCPU = %+v, %v; want 4 cores", got, err)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := map[string]int{"0": 1, "0-63\n": 64, "0-3,8,10-11": 7, "1-2,4-5": 4}
	for list, want := range tests {
		if got, err := ParseCPUList(list); err != nil || got != want {
			t.Errorf("ParseCPUList(%q) = %d, %v; want %d", list, got, err, want)
		}
	}
	for _, bad := range []string{"", "\n", "a", "3-1", "0-", "-1", "0,,1"} {
		if got, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseMemTotalMB(t *testing.T) {
	tests := map[string]int64{
		"MemTotal:       24683584 kB\nMemFree:        19599012 kB\n": 24105,
		"MemFree:    1 kB\r\nMemTotal:      1048575 kB\r\n":          1023,
		"MemTotal:       230658412 kB\n":                             225252,
	}
	for meminfo, want := range tests {
		if got, err := ParseMemTotalMB([]byte(meminfo)); err != nil || got != want {
			t.Errorf("ParseMemTotalMB(%q) = %d, %v; want %d", meminfo, got, err, want)
		}
	}
	for _, bad := range []string{"", "MemFree: 1 kB\n", "MemTotal: 1 MB\n", "MemTotal: x kB\n", "MemTotal: -1 kB\n", "MemTotal:\n"} {
		if got, err := ParseMemTotalMB([]byte(bad)); err == nil {
			t.Errorf("ParseMemTotalMB(%q) = %d, want an error", bad, got)
		}
	}
}

func TestMissingFilesAreErrorsThatNameThem(t *testing.T) {
	empty := fstest.MapFS{}
	if _, err := ReadCPU(empty); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "proc/cpuinfo") {
		t.Errorf("ReadCPU error = %v, want one naming proc/cpuinfo as missing", err)
	}
	if _, err := ReadMemoryMB(empty); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "proc/meminfo") {
		t.Errorf("ReadMemoryMB error = %v, want one naming proc/meminfo as missing", err)
	}
	noProcessors := fstest.MapFS{"proc/cpuinfo": {Data: []byte("Hardware\t: X\n")}}
	if got, err := ReadCPU(noProcessors); !errors.Is(err, fs.ErrNotExist) || got.Model != "X" {
		t.Errorf("ReadCPU = %+v, %v; want the model and an error for the missing online list", got, err)
	}
}

func TestHostReadsThisMachine(t *testing.T) {
	if _, err := os.Stat("/proc/cpuinfo"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	cpu, err := ReadCPU(Host())
	if err != nil || cpu.Cores < 1 {
		t.Errorf("ReadCPU(Host()) = %+v, %v; want at least one CPU", cpu, err)
	}
	if mb, err := ReadMemoryMB(Host()); err != nil || mb < 1 {
		t.Errorf("ReadMemoryMB(Host()) = %d, %v; want some memory", mb, err)
	}
}
