package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// setupScript gives each script the lab's environment and, in $WORK,
// a test CA and certificate (ca.pem, cert.pem, key.pem).
func setupScript(env *testscript.Env) error {
	if v, ok := os.LookupEnv("KTLS_LAB"); ok {
		env.Setenv("KTLS_LAB", v)
	}
	b := testcert.Get(testcert.ECDSA)
	for name, data := range map[string][]byte{"ca.pem": b.CAPEM, "cert.pem": b.CertPEM, "key.pem": b.KeyPEM} {
		if err := os.WriteFile(filepath.Join(env.WorkDir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// scriptCondition adds:
//
//	[lab]    the script runs in the kernel lab
//	[ulp]    this kernel has TLS (the lab's kernels always do)
//	[rekey]  this kernel can install new TLS 1.3 keys (6.14+)
//	[bulk]   big transfers run here: on the host, and on the lab's
//	         kerneltest.BulkKernel (the other lab kernels move less)
//	[notls]  this kernel's configuration says it was built without
//	         CONFIG_TLS (this project's CI machines)
//	[exec:X] X is installed (testscript's own)
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "lab":
		_, ok := os.LookupEnv("KTLS_LAB")
		return ok, nil
	case "ulp":
		return kerneltest.HaveULP(), nil
	case "rekey":
		return kernel.FeatureRekey.Check() == nil, nil
	case "bulk":
		return kerneltest.BulkSize(1, 0) == 1, nil
	case "notls":
		return kernel.GatherULPFacts(os.DirFS("/")).Config == "n", nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"start":       cmdStart,
	"terminate":   cmdTerminate,
	"randfile":    cmdRandfile,
	"sha256":      cmdSHA256,
	"envmatch":    cmdEnvmatch,
	"httpbackend": cmdHTTPBackend,
}

// httpbackend NAME DIR serves DIR over plain HTTP on loopback, in the
// test process, until the script ends; its address goes in $NAME_ADDR.
func cmdHTTPBackend(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: httpbackend NAME DIR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(ts.MkAbs(args[1]))), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv(strings.ToUpper(args[0])+"_ADDR", ln.Addr().String())
}

// envmatch VAR REGEXP checks a variable against a regular expression.
func cmdEnvmatch(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: envmatch VAR REGEXP")
	}
	v := ts.Getenv(args[0])
	ok, err := regexp.MatchString(args[1], v)
	ts.Check(err)
	if ok == neg {
		ts.Fatalf("$%s = %q; match %q: %v", args[0], v, args[1], ok)
	}
}

type background struct {
	cmd    *exec.Cmd
	stdout *wiretest.SyncBuffer
	stderr *wiretest.SyncBuffer
	copied chan struct{} // closed when all of stdout is in the buffer
}

var (
	bgMu sync.Mutex
	bgs  = map[*testscript.TestScript]map[string]*background{}
)

var urlInLine = regexp.MustCompile(`[a-z]+://([^\s/]+)`)

// start NAME PROGRAM [ARGS...] starts a program in the background and
// waits for the first line of its standard output, which it keeps in
// $NAME_LINE; the first URL in it (https://..., tls://...) goes in
// $NAME_URL, and its host:port in $NAME_ADDR.
func cmdStart(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: start NAME PROGRAM [ARGS...]")
	}
	name, prog := args[0], args[1]
	path, err := exec.LookPath(prog)
	if err != nil {
		// testscript puts the commands it runs in-process on its own PATH.
		for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
			if p := filepath.Join(dir, prog); fileExists(p) {
				path = p
				break
			}
		}
	}
	if path == "" {
		ts.Fatalf("start: %s not found", prog)
	}
	cmd := exec.Command(path, args[2:]...)
	cmd.Dir = ts.Getenv("WORK")
	cmd.Env = os.Environ()
	for _, kv := range []string{"PATH", "HOME", "KTLS_LAB", "WORK"} {
		cmd.Env = append(cmd.Env, kv+"="+ts.Getenv(kv))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		ts.Fatalf("start: %v", err)
	}
	bg := &background{cmd: cmd, stdout: &wiretest.SyncBuffer{}, stderr: &wiretest.SyncBuffer{}, copied: make(chan struct{})}
	cmd.Stderr = bg.stderr
	if err := cmd.Start(); err != nil {
		ts.Fatalf("start: %v", err)
	}
	first := make(chan string, 1)
	go func() {
		defer close(bg.copied)
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		bg.stdout.Write([]byte(line))
		first <- strings.TrimSpace(line)
		io.Copy(bg.stdout, r)
	}()
	var line string
	select {
	case line = <-first:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		ts.Fatalf("start: %s printed nothing in 60s; stderr:\n%s", prog, bg.stderr)
	}
	if line == "" {
		cmd.Wait()
		ts.Fatalf("start: %s exited before printing a line; stderr:\n%s", prog, bg.stderr)
	}
	up := strings.ToUpper(name)
	ts.Setenv(up+"_LINE", line)
	if m := urlInLine.FindStringSubmatch(line); m != nil {
		ts.Setenv(up+"_URL", m[0])
		ts.Setenv(up+"_ADDR", m[1])
	}
	bgMu.Lock()
	if bgs[ts] == nil {
		bgs[ts] = map[string]*background{}
	}
	bgs[ts][name] = bg
	bgMu.Unlock()
	ts.Defer(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
}

