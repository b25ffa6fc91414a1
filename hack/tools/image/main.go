// Command image writes a minimal, reproducible OCI image archive without a Docker daemon: one
// layer made of the files given with -add (plus their parent directories), a config with the
// given user and entrypoint, written as an OCI image layout and packed into one tar that
// `ctr images import` (and `docker load`, `skopeo copy oci-archive:`) reads.
//
// Every timestamp is -epoch (SOURCE_DATE_EPOCH or 0), every entry is sorted and owned by
// root, and the layer is compressed with a fixed level, so the same inputs give the same
// manifest digest and the same archive bytes.
//
// Usage (see hack/image.sh):
//
//	image -name ghcr.io/hero-sandbox/controller -tag 0.1.0 -epoch 0 -user 65532:65532 \
//	  -entrypoint /controller -add /controller=target/.../controller:0755 \
//	  -add /etc/passwd=hack/tools/image/rootfs/etc/passwd:0644 -out controller.oci.tar
//
// It prints the manifest digest on stdout.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// file is one regular file of the layer.
type file struct {
	dest string // absolute path in the image
	src  string // path on the host
	mode int64
}

type adds []file

func (a *adds) String() string { return fmt.Sprint(*a) }

// Set parses DEST=SRC:MODE, e.g. /controller=target/release/controller:0755.
func (a *adds) Set(v string) error {
	dest, rest, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want DEST=SRC:MODE", v)
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return fmt.Errorf("%q: want DEST=SRC:MODE", v)
	}
	mode, err := strconv.ParseInt(rest[i+1:], 8, 32)
	if err != nil {
		return fmt.Errorf("%q: mode: %w", v, err)
	}
	if !path.IsAbs(dest) || path.Clean(dest) != dest {
		return fmt.Errorf("%q: DEST must be a clean absolute path", v)
	}
	*a = append(*a, file{dest: dest, src: rest[:i], mode: mode})
	return nil
}

func main() {
	var files adds
	name := flag.String("name", "", "image repository, e.g. ghcr.io/hero-sandbox/controller")
	tag := flag.String("tag", "", "image tag")
	epoch := flag.Int64("epoch", 0, "timestamp of every file and of the image (seconds since 1970)")
	user := flag.String("user", "", "config User, e.g. 65532:65532")
	entrypoint := flag.String("entrypoint", "", "config Entrypoint (one argument)")
	out := flag.String("out", "", "the OCI archive to write")
	flag.Var(&files, "add", "DEST=SRC:MODE (octal), repeated")
	flag.Parse()
	if *name == "" || *tag == "" || *out == "" || *entrypoint == "" || len(files) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	digest, err := build(*name, *tag, time.Unix(*epoch, 0).UTC(), *user, *entrypoint, files, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

func build(name, tag string, when time.Time, user, entrypoint string, files adds, out string) (string, error) {
	layerTar, err := layerBytes(files, when)
	if err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.BestCompression),
	)
	if err != nil {
		return "", err
	}
	created := v1.Time{Time: when}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: created, CreatedBy: "hack/image.sh"},
	})
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = created
	cf.Config = v1.Config{
		User:       user,
		Entrypoint: []string{entrypoint},
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":   name,
			"org.opencontainers.image.version": tag,
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}

	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-layout-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", err
	}
	err = p.AppendImage(img,
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}),
		layout.WithAnnotations(map[string]string{
			// containerd (ctr images import) and docker load name the image after this one.
			"io.containerd.image.name": name + ":" + tag,
			// The OCI image-layout's own reference: the tag.
			"org.opencontainers.image.ref.name": tag,
		}))
	if err != nil {
		return "", err
	}
	if err := tarDir(dir, out, when); err != nil {
		return "", err
	}
	return digest.String(), nil
}

// layerBytes is the uncompressed layer: the parent directories (0755) and the files, sorted,
// owned by 0:0, every time set to when.
func layerBytes(files adds, when time.Time) ([]byte, error) {
	dirs := map[string]bool{}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.dest] {
			return nil, fmt.Errorf("%s added twice", f.dest)
		}
		seen[f.dest] = true
		for d := path.Dir(f.dest); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		name string
		f    *file
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{name: strings.TrimPrefix(d, "/") + "/"})
	}
	for i := range files {
		entries = append(entries, entry{name: strings.TrimPrefix(files[i].dest, "/"), f: &files[i]})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, ModTime: when}
		if e.f == nil {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(e.f.src)
		if err != nil {
			return nil, err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, e.f.mode, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir packs the OCI layout in dir into out (written atomically): sorted entries, fixed
// times, owned by 0:0.
func tarDir(dir, out string, when time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tmp, err := os.CreateTemp(filepath.Dir(out), ".oci-tar-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	for _, p := range names {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: when}
		switch {
		case st.IsDir():
			h.Name += "/"
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		case st.Mode().IsRegular():
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, st.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a file or directory", p)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
