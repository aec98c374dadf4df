package ktls_test

import (
	"crypto/tls"
	"reflect"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// TestMethodSetParity checks that *ktls.Conn has every method of
// *tls.Conn, with the same signature, so code written against *tls.Conn
// moves over by changing the type.
func TestMethodSetParity(t *testing.T) {
	want := reflect.TypeFor[*tls.Conn]()
	got := reflect.TypeFor[*ktls.Conn]()
	for i := range want.NumMethod() {
		m := want.Method(i)
		gm, ok := got.MethodByName(m.Name)
		if !ok {
			t.Errorf("*ktls.Conn has no %s (*tls.Conn's is %v)", m.Name, m.Type)
			continue
		}
		// Compare without the receiver, which is the first argument.
		if !sameSignature(m.Type, gm.Type) {
			t.Errorf("*ktls.Conn.%s is %v, *tls.Conn's is %v", m.Name, gm.Type, m.Type)
		}
	}
}

func sameSignature(a, b reflect.Type) bool {
	if a.NumIn() != b.NumIn() || a.NumOut() != b.NumOut() || a.IsVariadic() != b.IsVariadic() {
		return false
	}
	for i := 1; i < a.NumIn(); i++ {
		if a.In(i) != b.In(i) {
			return false
		}
	}
	for i := range a.NumOut() {
		if a.Out(i) != b.Out(i) {
			return false
		}
	}
	return true
}

// TestVerifyHostname: the client's VerifyHostname and OCSPResponse say
// what crypto/tls's say, after the handshake as before it.
func TestVerifyHostname(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	kc := ktls.Client(nil, ccfg)
	if err := kc.VerifyHostname("localhost"); err == nil {
		t.Error("VerifyHostname before the handshake succeeded")
	}
	c, _ := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	kc = c.(*ktls.Conn)
	if err := kc.VerifyHostname("localhost"); err != nil {
		t.Errorf("VerifyHostname(localhost): %v", err)
	}
	if err := kc.VerifyHostname("example.com"); err == nil {
		t.Error("VerifyHostname(example.com) succeeded for a localhost certificate")
	}
	if r := kc.OCSPResponse(); r != nil {
		t.Errorf("OCSPResponse = %x, want none: the server staples none", r)
	}
}
