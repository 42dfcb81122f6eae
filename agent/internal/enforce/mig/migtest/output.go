package migtest

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// list is `nvidia-smi -L`: each GPU, then its MIG devices indented, the
// profile padded to 11 and the device index to 2 (R470+ drivers).
func (f *Fake) list() string {
	var b strings.Builder
	for i, g := range f.GPUs {
		fmt.Fprintf(&b, "GPU %d: %s (UUID: %s)\n", i, g.Model.Name, g.UUID)
		dev := 0
		for _, x := range g.sortedGIs() {
			if x.ci == nil {
				continue
			}
			fmt.Fprintf(&b, "  MIG %-11s Device %2d: (UUID: %s)\n", x.profile.Name, dev, x.ci.uuid)
			dev++
		}
	}
	return b.String()
}

func (g *GPU) sortedGIs() []*gi {
	s := slices.Clone(g.gis)
	slices.SortFunc(s, func(a, b *gi) int { return a.id - b.id })
	return s
}

// query is `--query-gpu=<fields> --format=csv,...`: ", " between fields,
// no quoting, "[N/A]" for what a GPU lacks.
func (f *Fake) query(args []string) (string, int) {
	fields := strings.Split(strings.TrimPrefix(args[0], "--query-gpu="), ",")
	if len(args) != 2 || !strings.HasPrefix(args[1], "--format=csv") {
		return "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n", exitInvalidArgument
	}
	format := strings.Split(strings.TrimPrefix(args[1], "--format="), ",")
	var b strings.Builder
	if !slices.Contains(format, "noheader") {
		b.WriteString(strings.Join(fields, ", ") + "\n")
	}
	for i, g := range f.GPUs {
		var vals []string
		for _, field := range fields {
			switch field {
			case "index":
				vals = append(vals, strconv.Itoa(i))
			case "uuid":
				vals = append(vals, g.UUID)
			case "name":
				vals = append(vals, g.Model.Name)
			case "memory.total":
				v := strconv.Itoa(g.Model.MemoryMiB)
				if !slices.Contains(format, "nounits") {
					v += " MiB"
				}
				vals = append(vals, v)
			case "mig.mode.current", "mig.mode.pending":
				vals = append(vals, map[bool]string{true: "Enabled", false: "Disabled"}[g.MIGEnabled])
			default:
				return fmt.Sprintf("Field \"%s\" is not a valid field to query.\n\n", field), exitInvalidArgument
			}
		}
		b.WriteString(strings.Join(vals, ", ") + "\n")
	}
	return b.String(), 0
}

const (
	lgipRule = "+-----------------------------------------------------------------------------+\n"
	lgiRule  = "+-------------------------------------------------------+\n"
)

// profilesTable is `nvidia-smi mig -lgip`.
func (f *Fake) profilesTable(targets []int) string {
	var b strings.Builder
	b.WriteString(lgipRule)
	b.WriteString("| GPU instance profiles:                                                      |\n")
	b.WriteString("| GPU   Name             ID    Instances   Memory     P2P    SM    DEC   ENC  |\n")
	b.WriteString("|                              Free/Total   GiB              CE    JPEG  OFA  |\n")
	b.WriteString("|=============================================================================|\n")
	for n, i := range targets {
		if n > 0 {
			b.WriteString(lgipRule)
		}
		g := f.GPUs[i]
		for k, p := range g.Model.Profiles {
			if k > 0 {
				b.WriteString(lgipRule)
			}
			me := 0
			if strings.Contains(p.Name, "+me") || p.Compute == computeSlices {
				me = 1
			}
			fmt.Fprintf(&b, "| %3d  MIG %-13s %3d     %d/%d        %-6s     No     %-3d    %d     %d   |\n",
				i, p.Name, p.ID, g.free(p), p.Max, p.GiB, p.SMs, p.Compute/2, me)
			fmt.Fprintf(&b, "|                                                             %d     %d     %d   |\n",
				p.Compute, me, me)
		}
	}
	b.WriteString(lgipRule)
	return b.String()
}

// instancesTable is `nvidia-smi mig -lgi`, or its "none" answer.
func (f *Fake) instancesTable(targets []int, giFilter int) (string, int) {
	var rows []string
	for _, i := range targets {
		start := 0
		for _, x := range f.GPUs[i].sortedGIs() {
			if giFilter >= 0 && x.id != giFilter {
				start += x.profile.Compute
				continue
			}
			rows = append(rows, fmt.Sprintf("| %3d  MIG %-13s %5d    %5d          %d:%d     |\n",
				i, x.profile.Name, x.profile.ID, x.id, start, x.profile.Compute))
			start += x.profile.Compute
		}
	}
	if len(rows) == 0 {
		return "No GPU instances found: Not Found\n", exitNotFound
	}
	var b strings.Builder
	b.WriteString(lgiRule)
	b.WriteString("| GPU instances:                                        |\n")
	b.WriteString("| GPU   Name             Profile  Instance   Placement  |\n")
	b.WriteString("|                          ID       ID       Start:Size |\n")
	b.WriteString("|=======================================================|\n")
	for n, r := range rows {
		if n > 0 {
			b.WriteString(lgiRule)
		}
		b.WriteString(r)
	}
	b.WriteString(lgiRule)
	return b.String(), 0
}

