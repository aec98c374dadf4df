package lab

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// EnvCache overrides where the lab keeps kernels and initramfs images.
const EnvCache = "KTLS_LAB_CACHE"

// A Cache is the lab's directory outside the repository: downloaded
// kernels, private apt state and built initramfs images.
type Cache struct {
	Dir string
}

// DefaultCache is $KTLS_LAB_CACHE, or ktls-lab in the user's cache
// directory.
func DefaultCache() (*Cache, error) {
	dir := os.Getenv(EnvCache)
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		dir = filepath.Join(base, "ktls-lab")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return &Cache{Dir: dir}, nil
}

// lock serializes processes that fill the cache: go test -exec starts one
// runner per package, all at once.
func (c *Cache) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(c.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: locking cache: %w", err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
