package ktls_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/tlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// The tests in this file hold ktls's session tickets and resumption to
// crypto/tls's: each scenario runs with crypto/tls on both ends, then with
// ktls at the server, the client or both, on fresh configs built the same
// way, and every handshake must end alike (resumed or not, failed or not,
// with the same error).

// ticketWorld is one run's configs and the state its steps move: which
// tenant the server's GetConfigForClient picks, the cache slots the client
// reads and writes, and the server's clock.
type ticketWorld struct {
	version uint16
	tenant  string // for GetConfigForClient; "" means nil, the outer config
	// The client cache ignores crypto/tls's key: each step names the slot
	// Get reads (get) and the one Put writes (put), so a session from one
	// tenant can be offered to another.
	get, put string
	cache    map[string]*tls.ClientSessionState
	now      time.Time
}

func (w *ticketWorld) clock() time.Time { return w.now }

// slotCache is the ClientSessionCache of a ticketWorld.
type slotCache struct{ w *ticketWorld }

func (c slotCache) Get(string) (*tls.ClientSessionState, bool) {
	cs, ok := c.w.cache[c.w.get]
	return cs, ok
}

func (c slotCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		// crypto/tls drops a session it can't use.
		delete(c.w.cache, c.w.get)
		return
	}
	if c.w.put != "" {
		c.w.cache[c.w.put] = cs
	}
}

// ticketStep is one connection of a scenario.
type ticketStep struct {
	tenant, get, put string
	advance          time.Duration // the server's clock moves this much first
	// want is what crypto/tls does. It is checked too, so a scenario
	// tries what its name says (a case where nothing resumes would match
	// trivially).
	want outcome
}

type outcome int

const (
	full outcome = iota
	resumed
	failed
)

func (o outcome) String() string { return [...]string{"full handshake", "resumed", "failed"}[o] }

// storeWrap is a server's own WrapSession and UnwrapSession: the session
// stays on the server, and the ticket is a random handle to it.
type storeWrap struct {
	mu       sync.Mutex
	sessions map[string][]byte
}

func newStoreWrap(cfg *tls.Config) *storeWrap {
	s := &storeWrap{sessions: map[string][]byte{}}
	cfg.WrapSession, cfg.UnwrapSession = s.wrap, s.unwrap
	return s
}

func (s *storeWrap) wrap(_ tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	b, err := ss.Bytes()
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	rand.Read(id)
	s.mu.Lock()
	s.sessions[string(id)] = b
	s.mu.Unlock()
	return id, nil
}

func (s *storeWrap) unwrap(identity []byte, _ tls.ConnectionState) (*tls.SessionState, error) {
	s.mu.Lock()
	b, ok := s.sessions[string(identity)]
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return tls.ParseSessionState(b)
}

func ticketKey(b byte) [32]byte { return [32]byte{0: b, 31: b} }

// tenants gives the outer config a GetConfigForClient that returns the
// step's tenant.
func tenants(w *ticketWorld, outer *tls.Config, configs map[string]*tls.Config) {
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if w.tenant == "" {
			return nil, nil
		}
		return configs[w.tenant], nil
	}
}

// tenantConfig is a server config for a tenant, on the world's clock.
func tenantConfig(w *ticketWorld) *tls.Config {
	cfg := serverConfig(testcert.ECDSA)
	cfg.MaxVersion = w.version
	cfg.Time = w.clock
	return cfg
}

var errResumptionRefused = errors.New("resumption refused by VerifyConnection")

func refuseResumption(cs tls.ConnectionState) error {
	if cs.DidResume {
		return errResumptionRefused
	}
	return nil
}

