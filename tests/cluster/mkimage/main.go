// Command mkimage writes an OCI image archive (an image layout in a tar, as
// `ctr images import` and `podman load` read it) from root filesystem tars
// and files, with no registry and no container engine. Output is
// reproducible: generated entries have mtime 0 and gzip carries no name or
// time. It prints the manifest digest.
//
//	mkimage -name cmk.local/pause:1 -add ./pause=/pause -entrypoint /pause -user 65535:65535 -out pause.tar
//	mkimage -name cmk.local/busybox:1 -layer rootfs.tar -entrypoint /bin/busybox -out busybox.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type blob struct {
	digest string
	data   []byte
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// gz compresses a layer and returns it with the digest of the uncompressed
// tar (the diff ID the image config lists).
func gz(layer []byte) (compressed []byte, diffID string) {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if _, err := w.Write(layer); err != nil {
		die(err)
	}
	if err := w.Close(); err != nil {
		die(err)
	}
	return out.Bytes(), sum(layer)
}

// filesLayer makes a tar of SRC=DST pairs, parents included, owned by root.
func filesLayer(adds []string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, add := range adds {
		src, dst, ok := strings.Cut(add, "=")
		if !ok || !strings.HasPrefix(dst, "/") {
			die(fmt.Errorf("-add %q: want SRC=/DST", add))
		}
		data, err := os.ReadFile(src)
		if err != nil {
			die(err)
		}
		info, err := os.Stat(src)
		if err != nil {
			die(err)
		}
		name := strings.TrimPrefix(dst, "/")
		var parents []string
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
			dirs[d] = true
		}
		for _, d := range parents {
			must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, Format: tar.FormatPAX}))
		}
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: int64(len(data)), Format: tar.FormatPAX}))
		_, err = tw.Write(data)
		must(err)
	}
	must(tw.Close())
	return buf.Bytes()
}

func main() {
	var layers, adds, env list
	name := flag.String("name", "", "image name, e.g. cmk.local/pause:1 (required)")
	out := flag.String("out", "", "archive to write (required)")
	entrypoint := flag.String("entrypoint", "", "entrypoint, words separated by spaces")
	cmd := flag.String("cmd", "", "default command, words separated by spaces")
	user := flag.String("user", "", "user[:group] the image runs as")
	flag.Var(&layers, "layer", "an uncompressed root filesystem tar, one layer each (repeatable)")
	flag.Var(&adds, "add", "SRC=/DST: a file put in one more layer (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE (repeatable; PATH has a default)")
	flag.Parse()
	if *name == "" || *out == "" || (len(layers) == 0 && len(adds) == 0) {
		flag.Usage()
		os.Exit(2)
	}

	var blobs []blob
	var layerDescs []descriptor
	var diffIDs []string
	addLayer := func(raw []byte) {
		compressed, diffID := gz(raw)
		d := descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: sum(compressed), Size: int64(len(compressed))}
		blobs = append(blobs, blob{d.Digest, compressed})
		layerDescs = append(layerDescs, d)
		diffIDs = append(diffIDs, diffID)
	}
	for _, l := range layers {
		raw, err := os.ReadFile(l)
		must(err)
		addLayer(raw)
	}
	if len(adds) > 0 {
		addLayer(filesLayer(adds))
	}

	hasPath := false
	for _, e := range env {
		hasPath = hasPath || strings.HasPrefix(e, "PATH=")
	}
	if !hasPath {
		env = append(list{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	config := map[string]any{"Env": []string(env), "WorkingDir": "/"}
	if *entrypoint != "" {
		config["Entrypoint"] = strings.Fields(*entrypoint)
	}
	if *cmd != "" {
		config["Cmd"] = strings.Fields(*cmd)
	}
	if *user != "" {
		config["User"] = *user
	}
	configJSON, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	must(err)
	configDesc := descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: sum(configJSON), Size: int64(len(configJSON))}
	blobs = append(blobs, blob{configDesc.Digest, configJSON})

	manifestJSON, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        configDesc,
		"layers":        layerDescs,
	})
	must(err)
	manifestDesc := descriptor{
		MediaType: "application/vnd.oci.image.manifest.v1+json",
		Digest:    sum(manifestJSON),
		Size:      int64(len(manifestJSON)),
		Platform:  map[string]string{"architecture": runtime.GOARCH, "os": "linux"},
		Annotations: map[string]string{
			"io.containerd.image.name":          *name,
			"org.opencontainers.image.ref.name": (*name)[strings.LastIndex(*name, ":")+1:],
		},
	}
	blobs = append(blobs, blob{manifestDesc.Digest, manifestJSON})
	indexJSON, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{manifestDesc},
	})
	must(err)

	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	must(err)
	tw := tar.NewWriter(f)
	write := func(name string, data []byte) {
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}))
		_, err := tw.Write(data)
		must(err)
	}
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755, Format: tar.FormatPAX}))
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/sha256/", Mode: 0o755, Format: tar.FormatPAX}))
	seen := map[string]bool{}
	for _, b := range blobs {
		if !seen[b.digest] {
			seen[b.digest] = true
			write("blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:"), b.data)
		}
	}
	write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	write("index.json", indexJSON)
	must(tw.Close())
	must(f.Close())
	must(os.Rename(tmp, *out))
	fmt.Println(manifestDesc.Digest)
}

func must(err error) {
	if err != nil {
		die(err)
	}
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}
