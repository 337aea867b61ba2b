// Package static holds the dashboard's browser assets: its own CSS and
// scripts and the vendored xterm.js (refreshed by `make assets`, never
// fetched at build time).
package static

import "embed"

// FS holds the files the pages load, served under /static/.
//
//go:embed *.css *.js vendor
var FS embed.FS
