package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// The root package's files should read top to bottom: each file uses only
// files below it, so a reader can start at conn.go and never be sent back
// up. backArrowLimit bounds the arrows that break that order, counted
// against the best order there is.
// Issue 15 found 7 with each direction's state spread over Conn; one type
// per direction brought it to 1.
const backArrowLimit = 2

// TestRootFileOrder measures the root package's file graph, as built for
// GOOS=linux: file A has an arrow to file B when A uses an identifier
// declared in B (a function, method, type, field, variable or constant).
// It finds the order of files with the fewest arrows pointing back up (an
// exact minimum feedback arc set, by dynamic programming over subsets) and
// asserts that there are at most backArrowLimit of them.
func TestRootFileOrder(t *testing.T) {
	g := rootFileGraph(t)
	order, back := bestOrder(g)

	t.Logf("root package, GOOS=linux: %d files, %d arrows", len(g.files), g.arrowCount())
	t.Logf("best order, top to bottom (each file should use only files below it):")
	for i, f := range order {
		t.Logf("  %2d %-22s uses %2d files, used by %2d", i+1, g.files[f], bits.OnesCount64(g.out[f]), g.inCount(f))
	}
	report := g.describe(back)
	t.Logf("%d arrows run back up (limit %d):\n%s", len(back), backArrowLimit, report)
	if len(back) > backArrowLimit {
		t.Errorf("%d arrows run back up in the root package's files, want at most %d:\n%s", len(back), backArrowLimit, report)
	}
}

// fileGraph is the uses-relation between the files of one package.
type fileGraph struct {
	files []string
	out   []uint64 // out[a] has bit b when file a uses file b
	// why[a][b] names some of the identifiers that make a use b.
	why map[[2]int]map[string]bool
}

type arrow struct{ from, to int }

func (g *fileGraph) arrowCount() int {
	n := 0
	for _, o := range g.out {
		n += bits.OnesCount64(o)
	}
	return n
}

func (g *fileGraph) inCount(f int) int {
	n := 0
	for _, o := range g.out {
		if o&(1<<f) != 0 {
			n++
		}
	}
	return n
}

func (g *fileGraph) describe(back []arrow) string {
	var b strings.Builder
	for _, a := range back {
		var ids []string
		for id := range g.why[[2]int{a.from, a.to}] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if len(ids) > 6 {
			ids = append(ids[:6], "…")
		}
		fmt.Fprintf(&b, "  %s → %s (%s)\n", g.files[a.from], g.files[a.to], strings.Join(ids, ", "))
	}
	return b.String()
}

// bestOrder returns an order of the files that minimises the arrows from a
// file to one above it, and those arrows. dp[S] is the fewest back arrows
// among orders whose top |S| files are the set S; placing v just below S
// adds one back arrow for each file in S that v uses.
func bestOrder(g *fileGraph) (order []int, back []arrow) {
	n := len(g.files)
	if n > 24 {
		panic("too many files for an exact search")
	}
	full := uint64(1)<<n - 1
	dp := make([]int32, full+1)
	last := make([]int8, full+1)
	for s := uint64(1); s <= full; s++ {
		dp[s] = 1 << 30
		for rest := s; rest != 0; rest &= rest - 1 {
			v := bits.TrailingZeros64(rest)
			prev := s &^ (1 << v)
			c := dp[prev] + int32(bits.OnesCount64(g.out[v]&prev))
			if c < dp[s] {
				dp[s], last[s] = c, int8(v)
			}
		}
	}
	for s := full; s != 0; s &^= 1 << last[s] {
		order = append(order, int(last[s]))
	}
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	pos := make([]int, n)
	for i, f := range order {
		pos[f] = i
	}
	for a := 0; a < n; a++ {
		for o := g.out[a]; o != 0; o &= o - 1 {
			b := bits.TrailingZeros64(o)
			if pos[b] < pos[a] {
				back = append(back, arrow{a, b})
			}
		}
	}
	sort.Slice(back, func(i, j int) bool {
		if back[i].from != back[j].from {
			return g.files[back[i].from] < g.files[back[j].from]
		}
		return g.files[back[i].to] < g.files[back[j].to]
	})
	if len(back) != int(dp[full]) {
		panic("bestOrder: reconstruction disagrees with the count")
	}
	return order, back
}

// rootFileGraph type-checks the root package as built for GOOS=linux, with
// export data from the go tool for its imports, and records which file
// each use of a package-level object (or a field or method) resolves to.
func rootFileGraph(t *testing.T) *fileGraph {
	t.Helper()
	goTool := needGo(t)
	root := moduleRoot(t)

	// go list names the files that GOOS=linux builds and the export data
	// of everything they import.
	env := append(os.Environ(), "GOOS=linux")
	list := exec.Command(goTool, "list", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export", ".")
	list.Dir, list.Env = root, env
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.Bytes())
	}
	type listed struct {
		ImportPath, Dir, Export string
		GoFiles                 []string
	}
	exports := map[string]string{}
	var self listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		exports[p.ImportPath] = p.Export
		self = p // -deps lists the named package last
	}
	if self.ImportPath != "github.com/ktlsgo/ktls" {
		t.Fatalf("go list listed %q last, want the root package", self.ImportPath)
	}

	fset := token.NewFileSet()
	var files []*ast.File
	g := &fileGraph{why: map[[2]int]map[string]bool{}}
	index := map[string]int{}
	for _, name := range self.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(self.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		index[fset.File(f.Pos()).Name()] = len(g.files)
		g.files = append(g.files, name)
		files = append(files, f)
	}
	if len(g.files) > 24 {
		t.Fatalf("%d files: too many for the exact search", len(g.files))
	}
	g.out = make([]uint64, len(g.files))

	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		exp, ok := exports[path]
		if !ok || exp == "" {
			return nil, fmt.Errorf("no export data for %q", path)
		}
		return os.Open(exp)
	})
	conf := types.Config{Importer: imp, Sizes: types.SizesFor("gc", runtime.GOARCH)}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	pkg, err := conf.Check(self.ImportPath, fset, files, info)
	if err != nil {
		t.Fatalf("type-checking the root package: %v", err)
	}

	for id, obj := range info.Uses {
		if obj.Pkg() != pkg || !obj.Pos().IsValid() {
			continue
		}
		// Local names live in the file that uses them; only package-level
		// objects, fields and methods can be declared elsewhere.
		if obj.Parent() != nil && obj.Parent() != pkg.Scope() {
			continue
		}
		from := index[fset.File(id.Pos()).Name()]
		to, ok := index[fset.File(obj.Pos()).Name()]
		if !ok || from == to {
			continue
		}
		g.out[from] |= 1 << to
		k := [2]int{from, to}
		if g.why[k] == nil {
			g.why[k] = map[string]bool{}
		}
		g.why[k][id.Name] = true
	}
	return g
}

// needGo returns the go tool's path, failing the test when there is none:
// these tests run on the host, where a missing go tool is a broken setup,
// not a reason to pass.
func needGo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the architecture tests need the go tool: %v", err)
	}
	return p
}

// moduleRoot is the directory of the ktls module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(needGo(t), "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("go env GOMOD: not inside the ktls module")
	}
	return filepath.Dir(mod)
}
