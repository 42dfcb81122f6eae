package pvetest

import (
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// check returns what is wrong with a parameter's value, "" when nothing.
type check func(v string) string

// param is one parameter of an endpoint's schema.
type param struct {
	required bool
	check    check
}

// schema maps parameter names to their checks; a name ending in "[n]" (as
// the API viewer writes dev[n]) stands for name0 ... name<max-1>.
type schema map[string]param

func (sc schema) lookup(name string) (param, bool) {
	if p, ok := sc[name]; ok {
		return p, true
	}
	m := indexedRE.FindStringSubmatch(name)
	if m == nil {
		return param{}, false
	}
	p, ok := sc[m[1]+"[n]"]
	n, _ := strconv.Atoi(m[2])
	limit := 256 // PVE's MAX_DEVICES and MAX_MOUNT_POINTS
	if m[1] == "net" {
		limit = 32 // MAX_LXC_NETWORKS
	}
	return p, ok && n < limit
}

var indexedRE = regexp.MustCompile(`^([a-z]+)(0|[1-9][0-9]*)$`)

// parseForm reads an endpoint's parameters (the query for GET and DELETE,
// the form-encoded body for POST and PUT, as pveproxy does) and checks them
// with PVE's JSON-schema messages.
func parseForm(r *http.Request, sc schema) (url.Values, *pveError) {
	var form url.Values
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, _, _ := mime.ParseMediaType(ct); mt != "application/x-www-form-urlencoded" {
				return nil, fail(http.StatusBadRequest, "unsupported content type '%s'", ct)
			}
		}
		if err := r.ParseForm(); err != nil {
			return nil, fail(http.StatusBadRequest, "unable to parse the request body: %v", err)
		}
		form = r.Form
	} else {
		form = r.URL.Query()
	}
	if perr := checkForm(form, sc); perr != nil {
		return nil, perr
	}
	return form, nil
}

// checkForm checks parameters against a schema.
func checkForm(form url.Values, sc schema) *pveError {
	errs := map[string]string{}
	for name, vals := range form {
		p, ok := sc.lookup(name)
		switch {
		case !ok:
			errs[name] = "property is not defined in schema and the schema does not allow additional properties"
		case len(vals) != 1:
			errs[name] = "type check ('string') failed - got ARRAY"
		case p.check != nil:
			if msg := p.check(vals[0]); msg != "" {
				errs[name] = msg
			}
		}
	}
	for name, p := range sc {
		if p.required && form.Get(name) == "" {
			errs[name] = "property is missing and it is not optional"
		}
	}
	if len(errs) > 0 {
		return badParams(errs)
	}
	return nil
}

func optional(c check) param { return param{check: c} }
func required(c check) param { return param{required: true, check: c} }

func tInt(lo, hi int) check {
	return func(v string) string {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return fmt.Sprintf("type check ('integer') failed - got '%s'", v)
		case n < lo:
			return fmt.Sprintf("value must have a minimum value of %d", lo)
		case n > hi:
			return fmt.Sprintf("value must have a maximum value of %d", hi)
		}
		return ""
	}
}

func tBool(v string) string {
	switch strings.ToLower(v) {
	case "0", "1", "yes", "no", "on", "off", "true", "false":
		return ""
	}
	return fmt.Sprintf("type check ('boolean') failed - got '%s'", v)
}

func tString(maxLen int) check {
	return func(v string) string {
		if len(v) > maxLen {
			return fmt.Sprintf("value may only be %d characters long", maxLen)
		}
		return ""
	}
}

func tPattern(re *regexp.Regexp, format string) check {
	return func(v string) string {
		if !re.MatchString(v) {
			return fmt.Sprintf("value '%s' does not look like a valid %s", v, format)
		}
		return ""
	}
}

