package ktls_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ktlsgo/ktls"
)

// Example_server is the README's library snippet, line for line
// (TestREADMESnippet checks that), so the README's code always compiles.
func Example_server() {
	cert, err := tls.LoadX509KeyPair("cert.pem", "key.pem")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := ktls.Listen("tcp", ":8443", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			kc := c.(*ktls.Conn)
			if err := kc.Handshake(); err != nil {
				return
			}
			fmt.Println(kc.Offload()) // "TX+RX (TLS 1.3, TLS_AES_128_GCM_SHA256)" or "off (...): <why>"
			f, err := os.Open("index.html")
			if err != nil {
				return
			}
			defer f.Close()
			io.Copy(kc, f) // sendfile through the kernel
		}()
	}
}

// TestREADMESnippet checks that the README's Go snippet is the body of
// Example_server, which the compiler checks.
func TestREADMESnippet(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```go block")
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)func Example_server\(\) \{\n(.*?)\n\}\n`).FindSubmatch(src)
	if body == nil {
		t.Fatal("example_test.go has no Example_server")
	}
	if got, want := trimLines(string(m[1])), trimLines(string(body[1])); got != want {
		t.Errorf("README.md's snippet is not Example_server's body:\n--- README\n%s\n--- Example_server\n%s", got, want)
	}
}

func trimLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}
