package record_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/ktlsgo/ktls/internal/record"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		want  record.Header
		alert int // -1: no error
	}{
		{"application data", []byte{23, 3, 3, 0, 0x43}, record.Header{Type: 23, Version: 0x0303, Length: 0x43}, -1},
		{"handshake TLS 1.0 version", []byte{22, 3, 1, 2, 0}, record.Header{Type: 22, Version: 0x0301, Length: 512}, -1},
		{"alert", []byte{21, 3, 3, 0, 2}, record.Header{Type: 21, Version: 0x0303, Length: 2}, -1},
		{"change cipher spec", []byte{20, 3, 3, 0, 1}, record.Header{Type: 20, Version: 0x0303, Length: 1}, -1},
		{"empty", []byte{23, 3, 3, 0, 0}, record.Header{Type: 23, Version: 0x0303}, -1},
		{"TLS 1.2 maximum", []byte{23, 3, 3, 0x48, 0x00}, record.Header{Type: 23, Version: 0x0303, Length: record.MaxCiphertextTLS12}, -1},
		{"trailing bytes are ignored", []byte{23, 3, 3, 0, 1, 0xff, 0xff}, record.Header{Type: 23, Version: 0x0303, Length: 1}, -1},
		{"short", []byte{23, 3, 3, 0}, record.Header{}, int(record.AlertDecodeError)},
		{"nil", nil, record.Header{}, int(record.AlertDecodeError)},
		{"unknown type", []byte{24, 3, 3, 0, 1}, record.Header{}, int(record.AlertUnexpectedMessage)},
		{"type zero", []byte{0, 3, 3, 0, 1}, record.Header{}, int(record.AlertUnexpectedMessage)},
		{"SSLv2-looking", []byte{0x80, 0x2e, 1, 0, 2}, record.Header{}, int(record.AlertUnexpectedMessage)},
		{"major version 2", []byte{23, 2, 0, 0, 1}, record.Header{}, int(record.AlertProtocolVersion)},
		{"major version 4", []byte{23, 4, 3, 0, 1}, record.Header{}, int(record.AlertProtocolVersion)},
		{"overflow", []byte{23, 3, 3, 0x48, 0x01}, record.Header{}, int(record.AlertRecordOverflow)},
		{"max length field", []byte{23, 3, 3, 0xff, 0xff}, record.Header{}, int(record.AlertRecordOverflow)},
	}
	for _, tt := range tests {
		h, err := record.ParseHeader(tt.in)
		if tt.alert < 0 {
			if err != nil || h != tt.want {
				t.Errorf("%s: ParseHeader = %+v, %v; want %+v", tt.name, h, err, tt.want)
			}
			continue
		}
		var re *record.Error
		if !errors.As(err, &re) {
			t.Errorf("%s: error %v (%T), want *record.Error", tt.name, err, err)
			continue
		}
		if int(re.Alert) != tt.alert {
			t.Errorf("%s: alert %d, want %d", tt.name, re.Alert, tt.alert)
		}
	}
}

func TestHeaderMarshal(t *testing.T) {
	for _, h := range []record.Header{
		{Type: record.TypeApplicationData, Version: 0x0303, Length: 0},
		{Type: record.TypeHandshake, Version: 0x0301, Length: 517},
		{Type: record.TypeAlert, Version: 0x0303, Length: record.MaxCiphertextTLS12},
	} {
		var b [record.HeaderLen]byte
		h.Marshal(b[:])
		got, err := record.ParseHeader(b[:])
		if err != nil || got != h {
			t.Errorf("ParseHeader(Marshal(%+v)) = %+v, %v", h, got, err)
		}
	}
	var b [record.HeaderLen]byte
	record.Header{Type: 23, Version: 0x0303, Length: 0x1234}.Marshal(b[:])
	if b != [5]byte{23, 3, 3, 0x12, 0x34} {
		t.Errorf("Marshal wrote % x", b)
	}

	for name, f := range map[string]func(){
		"short buffer":    func() { record.Header{Length: 1}.Marshal(make([]byte, 4)) },
		"negative length": func() { record.Header{Length: -1}.Marshal(make([]byte, 5)) },
		"long length":     func() { record.Header{Length: 1 << 16}.Marshal(make([]byte, 5)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Marshal with %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestError(t *testing.T) {
	_, err := record.ParseHeader([]byte{23, 3, 3, 0xff, 0xff})
	if !strings.HasPrefix(err.Error(), "record: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
	// Callers pick the alert to send through crypto/tls's own type.
	var alert tls.AlertError
	if !errors.As(err, &alert) || uint8(alert) != record.AlertRecordOverflow {
		t.Errorf("errors.As(%v, tls.AlertError) = %v", err, alert)
	}
	if !errors.Is(err, tls.AlertError(record.AlertRecordOverflow)) {
		t.Errorf("errors.Is(%v, record_overflow) = false", err)
	}
}
