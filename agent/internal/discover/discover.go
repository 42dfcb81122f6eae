package discover

import (
	"context"
	"io/fs"
	"strings"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/gpu"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sysinfo"
)

// Collector gathers the inventory. Keep one for the agent's life: its GPU
// discoverer remembers a hung nvidia-smi across calls.
type Collector struct {
	// Root is the host's root file system; /proc and /sys are read under it.
	Root fs.FS
	// GPUs lists the GPUs.
	GPUs gpu.Discoverer
}

// New is the Collector of the host the agent runs on, running nvidia-smi
// through runner.
func New(runner hostexec.Runner) *Collector {
	return &Collector{Root: sysinfo.Host(), GPUs: &gpu.NvidiaSMI{Runner: runner}}
}

// Inventory is the node's hardware, with what the heartbeat's Hardware
// message has no field for (MIG devices, the pending MIG mode), which the
// enforcement strategies use.
type Inventory struct {
	CPU   sysinfo.CPU
	RAMMB int64
	GPUs  []gpu.GPU
}

// Inventory reads the node's hardware; see the package documentation.
func (c *Collector) Inventory(ctx context.Context) (Inventory, []string) {
	var inv Inventory
	var problems []string
	var err error
	// ReadCPU returns the model even when it cannot count the CPUs.
	if inv.CPU, err = sysinfo.ReadCPU(c.Root); err != nil {
		problems = append(problems, err.Error())
	}
	if inv.RAMMB, err = sysinfo.ReadMemoryMB(c.Root); err != nil {
		problems = append(problems, err.Error())
	}
	// Discover returns the GPUs it listed even when their MIG devices failed.
	if inv.GPUs, err = c.GPUs.Discover(ctx); err != nil {
		problems = append(problems, err.Error())
	}
	return inv, problems
}

// Collect is Inventory as the heartbeat's Hardware message.
func (c *Collector) Collect(ctx context.Context) (*agentv1.Hardware, []string) {
	inv, problems := c.Inventory(ctx)
	return inv.Hardware(), problems
}

// Hardware is the inventory as the heartbeat reports it.
func (inv Inventory) Hardware() *agentv1.Hardware {
	h := &agentv1.Hardware{
		CpuModel: inv.CPU.Model,
		CpuCores: int32(inv.CPU.Cores),
		RamMb:    inv.RAMMB,
		Gpus:     make([]*agentv1.Gpu, 0, len(inv.GPUs)),
	}
	for _, g := range inv.GPUs {
		h.Gpus = append(h.Gpus, &agentv1.Gpu{
			Index: int32(g.Index),
			// Protobuf refuses to marshal a string that is not UTF-8, and
			// one odd byte must not cost the whole heartbeat.
			Uuid:       strings.ToValidUTF8(g.UUID, "\uFFFD"),
			Name:       strings.ToValidUTF8(g.Name, "\uFFFD"),
			MemoryMb:   g.MemoryMB,
			MigCapable: g.MIGCapable,
			MigEnabled: g.MIGEnabled,
		})
	}
	return h
}
