// Package gpu discovers the node's NVIDIA GPUs and their MIG devices.
//
// Contract: a Discoverer lists every GPU in nvidia-smi index order, with the
// fields the heartbeat reports (index, uuid, name, memory in MiB, MIG
// capability and mode) and, for a GPU in MIG mode, its MIG devices, which
// the enforcement strategies hand out. A node without NVIDIA GPUs, or
// without nvidia-smi at all, has no GPUs, and that is not an error: the
// agent runs on CPU-only nodes too. A node whose nvidia-smi is installed but
// failing (driver not loaded, version mismatch, hung) is an error, so that
// the admin sees it.
//
// The agent reads nvidia-smi's CSV and `-L` output instead of linking NVML,
// so that it stays a static CGO_ENABLED=0 binary that runs whatever the
// driver version. nvidia-smi runs through hostexec, so tests replay recorded
// output, either through hostexectest.Fake or through a stand-in nvidia-smi
// program on PATH (testdata/fake-nvidia-smi).
package gpu