// terminate NAME sends SIGTERM to a program from start, waits for it, and puts
// its output in files NAME.stdout and NAME.stderr. It fails if the program
// fails (or, with !, if it doesn't).
//
// It is not called stop: testscript's own stop, which ends the script
// with a pass, takes precedence over a command of the same name, and
// under that name every check after it went unrun.
func cmdTerminate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: terminate NAME")
	}
	bgMu.Lock()
	bg := bgs[ts][args[0]]
	bgMu.Unlock()
	if bg == nil {
		ts.Fatalf("terminate: no program %s", args[0])
	}
	bg.cmd.Process.Signal(syscall.SIGTERM)
	// Wait closes the stdout pipe, so it comes after the copy has read
	// to the end: the program's last lines are often what a script checks.
	select {
	case <-bg.copied:
	case <-time.After(30 * time.Second):
		bg.cmd.Process.Kill()
		<-bg.copied
		ts.Logf("terminate: %s ignored SIGTERM for 30s", args[0])
	}
	err := bg.cmd.Wait()
	dir := ts.Getenv("WORK")
	os.WriteFile(filepath.Join(dir, args[0]+".stdout"), []byte(bg.stdout.String()), 0o644)
	os.WriteFile(filepath.Join(dir, args[0]+".stderr"), []byte(bg.stderr.String()), 0o644)
	if (err != nil) != neg {
		ts.Fatalf("terminate: %s exited with %v\nstderr:\n%s", args[0], err, bg.stderr)
	}
}

// randfile FILE SIZE writes SIZE pseudo-random bytes (suffixes K, M, G).
func cmdRandfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: randfile FILE SIZE")
	}
	size := parseSize(ts, args[1])
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 1<<20)
	for size > 0 {
		chunk := buf[:min(int64(len(buf)), size)]
		rng.Read(chunk)
		_, err := f.Write(chunk)
		ts.Check(err)
		size -= int64(len(chunk))
	}
}

// sha256 FILE FILE... compares the files' SHA-256 (all equal, or with !,
// not all equal).
func cmdSHA256(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: sha256 FILE FILE...")
	}
	var first string
	same := true
	for i, name := range args {
		f, err := os.Open(ts.MkAbs(name))
		ts.Check(err)
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		ts.Check(err)
		sum := hex.EncodeToString(h.Sum(nil))
		ts.Logf("sha256 %s %s", sum, name)
		if i == 0 {
			first = sum
		} else if sum != first {
			same = false
		}
	}
	if same == neg {
		ts.Fatalf("sha256: files are %s", map[bool]string{true: "the same", false: "different"}[same])
	}
}

