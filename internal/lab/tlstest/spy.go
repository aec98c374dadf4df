package tlstest

import "crypto/tls"

// A KeyLogFunc is a crypto/tls KeyLogWriter that hands each line it is
// given to the function.
type KeyLogFunc func(line []byte)

func (f KeyLogFunc) Write(line []byte) (int, error) {
	f(line)
	return len(line), nil
}

// A WatchedCache is a client session cache that shows Watch every
// session crypto/tls puts in it, before it stores it.
type WatchedCache struct {
	tls.ClientSessionCache
	Watch func(*tls.ClientSessionState)
}

func (c *WatchedCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.Watch(cs)
	}
	c.ClientSessionCache.Put(key, cs)
}