var (
	vmidCheck    = tInt(100, 999999999)
	userIDRE     = regexp.MustCompile(`^[^\s:/]{1,60}@[A-Za-z][A-Za-z0-9.\-_]+$`)
	dnsNameRE    = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	tagRE        = regexp.MustCompile(`^(?i)[a-z0-9_][a-z0-9_\-+.]*$`)
	volumeRE     = regexp.MustCompile(`^(volume=)?[A-Za-z][A-Za-z0-9\-_.]*:\S+$`)
	configKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9_\-]*$`)
	aclPathRE    = regexp.MustCompile(`^/[^\s]*$`)
	sshKeyTypeRE = regexp.MustCompile(`^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$`)
)

// tList checks each item of a list PVE splits on ';', ',' or spaces.
func tList(item check) check {
	return func(v string) string {
		for _, it := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
			if msg := item(it); msg != "" {
				return msg
			}
		}
		return ""
	}
}

// tPropertyString checks a PVE property string ("key=value,...") whose
// first item may omit its key (defaultKey), with the keys allowed.
func tPropertyString(defaultKey string, keys ...string) check {
	return func(v string) string {
		seen := map[string]bool{}
		for i, item := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(item, "=")
			if !ok {
				if i > 0 || defaultKey == "" {
					return fmt.Sprintf("invalid format - missing key in '%s'", item)
				}
				k, val = defaultKey, item
			}
			if k != defaultKey && !slices.Contains(keys, k) {
				return fmt.Sprintf("invalid format - property '%s' is not defined in schema", k)
			}
			if seen[k] {
				return fmt.Sprintf("invalid format - duplicate key '%s'", k)
			}
			seen[k] = true
			if k == "path" && !strings.HasPrefix(val, "/dev/") {
				return "invalid format - path must be below /dev/"
			}
		}
		if defaultKey != "" && !seen[defaultKey] {
			return fmt.Sprintf("invalid format - property '%s' is missing", defaultKey)
		}
		return ""
	}
}

func tSSHKeys(v string) string {
	for line := range strings.Lines(v) {
		if line = strings.TrimSpace(line); line != "" && !sshKeyTypeRE.MatchString(line) {
			return "unable to parse ssh key"
		}
	}
	return ""
}

var (
	devParam  = optional(tPropertyString("path", "deny-write", "gid", "mode", "uid"))
	netParam  = optional(tPropertyString("", "name", "bridge", "ip", "ip6", "gw", "gw6", "hwaddr", "firewall", "mtu", "rate", "tag", "type", "link_down"))
	tagsParam = optional(tList(tPattern(tagRE, "tag")))

	// ctOptions are the CT options both create and update take (the part
	// the agent uses, plus their neighbours).
	ctOptions = schema{
		"cores": optional(tInt(1, 8192)), "memory": optional(tInt(16, 1<<31)), "swap": optional(tInt(0, 1<<31)),
		"cpulimit": optional(nil), "cpuunits": optional(tInt(0, 10000)), "description": optional(tString(8192)),
		"hostname": optional(tPattern(dnsNameRE, "dns name")), "onboot": optional(tBool), "protection": optional(tBool),
		"tags": tagsParam, "dev[n]": devParam, "net[n]": netParam, "mp[n]": optional(nil), "features": optional(nil),
		"nameserver": optional(nil), "searchdomain": optional(nil), "startup": optional(nil), "timezone": optional(nil),
		"arch": optional(nil), "ostype": optional(nil), "cmode": optional(nil), "console": optional(tBool),
		"tty": optional(tInt(0, 6)), "hookscript": optional(nil), "unprivileged": optional(tBool),
		"template": optional(tBool), "debug": optional(tBool), "lock": optional(nil),
	}
	createSchema = with(ctOptions, schema{
		"vmid": required(vmidCheck), "ostemplate": required(tString(255)), "rootfs": optional(tPattern(volumeRE, "volume")),
		"storage": optional(nil), "ssh-public-keys": optional(tSSHKeys), "password": optional(tString(64)),
		"pool": optional(nil), "start": optional(tBool), "force": optional(tBool), "unique": optional(tBool),
		"restore": optional(tBool), "ignore-unpack-errors": optional(tBool), "bwlimit": optional(nil),
	})
	updateSchema = with(ctOptions, schema{
		"delete": optional(tList(tPattern(configKeyRE, "configuration key"))), "digest": optional(tString(64)),
		"revert": optional(nil), "rootfs": optional(tPattern(volumeRE, "volume")),
	})
)

func with(a, b schema) schema {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
