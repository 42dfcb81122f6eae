package reconcile

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/jump"
	"github.com/gpulab/gpulab/agent/internal/enforce/modes"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// Config says which host to change and how. The zero value, filled in by
// New, is the real host.
type Config struct {
	// Host is the node: its Root prefixes every host path read or written
	// (/etc/passwd, /etc/shadow, /proc and the homes), its Runner runs
	// useradd, usermod, userdel and pkill (Host.Commands). Tests point it at
	// a fake root that the fake commands also edit.
	Host hostexec.Host
	// MinUID is the lowest uid of an account gpulab manages: useradd's
	// UID_MIN default (login.defs), below which uids belong to the system.
	// 1000 when zero.
	MinUID int
	// RemoveHomes deletes a removed account and its home (userdel --remove)
	// instead of keeping both, locked. See the package documentation.
	RemoveHomes bool
	// Now is the clock for assignment expiry; time.Now when nil.
	Now func() time.Time
	// Enforcers picks the Enforcer of each assignment by mode name; nil is
	// what package modes detects on Host with its defaults.
	Enforcers *enforce.Registry
}

// defaultMinUID is UID_MIN of login.defs on Debian, Ubuntu and RHEL.
const defaultMinUID = 1000

// Reconciler applies the desired assignments to the node's accounts. It is
// safe for concurrent use; Apply calls run one at a time.
type Reconciler struct {
	cfg Config

	mu sync.Mutex
	// known maps the ids of assignments this process has applied, and not
	// yet reported removed, to their username, so that Apply can report
	// REMOVED for one that has left the desired list.
	known map[string]string
}