// create is `nvidia-smi mig -cgi <list> [-C]`: it stops at the first
// profile it cannot create, keeping those created before it.
func (f *Fake) create(targets []int, list string, withCI bool) (string, int) {
	var b strings.Builder
	for _, i := range targets {
		g := f.GPUs[i]
		for _, name := range strings.Split(list, ",") {
			p, ok := g.Model.profile(name)
			if !ok {
				fmt.Fprintf(&b, "Unable to create a GPU instance on GPU %2d using profile %s: Invalid Argument\nFailed to create GPU instances: Invalid Argument\n", i, name)
				return b.String(), exitInvalidArgument
			}
			if g.free(p) == 0 {
				fmt.Fprintf(&b, "Unable to create a GPU instance on GPU %2d using profile %s: Insufficient Resources\nFailed to create GPU instances: Insufficient Resources\n", i, name)
				return b.String(), exitOther
			}
			x := &gi{id: g.nextID(p), profile: p}
			g.gis = append(g.gis, x)
			fmt.Fprintf(&b, "Successfully created GPU instance ID %2d on GPU %2d using profile MIG %s (ID %2d)\n", x.id, i, p.Name, p.ID)
			if withCI {
				f.serial++
				h := fnv.New32a()
				h.Write([]byte(g.UUID))
				x.ci = &ci{id: 0, uuid: fmt.Sprintf("MIG-%08x-%04x-5000-8000-%012x", h.Sum32(), x.id, f.serial)}
				// The default compute instance's profile id: 0..4 for 1, 2,
				// 3, 4 and 7 slices.
				ciProfile := map[int]int{1: 0, 2: 1, 3: 2, 4: 3, 7: 4}[p.Compute]
				fmt.Fprintf(&b, "Successfully created compute instance ID %2d on GPU %2d GPU instance ID %2d using profile MIG %s (ID %2d)\n", 0, i, x.id, p.Name, ciProfile)
			}
		}
	}
	return b.String(), 0
}

// destroyCI is `nvidia-smi mig -dci [-gi G] [-ci C]`. What nvidia-smi prints
// when nothing matches is not in NVIDIA's documentation; "Not Found" (exit
// 6) is what its list commands print in that case.
func (f *Fake) destroyCI(targets []int, giFilter, ciFilter int) (string, int) {
	var b strings.Builder
	found := false
	for _, i := range targets {
		for _, x := range f.GPUs[i].sortedGIs() {
			if (giFilter >= 0 && x.id != giFilter) || x.ci == nil || (ciFilter >= 0 && x.ci.id != ciFilter) {
				continue
			}
			found = true
			if f.InUse[x.ci.uuid] {
				fmt.Fprintf(&b, "Unable to destroy compute instance ID %2d from GPU %2d GPU instance ID %2d: In use by another client\nFailed to destroy compute instances: In use by another client\n", x.ci.id, i, x.id)
				return b.String(), exitOther
			}
			fmt.Fprintf(&b, "Successfully destroyed compute instance ID %2d from GPU %2d GPU instance ID %2d\n", x.ci.id, i, x.id)
			x.ci = nil
		}
	}
	if !found {
		return "Failed to destroy compute instances: Not Found\n", exitNotFound
	}
	return b.String(), 0
}

// destroyGI is `nvidia-smi mig -dgi [-gi G]`; a GPU instance that still has
// a compute instance is "In use by another client".
func (f *Fake) destroyGI(targets []int, giFilter int) (string, int) {
	var b strings.Builder
	found := false
	for _, i := range targets {
		g := f.GPUs[i]
		for _, x := range g.sortedGIs() {
			if giFilter >= 0 && x.id != giFilter {
				continue
			}
			found = true
			if x.ci != nil {
				fmt.Fprintf(&b, "Unable to destroy GPU instance ID %2d from GPU %2d: In use by another client\nFailed to destroy GPU instances: In use by another client\n", x.id, i)
				return b.String(), exitOther
			}
			fmt.Fprintf(&b, "Successfully destroyed GPU instance ID %2d from GPU %2d\n", x.id, i)
			g.gis = slices.DeleteFunc(g.gis, func(y *gi) bool { return y == x })
		}
	}
	if !found {
		return "Failed to destroy GPU instances: Not Found\n", exitNotFound
	}
	return b.String(), 0
}
