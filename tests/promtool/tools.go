//go:build tools

// Package tools pins Prometheus's promtool, built into target/promtool/bin to
// check and unit-test the chart's alerting rules (tests/packaging/alerts.rs).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
