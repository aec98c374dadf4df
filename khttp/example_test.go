package khttp_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/khttp"
)

// Serve an http.Server over kernel TLS. Handlers see r.TLS as usual, and
// the connection (with its Offload state) through ConnFromContext; file
// bodies go out with sendfile once the kernel encrypts.
func ExampleServer() {
	certs := testcert.Get(testcert.ECDSA) // a certificate for localhost

	srv := &http.Server{
		TLSConfig: certs.ServerConfig(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := khttp.ConnFromContext(r.Context())
			log.Printf("kernel TLS: %v", c.Offload())
			fmt.Fprintf(w, "hello over %s, %s", r.Proto, tls.VersionName(r.TLS.Version))
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ks := &khttp.Server{HTTP: srv}
	go ks.Serve(ln)
	defer ks.Close()

	client := &http.Client{Transport: khttp.NewTransport(certs.ClientConfig(), nil)}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello over HTTP/1.1, TLS 1.3
}

// Fetch over HTTP/2 on kernel TLS.
func ExampleNewHTTP2Transport() {
	certs := testcert.Get(testcert.ECDSA)
	srv := &http.Server{
		TLSConfig: certs.ServerConfig(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello over %s", r.Proto)
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ks := &khttp.Server{HTTP: srv}
	go ks.Serve(ln)
	defer ks.Close()

	t := khttp.NewHTTP2Transport(certs.ClientConfig(), nil)
	defer t.CloseIdleConnections()
	resp, err := (&http.Client{Transport: t}).Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello over HTTP/2.0
}