// ticketScenarios configure tickets and resumption on the outer config or
// on the one GetConfigForClient returns.
var ticketScenarios = []struct {
	name string
	// setup changes the client and server configs of a fresh world.
	setup func(w *ticketWorld, client, server *tls.Config)
	steps []ticketStep
}{
	{
		name:  "outer/keys",
		setup: func(w *ticketWorld, c, s *tls.Config) { s.SetSessionTicketKeys([][32]byte{ticketKey(1)}) },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: resumed}},
	},
	{
		name:  "outer/automatic-keys",
		setup: func(w *ticketWorld, c, s *tls.Config) {},
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: resumed}, {get: "x", put: "x", want: resumed}},
	},
	{
		name:  "outer/legacy-key",
		setup: func(w *ticketWorld, c, s *tls.Config) { s.SessionTicketKey = ticketKey(1) },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: resumed}},
	},
	{
		name:  "outer/disabled",
		setup: func(w *ticketWorld, c, s *tls.Config) { s.SessionTicketsDisabled = true },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: full}},
	},
	{
		// A session past crypto/tls's 7-day lifetime is not resumed.
		name:  "outer/expired",
		setup: func(w *ticketWorld, c, s *tls.Config) { s.SetSessionTicketKeys([][32]byte{ticketKey(1)}) },
		steps: []ticketStep{
			{get: "x", put: "x", want: full},
			// Not kept: a resumed TLS 1.3 session gets a new ticket, with
			// a new lifetime.
			{get: "x", put: "", advance: 6 * 24 * time.Hour, want: resumed},
			{get: "x", put: "", advance: 2 * 24 * time.Hour, want: full},
		},
	},
	{
		name: "outer/wrap",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			newStoreWrap(s)
		},
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: resumed}},
	},
	{
		// Each tenant's own keys: a ticket from one never resumes at the
		// other, as crypto/tls does.
		name: "tenant/keys",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			s.SetSessionTicketKeys([][32]byte{ticketKey(1)})
			a, b := tenantConfig(w), tenantConfig(w)
			a.SetSessionTicketKeys([][32]byte{ticketKey(2)})
			b.SetSessionTicketKeys([][32]byte{ticketKey(3)})
			tenants(w, s, map[string]*tls.Config{"a": a, "b": b})
		},
		steps: crossTenantSteps(full),
	},
	{
		name: "tenant/legacy-key",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			a, b := tenantConfig(w), tenantConfig(w)
			a.SessionTicketKey = ticketKey(2)
			b.SessionTicketKey = ticketKey(3)
			tenants(w, s, map[string]*tls.Config{"a": a, "b": b})
		},
		steps: crossTenantSteps(full),
	},
	{
		// Tenants without keys of their own share the outer config's.
		name: "tenant/outer-keys",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			s.SetSessionTicketKeys([][32]byte{ticketKey(1)})
			tenants(w, s, map[string]*tls.Config{"a": tenantConfig(w), "b": tenantConfig(w)})
		},
		steps: crossTenantSteps(resumed),
	},
	{
		name: "tenant/outer-automatic-keys",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			tenants(w, s, map[string]*tls.Config{"a": tenantConfig(w), "b": tenantConfig(w)})
		},
		steps: crossTenantSteps(resumed),
	},
	{
		// The outer config's keys, as a tenant without keys sees them, and
		// a tenant with its own.
		name: "tenant/own-and-outer-keys",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			s.SetSessionTicketKeys([][32]byte{ticketKey(1)})
			a := tenantConfig(w)
			a.SetSessionTicketKeys([][32]byte{ticketKey(2)})
			tenants(w, s, map[string]*tls.Config{"a": a, "b": tenantConfig(w)})
		},
		steps: []ticketStep{
			{tenant: "", get: "o", put: "o", want: full},
			{tenant: "b", get: "o", put: "b", want: resumed},
			{tenant: "a", get: "o", put: "a", want: full},
			{tenant: "", get: "a", put: "", want: full},
			{tenant: "a", get: "a", put: "", want: resumed},
		},
	},
	{
		name: "tenant/disabled",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			a := tenantConfig(w)
			a.SessionTicketsDisabled = true
			tenants(w, s, map[string]*tls.Config{"a": a, "b": tenantConfig(w)})
		},
		steps: []ticketStep{
			{tenant: "a", get: "a", put: "a", want: full},
			{tenant: "a", get: "a", put: "a", want: full},
			{tenant: "b", get: "b", put: "b", want: full},
			{tenant: "b", get: "b", put: "b", want: resumed},
			{tenant: "a", get: "b", put: "", want: full},
		},
	},
	{
		// The outer config disables tickets; a tenant that doesn't, with
		// keys of its own, has them; one without keys has none to seal
		// with.
		name: "tenant/outer-disabled",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			s.SessionTicketsDisabled = true
			a := tenantConfig(w)
			a.SetSessionTicketKeys([][32]byte{ticketKey(2)})
			tenants(w, s, map[string]*tls.Config{"a": a, "b": tenantConfig(w)})
		},
		steps: []ticketStep{
			{tenant: "a", get: "a", put: "a", want: full},
			{tenant: "a", get: "a", put: "a", want: resumed},
			{tenant: "b", get: "b", put: "b", want: failed},
		},
	},
	{
		// Each tenant's own WrapSession and UnwrapSession.
		name: "tenant/wrap",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			a, b := tenantConfig(w), tenantConfig(w)
			newStoreWrap(a)
			newStoreWrap(b)
			tenants(w, s, map[string]*tls.Config{"a": a, "b": b})
		},
		steps: crossTenantSteps(full),
	},
	{
		// The outer config's WrapSession is not a tenant's.
		name: "tenant/outer-wrap",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			newStoreWrap(s)
			a := tenantConfig(w)
			a.SetSessionTicketKeys([][32]byte{ticketKey(2)})
			tenants(w, s, map[string]*tls.Config{"a": a})
		},
		steps: []ticketStep{
			{tenant: "", get: "o", put: "o", want: full},
			{tenant: "", get: "o", put: "o", want: resumed},
			{tenant: "a", get: "o", put: "a", want: full},
			{tenant: "a", get: "a", put: "a", want: resumed},
			{tenant: "", get: "a", put: "", want: full},
		},
	},
	{
		name: "tenant/verify-refuses-resumption",
		setup: func(w *ticketWorld, c, s *tls.Config) {
			a := tenantConfig(w)
			a.VerifyConnection = refuseResumption
			tenants(w, s, map[string]*tls.Config{"a": a, "b": tenantConfig(w)})
		},
		steps: []ticketStep{
			{tenant: "a", get: "x", put: "x", want: full},
			{tenant: "b", get: "x", put: "", want: resumed},
			{tenant: "a", get: "x", put: "", want: failed},
		},
	},
	{
		name:  "outer/verify-refuses-resumption",
		setup: func(w *ticketWorld, c, s *tls.Config) { s.VerifyConnection = refuseResumption },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: failed}},
	},
	{
		name:  "client/verify-refuses-resumption",
		setup: func(w *ticketWorld, c, s *tls.Config) { c.VerifyConnection = refuseResumption },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: failed}},
	},
	{
		name:  "client/no-cache",
		setup: func(w *ticketWorld, c, s *tls.Config) { c.ClientSessionCache = nil },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: full}},
	},
	{
		name:  "client/tickets-disabled",
		setup: func(w *ticketWorld, c, s *tls.Config) { c.SessionTicketsDisabled = true },
		steps: []ticketStep{{get: "x", put: "x", want: full}, {get: "x", put: "x", want: full}},
	},
}

