package recordio

import (
	"crypto/tls"
	"fmt"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// A Record is one record, read or written, that may be protected: it came
// after the first ChangeCipherSpec its direction carried, or has outer
// type application_data.
type Record struct {
	Bytes []byte // the whole record, header included
	// SinceCCS is how many records went the same way between the first
	// ChangeCipherSpec and this one, or -1 when this one came before it.
	// In TLS 1.2 it is the record's sequence number under the keys the
	// ChangeCipherSpec switched to.
	SinceCCS int
	// AppData is how many records of outer type application_data went
	// the same way before this one. In TLS 1.3 every protected record has
	// that outer type, so for a record under the handshake keys it is the
	// sequence number, if all of those before it were too.
	AppData int
}

// Records is what a Conn saw of the records going one way: every record is
// counted, and of those that may be protected the newest are kept.
type Records struct {
	Total    int // whole records
	SinceCCS int // records after the first ChangeCipherSpec, -1 if none came
	AppData  int // records of outer type application_data
	// Tail is the newest records that may be protected, oldest first, as
	// many as the Conn keeps. The last one is the newest such record.
	Tail []Record
}

// Sequence12 proves that every record after the ChangeCipherSpec is
// protected with keys, the TLS 1.2 keys of this direction, and returns how
// many there are: the sequence number of the next record.
//
// The proof: the oldest record kept opens at the sequence number its
// position gives, and TLS 1.2's additional data authenticates that number,
// so the records before it since the ChangeCipherSpec were under the same
// keys; each later one opens in turn.
func (rs Records) Sequence12(s *keyschedule.Suite, keys keyschedule.TrafficKeys) (uint64, error) {
	if s.Version != tls.VersionTLS12 {
		return 0, fmt.Errorf("ktls: internal error: %s is not a TLS 1.2 suite", s.Name)
	}
	if rs.SinceCCS <= 0 {
		// Each side's Finished is under the new keys.
		return 0, fmt.Errorf("ktls: no record came after the ChangeCipherSpec")
	}
	tail := rs.Tail
	if len(tail) == 0 || tail[0].SinceCCS < 0 {
		return 0, fmt.Errorf("ktls: a record of outer type application_data came before the ChangeCipherSpec")
	}
	p, err := record.NewProtector(s, keys, uint64(tail[0].SinceCCS))
	if err != nil {
		return 0, err
	}
	for _, r := range tail {
		if r.SinceCCS != int(p.Seq()) {
			return 0, fmt.Errorf("ktls: internal error: record %d after the ChangeCipherSpec kept out of order", r.SinceCCS)
		}
		if _, _, err := p.Open(r.Bytes); err != nil {
			return 0, fmt.Errorf("ktls: record %d after the ChangeCipherSpec does not open under the derived key: %w", r.SinceCCS, err)
		}
	}
	if p.Seq() != uint64(rs.SinceCCS) {
		return 0, fmt.Errorf("ktls: internal error: %d records after the ChangeCipherSpec, the newest kept is number %d", rs.SinceCCS, p.Seq())
	}
	return p.Seq(), nil
}

// Sequence13 accounts for every protected record of a TLS 1.3 direction
// as one under hs, the handshake traffic keys, or app, the application
// traffic keys, and returns how many were under app: the sequence number
// of the next record under those keys.
//
// Records of outer type application_data are the protected ones: crypto/tls
// writes no other before it has the handshake keys, since it sends no
// early data, and none of another type after. The keys change once, from
// hs to app, so the records are some under hs, then the rest under app.
//
// Not every record is kept, so the proof works from the oldest kept: it
// must open under hs at the sequence number its position among the
// protected records gives. The AEAD nonce is made from that sequence
// number, so crypto/tls had protected exactly that many records under hs
// before it; as many protected records came before it, all of them were
// under hs. From there each kept record opens in turn, under hs until the
// first that does not, and under app from there to the newest. If any step
// fails, the count is uncertain and the error says why.
func (rs Records) Sequence13(s *keyschedule.Suite, hs, app keyschedule.TrafficKeys) (uint64, error) {
	if s.Version != tls.VersionTLS13 {
		return 0, fmt.Errorf("ktls: internal error: %s is not a TLS 1.3 suite", s.Name)
	}
	if rs.AppData == 0 {
		// Each side's Finished is under its handshake keys.
		return 0, fmt.Errorf("ktls: no protected record went this way")
	}
	var tail []Record
	for _, r := range rs.Tail {
		if r.Bytes[0] == record.TypeApplicationData {
			tail = append(tail, r)
		} else if r.AppData > 0 {
			return 0, fmt.Errorf("ktls: a record of type %d came after protected records", r.Bytes[0])
		}
	}
	if len(tail) == 0 {
		return 0, fmt.Errorf("ktls: none of the %d protected records was kept", rs.AppData)
	}
	first := tail[0].AppData
	if tail[len(tail)-1].AppData != rs.AppData-1 || len(tail) != rs.AppData-first {
		return 0, fmt.Errorf("ktls: internal error: the protected records kept are not the newest %d of %d", len(tail), rs.AppData)
	}
	p, err := record.NewProtector(s, hs, uint64(first))
	if err != nil {
		return 0, err
	}
	if _, _, err := p.Open(tail[0].Bytes); err != nil {
		// Before it came first records that were not all under hs (a
		// flight with more under app than this package keeps), or hs
		// is not the key crypto/tls used.
		return 0, fmt.Errorf("ktls: cannot account for %d protected records: the oldest one kept, number %d, does not open under the handshake key: %w", rs.AppData, first, err)
	}
	tail = tail[1:]
	for len(tail) > 0 {
		if _, _, err := p.Open(tail[0].Bytes); err != nil {
			break
		}
		tail = tail[1:]
	}
	p, err = record.NewProtector(s, app, 0)
	if err != nil {
		return 0, err
	}
	for _, r := range tail {
		if _, _, err := p.Open(r.Bytes); err != nil {
			return 0, fmt.Errorf("ktls: protected record %d opens under neither the handshake nor the application key: %w", r.AppData, err)
		}
	}
	return p.Seq(), nil
}
