package serve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// rootFS is the http.FileSystem that serve serves: the files under an
// os.Root, so that no path reaches outside the directory, whether by
// "..", an absolute symlink or a relative one that climbs out. Unless
// dotfiles is set, a path with any element that starts with "." (.git,
// .env, .htpasswd) is not found, and directory listings leave such
// entries out. hidden names files that are never served (the private
// key, when it lies inside the directory) by the name that --key gives
// it; keys are the files that hold the private key, which are never
// served by any name that reaches them (a symlink, a symlinked
// directory, a hard link): hidden alone would only cover one of them.
//
// Open returns the *os.File itself for a regular file, so that
// http.ServeContent still hands it to the connection's ReadFrom, which
// sends it with sendfile; an io/fs wrapper (http.FS(root.FS())) would
// hide the file and copy every body through user space.
type rootFS struct {
	root     *os.Root
	dotfiles bool
	hidden   map[string]bool // slash-separated paths relative to the root
	keys     []fs.FileInfo   // compared with os.SameFile
}

func (r *rootFS) Open(name string) (http.File, error) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		name = "."
	}
	if (!r.dotfiles && hasDotElem(name)) || r.hidden[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := r.root.Open(filepath.FromSlash(name))
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
		// A path that escapes the root is, to the client, not there;
		// net/http would answer anything but these two with a 500.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if r.dotfiles && len(r.hidden) == 0 && len(r.keys) == 0 {
		return f, nil
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.IsDir() {
		for _, k := range r.keys {
			if os.SameFile(st, k) {
				f.Close()
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
		}
		return f, nil
	}
	return &dir{File: f, fs: r, name: name}, nil
}

// hasDotElem reports whether any element of a clean slash-separated
// relative path starts with ".".
func hasDotElem(name string) bool {
	if name == "." {
		return false
	}
	for _, e := range strings.Split(name, "/") {
		if strings.HasPrefix(e, ".") {
			return true
		}
	}
	return false
}

// dir is a directory of a rootFS: its listings leave out what Open
// would not serve.
type dir struct {
	*os.File
	fs   *rootFS
	name string
}

func (d *dir) shown(entry string) bool {
	if !d.fs.dotfiles && strings.HasPrefix(entry, ".") {
		return false
	}
	return !d.fs.hidden[path.Join(d.name, entry)]
}

func (d *dir) Readdir(n int) ([]fs.FileInfo, error) {
	all, err := d.File.Readdir(n)
	return shownOnly(d, all, fs.FileInfo.Name), err
}

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	all, err := d.File.ReadDir(n)
	return shownOnly(d, all, fs.DirEntry.Name), err
}

// shownOnly returns the entries of d that it shows, nil for none.
func shownOnly[E any](d *dir, all []E, name func(E) string) []E {
	var out []E
	for _, e := range all {
		if d.shown(name(e)) {
			out = append(out, e)
		}
	}
	return out
}

// insideDir returns file's path relative to dir, slash-separated, when
// file lies inside dir, after symlinks on both.
func insideDir(dir, file string) (string, bool) {
	d, err1 := filepath.EvalSymlinks(dir)
	f, err2 := filepath.EvalSymlinks(file)
	if err1 != nil || err2 != nil {
		return "", false
	}
	d, err1 = filepath.Abs(d)
	f, err2 = filepath.Abs(f)
	if err1 != nil || err2 != nil {
		return "", false
	}
	rel, err := filepath.Rel(d, f)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// readable checks that the directory can be listed, so that a directory
// the server may not read fails at startup instead of answering 403.
func readable(root *os.Root) error {
	f, err := root.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadDir(1); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// withETag gives file responses a weak ETag made of the file's size and
// modification time, as Caddy does, so caches and curl -z revalidate:
// http.ServeContent answers If-None-Match with 304 from it. It is weak
// because two versions of a file may share both; so If-Range, which
// needs a strong one, sends the whole file, as RFC 9110 asks.
func withETag(files http.FileSystem, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if f, err := files.Open(r.URL.Path); err == nil {
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					w.Header().Set("Etag", fmt.Sprintf(`W/"%x-%x"`, st.ModTime().UnixNano(), st.Size()))
				}
				f.Close()
			}
		}
		h.ServeHTTP(w, r)
	})
}