// crossTenantSteps gets a session from tenant a, resumes it there, offers
// it to tenant b (want says what happens), and then the other way round.
func crossTenantSteps(want outcome) []ticketStep {
	return []ticketStep{
		{tenant: "a", get: "a", put: "a", want: full},
		{tenant: "a", get: "a", put: "", want: resumed},
		{tenant: "b", get: "a", put: "", want: want},
		{tenant: "b", get: "b", put: "b", want: full},
		{tenant: "a", get: "b", put: "", want: want},
	}
}

// stepResult is how one handshake ended, on both sides.
type stepResult struct {
	clientResumed, serverResumed bool
	clientErr, serverErr         string
}

func (r stepResult) outcome() outcome {
	switch {
	case r.clientErr != "" || r.serverErr != "":
		return failed
	case r.clientResumed:
		return resumed
	}
	return full
}

// TestTicketParity runs every scenario with crypto/tls on both ends, and
// with ktls at either end and both, and compares each handshake. In the
// kernel lab, where handshakes are slow under emulation, only ktls at both
// ends runs (with offload), against the outcomes the host run has shown
// to be crypto/tls's.
func TestTicketParity(t *testing.T) {
	for _, sc := range ticketScenarios {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(sc.name+"/"+tls.VersionName(v), func(t *testing.T) {
				if inLab() {
					got := runTicketScenario(t, sc.setup, sc.steps, v, true, true)
					for i, step := range sc.steps {
						if o := got[i].outcome(); o != step.want {
							t.Errorf("ktls-both, connection %d: %v (%+v), crypto/tls: %v", i, o, got[i], step.want)
						}
					}
					return
				}
				ref := runTicketScenario(t, sc.setup, sc.steps, v, false, false)
				for i, step := range sc.steps {
					if got := ref[i].outcome(); got != step.want {
						t.Fatalf("crypto/tls, connection %d: %v (%+v), scenario expects %v", i, got, ref[i], step.want)
					}
				}
				for _, roles := range []struct {
					name           string
					client, server bool
				}{{"ktls-server", false, true}, {"ktls-client", true, false}, {"ktls-both", true, true}} {
					got := runTicketScenario(t, sc.setup, sc.steps, v, roles.client, roles.server)
					for i := range sc.steps {
						if got[i] != ref[i] {
							t.Errorf("%s, connection %d:\n got %+v\nwant %+v (crypto/tls)", roles.name, i, got[i], ref[i])
						}
					}
				}
			})
		}
	}
}

