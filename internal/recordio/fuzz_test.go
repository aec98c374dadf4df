package recordio_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/ktlsgo/ktls/internal/recordio"
)

// counting is a net.Conn over a byte stream whose reads return at most
// the sizes the fuzzer chose, and that counts what was consumed.
type counting struct {
	net.Conn
	data     []byte
	off      int
	sizes    []byte
	consumed int
}

func (c *counting) Read(b []byte) (int, error) {
	if c.off == len(c.data) {
		return 0, io.EOF
	}
	n := len(b)
	if len(c.sizes) > 0 {
		n = min(n, int(c.sizes[0])+1)
		c.sizes = c.sizes[1:]
	}
	n = copy(b[:n], c.data[c.off:])
	c.off += n
	c.consumed += n
	return n, nil
}

// recordEnds returns the offsets where records end in stream, as far as
// the stream holds whole records with framable lengths.
func recordEnds(stream []byte) []int {
	var ends []int
	off := 0
	for off+5 <= len(stream) {
		n := int(binary.BigEndian.Uint16(stream[off+3:]))
		if n > 1<<14+2048 || off+5+n > len(stream) {
			break
		}
		off += 5 + n
		ends = append(ends, off)
	}
	return ends
}

// FuzzReader checks the boundary reader on any byte stream, split into
// any reads: it returns the stream unchanged, and never takes from the
// socket a byte past the end of the record it is serving.
func FuzzReader(f *testing.F) {
	f.Add(append(record(22, 40), record(23, 17)...), []byte{0, 3, 200})
	f.Add([]byte{23, 3, 3, 0, 0, 21, 3, 3, 0, 2, 1, 0}, []byte{})
	f.Add([]byte{23, 3, 3, 0xff, 0xff, 9}, []byte{1})
	f.Fuzz(func(t *testing.T, stream, sizes []byte) {
		src := &counting{data: stream, sizes: sizes}
		hc := recordio.NewConn(src, true)
		ends := recordEnds(stream)
		var got []byte
		buf := make([]byte, 64)
		for {
			n, err := hc.Read(buf)
			got = append(got, buf[:n]...)
			// Bytes consumed from the socket must not pass the end of the
			// record that holds the last byte delivered.
			for _, e := range ends {
				if e >= len(got) {
					if src.consumed > e && n > 0 {
						t.Fatalf("consumed %d bytes while serving a record ending at %d", src.consumed, e)
					}
					break
				}
			}
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(stream, got) {
			t.Fatalf("reader returned bytes not in the stream")
		}
		if len(ends) > 0 && len(got) < ends[len(ends)-1] {
			t.Fatalf("reader stopped at %d of %d bytes of whole records", len(got), ends[len(ends)-1])
		}
	})
}
