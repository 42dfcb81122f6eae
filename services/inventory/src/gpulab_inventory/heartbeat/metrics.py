"""The heartbeat path's metrics, in one place."""

from prometheus_client import Counter, Gauge

HEARTBEATS = Counter("gpulab_inventory_heartbeats_total", "Heartbeats answered", ["outcome"])
ANSWERED = HEARTBEATS.labels("ok")  # bound once: labels() takes a lock and a lookup on every call
NODE_WRITES = Counter("gpulab_inventory_node_writes_total", "Heartbeats that changed a node's record", ["change"])
LAST_SEEN_FLUSHES = Counter("gpulab_inventory_last_seen_flushed_total", "last_seen_at values written in batches")
PENDING_LAST_SEEN = Gauge("gpulab_inventory_last_seen_pending", "Nodes whose last_seen_at waits for the next batch")
WENT_OFFLINE = Counter("gpulab_inventory_nodes_went_offline_total", "Nodes the sweeper marked offline")
TRIMMED = Counter(
    "gpulab_inventory_heartbeat_replies_trimmed_total", "Heartbeat replies cut down to fit the message limit"
)