// TestTenantTicketIsolation: a session ticket that tenant a issued, under
// keys of its own, doesn't resume at tenant b, whose config from
// GetConfigForClient has other keys, nor the other way round.
func TestTenantTicketIsolation(t *testing.T) {
	setup := func(w *ticketWorld, c, s *tls.Config) {
		a, b := tenantConfig(w), tenantConfig(w)
		a.SetSessionTicketKeys([][32]byte{ticketKey(2)})
		b.SetSessionTicketKeys([][32]byte{ticketKey(3)})
		tenants(w, s, map[string]*tls.Config{"a": a, "b": b})
	}
	steps := crossTenantSteps(full)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			got := runTicketScenario(t, setup, steps, v, false, true)
			for i, step := range steps {
				if o := got[i].outcome(); o != step.want {
					t.Errorf("connection %d to tenant %s with the session of tenant %s: %v, want %v", i, step.tenant, step.get, o, step.want)
				}
			}
		})
	}
}

// runTicketScenario runs the steps on fresh configs, with ktls at the ends
// asked for.
func runTicketScenario(t *testing.T, setup func(*ticketWorld, *tls.Config, *tls.Config), steps []ticketStep, v uint16, ktlsClient, ktlsServer bool) []stepResult {
	t.Helper()
	w := &ticketWorld{version: v, cache: map[string]*tls.ClientSessionState{}, now: time.Now()}
	client, server := clientConfig(testcert.ECDSA), tenantConfig(w)
	client.ClientSessionCache = slotCache{w}
	setup(w, client, server)
	var results []stepResult
	for _, step := range steps {
		w.tenant, w.get, w.put = step.tenant, step.get, step.put
		w.now = w.now.Add(step.advance)
		results = append(results, tryHandshake(t, ktlstest.Endpoint{KTLS: ktlsClient, Config: client}, ktlstest.Endpoint{KTLS: ktlsServer, Config: server}))
	}
	return results
}

