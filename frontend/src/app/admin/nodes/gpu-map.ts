import type { AssignedGpu, Assignment, Gpu, Node, User } from '../../api';

// Which GPU of a node is held by whom, from what the server said: the node's reported GPUs, the
// active assignments and the users. Pure, so that the page only draws it.

export interface Holder {
  assignmentId: string;
  userId: string;
  /** The holder in words: their email, or the user id while the user is unknown to the page. */
  label: string;
}

export interface GpuTile {
  gpu: Gpu;
  /** Normally none or one; several only if the server ever says so, and then all are shown. */
  holders: Holder[];
}

/** The user in words: email, else name, else the id itself (a user the list did not hold). */
export function userLabel(userId: string, users: readonly User[] | undefined): string {
  const user = users?.find((u) => u.id === userId);
  return user?.email || user?.name || userId;
}

/** The active assignments on the node. */
export function activeOn(nodeId: string, assignments: readonly Assignment[]): Assignment[] {
  return assignments.filter((a) => a.node_id === nodeId && a.status === 'active');
}

/**
 * An assigned GPU is this GPU when their UUIDs agree; the index decides only where either has no
 * UUID, since a GPU swapped for another keeps its index but not its UUID.
 */
function isThisGpu(assigned: AssignedGpu, gpu: Gpu): boolean {
  if (assigned.uuid && gpu.uuid) {
    return assigned.uuid === gpu.uuid;
  }
  return assigned.index === gpu.index;
}

/** One tile per reported GPU, in index order, each with its holders now. */
export function gpuMap(
  node: Pick<Node, 'id' | 'hardware'>,
  assignments: readonly Assignment[],
  users: readonly User[] | undefined,
): GpuTile[] {
  const gpus = [...(node.hardware?.gpus ?? [])].sort((a, b) => a.index - b.index);
  const active = activeOn(node.id, assignments);
  return gpus.map((gpu) => ({
    gpu,
    holders: active
      .filter((a) => a.gpus.some((assigned) => isThisGpu(assigned, gpu)))
      .map((a) => ({ assignmentId: a.id, userId: a.user_id, label: userLabel(a.user_id, users) })),
  }));
}
