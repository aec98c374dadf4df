package record_test

import (
	"bytes"
	"testing"

	"github.com/ktlsgo/ktls/internal/record"
)

func TestParseHandshake(t *testing.T) {
	ticket := append([]byte{record.MsgNewSessionTicket, 0, 0, 5}, "abcde"...)
	keyUpdate := record.MarshalKeyUpdate(false)
	helloRequest := []byte{record.MsgHelloRequest, 0, 0, 0}
	joined := bytes.Join([][]byte{ticket, keyUpdate, helloRequest}, nil)

	tests := []struct {
		name     string
		in       []byte
		wantMsgs []record.HandshakeMsg
		wantRest []byte
	}{
		{"empty", nil, nil, nil},
		{"one", ticket, []record.HandshakeMsg{{4, []byte("abcde")}}, nil},
		{"three", joined, []record.HandshakeMsg{{4, []byte("abcde")}, {24, []byte{0}}, {0, []byte{}}}, nil},
		{"partial header", ticket[:3], nil, ticket[:3]},
		{"partial body", ticket[:7], nil, ticket[:7]},
		{"complete then partial", joined[:len(ticket)+3], []record.HandshakeMsg{{4, []byte("abcde")}}, keyUpdate[:3]},
		{"complete then partial body", joined[:len(ticket)+4], []record.HandshakeMsg{{4, []byte("abcde")}}, keyUpdate[:4]},
		{"largest allowed, incomplete", []byte{4, 1, 0, 0, 1}, nil, []byte{4, 1, 0, 0, 1}},
	}
	for _, tt := range tests {
		msgs, rest, err := record.ParseHandshake(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if len(msgs) != len(tt.wantMsgs) {
			t.Errorf("%s: %d messages, want %d", tt.name, len(msgs), len(tt.wantMsgs))
			continue
		}
		for i, m := range msgs {
			if m.Type != tt.wantMsgs[i].Type || !bytes.Equal(m.Body, tt.wantMsgs[i].Body) {
				t.Errorf("%s: message %d = %+v, want %+v", tt.name, i, m, tt.wantMsgs[i])
			}
		}
		if !bytes.Equal(rest, tt.wantRest) {
			t.Errorf("%s: rest = %x, want %x", tt.name, rest, tt.wantRest)
		}
	}

	// Reassembly across records: feeding the rest back in yields the
	// messages in order whatever the split.
	for split := range len(joined) + 1 {
		msgs1, rest, err := record.ParseHandshake(bytes.Clone(joined[:split]))
		if err != nil {
			t.Fatal(err)
		}
		msgs2, rest, err := record.ParseHandshake(append(rest, joined[split:]...))
		if err != nil || len(rest) != 0 || len(msgs1)+len(msgs2) != 3 {
			t.Fatalf("split at %d: %d+%d messages, rest %x, %v", split, len(msgs1), len(msgs2), rest, err)
		}
	}

	// Appending to a body must not clobber the next message.
	msgs, _, _ := record.ParseHandshake(bytes.Clone(joined))
	_ = append(msgs[0].Body, 0xff)
	if msgs[1].Type != record.MsgKeyUpdate || !bytes.Equal(msgs[1].Body, []byte{0}) {
		t.Error("message body capacity reaches into the next message")
	}
}

func TestParseHandshakeTooLong(t *testing.T) {
	for _, in := range [][]byte{{4, 1, 0, 1}, {4, 0xff, 0xff, 0xff, 0}} {
		_, _, err := record.ParseHandshake(in)
		if alertOf(err) != int(record.AlertDecodeError) {
			t.Errorf("ParseHandshake(%x) error = %v, want decode_error", in, err)
		}
	}
}

func TestKeyUpdate(t *testing.T) {
	for _, requested := range []bool{false, true} {
		msg := record.MarshalKeyUpdate(requested)
		want := []byte{24, 0, 0, 1, 0}
		if requested {
			want[4] = 1
		}
		if !bytes.Equal(msg, want) {
			t.Errorf("MarshalKeyUpdate(%v) = %x, want %x", requested, msg, want)
		}
		msgs, rest, err := record.ParseHandshake(msg)
		if err != nil || len(rest) != 0 || len(msgs) != 1 || msgs[0].Type != record.MsgKeyUpdate {
			t.Fatalf("ParseHandshake(%x) = %v, %x, %v", msg, msgs, rest, err)
		}
		got, err := record.ParseKeyUpdate(msgs[0].Body)
		if err != nil || got != requested {
			t.Errorf("ParseKeyUpdate(%x) = %v, %v; want %v", msgs[0].Body, got, err, requested)
		}
	}

	for _, c := range []struct {
		body  []byte
		alert uint8
	}{
		{nil, record.AlertDecodeError},
		{[]byte{0, 0}, record.AlertDecodeError},
		{[]byte{2}, record.AlertIllegalParameter},
		{[]byte{0xff}, record.AlertIllegalParameter},
	} {
		if _, err := record.ParseKeyUpdate(c.body); alertOf(err) != int(c.alert) {
			t.Errorf("ParseKeyUpdate(%x) error = %v, want alert %d", c.body, err, c.alert)
		}
	}
}
