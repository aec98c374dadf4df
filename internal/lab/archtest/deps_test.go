package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The rules below are the ones docs/ARCHITECTURE.md states; change both
// together.

const mod = "github.com/ktlsgo/ktls"

// A home is one of the tree's products. Every package of the module has
// exactly one.
type home string

const (
	core   home = "library core"      // what a user of the module imports, and its internals
	cli    home = "command internals" // internal/cli/...: what ktls's subcommands do
	cmds   home = "command"           // cmd/...: the binaries, thin cobra layers
	runner home = "lab runner"        // internal/lab and what boots and drives guests
	rig    home = "test rig"          // helpers that tests of every home import
	arch   home = "architecture tests"
)

// homeOf places a package (its path inside the module), or returns "" for
// a package nobody has placed yet, which fails TestEveryPackageHasAHome.
func homeOf(rel string) home {
	switch rel {
	case ".", "khttp", "internal/kernel", "internal/keylog", "internal/keyschedule",
		"internal/record", "internal/recordio":
		return core
	case "internal/lab", "internal/lab/guest", "internal/lab/init", "internal/lab/job",
		"internal/lab/modinfo", "cmd/ktls-lab":
		return runner
	case "internal/lab/kerneltest", "internal/lab/labnet", "internal/lab/testcert",
		"internal/lab/tlstest", "internal/lab/hostiletest", "internal/lab/ktlstest",
		"internal/lab/wiretest", "internal/lab/e2e":
		return rig
	case "internal/lab/archtest":
		return arch
	}
	switch {
	case strings.HasPrefix(rel, "internal/cli/"):
		return cli
	case strings.HasPrefix(rel, "cmd/"):
		return cmds
	}
	return ""
}

// coreImports is the one-way order inside the library core: the packages
// of ours each may import directly. The leaves (keylog, keyschedule)
// depend on nothing of ours, which keeps them pure and testable against
// published vectors; kernel reads the suite table from keyschedule, to lay
// a suite's keys out for the kernel and to say whether it takes them.
var coreImports = map[string][]string{
	"internal/kernel":      {"internal/keyschedule"},
	"internal/keylog":      {},
	"internal/keyschedule": {},
	"internal/record":      {"internal/keyschedule"},
	"internal/recordio":    {"internal/keyschedule", "internal/record"},
	".":                    {"internal/kernel", "internal/keylog", "internal/keyschedule", "internal/record", "internal/recordio"},
	"khttp":                {"."},
}

// coreModules are the only modules besides the standard library that the
// library core may build with: what `go get github.com/ktlsgo/ktls` should
// cost a user. Metrics (prometheus), CLI (cobra), plotting (gonum),
// netlink and the lab's decompressors belong to the commands and the lab.
var coreModules = []string{mod, "golang.org/x/crypto", "golang.org/x/net", "golang.org/x/sys", "golang.org/x/text"}

// labForCmdLab is what cmd/ktls-lab may import of ours besides the
// runner: its suite asks internal/kernel whether this host has the TLS
// ULP, to say why kernel tests skipped here (and kernel brings the pure
// suite table of internal/keyschedule).
var labForCmdLab = []string{"internal/kernel", "internal/keyschedule"}

// rigMayImport is what the test rig may import of ours besides itself:
// the core's internal packages, never the root package, khttp or a
// command, so that tests of every home can use it; and lab/job for the one
// environment variable by which a test knows it runs in the lab.
// The root package is among them for ktlstest, which makes ktls
// connections for the root's external tests and the end-to-end tests; an
// internal test of the root that imported it would not compile.
var rigMayImport = []string{".", "internal/kernel", "internal/keylog", "internal/keyschedule",
	"internal/record", "internal/recordio", "internal/lab/job"}

// coreTestModules are the modules the library core's tests may add to
// coreModules. A user's `go mod tidy` records in go.sum, and downloads,
// every module that the tests of the packages it imports (ktls, khttp and
// everything of ours below them) need: see docs/ARCHITECTURE.md, "One
// module". So the core's tests stay as lean as the core.
var coreTestModules = []string{"github.com/google/go-cmp", "go.uber.org/goleak"}

// knownTestViolations are packages that tests of the core import against
// TestTests or TestLibraryTestModules. Issue 15 emptied it by moving the
// root's end-to-end tests to internal/lab/e2e; an entry whose import is
// gone fails TestLibraryTestModules, so the list only shrinks.
var knownTestViolations = map[string][]string{}

// TestEveryPackageHasAHome fails for a package that no rule places, so that
// a new package is put in a home on purpose.
func TestEveryPackageHasAHome(t *testing.T) {
	g := loadGraph(t, "linux")
	for _, rel := range g.ours() {
		if homeOf(rel) == "" {
			t.Errorf("package %s has no home: add it to homeOf (and docs/ARCHITECTURE.md)", rel)
		}
		if err := g.pkg(rel).Error; err != nil {
			t.Errorf("GOOS=linux go list: %s: %s", rel, err.Err)
		}
	}
}

