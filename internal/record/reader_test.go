package record_test

import (
	"bytes"
	"testing"

	"github.com/ktlsgo/ktls/internal/record"
)

// readAll feeds pieces to r as successive records and returns every
// message, copied, and the first error.
func readAll(r *record.HandshakeReader, pieces [][]byte) (msgs []record.HandshakeMsg, err error) {
	for _, p := range pieces {
		for len(p) > 0 {
			m, rest, ok, err := r.Next(p)
			if err != nil {
				return msgs, err
			}
			if !ok {
				break
			}
			msgs = append(msgs, record.HandshakeMsg{Type: m.Type, Body: bytes.Clone(m.Body)})
			p = rest
		}
	}
	return msgs, nil
}

// bytewise splits b into 1-byte records.
func bytewise(b []byte) [][]byte {
	pieces := make([][]byte, len(b))
	for i := range b {
		pieces[i] = b[i : i+1]
	}
	return pieces
}

func ticket(n int) []byte {
	return append([]byte{record.MsgNewSessionTicket, byte(n >> 16), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'t'}, n)...)
}

// TestHandshakeReaderLinear is issue 13's finding 7: a 64 KiB message in
// 1-byte records made the reassembly after the handoff quadratic (about 1 s
// of CPU), because each record copied and rescanned everything buffered.
// The reader copies each byte once, plus less than as much again as its
// buffer grows. oldReassemblyWork counts what 8d385c3's loop did, to show
// the difference is in the algorithm, not the constant.
func TestHandshakeReaderLinear(t *testing.T) {
	msg := ticket(1 << 16)
	r := &record.HandshakeReader{Limit: record.PostHandshakeTLS13(true)}
	msgs, err := readAll(r, bytewise(msg))
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].Body, msg[4:]) || r.Pending() {
		t.Fatalf("got %d messages, %v, pending %v; want the ticket", len(msgs), err, r.Pending())
	}
	n := len(msg)
	if got := r.Copied(); got > 3*n {
		t.Errorf("the reader copied %d bytes for a %d-byte message in 1-byte records, want at most %d", got, n, 3*n)
	}
	// 8d385c3's count, on smaller messages (it takes seconds at 64 KiB):
	// doubling the message quadruples it.
	small, large := oldReassemblyWork(bytewise(ticket(2<<10))), oldReassemblyWork(bytewise(ticket(4<<10)))
	if large < 3*small || large < (4<<10)*(4<<10)/2 {
		t.Errorf("8d385c3's reassembly: %d bytes of work for 2 KiB, %d for 4 KiB; expected it quadratic", small, large)
	}
	t.Logf("%d-byte message in 1-byte records: %d bytes copied (8d385c3: %d for 2 KiB, %d for 4 KiB)", n, r.Copied(), small, large)
}

// oldReassemblyWork counts the bytes 8d385c3's handleHandshake copied
// for each record: c.in.sys.hs = append(c.in.sys.hs, p...) (which
// reallocated every time, the buffer being an exact-size copy), then
// ParseHandshake, then c.in.sys.hs = append([]byte(nil), rest...).
func oldReassemblyWork(pieces [][]byte) int {
	var hs []byte
	work := 0
	for _, p := range pieces {
		work += len(hs) + len(p)
		hs = append(hs, p...)
		_, rest, _ := record.ParseHandshake(hs)
		work += len(rest)
		hs = append([]byte(nil), rest...)
	}
	return work
}

