package sysinfo

import (
	"fmt"
	"strconv"
	"strings"
)

// armImplementers and armParts name the arm64 CPUs a GPU node is likely to
// have, from the MIDR codes the kernel prints as "CPU implementer" and "CPU
// part"; names as util-linux's lscpu (sys-utils/lscpu-arm.c) gives them.
// A server's SoC (Graviton2, Ampere Altra) is not in cpuinfo, only its core.
var armImplementers = map[uint64]string{
	0x41: "ARM",
	0x42: "Broadcom",
	0x43: "Cavium",
	0x46: "Fujitsu",
	0x48: "HiSilicon",
	0x4e: "NVIDIA",
	0x50: "APM",
	0x51: "Qualcomm",
	0x61: "Apple",
	0xc0: "Ampere",
}

var armParts = map[[2]uint64]string{
	{0x41, 0xd03}: "Cortex-A53",
	{0x41, 0xd05}: "Cortex-A55",
	{0x41, 0xd07}: "Cortex-A57",
	{0x41, 0xd08}: "Cortex-A72",
	{0x41, 0xd0b}: "Cortex-A76",
	{0x41, 0xd0c}: "Neoverse-N1", // AWS Graviton2, Ampere Altra
	{0x41, 0xd40}: "Neoverse-V1", // AWS Graviton3
	{0x41, 0xd49}: "Neoverse-N2",
	{0x41, 0xd4f}: "Neoverse-V2", // NVIDIA Grace, AWS Graviton4
	{0x41, 0xd84}: "Neoverse-V3",
	{0x41, 0xd8e}: "Neoverse-N3",
	{0x43, 0x0af}: "ThunderX2 99xx",
	{0x46, 0x001}: "A64FX",
	{0x48, 0xd01}: "Kunpeng-920",
	{0x4e, 0x004}: "Carmel", // NVIDIA Jetson Xavier
	{0x50, 0x000}: "X-Gene",
	{0xc0, 0xac3}: "Ampere-1", // AmpereOne
	{0xc0, 0xac4}: "Ampere-1a",
}

// armModel names an arm64 CPU from its implementer and part codes ("0x41",
// "0xd0c"), keeping the raw codes for what the tables do not know.
func armModel(implementer, part string) string {
	impl, errImpl := strconv.ParseUint(strings.TrimPrefix(implementer, "0x"), 16, 32)
	p, errPart := strconv.ParseUint(strings.TrimPrefix(part, "0x"), 16, 32)
	vendor, knownVendor := armImplementers[impl]
	switch {
	case errImpl != nil || !knownVendor:
		return strings.TrimSpace(fmt.Sprintf("CPU implementer %s part %s", implementer, part))
	case errPart != nil:
		return vendor
	}
	if name, ok := armParts[[2]uint64{impl, p}]; ok {
		return vendor + " " + name
	}
	return fmt.Sprintf("%s CPU part %#x", vendor, p)
}