// TestLibraryCore: the library core builds from the standard library,
// golang.org/x and itself, and its packages import each other only in the
// order coreImports gives.
func TestLibraryCore(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		g := loadGraph(t, goos)
		for _, rel := range g.ours() {
			if homeOf(rel) != core {
				continue
			}
			p := g.pkg(rel)
			if p.Error != nil {
				t.Errorf("GOOS=%s go list: %s: %s", goos, rel, p.Error.Err)
			}
			for _, d := range p.Deps {
				dp := g.byPath[d]
				switch {
				case dp == nil:
					t.Errorf("GOOS=%s: %s: dependency %s not listed", goos, rel, d)
				case dp.Standard:
				case dp.Module == nil || !slices.Contains(coreModules, dp.Module.Path):
					t.Errorf("GOOS=%s: library package %s depends on %s (%s), not one of coreModules",
						goos, rel, d, g.describe(d))
				case dp.Module.Path == mod && homeOf(g.rel(d)) != core:
					t.Errorf("GOOS=%s: library package %s depends on %s (%s)", goos, rel, g.rel(d), homeOf(g.rel(d)))
				}
			}
			allowed, ok := coreImports[rel]
			if !ok {
				t.Errorf("library package %s has no entry in coreImports", rel)
			}
			for _, imp := range g.ourImports(p.Imports) {
				if !slices.Contains(allowed, imp) {
					t.Errorf("GOOS=%s: %s imports %s; the core's order allows it only %v", goos, rel, imp, allowed)
				}
			}
		}
	}
}

// TestCommandInternals: internal/cli/... builds on the library, never on
// the lab, and only cmd/ktls (and the command internals themselves) import
// it.
func TestCommandInternals(t *testing.T) {
	g := loadGraph(t, "linux")
	for _, rel := range g.ours() {
		h := homeOf(rel)
		p := g.pkg(rel)
		if h == cli {
			for _, d := range g.ourDeps(p) {
				if dh := homeOf(d); dh == runner || dh == rig {
					t.Errorf("command internal %s depends on %s (%s)", rel, d, dh)
				}
			}
		}
		if h != cli && rel != "cmd/ktls" {
			for _, imp := range g.ourImports(p.Imports) {
				if homeOf(imp) == cli {
					t.Errorf("%s (%s) imports command internal %s; only cmd/ktls may", rel, h, imp)
				}
			}
		}
	}
}

// TestLabRunner: the lab runner boots kernels and runs test binaries, and
// knows nothing of ktls: it imports no library, command or test-rig
// package. cmd/ktls-lab, which also runs the project's suite, may in
// addition ask internal/kernel about the host.
func TestLabRunner(t *testing.T) {
	checkDeps(t, runner, func(rel, d string) bool {
		return homeOf(d) == runner || rel == "cmd/ktls-lab" && slices.Contains(labForCmdLab, d)
	})
}

// TestTestRig: the test rig imports only the core's packages (not khttp)
// and lab/job, so that the tests of any home (the root package's included) can
// import it without a cycle or a command in their build.
func TestTestRig(t *testing.T) {
	checkDeps(t, rig, func(_, d string) bool {
		return homeOf(d) == rig || slices.Contains(rigMayImport, d)
	})
}

// checkDeps reports each package of ours that a package of home h needs
// for its non-test build and that may(h's package, it) refuses.
func checkDeps(t *testing.T, h home, may func(rel, dep string) bool) {
	t.Helper()
	g := loadGraph(t, "linux")
	for _, rel := range g.ours() {
		if homeOf(rel) != h {
			continue
		}
		for _, d := range g.ourDeps(g.pkg(rel)) {
			if !may(rel, d) {
				t.Errorf("%s package %s depends on %s (%s)", h, rel, d, homeOf(d))
			}
		}
	}
}

// TestTests: the tests of the library core and of the command internals
// may use the test rig, but no command and nothing of the lab runner but
// lab/job (which the rig brings in), so a test never builds more of the
// tree than the code it tests.
func TestTests(t *testing.T) {
	g := loadGraph(t, "linux")
	for _, rel := range g.ours() {
		h := homeOf(rel)
		if h != core && h != cli {
			continue
		}
		for _, d := range g.testDeps(g.pkg(rel)) {
			dh := homeOf(d)
			bad := dh == cmds || dh == runner && d != "internal/lab/job" || h == core && dh == cli
			if !bad {
				continue
			}
			if slices.Contains(knownTestViolations[rel], d) {
				t.Logf("known, to be removed (issue 15): tests of %s import %s (%s)", rel, d, dh)
				continue
			}
			t.Errorf("tests of %s (%s) import %s (%s)", rel, h, d, dh)
		}
	}
}

