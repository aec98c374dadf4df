package kernel_test

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// cmsg is one control message, marshalled by x/sys/unix's CMSG macros,
// independently of the parser.
type cmsg struct {
	level, typ int32
	data       []byte
}

func marshalCmsgs(msgs []cmsg) []byte {
	var b []byte
	for _, m := range msgs {
		buf := make([]byte, unix.CmsgSpace(len(m.data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&buf[0]))
		h.Level, h.Type = m.level, m.typ
		h.SetLen(unix.CmsgLen(len(m.data)))
		copy(buf[unix.CmsgLen(0):], m.data)
		b = append(b, buf...)
	}
	return b
}

func TestParseRecordType(t *testing.T) {
	tlsType := func(b ...byte) cmsg { return cmsg{unix.SOL_TLS, 2, b} }
	timestamp := cmsg{unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16)}
	for _, tt := range []struct {
		name   string
		oob    []byte
		typ    uint8
		ok     bool
		errors bool
	}{
		{"none", nil, 0, false, false},
		{"alert", marshalCmsgs([]cmsg{tlsType(21)}), 21, true, false},
		{"without the padding", marshalCmsgs([]cmsg{tlsType(22)})[:unix.CmsgLen(1)], 22, true, false},
		{"after another", marshalCmsgs([]cmsg{timestamp, tlsType(23)}), 23, true, false},
		{"before another", marshalCmsgs([]cmsg{tlsType(23), timestamp}), 23, true, false},
		{"only another", marshalCmsgs([]cmsg{timestamp}), 0, false, false},
		{"SOL_TLS, type 1", marshalCmsgs([]cmsg{{unix.SOL_TLS, 1, []byte{22}}}), 0, false, false},
		{"empty", marshalCmsgs([]cmsg{tlsType()}), 0, false, true},
		{"two bytes", marshalCmsgs([]cmsg{tlsType(21, 22)}), 0, false, true},
		{"twice", marshalCmsgs([]cmsg{tlsType(21), tlsType(23)}), 0, false, true},
		{"length past the buffer", marshalCmsgs([]cmsg{tlsType(21)})[:unix.CmsgLen(0)], 0, false, true},
		{"short header", make([]byte, unix.SizeofCmsghdr-1), 0, false, false},
		{"length 0", make([]byte, unix.SizeofCmsghdr), 0, false, true},
	} {
		typ, ok, err := kernel.ParseRecordType(tt.oob)
		if typ != tt.typ || ok != tt.ok || (err != nil) != tt.errors {
			t.Errorf("%s: ParseRecordType(%x) = %d, %v, %v; want %d, %v, error %v", tt.name, tt.oob, typ, ok, err, tt.typ, tt.ok, tt.errors)
		}
	}
}

// FuzzParseRecordType: arbitrary bytes must not crash the parser or make
// it read out of range; control messages built by x/sys/unix, a list of
// them from the fuzzer's bytes, must give the record type exactly when
// one TLS_GET_RECORD_TYPE of one byte is among them, whatever else is.
func FuzzParseRecordType(f *testing.F) {
	f.Add([]byte{}, []byte{2, 1, 21})
	f.Add(marshalCmsgs([]cmsg{{unix.SOL_TLS, 2, []byte{23}}}), []byte{1, 3, 0, 0, 0, 2, 1, 22})
	f.Fuzz(func(t *testing.T, raw, spec []byte) {
		if typ, ok, err := kernel.ParseRecordType(raw); ok && err != nil || !ok && typ != 0 {
			t.Fatalf("ParseRecordType(%x) = %d, %v, %v", raw, typ, ok, err)
		}

		// spec: per message a selector (which level and type), a data
		// length and that many bytes.
		var msgs []cmsg
		var tlsMsgs []cmsg
		for len(spec) >= 2 {
			sel, n := spec[0], min(int(spec[1]), len(spec)-2)
			m := cmsg{data: spec[2 : 2+n]}
			spec = spec[2+n:]
			switch sel % 4 {
			case 0:
				m.level, m.typ = unix.SOL_SOCKET, unix.SO_TIMESTAMP
			case 1:
				m.level, m.typ = unix.SOL_TLS, 1
			case 2:
				m.level, m.typ = unix.SOL_TLS, 2
				tlsMsgs = append(tlsMsgs, m)
			case 3:
				m.level, m.typ = int32(sel), 2
				if m.level == unix.SOL_TLS {
					tlsMsgs = append(tlsMsgs, m)
				}
			}
			msgs = append(msgs, m)
		}
		typ, ok, err := kernel.ParseRecordType(marshalCmsgs(msgs))
		switch {
		case len(tlsMsgs) == 0:
			if ok || err != nil {
				t.Fatalf("no record type among %v: got %d, %v, %v", msgs, typ, ok, err)
			}
		case len(tlsMsgs) > 1 || len(tlsMsgs[0].data) != 1:
			if err == nil {
				t.Fatalf("%v: got %d, %v, want an error", msgs, typ, ok)
			}
		default:
			if !ok || err != nil || typ != tlsMsgs[0].data[0] {
				t.Fatalf("%v: got %d, %v, %v; want %d", msgs, typ, ok, err, tlsMsgs[0].data[0])
			}
		}
	})
}
