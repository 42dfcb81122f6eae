import type { Assignment, Node } from '../../api';

// How many GPUs of a node are free, as the create form shows it next to each node. The scheduler
// decides for real (and answers `no_capacity` when it cannot place); this is the admin's estimate
// from what the server last said, so it is counted the same way: a GPU is taken while an active
// assignment holds its index, and a `mig` Environment counts only MIG-capable GPUs
// (docs/api.md, "Placement").

export interface GpuCapacity {
  /** GPUs the node reported in its last heartbeat (0 before its first). */
  total: number;
  /** Of those, the ones no active assignment on this node holds. */
  free: number;
}

export function gpuCapacity(
  node: Node,
  assignments: readonly Assignment[],
  migOnly = false,
): GpuCapacity {
  const gpus = (node.hardware?.gpus ?? []).filter((gpu) => !migOnly || gpu.mig_capable);
  const taken = new Set(
    assignments
      .filter((a) => a.status === 'active' && a.node_id === node.id)
      .flatMap((a) => a.gpus.map((gpu) => gpu.index)),
  );
  return { total: gpus.length, free: gpus.filter((gpu) => !taken.has(gpu.index)).length };
}

/** "gpu-01 — 3 of 8 GPUs free, online": a node as the create form's Node select lists it. */
export function nodeOptionText(node: Node, capacity: GpuCapacity): string {
  const unit = capacity.total === 1 ? 'GPU' : 'GPUs';
  return `${node.hostname} — ${capacity.free} of ${capacity.total} ${unit} free, ${node.status}`;
}