// TestLibraryTestModules: the tests of the library core build from the
// core's modules and coreTestModules only, so that what a user's go.sum
// and module cache gain from ktls stays what the core needs.
func TestLibraryTestModules(t *testing.T) {
	g := loadGraph(t, "linux")
	allowed := slices.Concat(coreModules, coreTestModules)
	for _, rel := range g.ours() {
		if homeOf(rel) != core {
			continue
		}
		p := g.pkg(rel)
		for _, known := range knownTestViolations[rel] {
			if !slices.Contains(g.ourImports(slices.Concat(p.TestImports, p.XTestImports)), known) {
				t.Errorf("knownTestViolations lists %s for the tests of %s, which no longer import it: remove it", known, rel)
			}
		}
		bad := map[string]string{} // module → a package that needs it
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if r := g.rel(imp); r != "" && slices.Contains(knownTestViolations[rel], r) {
				t.Logf("known, to be removed (issue 15): tests of %s import %s", rel, r)
				continue
			}
			q := g.byPath[imp]
			if q == nil {
				t.Errorf("tests of %s: import %s not listed", rel, imp)
				continue
			}
			for _, d := range append([]string{imp}, q.Deps...) {
				dp := g.byPath[d]
				if dp == nil || dp.Standard || dp.Module != nil && slices.Contains(allowed, dp.Module.Path) {
					continue
				}
				if _, ok := bad[g.describe(d)]; !ok {
					bad[g.describe(d)] = imp
				}
			}
		}
		for _, m := range slices.Sorted(maps.Keys(bad)) {
			imp := bad[m]
			t.Errorf("tests of library package %s need %s (through %s), not one of coreModules or coreTestModules", rel, m, imp)
		}
	}
}

// graph is `go list -deps -test ./...` for one GOOS.
type graph struct {
	goos   string
	byPath map[string]*listedPkg
}

type listedPkg struct {
	ImportPath                string
	Standard                  bool
	ForTest                   string
	Imports, Deps             []string
	TestImports, XTestImports []string
	Module                    *struct{ Path string }
	Error                     *struct{ Err string }
}

var graphs = map[string]*graph{}

func loadGraph(t *testing.T, goos string) *graph {
	t.Helper()
	if g := graphs[goos]; g != nil {
		return g
	}
	goTool := needGo(t)
	// -e: a package that builds for Linux only has no files elsewhere,
	// which is an error only where a rule needs that package.
	cmd := exec.Command(goTool, "list", "-e", "-deps", "-test",
		"-json=ImportPath,Standard,ForTest,Imports,Deps,TestImports,XTestImports,Module,Error", "./...")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "GOOS="+goos)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s go list: %v\n%s", goos, err, stderr.Bytes())
	}
	g := &graph{goos: goos, byPath: map[string]*listedPkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPkg)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.ForTest != "" || strings.HasSuffix(p.ImportPath, ".test") {
			continue // a test variant; TestImports of the plain package cover it
		}
		g.byPath[p.ImportPath] = p
	}
	graphs[goos] = g
	return g
}

// rel is path inside the module ("." for the root), or "" for a package
// of another module.
func (g *graph) rel(path string) string {
	switch {
	case path == mod:
		return "."
	case strings.HasPrefix(path, mod+"/"):
		return strings.TrimPrefix(path, mod+"/")
	}
	return ""
}

func (g *graph) pkg(rel string) *listedPkg {
	path := mod
	if rel != "." {
		path += "/" + rel
	}
	return g.byPath[path]
}

// ours lists the module's packages, by path inside it.
func (g *graph) ours() []string {
	var rels []string
	for path := range g.byPath {
		if r := g.rel(path); r != "" {
			rels = append(rels, r)
		}
	}
	sort.Strings(rels)
	return rels
}

// ourImports keeps the module's own packages of paths, by path inside it.
func (g *graph) ourImports(paths []string) []string {
	var rels []string
	for _, p := range paths {
		if r := g.rel(p); r != "" {
			rels = append(rels, r)
		}
	}
	return rels
}

// ourDeps are the module's packages that p's non-test build needs.
func (g *graph) ourDeps(p *listedPkg) []string { return g.ourImports(p.Deps) }

// testDeps are the module's packages that p's tests need beyond p's own
// build: what its test files import, and what those need.
func (g *graph) testDeps(p *listedPkg) []string {
	self := g.rel(p.ImportPath)
	seen := map[string]bool{}
	for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
		q := g.byPath[imp]
		if q == nil {
			continue // standard library, or a module package go list left out
		}
		for _, d := range append([]string{imp}, q.Deps...) {
			if r := g.rel(d); r != "" && r != self {
				seen[r] = true
			}
		}
	}
	rels := make([]string, 0, len(seen))
	for r := range seen {
		rels = append(rels, r)
	}
	sort.Strings(rels)
	return rels
}

func (g *graph) describe(path string) string {
	p := g.byPath[path]
	if p == nil || p.Module == nil {
		return "unknown module"
	}
	return fmt.Sprintf("module %s", p.Module.Path)
}