// New returns a Reconciler for cfg, with the defaults filled in. It fails
// only when cfg.Enforcers is nil and package modes cannot make them.
func New(cfg Config) (*Reconciler, error) {
	cfg.Host = cfg.Host.WithDefaults()
	if cfg.MinUID == 0 {
		cfg.MinUID = defaultMinUID
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Enforcers == nil {
		reg, err := modes.New(modes.Options{Host: cfg.Host})
		if err != nil {
			return nil, err
		}
		cfg.Enforcers = reg
	}
	return &Reconciler{cfg: cfg, known: make(map[string]string)}, nil
}

// entry is one desired assignment after validation.
type entry struct {
	id      string
	user    string
	keys    []string
	mode    string // enforcement mode name, as the registry knows it
	enf     enforce.Enforcer
	target  enforce.Assignment // what enf applies
	err     error              // validation failure: the assignment is FAILED, nothing done for it
	expired bool
	enfErr  error // enforcement failed: FAILED, and its keys are not written
	// port is where the applied assignment accepts SSH on the node's
	// 127.0.0.1 when its mode has such a port (enforce.AccessPorter), else 0.
	port int
}

// Apply makes the node's managed accounts match desired, the complete list
// of assignments the node must enforce, and reports the outcome: one
// AppliedAssignment per desired assignment and per earlier one that has
// left the list, plus problems not tied to one assignment. Apply is
// idempotent; see the package documentation for what it does.
func (r *Reconciler) Apply(ctx context.Context, desired []*agentv1.Assignment) *agentv1.AppliedState {
	r.mu.Lock()
	defer r.mu.Unlock()
	state := &agentv1.AppliedState{}

	entries := r.validate(desired, state)

	accts, err := readAccounts(r.cfg.Host.Root)
	if err != nil {
		state.Errors = append(state.Errors, sentence(err))
		for _, e := range entries {
			state.Assignments = append(state.Assignments, failed(e.id, cmpErr(e.err, err)))
		}
		return state
	}

	// The keys of each username: the union over its valid, unexpired
	// assignments, in assignment id order so that the file only changes
	// when the keys do.
	byUser := make(map[string][]*entry)
	for _, e := range entries {
		if e.err == nil && !e.expired {
			byUser[e.user] = append(byUser[e.user], e)
		}
	}
	// Per user: the account, then each assignment's enforcement, then the
	// keys of the assignments whose enforcement holds. Keys are the grant of
	// access, so they come last: an assignment that cannot be enforced gives
	// no access.
	userErr := make(map[string]error, len(byUser))
	enforced := make(map[string]map[string]bool) // mode -> ids that keep their enforcement
	for _, name := range slices.Sorted(maps.Keys(byUser)) {
		es := byUser[name]
		slices.SortFunc(es, func(a, b *entry) int { return strings.Compare(a.id, b.id) })
		shell := loginShell
		if es[0].mode == jump.Mode {
			shell = jump.Shell
		}
		a, err := r.ensureAccount(ctx, accts, name, es[0].id, shell)
		if err != nil {
			userErr[name] = err
			continue
		}
		var granted []*entry
		for _, e := range es {
			if enforced[e.mode] == nil {
				enforced[e.mode] = make(map[string]bool)
			}
			if e.mode != es[0].mode {
				// Each mode's sshd drop-in sets the user's GPUs, and sshd takes the
				// first: two modes for one account would fight over its sessions.
				e.enfErr = fmt.Errorf("%s enforcement was not applied, so this assignment grants no access: %s already holds assignment %s in %s mode on this node, and one account's assignments on a node must share a mode", e.mode, name, es[0].id, es[0].mode)
				continue
			}
			enforced[e.mode][e.id] = true
			if err := e.enf.Apply(ctx, e.target); err != nil {
				e.enfErr = fmt.Errorf("%s enforcement was not applied, so this assignment grants no access: %w", e.mode, err)
				continue
			}
			if p, ok := e.enf.(enforce.AccessPorter); ok {
				e.port = p.AccessPort(e.id)
			}
			granted = append(granted, e)
		}
		if _, err := syncAuthorizedKeys(r.homePath(a), a.uid, a.gid, keysFile(granted), true); err != nil {
			userErr[name] = fmt.Errorf("authorized_keys of %s: %w", name, err)
		}
	}

	removeErr := make(map[string]error)
	for _, name := range slices.Sorted(maps.Keys(accts)) {
		a := accts[name]
		if _, wanted := byUser[name]; wanted || !a.managed() {
			continue
		}
		if err := r.checkManageable(a); err != nil {
			state.Errors = append(state.Errors, sentence(err))
			removeErr[name] = err
			continue
		}
		removeErr[name] = r.removeUser(ctx, a)
	}

	// Enforcement of what is no longer desired goes last, once the access is
	// gone. Each enforcer lists what the host holds, so this also finds what
	// an earlier run of the agent applied.
	enfRemoveErr := r.removeEnforcement(ctx, enforced, state)

	// removal is the outcome for an assignment whose access must be gone:
	// its keys left the union of a still-wanted user, or its user was removed.
	removal := func(id, user string) error {
		if _, wanted := byUser[user]; wanted {
			return joinSentence(nonNil(userErr[user], enfRemoveErr[id]))
		}
		// removeErr is nil when the account is absent or was never ours.
		return joinSentence(nonNil(removeErr[user], enfRemoveErr[id]))
	}
	inList := make(map[string]bool, len(entries))
	for _, e := range entries {
		inList[e.id] = true
		switch {
		case e.err != nil:
			state.Assignments = append(state.Assignments, failed(e.id, cmpErr(e.err, enfRemoveErr[e.id])))
		case e.expired:
			if err := removal(e.id, e.user); err != nil {
				state.Assignments = append(state.Assignments, failed(e.id, err))
				r.known[e.id] = e.user
				continue
			}
			state.Assignments = append(state.Assignments, result(e.id, agentv1.ApplyState_APPLY_STATE_REMOVED))
			delete(r.known, e.id)
		case userErr[e.user] != nil:
			state.Assignments = append(state.Assignments, failed(e.id, userErr[e.user]))
			r.known[e.id] = e.user
		case e.enfErr != nil:
			state.Assignments = append(state.Assignments, failed(e.id, e.enfErr))
			r.known[e.id] = e.user
		default:
			applied := result(e.id, agentv1.ApplyState_APPLY_STATE_APPLIED)
			applied.AccessPort = accessPort(e.port)
			state.Assignments = append(state.Assignments, applied)
			r.known[e.id] = e.user
		}
	}
	for _, id := range slices.Sorted(maps.Keys(r.known)) {
		if inList[id] {
			continue
		}
		if err := removal(id, r.known[id]); err != nil {
			state.Assignments = append(state.Assignments, failed(id, err))
			continue
		}
		state.Assignments = append(state.Assignments, result(id, agentv1.ApplyState_APPLY_STATE_REMOVED))
		delete(r.known, id)
	}
	return state
}

// validate checks every desired assignment without touching the host.
// Assignments that cannot be reported (no id, or an id already seen) become
// node-level errors.
func (r *Reconciler) validate(desired []*agentv1.Assignment, state *agentv1.AppliedState) []*entry {
	now := r.cfg.Now()
	seen := make(map[string]bool, len(desired))
	entries := make([]*entry, 0, len(desired))
	for i, a := range desired {
		id := a.GetAssignmentId()
		switch {
		case id == "":
			state.Errors = append(state.Errors, fmt.Sprintf("assignment %d of the heartbeat reply has no id and was ignored.", i+1))
			continue
		case seen[id]:
			state.Errors = append(state.Errors, fmt.Sprintf("assignment %.64q appears more than once; only its first entry was applied.", id))
			continue
		}
		seen[id] = true
		e := &entry{id: id, user: a.GetLinuxUsername()}
		entries = append(entries, e)
		if e.err = validateAssignmentID(id); e.err != nil {
			continue
		}
		if e.err = validateUsername(e.user); e.err != nil {
			continue
		}
		if e.keys, e.err = validateKeys(a.GetSshPublicKeys()); e.err != nil {
			continue
		}
		if e.mode, e.enf, e.err = r.enforcerFor(a.GetEnforcementMode()); e.err != nil {
			continue
		}
		if e.mode == jump.Mode {
			// The jump host: each key may only forward to the user's nodes.
			if e.keys, e.err = jumpKeys(e.keys, a.GetForwardTargets()); e.err != nil {
				continue
			}
		}
		e.target = enforce.Assignment{
			ID: id, LinuxUsername: e.user, CPUs: int(a.GetCpus()), RAMMB: a.GetRamMb(),
			SSHKeys: e.keys, MIGProfile: a.GetMigProfile(),
		}
		for _, g := range a.GetGpus() {
			e.target.GPUs = append(e.target.GPUs, enforce.GPU{Index: int(g.GetIndex()), UUID: g.GetUuid()})
		}
		if exp := a.GetExpiresAt(); exp != nil && !exp.AsTime().After(now) {
			e.expired = true
		}
	}
	return entries
}

// jumpKeys are the authorized_keys lines of a jump account: each of keys
// limited to forwarding to permitOpen (see package jump).
func jumpKeys(keys, permitOpen []string) ([]string, error) {
	dests, err := jump.ValidatePermitOpen(permitOpen)
	if err != nil {
		return nil, err
	}
	lines := make([]string, len(keys))
	for i, k := range keys {
		if lines[i], err = jump.KeyLine(k, dests); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

// keysHeader starts every authorized_keys gpulab writes, for whoever opens it.
const keysHeader = "# Managed by gpulab-agent: edits are overwritten at the next heartbeat.\n"

// keysFile is the authorized_keys content for es, sorted by id: each key
// once, in the order first seen.
func keysFile(es []*entry) []byte {
	var b strings.Builder
	b.WriteString(keysHeader)
	seen := make(map[string]bool)
	for _, e := range es {
		for _, k := range e.keys {
			if !seen[k] {
				seen[k] = true
				b.WriteString(k)
				b.WriteByte('\n')
			}
		}
	}
	return []byte(b.String())
}

// checkManageable refuses a marked account that validation would not let
// gpulab create: a bad name, or a uid in the system range.
func (r *Reconciler) checkManageable(a *account) error {
	if err := validateUsername(a.name); err != nil {
		return fmt.Errorf("account %q carries the gpulab marker but its name is refused, so it is left untouched: %w", a.name, err)
	}
	if a.uid < r.cfg.MinUID {
		return fmt.Errorf("account %s carries the gpulab marker but has uid %d, below %d, so it is left untouched", a.name, a.uid, r.cfg.MinUID)
	}
	if !filepath.IsAbs(a.home) || filepath.Clean(a.home) != a.home || a.home == "/" {
		return fmt.Errorf("account %s has home %q, not a clean absolute path below /, so it is left untouched", a.name, a.home)
	}
	return nil
}

func (r *Reconciler) homePath(a *account) string {
	return filepath.Join(r.cfg.Host.Root, a.home)
}

func result(id string, s agentv1.ApplyState) *agentv1.AppliedAssignment {
	return &agentv1.AppliedAssignment{AssignmentId: id, State: s}
}

// accessPort is p as the report carries it: a TCP port, or 0.
func accessPort(p int) uint32 {
	if p < 1 || p > 65535 {
		return 0
	}
	return uint32(p)
}

func failed(id string, err error) *agentv1.AppliedAssignment {
	return &agentv1.AppliedAssignment{AssignmentId: id, State: agentv1.ApplyState_APPLY_STATE_FAILED, Error: sentence(err)}
}

func cmpErr(first, second error) error {
	if first != nil {
		return first
	}
	return second
}

// sentence renders err as the one human-readable sentence the heartbeat
// carries: one line, capitalised, ending with a full stop.
func sentence(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if s == "" {
		return "Unknown error."
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
