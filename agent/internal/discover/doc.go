// Package discover assembles the node's hardware inventory (CPU, memory,
// GPUs with their MIG devices) for the heartbeat and for
// `gpulab-agent discover`.
//
// Contract: Collect always returns an inventory, as complete as the node
// allows, with the problems that kept parts of it out, one human-readable
// sentence each, for the heartbeat's applied_state.errors. It never fails as
// a whole: a heartbeat with partial hardware still tells the control plane
// that the node is alive and what is wrong with it. A node without NVIDIA
// GPUs or nvidia-smi has no GPUs and no problem. Collect takes at most the
// GPU discoverer's timeout per nvidia-smi run (gpu.DefaultTimeout) plus the
// reading of a few /proc files.
package discover
