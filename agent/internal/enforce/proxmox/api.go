package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// The endpoints the enforcer uses, typed. Names and shapes follow the PVE
// API viewer (pve.proxmox.com/pve-docs/api-viewer).

// User is an item of GET /access/users.
type User struct {
	UserID  string `json:"userid"`
	Comment string `json:"comment"`
}

// ACL is an item of GET /access/acl.
type ACL struct {
	Path   string `json:"path"`
	RoleID string `json:"roleid"`
	Type   string `json:"type"` // user, group or token
	UGID   string `json:"ugid"`
}

// CTSummary is an item of GET /nodes/{node}/lxc.
type CTSummary struct {
	VMID   flexInt `json:"vmid"`
	Name   string  `json:"name"`
	Status string  `json:"status"` // running or stopped
	Tags   string  `json:"tags"`
	Lock   string  `json:"lock"`
}

// CTConfig is GET /nodes/{node}/lxc/{vmid}/config: option name -> value,
// numbers printed as PVE sends them.
type CTConfig map[string]string

func (c *Client) Users(ctx context.Context) ([]User, error) {
	var us []User
	err := c.Get(ctx, "/access/users", nil, &us)
	return us, err
}

func (c *Client) CreateUser(ctx context.Context, userid, comment string) error {
	return c.Post(ctx, "/access/users", url.Values{"userid": {userid}, "comment": {comment}}, nil)
}

func (c *Client) DeleteUser(ctx context.Context, userid string) error {
	return c.Delete(ctx, pathf("/access/users/%s", userid), nil, nil)
}

func (c *Client) ACLs(ctx context.Context) ([]ACL, error) {
	var as []ACL
	err := c.Get(ctx, "/access/acl", nil, &as)
	return as, err
}

// GrantUser gives userid role on path (PUT /access/acl).
func (c *Client) GrantUser(ctx context.Context, path, role, userid string) error {
	return c.Put(ctx, "/access/acl", url.Values{"path": {path}, "roles": {role}, "users": {userid}}, nil)
}

// NextID is GET /cluster/nextid, the lowest free vmid of the cluster.
func (c *Client) NextID(ctx context.Context) (int, error) {
	var id flexInt
	if err := c.Get(ctx, "/cluster/nextid", nil, &id); err != nil {
		return 0, err
	}
	return int(id), nil
}

// NodeMemoryMB is the node's total memory (GET /nodes/{node}/status).
func (c *Client) NodeMemoryMB(ctx context.Context) (int64, error) {
	var st struct {
		Memory struct {
			Total flexInt `json:"total"`
		} `json:"memory"`
	}
	if err := c.Get(ctx, pathf("/nodes/%s/status", c.node), nil, &st); err != nil {
		return 0, err
	}
	return int64(st.Memory.Total) >> 20, nil
}

func (c *Client) CTs(ctx context.Context) ([]CTSummary, error) {
	var cts []CTSummary
	err := c.Get(ctx, pathf("/nodes/%s/lxc", c.node), nil, &cts)
	return cts, err
}

func (c *Client) CTConfig(ctx context.Context, vmid int) (CTConfig, error) {
	// current=1: the values the CT runs with. By default PVE overlays the
	// pending ones, and a device change pending on a running CT would look
	// done while the CT still holds the old device.
	var raw map[string]json.RawMessage
	if err := c.Get(ctx, pathf("/nodes/%s/lxc/%s/config", c.node, vmid), url.Values{"current": {"1"}}, &raw); err != nil {
		return nil, err
	}
	conf := make(CTConfig, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			conf[k] = s
			continue
		}
		conf[k] = string(bytes.Trim(v, `"`)) // a number
	}
	return conf, nil
}

// CTStatus is GET /nodes/{node}/lxc/{vmid}/status/current's "status".
func (c *Client) CTStatus(ctx context.Context, vmid int) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := c.Get(ctx, pathf("/nodes/%s/lxc/%s/status/current", c.node, vmid), nil, &st)
	return st.Status, err
}

// CreateCT starts the create task (POST /nodes/{node}/lxc) and returns its UPID.
func (c *Client) CreateCT(ctx context.Context, params url.Values) (string, error) {
	var upid string
	err := c.Post(ctx, pathf("/nodes/%s/lxc", c.node), params, &upid)
	return upid, err
}

// UpdateCT is PUT /nodes/{node}/lxc/{vmid}/config (synchronous).
func (c *Client) UpdateCT(ctx context.Context, vmid int, params url.Values) error {
	return c.Put(ctx, pathf("/nodes/%s/lxc/%s/config", c.node, vmid), params, nil)
}

// StartCT, StopCT and DestroyCT start the task and return its UPID.
func (c *Client) StartCT(ctx context.Context, vmid int) (string, error) {
	return c.postTask(ctx, pathf("/nodes/%s/lxc/%s/status/start", c.node, vmid))
}

func (c *Client) StopCT(ctx context.Context, vmid int) (string, error) {
	return c.postTask(ctx, pathf("/nodes/%s/lxc/%s/status/stop", c.node, vmid))
}

// DestroyCT deletes the CT and its disks; purge=1 also drops it from
// backup, replication and HA jobs (its ACLs go in any case).
func (c *Client) DestroyCT(ctx context.Context, vmid int) (string, error) {
	var upid string
	err := c.Delete(ctx, pathf("/nodes/%s/lxc/%s", c.node, vmid), url.Values{"purge": {"1"}}, &upid)
	return upid, err
}

func (c *Client) postTask(ctx context.Context, path string) (string, error) {
	var upid string
	err := c.Post(ctx, path, nil, &upid)
	return upid, err
}

// run starts a task with start and waits for it; what names the work for
// the error.
func (c *Client) run(ctx context.Context, what string, start func() (string, error)) error {
	upid, err := start()
	if err == nil {
		err = c.WaitTask(ctx, upid)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func vmidPath(vmid int) string { return "/vms/" + strconv.Itoa(vmid) }
