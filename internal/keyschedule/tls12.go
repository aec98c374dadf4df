package keyschedule

import (
	"crypto"
	"crypto/hmac"
	"crypto/tls"
	"errors"
	"fmt"
)

// Lengths fixed by RFC 5246: the master secret (Section 8.1) and the
// ClientHello and ServerHello random values (Section 7.4.1.2).
const (
	masterSecretLen = 48
	randomLen       = 32
)

// PRF implements the TLS 1.2 pseudorandom function of RFC 5246, Section 5:
// P_hash(secret, label + seed), with HMAC over hash h, truncated to length
// bytes. Every suite defined for TLS 1.2 by RFC 5246 and its AEAD successors
// uses SHA-256 here unless its name ends in _SHA384.
func PRF(h crypto.Hash, secret []byte, label string, seed []byte, length int) []byte {
	if length < 0 {
		panic("keyschedule: negative PRF output length")
	}
	labelSeed := make([]byte, 0, len(label)+len(seed))
	labelSeed = append(labelSeed, label...)
	labelSeed = append(labelSeed, seed...)

	mac := hmac.New(h.New, secret)
	out := make([]byte, 0, length+mac.Size())

	// A(0) = seed, A(i) = HMAC(secret, A(i-1)); each output block is
	// HMAC(secret, A(i) + seed), where "seed" is label + seed.
	mac.Write(labelSeed)
	a := mac.Sum(nil)
	for len(out) < length {
		mac.Reset()
		mac.Write(a)
		mac.Write(labelSeed)
		out = mac.Sum(out)

		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	clear(a)
	clear(out[length:])
	return out[:length:length]
}

// KeyBlock derives the TLS 1.2 record protection keys of both directions
// from the master secret and the hello randoms (RFC 5246, Section 6.3):
//
//	key_block = PRF(master_secret, "key expansion", server_random + client_random)
//
// sliced in order into client_write_key, server_write_key, client_write_IV
// and server_write_IV. The MAC keys that RFC 5246 places first are empty for
// AEAD suites (RFC 5288, Section 3; RFC 7905, Section 2), so they take no
// space.
func KeyBlock(s *Suite, masterSecret, clientRandom, serverRandom []byte) (client, server TrafficKeys, err error) {
	switch {
	case s == nil:
		return client, server, errors.New("keyschedule: nil suite")
	case s.Version != tls.VersionTLS12:
		return client, server, fmt.Errorf("keyschedule: %s is not a TLS 1.2 suite", s.Name)
	case len(masterSecret) != masterSecretLen:
		return client, server, fmt.Errorf("keyschedule: master secret must be %d bytes, got %d", masterSecretLen, len(masterSecret))
	case len(clientRandom) != randomLen:
		return client, server, fmt.Errorf("keyschedule: client random must be %d bytes, got %d", randomLen, len(clientRandom))
	case len(serverRandom) != randomLen:
		return client, server, fmt.Errorf("keyschedule: server random must be %d bytes, got %d", randomLen, len(serverRandom))
	}

	// Note the order: the key expansion seed puts the server random first,
	// the reverse of the master secret computation.
	seed := make([]byte, 0, 2*randomLen)
	seed = append(seed, serverRandom...)
	seed = append(seed, clientRandom...)
	block := PRF(s.Hash, masterSecret, "key expansion", seed, 2*s.KeyLen+2*s.FixedIVLen)
	defer clear(block)

	// Copy every piece into its own allocation, so that appending to one
	// key can never overwrite its neighbour in the key block.
	next := func(n int) []byte {
		b := append([]byte(nil), block[:n]...)
		block = block[n:]
		return b
	}
	client.Key = next(s.KeyLen)
	server.Key = next(s.KeyLen)
	client.IV = next(s.FixedIVLen)
	server.IV = next(s.FixedIVLen)
	return client, server, nil
}
