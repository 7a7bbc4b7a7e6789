//go:build tools

// Package tools pins the node components built into target/cluster/bin, from
// the same k8s.io/kubernetes version as tests/control-plane/go.mod (the
// build script refuses to run when the two differ).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
