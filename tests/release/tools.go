//go:build tools

// Package tools pins the release tools built into target/release-tools/bin:
// an OCI registry, an image pusher and a signer.
package tools

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "github.com/sigstore/cosign/v2/cmd/cosign"
)
