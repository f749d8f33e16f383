package spec

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Executors lists what may build an apply's artifacts: "local" (this
// process) and "slurm" (one sbatch array job, see docs/slurm.md).
var Executors = []string{"local", "slurm"}

// SlurmSettings are the options of cachectl { slurm { } }: how apply's
// build tasks and stage's node tasks are submitted. Zero values leave the
// option to Slurm's defaults.
type SlurmSettings struct {
	// Partition, Account and QOS are sbatch's --partition, --account, --qos.
	Partition, Account, QOS string
	// TimeLimit is sbatch's --time (rounded up to whole minutes).
	TimeLimit time.Duration
	// CPUsPerTask and MemPerTask (bytes, passed in MiB) are sbatch's
	// --cpus-per-task and --mem.
	CPUsPerTask int
	MemPerTask  int64
	// MaxParallel bounds the array tasks that run at once (--array=0-N%M).
	MaxParallel int
	// SbatchArgs are extra sbatch arguments, each one argument ("--exclusive").
	SbatchArgs []string
	// Command is the cachectl program the tasks run ("" = the path of the
	// running cachectl; it must be the same path on the compute nodes).
	Command string
	// LogDir is a directory on the shared file system for the job's task
	// list and logs ("" = <store>/slurm).
	LogDir string
	// PollInterval is how often squeue and the result records are checked.
	PollInterval time.Duration
	// ResultTimeout is how long a task's result record may take to show
	// after Slurm reports the task ended (a shared file system may show a
	// new file late) before the task counts as failed.
	ResultTimeout time.Duration
	Range         hcl.Range
}

// Defaults of the Slurm settings.
const (
	DefaultPollInterval  = 5 * time.Second
	DefaultResultTimeout = 60 * time.Second
)

// WithDefaults returns s with DefaultPollInterval and DefaultResultTimeout
// where s leaves them unset (zero or less).
func (s SlurmSettings) WithDefaults() SlurmSettings {
	if s.PollInterval <= 0 {
		s.PollInterval = DefaultPollInterval
	}
	if s.ResultTimeout <= 0 {
		s.ResultTimeout = DefaultResultTimeout
	}
	return s
}

