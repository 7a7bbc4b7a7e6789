//go:build tools

// Package tools pins the helm command built into target/control-plane/bin.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