func TestHandshakeReader(t *testing.T) {
	keyUpdate := record.MarshalKeyUpdate(true)
	small := ticket(5)
	joined := bytes.Join([][]byte{small, keyUpdate, small}, nil)
	client, server := record.PostHandshakeTLS13(true), record.PostHandshakeTLS13(false)

	for _, tt := range []struct {
		name     string
		limit    func(uint8, int) error
		pieces   [][]byte
		want     int // messages
		alert    int // -1: none
		buffered int // bytes of an unfinished message at the end
	}{
		{"one record", client, [][]byte{joined}, 3, -1, 0},
		{"bytewise", client, bytewise(joined), 3, -1, 0},
		{"header split", client, [][]byte{small[:2], small[2:]}, 1, -1, 0},
		{"body split", client, [][]byte{small[:6], small[6:]}, 1, -1, 0},
		{"partial header", client, [][]byte{small[:3]}, 0, -1, 3},
		{"partial body", client, [][]byte{small[:7]}, 0, -1, 7},
		{"largest ticket", client, [][]byte{ticket(1 << 16)}, 1, -1, 0},
		{"ticket to a server", server, [][]byte{small}, 0, int(record.AlertUnexpectedMessage), 4},
		{"ticket over 64 KiB", client, [][]byte{ticket(1<<16 + 1)[:10]}, 0, int(record.AlertDecodeError), 4},
		{"KeyUpdate of 2 bytes", server, [][]byte{{record.MsgKeyUpdate, 0, 0, 2, 0}}, 0, int(record.AlertDecodeError), 4},
		{"KeyUpdate of 0 bytes", server, [][]byte{{record.MsgKeyUpdate, 0, 0, 0}}, 0, int(record.AlertDecodeError), 4},
		{"CertificateRequest", client, [][]byte{{13, 0, 0, 40, 0}}, 0, int(record.AlertUnexpectedMessage), 4},
		{"unexpected, over 64 KiB", client, [][]byte{{13, 0xff, 0xff, 0xff}}, 0, int(record.AlertDecodeError), 4},
		{"no limit, over 64 KiB", nil, [][]byte{{13, 1, 0, 1, 0}}, 0, int(record.AlertDecodeError), 4},
		{"after a good one", client, [][]byte{append(bytes.Clone(small), 13, 0)}, 1, -1, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &record.HandshakeReader{Limit: tt.limit}
			msgs, err := readAll(r, tt.pieces)
			if len(msgs) != tt.want || alertOf(err) != tt.alert {
				t.Fatalf("%d messages, %v; want %d, alert %d", len(msgs), err, tt.want, tt.alert)
			}
			if got := r.Buffered(); got != tt.buffered {
				t.Errorf("Buffered() = %d, want %d: a refused message's body must not be buffered", got, tt.buffered)
			}
			if r.Pending() != (tt.buffered > 0) {
				t.Errorf("Pending() = %v with %d bytes buffered", r.Pending(), tt.buffered)
			}
			if err != nil {
				if _, _, _, again := r.Next([]byte{0}); again != err {
					t.Errorf("after %v, Next returned %v: errors must stick", err, again)
				}
			}
		})
	}

	// A message whole in its record comes back in place; the rest follows.
	r := &record.HandshakeReader{Limit: client}
	m, rest, ok, err := r.Next(joined)
	if !ok || err != nil || m.Type != record.MsgNewSessionTicket || &m.Body[0] != &joined[4] || cap(m.Body) != 5 || len(rest) != len(joined)-len(small) {
		t.Fatalf("Next(whole) = %+v, %d bytes left, %v, %v", m, len(rest), ok, err)
	}
	// A KeyUpdate that ends its record leaves nothing.
	m, rest, ok, err = r.Next(keyUpdate)
	if !ok || err != nil || m.Type != record.MsgKeyUpdate || len(rest) != 0 {
		t.Fatalf("Next(KeyUpdate) = %+v, %x, %v, %v", m, rest, ok, err)
	}
}

// FuzzHandshakeReader checks the reader against ParseHandshake run on the
// whole input at once: whatever the records' boundaries, the same
// messages, the same error, the same bytes left over, and linear work.
func FuzzHandshakeReader(f *testing.F) {
	f.Add(append(ticket(5), record.MarshalKeyUpdate(false)...), []byte{1, 3, 0, 7})
	f.Add([]byte{4, 1, 0, 1}, []byte{2})
	f.Add([]byte{24, 0, 0, 1, 1, 4, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		wantMsgs, wantRest, wantErr := record.ParseHandshake(b)
		var pieces [][]byte
		rest := b
		for _, c := range cuts {
			n := min(int(c), len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)

		r := &record.HandshakeReader{}
		msgs, err := readAll(r, pieces)
		if alertOf(err) != alertOf(wantErr) {
			t.Fatalf("error %v, ParseHandshake says %v", err, wantErr)
		}
		if len(msgs) != len(wantMsgs) {
			t.Fatalf("%d messages, ParseHandshake finds %d", len(msgs), len(wantMsgs))
		}
		for i, m := range msgs {
			if m.Type != wantMsgs[i].Type || !bytes.Equal(m.Body, wantMsgs[i].Body) {
				t.Fatalf("message %d = %d %x, want %d %x", i, m.Type, m.Body, wantMsgs[i].Type, wantMsgs[i].Body)
			}
		}
		if err == nil && r.Buffered() != len(wantRest) {
			t.Fatalf("%d bytes buffered, ParseHandshake leaves %d", r.Buffered(), len(wantRest))
		}
		if r.Copied() > 3*len(b) {
			t.Fatalf("copied %d bytes of %d", r.Copied(), len(b))
		}
	})
}