// tryHandshake connects the two ends and runs the handshake, and then has
// the client read one byte, so it has taken in a TLS 1.3 server's session
// ticket.
func tryHandshake(t *testing.T, client, server ktlstest.Endpoint) stepResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := wiretest.Async(func() (resumed bool, err error) {
		raw, err := ln.Accept()
		if err != nil {
			return false, err
		}
		conn := server.Server(raw)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := conn.Handshake(); err != nil {
			return false, err
		}
		resumed = conn.ConnectionState().DidResume
		_, err = conn.Write([]byte{1})
		if err == nil {
			// Until the client has read.
			_, err = conn.Read(make([]byte, 1))
		}
		return resumed, err
	})
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := client.Client(raw)
	defer cc.Close()
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	var r stepResult
	if err := cc.Handshake(); err != nil {
		r.clientErr = err.Error()
	} else {
		r.clientResumed = cc.ConnectionState().DidResume
		if _, err := io.ReadFull(cc, make([]byte, 1)); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			// A server that fails after its Finished closes without an
			// alert, maybe before it read the client's Finished (a
			// reset). ktls says io.ErrUnexpectedEOF where crypto/tls says
			// io.EOF, on purpose (see Conn.Read); that is not about
			// tickets.
			r.clientErr = "reading: the connection ended"
		} else if err != nil {
			r.clientErr = "reading: " + err.Error()
		} else if _, err := cc.Write([]byte{1}); err != nil {
			r.clientErr = "writing: " + err.Error()
		}
	}
	if r.clientErr != "" {
		cc.Close()
	}
	s := <-done
	r.serverResumed = s.V
	if s.Err != nil {
		r.serverErr = s.Err.Error()
	}
	return r
}

// TestSessionExtraHoldsNoSecret: no session that ktls lets crypto/tls put
// in a client's cache or hand to a server's WrapSession carries anything
// in Extra, and a TLS 1.3 session holds no TLS 1.2 master secret of the
// sessions that came before it. (ktls once kept the master secret in
// Extra, and carried it on to later sessions.)
func TestSessionExtraHoldsNoSecret(t *testing.T) {
	var (
		mu      sync.Mutex
		masters [][]byte // every TLS 1.2 master secret, from the key logs
		seen    []seenSession
	)
	keyLog := tlstest.KeyLogFunc(func(line []byte) {
		e, err := keylog.ParseLine(line)
		if err != nil {
			t.Errorf("key log: %v", err)
			return
		}
		if e.Label == keylog.LabelClientRandom {
			mu.Lock()
			masters = append(masters, e.Secret)
			mu.Unlock()
		}
	})
	record := func(where string, version uint16, ss *tls.SessionState) {
		b, err := ss.Bytes()
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		mu.Lock()
		seen = append(seen, seenSession{where, version, bytes.Clone(b), len(ss.Extra)})
		mu.Unlock()
	}

	store := &storeWrap{sessions: map[string][]byte{}}
	conn, version := 0, uint16(0) // the connection under way
	cache := &tlstest.WatchedCache{ClientSessionCache: tls.NewLRUClientSessionCache(4), Watch: func(cs *tls.ClientSessionState) {
		if _, ss, err := cs.ResumptionState(); err == nil && ss != nil {
			record(fmt.Sprintf("client cache, connection %d", conn), version, ss)
		}
	}}
	client := clientConfig(testcert.ECDSA)
	client.ClientSessionCache = cache
	client.KeyLogWriter = keyLog
	for i, step := range []struct {
		version uint16
		resumed bool
	}{
		{tls.VersionTLS12, false},
		{tls.VersionTLS12, true},
		// The client offers its TLS 1.2 session; the server answers
		// with TLS 1.3.
		{tls.VersionTLS13, false},
		{tls.VersionTLS13, true},
	} {
		conn, version = i, step.version
		server := serverConfig(testcert.ECDSA)
		server.MaxVersion = step.version
		server.KeyLogWriter = keyLog
		server.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			record(fmt.Sprintf("server WrapSession, connection %d", i), cs.Version, ss)
			return store.wrap(cs, ss)
		}
		server.UnwrapSession = store.unwrap
		c, s := ktlstest.Connect(t, ktlstest.KTLS(client), ktlstest.KTLS(server))
		wiretest.Exchange(t, c, s, 1024) // the client takes in a TLS 1.3 ticket
		cs := c.(*ktls.Conn).ConnectionState()
		if cs.Version != step.version || cs.DidResume != step.resumed {
			t.Fatalf("connection %d: %s, resumed %v; want %s, resumed %v", i, tls.VersionName(cs.Version), cs.DidResume, tls.VersionName(step.version), step.resumed)
		}
		c.Close()
		s.Close()
	}

	mu.Lock()
	defer mu.Unlock()
	if len(masters) == 0 {
		t.Fatal("no TLS 1.2 master secret was logged")
	}
	var clientSessions, tls13 int
	for _, s := range seen {
		if s.extra != 0 {
			t.Errorf("%s: the session has %d Extra entries, want none", s.where, s.extra)
		}
		if strings.HasPrefix(s.where, "client") {
			clientSessions++
		}
		if s.version == tls.VersionTLS13 {
			tls13++
			for _, m := range masters {
				if bytes.Contains(s.encoded, m) {
					t.Errorf("%s: a TLS 1.3 session holds a TLS 1.2 master secret", s.where)
					break
				}
			}
		}
	}
	if clientSessions == 0 || tls13 == 0 {
		t.Fatalf("saw %d client sessions and %d TLS 1.3 sessions, want some of each", clientSessions, tls13)
	}
}