var (
	slurmSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "partition"}, {Name: "account"}, {Name: "qos"}, {Name: "time_limit"},
		{Name: "cpus_per_task"}, {Name: "mem_per_task"}, {Name: "max_parallel"}, {Name: "sbatch_args"},
		{Name: "command"}, {Name: "log_dir"}, {Name: "poll_interval"}, {Name: "result_timeout"},
	}}
	nodeCacheSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "from", Required: true}, {Name: "root", Required: true}, {Name: "max_size"},
		{Name: "partition"}, {Name: "nodes"}, {Name: "images"},
		{Name: "owner"}, {Name: "group"}, {Name: "file_mode"}, {Name: "dir_mode"},
	}}
	slurmNameRE  = regexp.MustCompile(`^[A-Za-z0-9_.,\[\]-]+$`)
	sizeRE       = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:i?B)?$`)
	sbatchArgsRE = regexp.MustCompile(`^--?[A-Za-z]`)
)

// decodeExecutor decodes executor and the slurm block of the cachectl
// block.
func (l *loader) decodeExecutor(m *Model, content *hcl.BodyContent) {
	if a := content.Attributes["executor"]; a != nil {
		var s string
		if l.stringAttr(a, &s) {
			if !contains(Executors, s) {
				l.errorf(a.Expr.Range().Ptr(), "Unknown executor", "executor = %q: use \"local\" (build on this host) or \"slurm\" (build on the cluster with one sbatch array job).", s)
			} else {
				m.Executor = s
			}
		}
	}
	for i, b := range content.Blocks {
		if b.Type != "slurm" {
			continue
		}
		if i > 0 {
			l.errorf(b.DefRange.Ptr(), "Duplicate slurm block", "The cachectl block has at most one slurm block.")
			continue
		}
		l.decodeSlurm(&m.Slurm, b)
	}
}

func (l *loader) decodeSlurm(s *SlurmSettings, b *hcl.Block) {
	content, d := b.Body.Content(slurmSchema)
	l.add(d)
	s.Range = b.DefRange
	for _, f := range []struct {
		name string
		dst  *string
	}{{"partition", &s.Partition}, {"account", &s.Account}, {"qos", &s.QOS}} {
		if a := content.Attributes[f.name]; a != nil {
			l.slurmName(a, f.dst)
		}
	}
	if a := content.Attributes["time_limit"]; a != nil {
		l.durationAttr(a, &s.TimeLimit, time.Minute, 365*24*time.Hour)
	}
	if a := content.Attributes["cpus_per_task"]; a != nil {
		l.positiveInt(a, &s.CPUsPerTask, 4096)
	}
	if a := content.Attributes["max_parallel"]; a != nil {
		l.positiveInt(a, &s.MaxParallel, 100000)
	}
	if a := content.Attributes["mem_per_task"]; a != nil {
		l.sizeAttr(a, &s.MemPerTask, 1<<20)
	}
	if a := content.Attributes["sbatch_args"]; a != nil {
		items, _ := l.stringList(a)
		for _, it := range items {
			if !sbatchArgsRE.MatchString(it.val) {
				l.errorf(&it.rng, "Invalid sbatch argument", "%q is not an option; give each sbatch option as one element, such as \"--exclusive\" or \"--constraint=nvme\" (they are passed as arguments, never through a shell).", it.val)
				continue
			}
			s.SbatchArgs = append(s.SbatchArgs, it.val)
		}
	}
	if a := content.Attributes["command"]; a != nil {
		if l.stringAttr(a, &s.Command) && !strings.HasPrefix(s.Command, "/") {
			l.errorf(a.Expr.Range().Ptr(), "Relative command", "command = %q: give the absolute path of cachectl on the compute nodes.", s.Command)
		}
	}
	if a := content.Attributes["log_dir"]; a != nil {
		l.pathAttr(a, &s.LogDir)
	}
	if a := content.Attributes["poll_interval"]; a != nil {
		l.durationAttr(a, &s.PollInterval, 100*time.Millisecond, time.Hour)
	}
	if a := content.Attributes["result_timeout"]; a != nil {
		l.durationAttr(a, &s.ResultTimeout, 0, 24*time.Hour)
	}
}

// slurmName decodes a partition, account, QOS or node list name.
func (l *loader) slurmName(a *hcl.Attribute, dst *string) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	if !slurmNameRE.MatchString(s) {
		l.errorf(a.Expr.Range().Ptr(), "Invalid "+a.Name, "%s = %q: use the name as Slurm spells it (letters, digits, \"_.-\", node lists like \"n[1-4],gpu07\").", a.Name, s)
		return
	}
	*dst = s
}

func (l *loader) positiveInt(a *hcl.Attribute, dst *int, hi int) {
	var n int
	if !l.intAttr(a, &n) {
		return
	}
	if n < 1 || n > hi {
		l.errorf(a.Expr.Range().Ptr(), "Invalid "+a.Name, "%s must be between 1 and %d, not %d.", a.Name, hi, n)
		return
	}
	*dst = n
}

// sizeAttr decodes a size such as "400GiB", "400G" or "512M" (binary
// units, as Slurm reads --mem) of at least lo bytes.
func (l *loader) sizeAttr(a *hcl.Attribute, dst *int64, lo int64) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	n, err := ParseSize(s)
	if err == nil && n < lo {
		err = fmt.Errorf("less than %d bytes", lo)
	}
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Invalid "+a.Name, "%s = %q: %v; give a size such as \"400GiB\", \"400G\" or \"512M\" (binary units).", a.Name, s, err)
		return
	}
	*dst = n
}

// ParseSize parses a size with an optional binary unit: "512", "512K",
// "16G", "16GiB", "1.5T" (K, M, G, T, P are powers of 1024, with or
// without "iB"/"B").
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("not a size")
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	shift := strings.Index("KMGTP", m[2]) + 1
	if m[2] == "" {
		shift = 0
	}
	v *= float64(int64(1) << (10 * shift))
	if v >= 1<<62 {
		return 0, fmt.Errorf("too large")
	}
	return int64(v), nil
}

// NodeCache is a node-local tier (node_cache "NAME" { }): copies of a
// cache's artifacts on each node's local disk, which "cachectl stage"
// fills through Slurm, one task per node.
type NodeCache struct {
	Name string
	// From is the cache whose artifacts are copied.
	From string
	// Root is the local directory on every node (absolute); "%n" in it is
	// replaced by the node's name.
	Root string
	// Partition and Nodes (a Slurm node list) select the nodes; at least
	// one is set.
	Partition, Nodes string
	// MaxSize bounds what the tier holds (bytes; 0 = no bound): unwanted
	// artifacts are evicted least recently used first to stay under it.
	MaxSize int64
	// Images are the references (as the from cache writes them) to keep
	// on the nodes; empty: all of the cache's artifacts.
	Images []string
	// Owner, Group, FileMode and DirMode of the local copies (default:
	// those of the from cache).
	Owner, Group      string
	FileMode, DirMode Mode
	Range             hcl.Range
}

// RootFor returns the local root on node.
func (n *NodeCache) RootFor(node string) string { return strings.ReplaceAll(n.Root, "%n", node) }

// Wants reports whether the tier keeps the artifact of reference ref.
func (n *NodeCache) Wants(ref string) bool { return len(n.Images) == 0 || contains(n.Images, ref) }

// NodeCache returns the node cache with the given name, or nil.
func (m *Model) NodeCache(name string) *NodeCache {
	for _, n := range m.NodeCaches {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// decodeNodeCaches decodes node_cache blocks (after the caches).
func (l *loader) decodeNodeCaches(m *Model, blocks []*hcl.Block) {
	for _, b := range blocks {
		content, d := b.Body.Content(nodeCacheSchema)
		l.add(d)
		name := b.Labels[0]
		lr := b.LabelRanges[0]
		if !cacheNameRE.MatchString(name) {
			l.errorf(&lr, "Invalid node cache name", "%q is not a valid node cache name: use letters, digits, underscores and dashes, starting with a letter or underscore.", name)
			continue
		}
		if prev := m.NodeCache(name); prev != nil {
			l.errorf(&lr, "Duplicate node cache", "A node cache named %q was already defined at %s.", name, posString(prev.Range))
			continue
		}
		n := &NodeCache{Name: name, Range: b.DefRange}
		var from *Cache
		if a := content.Attributes["from"]; a != nil && l.stringAttr(a, &n.From) {
			if from = m.Cache(n.From); from == nil {
				var names []string
				for _, c := range m.Caches {
					names = append(names, c.Name)
				}
				l.errorf(a.Expr.Range().Ptr(), "Undefined cache", "from = %q: no cache of that name.%s", n.From, suggest(n.From, names, ""))
				continue
			}
			n.Owner, n.Group, n.FileMode, n.DirMode = from.Owner, from.Group, from.FileMode, from.DirMode
		}
		if a := content.Attributes["root"]; a != nil {
			var s string
			if l.stringAttr(a, &s) {
				rest := strings.ReplaceAll(s, "%n", "")
				switch {
				case !strings.HasPrefix(s, "/"):
					l.errorf(a.Expr.Range().Ptr(), "Relative node cache root", "root = %q: give an absolute path on the nodes' local disks, such as \"/local/enroot\".", s)
				case path.Clean(s) == "/":
					l.errorf(a.Expr.Range().Ptr(), "Node cache root is the file system root", "root = %q: give the tier a directory of its own.", s)
				case strings.Contains(rest, "%"):
					l.errorf(a.Expr.Range().Ptr(), "Unknown placeholder", "root = %q: the only placeholder is %%n (the node's name).", s)
				default:
					n.Root = path.Clean(s)
					for _, c := range m.Caches {
						if Within(c.Root, n.Root) || Within(n.Root, c.Root) {
							l.errorf(a.Expr.Range().Ptr(), "Node cache root overlaps a cache root", "root = %q overlaps the root %q of cache %q; node-local copies need a directory of their own.", s, c.Root, c.Name)
						}
					}
				}
			}
		}
		if a := content.Attributes["partition"]; a != nil {
			l.slurmName(a, &n.Partition)
		}
		if a := content.Attributes["nodes"]; a != nil {
			l.slurmName(a, &n.Nodes)
		}
		if content.Attributes["partition"] == nil && content.Attributes["nodes"] == nil {
			l.errorf(b.DefRange.Ptr(), "No nodes", "node_cache %q names neither a partition nor nodes; set partition = \"NAME\" and/or nodes = \"n[1-4]\".", name)
		}
		if a := content.Attributes["max_size"]; a != nil {
			l.sizeAttr(a, &n.MaxSize, 1)
		}
		if a := content.Attributes["images"]; a != nil && from != nil {
			items, _ := l.stringList(a)
			for _, it := range items {
				found := false
				for _, art := range from.Artifacts {
					found = found || art.Ref == it.val
				}
				if !found {
					var refs []string
					for _, art := range from.Artifacts {
						refs = append(refs, art.Ref)
					}
					l.errorf(&it.rng, "Image not in the cache", "%q is not an image of cache %q; a node cache copies that cache's artifacts.%s", it.val, from.Name, suggest(it.val, refs, ""))
					continue
				}
				n.Images = append(n.Images, it.val)
			}
		}
		if a := content.Attributes["owner"]; a != nil {
			l.userAttr(a, &n.Owner, "user")
		}
		if a := content.Attributes["group"]; a != nil {
			l.userAttr(a, &n.Group, "group")
		}
		if a := content.Attributes["file_mode"]; a != nil {
			l.modeAttr(a, &n.FileMode)
		}
		if a := content.Attributes["dir_mode"]; a != nil {
			l.modeAttr(a, &n.DirMode)
		}
		m.NodeCaches = append(m.NodeCaches, n)
	}
}
