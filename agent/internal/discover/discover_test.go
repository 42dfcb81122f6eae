package discover

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/gpu"
	"github.com/gpulab/gpulab/agent/internal/gpu/gputest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// epyc24 is the /proc and /sys of a host with 24 logical CPUs and 220 GiB.
var epyc24 = fstest.MapFS{
	"proc/cpuinfo":                  {Data: []byte(strings.Repeat("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7V13 64-Core Processor\n\n", 24))},
	"proc/meminfo":                  {Data: []byte("MemTotal:       230658412 kB\nMemFree:        221380132 kB\n")},
	"sys/devices/system/cpu/online": {Data: []byte("0-23\n")},
}

func TestCollectBuildsTheHardwareMessage(t *testing.T) {
	tests := []struct {
		recording string
		want      *agentv1.Hardware
	}{
		{
			recording: "a100-sxm4-40gb-mig-enabled-and-disabled",
			want: &agentv1.Hardware{
				CpuModel: "AMD EPYC 7V13 64-Core Processor", CpuCores: 24, RamMb: 225252,
				Gpus: []*agentv1.Gpu{
					{Index: 0, Uuid: "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02", Name: "NVIDIA A100-SXM4-40GB", MemoryMb: 40960, MigCapable: true, MigEnabled: true},
					{Index: 1, Uuid: "GPU-cbed321d-8053-4ea9-900d-454ccfcb1d4d", Name: "NVIDIA A100-SXM4-40GB", MemoryMb: 40960, MigCapable: true},
				},
			},
		},
		{
			recording: "rtx-4090",
			want: &agentv1.Hardware{
				CpuModel: "AMD EPYC 7V13 64-Core Processor", CpuCores: 24, RamMb: 225252,
				Gpus: []*agentv1.Gpu{
					{Index: 0, Uuid: "GPU-cecb4b41-f08c-4ffc-bf3e-db9c1d2602fb", Name: "NVIDIA GeForce RTX 4090", MemoryMb: 24564},
				},
			},
		},
		{
			// The driver is installed, but no GPU: a CPU node, nothing wrong.
			recording: "no-devices",
			want:      &agentv1.Hardware{CpuModel: "AMD EPYC 7V13 64-Core Processor", CpuCores: 24, RamMb: 225252},
		},
	}
	for _, tt := range tests {
		t.Run(tt.recording, func(t *testing.T) {
			gputest.UseFakeNvidiaSMI(t, tt.recording)
			c := &Collector{Root: epyc24, GPUs: &gpu.NvidiaSMI{Runner: hostexec.Exec{}}}

			got, problems := c.Collect(context.Background())
			if len(problems) != 0 {
				t.Errorf("problems = %q, want none", problems)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("Collect =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestInventoryKeepsTheMIGDevices(t *testing.T) {
	gputest.UseFakeNvidiaSMI(t, "a100-sxm4-80gb-x4-mig")
	c := New(hostexec.Exec{})
	c.Root = epyc24
	inv, problems := c.Inventory(context.Background())
	if len(problems) != 0 {
		t.Fatalf("problems = %q, want none", problems)
	}
	var perGPU []int
	for _, g := range inv.GPUs {
		perGPU = append(perGPU, len(g.MIGDevices))
	}
	if want := []int{7, 4, 2, 0}; !reflect.DeepEqual(perGPU, want) {
		t.Errorf("MIG devices per GPU = %v, want %v", perGPU, want)
	}
	if inv.GPUs[3].MIGEnabled || !inv.GPUs[3].MIGEnabledAfterReset {
		t.Errorf("GPU 3 = %+v, want MIG mode off now and on after a reset", inv.GPUs[3])
	}
}

func TestCollectOnANodeWithoutNvidiaSMIReportsNoGPUsAndNoProblem(t *testing.T) {
	gputest.UseNoNvidiaSMI(t)
	got, problems := (&Collector{Root: epyc24, GPUs: &gpu.NvidiaSMI{Runner: hostexec.Exec{}}}).Collect(context.Background())
	if len(problems) != 0 || len(got.GetGpus()) != 0 || got.GetCpuCores() != 24 {
		t.Errorf("Collect = %v, %q; want 24 CPUs, no GPUs, no problems", got, problems)
	}
}

func TestCollectReportsWhatItCouldNotReadAndKeepsTheRest(t *testing.T) {
	gputest.UseFakeNvidiaSMI(t, "driver-not-loaded")
	root := fstest.MapFS{"proc/cpuinfo": epyc24["proc/cpuinfo"]} // no meminfo
	got, problems := (&Collector{Root: root, GPUs: &gpu.NvidiaSMI{Runner: hostexec.Exec{}}}).Collect(context.Background())

	want := &agentv1.Hardware{CpuModel: "AMD EPYC 7V13 64-Core Processor", CpuCores: 24}
	if !proto.Equal(got, want) {
		t.Errorf("Collect = %v, want %v", got, want)
	}
	if len(problems) != 2 ||
		!strings.Contains(problems[0], "proc/meminfo") ||
		!strings.Contains(problems[1], "couldn't communicate with the NVIDIA driver") {
		t.Errorf("problems = %q, want the missing meminfo and nvidia-smi's message", problems)
	}
}

func TestHardwareKeepsAnOddByteFromCostingTheHeartbeat(t *testing.T) {
	inv := Inventory{GPUs: []gpu.GPU{{UUID: "GPU-a", Name: "NVIDIA \xff Board"}}}
	if _, err := proto.Marshal(inv.Hardware()); err != nil {
		t.Errorf("Marshal: %v, want the heartbeat to marshal", err)
	}
}