type seenSession struct {
	where   string
	version uint16
	encoded []byte
	extra   int
}

// TestTicketsSharedWithCryptoTLS: a ktls server and a crypto/tls server on
// one config accept each other's tickets, both ways, as two crypto/tls
// servers would: ktls's tickets are crypto/tls's.
func TestTicketsSharedWithCryptoTLS(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			server := serverConfig(testcert.ECDSA)
			server.MaxVersion = v
			client := clientConfig(testcert.ECDSA)
			client.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			for i, step := range []struct {
				ktls bool
				want outcome
			}{{false, full}, {true, resumed}, {true, full}, {false, resumed}} {
				if i == 2 {
					// A ticket that only ktls issued from here on.
					client.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				}
				r := tryHandshake(t, ktlstest.CryptoTLS(client), ktlstest.Endpoint{KTLS: step.ktls, Config: server})
				if o := r.outcome(); o != step.want || r.serverResumed != (step.want == resumed) {
					t.Errorf("connection %d (ktls server: %v): %v (%+v), want %v", i, step.ktls, o, r, step.want)
				}
			}
		})
	}
}

// TestSharedCacheSession: connections that resume one cached session at
// once leave it as it was (ktls only reads it), and all resume. Run with
// -race, this also catches a write to the shared session.
func TestSharedCacheSession(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			server := serverConfig(testcert.ECDSA)
			server.MaxVersion = v
			// Keep the first session: later tickets don't replace it.
			w := &ticketWorld{cache: map[string]*tls.ClientSessionState{}, get: "x", put: "x"}
			client := clientConfig(testcert.ECDSA)
			client.ClientSessionCache = slotCache{w}
			if r := tryHandshake(t, ktlstest.KTLS(client), ktlstest.KTLS(server)); r.outcome() != full {
				t.Fatalf("first connection: %+v", r)
			}
			w.put = ""
			_, ss, err := w.cache["x"].ResumptionState()
			if err != nil || ss == nil {
				t.Fatalf("no session in the cache: %v", err)
			}
			before, err := ss.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			results := make(chan stepResult, 4)
			for range cap(results) {
				go func() {
					results <- tryHandshake(t, ktlstest.KTLS(client), ktlstest.KTLS(server))
				}()
			}
			for range cap(results) {
				if r := <-results; r.outcome() != resumed {
					t.Errorf("a concurrent connection: %+v, want it resumed", r)
				}
			}
			after, err := ss.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) || len(ss.Extra) != 0 {
				t.Error("the cached session changed")
			}
		})
	}
}