func parseSize(ts *testscript.TestScript, s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	ts.Check(err)
	return n * mult
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Commands for the check and stat scripts:
//
//	jsontmpl FILE TEMPLATE   print a text/template executed on FILE's JSON
//	ktlsconn NAME [1.2|1.3]  hold an offloaded loopback connection open
//	waitstdout NAME REGEXP   wait for a program from start to print a match
func init() {
	scriptCmds["jsontmpl"] = cmdJSONTmpl
	scriptCmds["ktlsconn"] = cmdKTLSConn
	scriptCmds["waitstdout"] = cmdWaitStdout
}

// waitstdout NAME REGEXP waits, up to 30 seconds, until the standard
// output of the program start NAME began matches REGEXP (multi-line
// mode, as stdout), and fails if it doesn't. It lets a script wait for
// what a running program shows instead of for a fixed time.
func cmdWaitStdout(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitstdout NAME REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	bgMu.Lock()
	bg := bgs[ts][args[0]]
	bgMu.Unlock()
	if bg == nil {
		ts.Fatalf("waitstdout: no program %s", args[0])
	}
	for end := time.Now().Add(30 * time.Second); ; {
		if re.MatchString(bg.stdout.String()) {
			return
		}
		if time.Now().After(end) {
			ts.Fatalf("waitstdout: %s printed no match for %q in 30s; stdout:\n%s\nstderr:\n%s", args[0], args[1], bg.stdout, bg.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsontmpl FILE TEMPLATE decodes FILE (or stdout, the last command's) as
// JSON and prints TEMPLATE, a text/template, executed on it, for stdout
// and cmp to check. Object keys are fields, as in {{.ulp.available}}; a
// key the JSON doesn't have is an error, so a renamed field fails the
// script instead of printing "<no value>".
func cmdJSONTmpl(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsontmpl FILE TEMPLATE")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &v); err != nil {
		ts.Fatalf("jsontmpl: %s: %v", args[0], err)
	}
	t, err := template.New("jsontmpl").Option("missingkey=error").Parse(args[1])
	ts.Check(err)
	var out strings.Builder
	if err := t.Execute(&out, v); err != nil {
		ts.Fatalf("jsontmpl: %v", err)
	}
	if s := out.String(); s != "" && !strings.HasSuffix(s, "\n") {
		out.WriteString("\n")
	}
	io.WriteString(ts.Stdout(), out.String())
}

// ktlsconn NAME [1.2|1.3] opens a loopback TLS connection (TLS 1.3 unless
// given) between two ktls ends in the test process, sends a byte each way,
// and holds it open until the script ends, for ktls stat to find. It fails
// unless the kernel has both directions of both ends. The ends' local
// addresses go in $NAME_CLIENT and $NAME_SERVER.
func cmdKTLSConn(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: ktlsconn NAME [1.2|1.3]")
	}
	version := uint16(tls.VersionTLS13)
	if len(args) == 2 {
		switch args[1] {
		case "1.2":
			version = tls.VersionTLS12
		case "1.3":
		default:
			ts.Fatalf("usage: ktlsconn NAME [1.2|1.3]")
		}
	}
	b := testcert.Get(testcert.ECDSA)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	defer ln.Close()
	deadline := time.Now().Add(30 * time.Second)

	type accepted struct {
		c   *ktls.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			ch <- accepted{nil, err}
			return
		}
		raw.SetDeadline(deadline)
		c := ktls.Server(raw, b.ServerConfig())
		// Echo the client's byte: once it has gone both ways, both ends
		// are past the handshake and have offloaded what they will.
		buf := make([]byte, 1)
		if _, err = io.ReadFull(c, buf); err == nil {
			_, err = c.Write(buf)
		}
		ch <- accepted{c, err}
	}()

	client, err := ktls.DialWithDialer(&net.Dialer{Deadline: deadline}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: b.Pool, MinVersion: version, MaxVersion: version})
	if err != nil {
		ts.Fatalf("ktlsconn: %v", err)
	}
	ts.Defer(func() { client.Close() })
	client.SetDeadline(deadline)
	buf := []byte{'k'}
	if _, err := client.Write(buf); err != nil {
		ts.Fatalf("ktlsconn: client write: %v", err)
	}
	if _, err := io.ReadFull(client, buf); err != nil {
		ts.Fatalf("ktlsconn: client read: %v", err)
	}
	srv := <-ch
	if srv.c != nil {
		ts.Defer(func() { srv.c.Close() })
	}
	if srv.err != nil {
		ts.Fatalf("ktlsconn: server: %v", srv.err)
	}
	client.SetDeadline(time.Time{})
	srv.c.SetDeadline(time.Time{})
	for _, end := range []struct {
		name string
		c    *ktls.Conn
	}{{"client", client}, {"server", srv.c}} {
		if o := end.c.Offload(); !o.TX || !o.RX {
			ts.Fatalf("ktlsconn: the %s end is not offloaded both ways: %v", end.name, o)
		}
		ts.Logf("ktlsconn: %s %v: %v", end.name, end.c.LocalAddr(), end.c.Offload())
	}
	up := strings.ToUpper(args[0])
	ts.Setenv(up+"_CLIENT", client.LocalAddr().String())
	ts.Setenv(up+"_SERVER", srv.c.LocalAddr().String())
}
