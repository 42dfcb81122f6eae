package proxmox

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// TaskStatus is GET /nodes/{node}/tasks/{upid}/status.
type TaskStatus struct {
	UPID   string `json:"upid"`
	Type   string `json:"type"`
	ID     string `json:"id"`
	Status string `json:"status"` // "running" or "stopped"
	// ExitStatus is "OK" for success, else the error text (only once
	// stopped). PVE also reports "WARNINGS: n" for a task that succeeded
	// with warnings.
	ExitStatus string `json:"exitstatus"`
}

// TaskError is a PVE task that stopped with an exit status other than OK.
type TaskError struct {
	UPID       string
	Type, ID   string
	ExitStatus string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("Proxmox task %s %s failed: %s", e.Type, e.ID, e.ExitStatus)
}

// UPIDNode returns the node a task runs on, the second field of its UPID
// ("UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:").
func UPIDNode(upid string) (string, error) {
	f := strings.Split(upid, ":")
	if len(f) < 9 || f[0] != "UPID" || f[1] == "" {
		return "", fmt.Errorf("%q is not a PVE task id (UPID)", upid)
	}
	return f[1], nil
}

// TaskStatus reads the status of the task upid once.
func (c *Client) TaskStatus(ctx context.Context, upid string) (TaskStatus, error) {
	node, err := UPIDNode(upid)
	if err != nil {
		return TaskStatus{}, err
	}
	var st TaskStatus
	err = c.Get(ctx, pathf("/nodes/%s/tasks/%s/status", node, upid), nil, &st)
	return st, err
}

// WaitTask polls the task upid until it stops, with a backoff from pollMin
// doubling to pollMax: most of the agent's tasks (start, stop) end within a
// second, a CT create from a template takes tens. It fails with a TaskError
// when the task's exit status is not OK ("WARNINGS: n" counts as success,
// as PVE's GUI shows it), and with ctx's error when ctx ends first; the
// task itself goes on in PVE either way.
func (c *Client) WaitTask(ctx context.Context, upid string) error {
	delay := c.pollMin
	for {
		st, err := c.TaskStatus(ctx, upid)
		if err != nil {
			return fmt.Errorf("wait for Proxmox task %s: %w", upid, err)
		}
		if st.Status == "stopped" {
			if st.ExitStatus == "OK" || strings.HasPrefix(st.ExitStatus, "WARNINGS") {
				return nil
			}
			return &TaskError{UPID: upid, Type: st.Type, ID: st.ID, ExitStatus: st.ExitStatus}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for Proxmox task %s: %w", upid, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, c.pollMax)
	}
}
